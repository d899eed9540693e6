import Foundation

/// One pre-trade check as it was passed or failed, with its figures: what a trade's page and `/why`
/// show.
public struct RiskCheckResult: Sendable, Hashable, Codable {
    /// The check's code, as ``RiskRejection/Code`` names it (`stop_distance`, `reward_risk`, …).
    public var check: String
    public var passed: Bool
    /// The figure the check measured.
    public var value: String
    /// What the limit allows.
    public var limit: String

    /// A `RiskCheckResult` with the fields given.
    public init(check: String, passed: Bool, value: String, limit: String) {
        self.check = check
        self.passed = passed
        self.value = value
        self.limit = limit
    }
}

/// What the executor did with a decision, recorded with the decision.
public struct DecisionOutcome: Sendable, Hashable, Codable {
    public enum Status: String, Sendable, Hashable, Codable {
        /// The gateway passed it and the entry order went out.
        case ordered
        /// A check refused it (`code` and `reason` say which and why).
        case refused
        /// A HOLD: nothing to do.
        case hold
        /// An opposing decision that closes the open position.
        case closing
    }

    public var status: Status
    /// The refusing check's code (``RiskRejection/Code``), for a refusal.
    public var code: String?
    public var reason: String?
    /// Every check the gateway ran on an ordered decision, with its figures.
    public var checks: [RiskCheckResult]
    public var time: Date

    /// A `DecisionOutcome` with the fields given.
    public init(
        status: Status,
        code: String? = nil,
        reason: String? = nil,
        checks: [RiskCheckResult] = [],
        time: Date
    ) {
        self.status = status
        self.code = code
        self.reason = reason
        self.checks = checks
        self.time = time
    }
}

extension RiskGateway {
    /// The checks an approved order passed, with the figures the gateway used: the explanation a
    /// trade carries. Worked out after the fact from the order, so the check itself pays nothing for it.
    public func report(
        _ order: ApprovedOrder,
        intent: OrderIntent,
        market: MarketView,
        account: AccountView
    ) -> [RiskCheckResult] {
        let d = intent.decision
        let price = order.entryPrice
        func percent(_ value: Money) -> String { Self.percent(value) }
        func cents(_ value: Money) -> Money {
            value.rounded(toMultipleOf: Money(raw: Money.scale / 100), .toNearestOrEven)
        }
        var checks: [RiskCheckResult] = []
        func add(_ code: RiskRejection.Code, _ value: String, _ limit: String) {
            checks.append(RiskCheckResult(check: code.rawValue, passed: true, value: value, limit: limit))
        }
        add(.halted, "not halted", "no halt, no breaker tripped")
        let age = market.now.timeIntervalSince(intent.decidedAt)
        add(.stale, "\(Int(age.rounded())) s old", "at most \(Int(limits.maxDecisionAge)) s")
        if let entry = d.entry.flatMap(Money.init(finite:)), entry > 0 {
            add(
                .priceMoved,
                "\(percent((price - entry).magnitude / entry)) (\(entry) → \(price))",
                "at most \(percent(limits.maxPriceMoveFraction))"
            )
        }
        add(.lowConfidence, String(format: "%.2f", d.confidence), "at least \(limits.minConfidence)")
        add(.leverage, "\(order.leverage)x", "at most \(limits.maxLeverage)x")
        if let reference = market.referencePrice, reference > 0 {
            add(
                .priceDeviation,
                "\(percent((price - reference).magnitude / reference)) from \(reference)",
                "at most \(percent(limits.maxPriceDeviationFraction))"
            )
        } else {
            add(.noReferencePrice, "none", limits.requireReferencePrice ? "required" : "not required")
        }
        add(
            .tooManyPositions,
            "\(account.openSymbols.count) open before this one",
            "at most \(limits.maxOpenPositions)"
        )
        let risk = (price - order.stopLoss).magnitude
        let reward = (order.takeProfit - price).magnitude
        add(
            .stopDistance,
            "\(percent(risk / price)) (stop \(order.stopLoss))",
            "\(percent(limits.minStopFraction)) to \(percent(limits.maxStopFraction))"
        )
        add(
            .rewardRisk,
            risk > 0 ? String(format: "%.2f", (reward / risk).doubleValue) : "-",
            "at least \(limits.minRewardRisk)"
        )
        add(
            .size,
            "\(order.quantity) (notional \(cents(order.notional)) USD, loss at stop \(cents(order.riskUSD)) USD)",
            "risk \(percent(limits.riskPerTradeFraction)) of equity \(cents(account.equity))"
        )
        add(
            .margin,
            "\(cents(order.margin)) USD",
            "at most \(cents(min(limits.maxPositionFraction * account.equity, account.availableMargin))) USD"
        )
        add(.minProfit, "\(cents(order.profitAfterFeesUSD)) USD after fees", "at least \(limits.minProfitUSD) USD")
        add(
            .liquidation,
            "stop \(order.stopLoss), liquidation \(order.liquidationPrice)",
            "stop \(percent(limits.liquidationBufferFraction)) of the way before liquidation"
        )
        return checks
    }

    /// `0.0123` as `1.23 %`.
    static func percent(_ fraction: Money) -> String { String(format: "%.2f %%", fraction.doubleValue * 100) }
}
