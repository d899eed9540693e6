import Foundation

/// The limits every order must respect. Every `…Fraction` is a fraction (0.07 is 7 %), as the
/// configuration's `…_PERCENT` keys are.
public struct RiskLimits: Sendable, Hashable, Codable {
    public var minConfidence: Double = 0.75
    public var maxLeverage = 5
    public var minStopFraction: Money = 0.005
    public var maxStopFraction: Money = 0.07
    public var minRewardRisk: Money = 1.5
    /// The profit at take-profit, after entry and exit fees, must reach this (USD).
    public var minProfitUSD: Money = 1
    /// Equity risked per trade: the loss at the stop.
    public var riskPerTradeFraction: Money = 0.01
    /// The most margin one position may use, as a fraction of equity.
    public var maxPositionFraction: Money = 0.25
    public var maxOpenPositions = 3
    public var maxDecisionAge: TimeInterval = 120
    /// How far the price may have moved since the decision's entry.
    public var maxPriceMoveFraction: Money = 0.01
    /// How far the venue's price may be from the reference (another venue, or the mark or index price).
    public var maxPriceDeviationFraction: Money = 0.005
    /// Without a reference price there is no trade, unless this is off.
    public var requireReferencePrice = true
    /// The stop must sit at least this fraction of the entry-to-liquidation distance before liquidation.
    public var liquidationBufferFraction: Money = 0.25
    /// Maintenance margin rate used to estimate the liquidation price (isolated margin) when the
    /// venue's tiers are unknown.
    public var maintenanceMarginRate: Money = 0.005
    /// Taker fee rate, for the profit-after-fees check (market entry and exit).
    public var takerFeeRate: Money = 0.0005

    /// The defaults, as documented on each field.
    public init() {}
}

/// A decision, as the executor received it.
public struct OrderIntent: Sendable, Hashable {
    public var decisionID: String
    public var decision: DecisionPayload
    /// When the decision was made (its envelope time).
    public var decidedAt: Date

    /// A `OrderIntent` with the fields given.
    public init(decisionID: String, decision: DecisionPayload, decidedAt: Date) {
        self.decisionID = decisionID
        self.decision = decision
        self.decidedAt = decidedAt
    }
}

/// The market as the executor sees it when a decision arrives.
public struct MarketView: Sendable, Hashable {
    /// The price an order would fill near now, at the venue.
    public var venuePrice: Money
    /// A second opinion: another venue, or the mark or index price; nil if none is known.
    public var referencePrice: Money?
    public var filters: ExchangeFilters
    public var now: Date
    /// The venue's maintenance-margin tiers for the symbol (nil: the limits' flat rate).
    public var marginTiers: MarginTiers?

    /// A `MarketView` with the fields given.
    public init(
        venuePrice: Money,
        referencePrice: Money?,
        filters: ExchangeFilters,
        now: Date,
        marginTiers: MarginTiers? = nil
    ) {
        self.venuePrice = venuePrice
        self.referencePrice = referencePrice
        self.filters = filters
        self.now = now
        self.marginTiers = marginTiers
    }
}

/// The account as the executor sees it.
public struct AccountView: Sendable, Hashable {
    public var equity: Money
    public var availableMargin: Money
    /// Symbols with an open position.
    public var openSymbols: Set<String>
    /// Why trading is halted, if a circuit breaker has tripped.
    public var halt: String?

    /// A `AccountView` with the fields given.
    public init(equity: Money, availableMargin: Money, openSymbols: Set<String>, halt: String? = nil) {
        self.equity = equity
        self.availableMargin = availableMargin
        self.openSymbols = openSymbols
        self.halt = halt
    }
}

/// An order the gateway allows: every number rounded to the venue's rules, toward safety.
public struct ApprovedOrder: Sendable, Hashable, Codable {
    public var decisionID: String
    public var symbol: String
    public var side: PositionSide
    public var quantity: Money
    public var leverage: Int
    /// The price the checks assumed (the venue's, now).
    public var entryPrice: Money
    public var stopLoss: Money
    public var takeProfit: Money
    public var notional: Money
    public var margin: Money
    /// Loss at the stop, before fees.
    public var riskUSD: Money
    /// Profit at take-profit, after entry and exit fees.
    public var profitAfterFeesUSD: Money
    public var liquidationPrice: Money
}

/// An open position, as a resize finds it: its side, size, average, leverage and current stop.
public struct HeldPosition: Sendable, Hashable {
    public var side: PositionSide
    public var quantity: Money
    public var averagePrice: Money
    public var leverage: Int
    public var stopLoss: Money?

    /// A `HeldPosition` with the fields given.
    public init(side: PositionSide, quantity: Money, averagePrice: Money, leverage: Int, stopLoss: Money?) {
        self.side = side
        self.quantity = quantity
        self.averagePrice = averagePrice
        self.leverage = leverage
        self.stopLoss = stopLoss
    }
}

/// A resize the gateway allows (``RiskGateway/checkResize(_:held:market:account:)``).
public enum ResizeOrder: Sendable, Hashable {
    /// Buy (a long) or sell (a short) `quantity` more; the position's stop covers the total, which loses
    /// `riskUSD` at it and is liquidated at `liquidationPrice`.
    case add(quantity: Money, riskUSD: Money, liquidationPrice: Money)
    /// Close `quantity` reduce-only; `closesAll` when that is the whole position.
    case reduce(quantity: Money, closesAll: Bool)
}

/// Why the gateway said no. Every refusal is typed and says what failed.
public struct RiskRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which check refused the decision.
    public enum Code: String, Sendable, Hashable, Codable, CaseIterable {
        case hold
        case invalidDecision = "invalid_decision"
        case halted
        case stale
        case priceMoved = "price_moved"
        case lowConfidence = "low_confidence"
        case leverage
        case wrongSide = "wrong_side"
        case stopDistance = "stop_distance"
        case rewardRisk = "reward_risk"
        case minProfit = "min_profit"
        case positionOpen = "position_open"
        case tooManyPositions = "too_many_positions"
        case noReferencePrice = "no_reference_price"
        case priceDeviation = "price_deviation"
        case size
        case margin
        case liquidation
    }

    public var code: Code
    /// What failed, in words: worked out when read, so a caller that only needs the code (the
    /// backtester, refusing thousands of decisions) does not pay for decimal formatting.
    public var message: String { explain() }
    private let explain: @Sendable () -> String

    /// A refusal by the check `code`; the message is built only when read.
    public init(_ code: Code, _ message: @autoclosure @escaping @Sendable () -> String) {
        self.code = code
        self.explain = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Equal when the code and the message are.
    public static func == (lhs: RiskRejection, rhs: RiskRejection) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }
}

/// The pre-trade risk gateway: a decision becomes an order only if every check passes, in this order:
/// the decision is a trade with finite, positive numbers; trading is not halted; the decision is fresh
/// and the price has not run away from it; confidence and leverage are within limits; the venue's
/// price agrees with the reference; there is no position on the symbol and room for one more; the stop
/// is on the right side at an allowed distance; the size follows the risk per trade (fees included), capped by the
/// position limit and the margin available, rounded down to the step and above the venue's minimums;
/// the stop and target, rounded toward entry to the tick, still give the minimum reward to risk and the
/// minimum profit after fees; and the stop triggers before the estimated liquidation price, with a buffer.
public struct RiskGateway: Sendable {
    public var limits: RiskLimits

    /// A `RiskGateway` with the field given.
    public init(limits: RiskLimits) { self.limits = limits }

    /// Checks a decision against every limit and sizes it, or says which check refused it and why.
    public func check(
        _ intent: OrderIntent,
        market: MarketView,
        account: AccountView
    ) -> Result<ApprovedOrder, RiskRejection> {
        let d = intent.decision
        // The decision itself.
        let side: PositionSide
        switch d.action {
        case .hold: return .failure(RiskRejection(.hold, "the decision is HOLD"))
        case .long: side = .long
        case .short: side = .short
        }
        guard d.confidence.isFinite, (0...1).contains(d.confidence) else {
            return .failure(RiskRejection(.invalidDecision, "confidence \(d.confidence) is not a number in 0...1"))
        }
        guard let entry = d.entry.flatMap(Money.init(finite:)), let stop = d.stopLoss.flatMap(Money.init(finite:)),
            let target = d.takeProfit.flatMap(Money.init(finite:))
        else {
            return .failure(RiskRejection(.invalidDecision, "entry, stop_loss and take_profit must be finite numbers"))
        }
        guard entry > 0, stop > 0, target > 0 else {
            return .failure(
                RiskRejection(
                    .invalidDecision,
                    "prices must be positive (entry \(entry), stop \(stop), take-profit \(target))"
                )
            )
        }
        if let refusal = marketChecks(intent, entry: entry, market: market, account: account) {
            return .failure(refusal)
        }
        let price = market.venuePrice

        // Positions.
        guard !account.openSymbols.contains(d.symbol) else {
            return .failure(RiskRejection(.positionOpen, "\(d.symbol) already has an open position"))
        }
        guard account.openSymbols.count < limits.maxOpenPositions else {
            return .failure(
                RiskRejection(
                    .tooManyPositions,
                    "\(account.openSymbols.count) positions open; at most \(limits.maxOpenPositions)"
                )
            )
        }

        // Stop and target, rounded toward entry, on the right side.
        let filters = market.filters
        let roundedStop = filters.price(stop, toward: price)
        let roundedTarget = filters.price(target, toward: price)
        let rightSide =
            side == .long ? roundedStop < price && price < roundedTarget : roundedTarget < price && price < roundedStop
        guard rightSide else {
            return .failure(
                RiskRejection(
                    .wrongSide,
                    "a \(side.rawValue) needs \(side == .long ? "stop < price < take-profit" : "take-profit < price < stop"); got stop \(roundedStop), price \(price), take-profit \(roundedTarget)"
                )
            )
        }
        let risk = (price - roundedStop).magnitude
        let reward = (roundedTarget - price).magnitude
        guard risk >= limits.minStopFraction * price, risk <= limits.maxStopFraction * price else {
            return .failure(
                RiskRejection(
                    .stopDistance,
                    "the stop is \(risk / price) from the price; allowed \(limits.minStopFraction)...\(limits.maxStopFraction)"
                )
            )
        }
        guard reward >= limits.minRewardRisk * risk else {
            return .failure(
                RiskRejection(.rewardRisk, "reward to risk is \(reward / risk); at least \(limits.minRewardRisk)")
            )
        }

        // Size.
        let leverage = Money(d.leverage)
        let marginCap = min(limits.maxPositionFraction * account.equity, account.availableMargin)
        guard marginCap > 0 else { return .failure(RiskRejection(.margin, "no margin available")) }
        // The smaller of the size the risk allows (the budget over the loss per unit at the stop, fees
        // in and out included) and the size the margin allows (at margin / price), chosen by comparing
        // products: one division instead of two. Rounded down: a size never exceeds either.
        let atRisk = account.equity * limits.riskPerTradeFraction
        let atMargin = marginCap * leverage
        let perUnit = risk + limits.takerFeeRate * (price + roundedStop)
        let affordable =
            atRisk * price <= atMargin * perUnit
            ? atRisk.divided(by: perUnit, rounding: .down) : atMargin.divided(by: price, rounding: .down)
        // A size asked for (a copied position) is taken when the limits allow it, else cut to them.
        let requested = d.quantity.flatMap(Money.init(finite:))
        if let asked = d.quantity, !(requested.map { $0 > 0 } ?? false) {
            return .failure(RiskRejection(.invalidDecision, "the quantity asked for (\(asked)) is not positive"))
        }
        let quantity = filters.quantity(min(affordable, filters.maxQuantity, requested ?? affordable))
        guard quantity >= filters.minQuantity, quantity > 0 else {
            return .failure(
                RiskRejection(
                    .size,
                    "the size \(quantity) is below the venue's minimum quantity \(filters.minQuantity)"
                        + (requested.map { " (\($0) asked for)" } ?? "")
                )
            )
        }
        let notional = quantity * price
        guard notional >= filters.minNotional else {
            return .failure(
                RiskRejection(.size, "the notional \(notional) is below the venue's minimum \(filters.minNotional)")
            )
        }
        guard notional <= account.availableMargin * leverage else {
            return .failure(
                RiskRejection(
                    .margin,
                    "the margin \(notional / leverage) exceeds what is available (\(account.availableMargin))"
                )
            )
        }

        // Profit after fees.
        let fees = (notional + quantity * roundedTarget) * limits.takerFeeRate
        let profit = quantity * reward - fees
        guard profit >= limits.minProfitUSD else {
            return .failure(
                RiskRejection(
                    .minProfit,
                    "the profit at take-profit after fees is \(profit) USD; at least \(limits.minProfitUSD)"
                )
            )
        }

        // Liquidation, at the maintenance rate of the tier this notional falls in.
        let maintenance = market.marginTiers?.rate(notional: notional) ?? limits.maintenanceMarginRate
        let liquidation = Self.liquidationPrice(
            side: side,
            entry: price,
            leverage: leverage,
            maintenanceMarginRate: maintenance
        )
        let room = (price - liquidation).magnitude
        let safe =
            side == .long
            ? roundedStop > liquidation + limits.liquidationBufferFraction * room
            : roundedStop < liquidation - limits.liquidationBufferFraction * room
        guard safe else {
            return .failure(
                RiskRejection(
                    .liquidation,
                    "the stop \(roundedStop) is too near or past the liquidation price \(liquidation) at \(d.leverage)x"
                )
            )
        }

        return .success(
            ApprovedOrder(
                decisionID: intent.decisionID,
                symbol: d.symbol,
                side: side,
                quantity: quantity,
                leverage: d.leverage,
                entryPrice: price,
                stopLoss: roundedStop,
                takeProfit: roundedTarget,
                notional: notional,
                margin: notional / leverage,
                riskUSD: quantity * risk,
                profitAfterFeesUSD: profit,
                liquidationPrice: liquidation
            )
        )
    }

    /// The checks every order that adds exposure passes before its size is worked out: the venue's
    /// price and the equity are positive; trading is not halted; the decision is fresh and the price
    /// has not run from its `entry`; confidence and leverage are within limits; the venue's price agrees
    /// with the reference. Nil when all pass.
    func marketChecks(
        _ intent: OrderIntent,
        entry: Money,
        market: MarketView,
        account: AccountView
    ) -> RiskRejection? {
        let d = intent.decision
        let price = market.venuePrice
        guard price > 0, account.equity > 0 else {
            return RiskRejection(
                .invalidDecision,
                "the venue price (\(price)) and equity (\(account.equity)) must be positive"
            )
        }
        if let halt = account.halt { return RiskRejection(.halted, "trading is halted: \(halt)") }
        // Fresh.
        let age = market.now.timeIntervalSince(intent.decidedAt)
        guard age <= limits.maxDecisionAge, age >= -5 else {
            return RiskRejection(.stale, "the decision is \(Int(age)) s old; at most \(Int(limits.maxDecisionAge)) s")
        }
        // Fractions are compared as products (exact; a decimal division rounds, and costs far more).
        guard (price - entry).magnitude <= limits.maxPriceMoveFraction * entry else {
            return RiskRejection(
                .priceMoved,
                "the price moved \((price - entry).magnitude / entry) since the decision (\(entry) → \(price)); at most \(limits.maxPriceMoveFraction)"
            )
        }
        guard d.confidence >= limits.minConfidence else {
            return RiskRejection(.lowConfidence, "confidence \(d.confidence) is below \(limits.minConfidence)")
        }
        guard (1...limits.maxLeverage).contains(d.leverage) else {
            return RiskRejection(.leverage, "leverage \(d.leverage) is outside 1...\(limits.maxLeverage)")
        }
        // The venue against the reference.
        if let reference = market.referencePrice {
            guard reference > 0 else {
                return RiskRejection(.noReferencePrice, "the reference price \(reference) is not positive")
            }
            guard (price - reference).magnitude <= limits.maxPriceDeviationFraction * reference else {
                return RiskRejection(
                    .priceDeviation,
                    "the venue price \(price) is \((price - reference).magnitude / reference) from the reference \(reference); at most \(limits.maxPriceDeviationFraction)"
                )
            }
        } else if limits.requireReferencePrice {
            return RiskRejection(.noReferencePrice, "no reference price to check the venue's against")
        }
        return nil
    }

    /// Checks a resize (``DecisionPayload/scale``) of the open position `held` and sizes it, or says
    /// which check refused it and why.
    /// - Below 1, a reduce: the checks for exits; what stays is `held` × scale rounded down to the step,
    ///   and nothing when that is below the venue's minimums; a reduction itself below the minimum
    ///   quantity is refused (`size`).
    /// - Above 1, an add: every check an entry passes up to the reference price, then the position's own
    ///   stop (never the decision's; it may have been moved since) covers the total. The add is
    ///   `held` × (scale − 1), cut to what keeps the loss at the stop of the whole position within the
    ///   risk per trade and its margin within the position limit and the margin available. The stop must
    ///   still be on the right side of the price, within the largest stop distance of the new average,
    ///   and trigger before the new liquidation price, with the buffer.
    public func checkResize(
        _ intent: OrderIntent,
        held: HeldPosition,
        market: MarketView,
        account: AccountView
    ) -> Result<ResizeOrder, RiskRejection> {
        let d = intent.decision
        guard let scale = d.scale.flatMap(Money.init(finite:)), scale > 0, scale != 1 else {
            return .failure(
                RiskRejection(
                    .invalidDecision,
                    "scale \(d.scale.map { "\($0)" } ?? "none") is not a positive number other than 1"
                )
            )
        }
        guard d.action == (held.side == .long ? .long : .short) else {
            return .failure(
                RiskRejection(
                    .wrongSide,
                    "a resize names the side of the position it resizes: the \(d.symbol) position is \(held.side.rawValue), the decision \(d.action.rawValue)"
                )
            )
        }
        let filters = market.filters
        if scale < 1 {
            if let refusal = checkExit(intent, now: market.now) { return .failure(refusal) }
            // What stays is rounded down (less exposure, never more); below the venue's minimums, nothing stays.
            let remaining = filters.quantity(held.quantity * scale)
            let quantity = held.quantity - remaining
            if remaining < filters.minQuantity || remaining * market.venuePrice < filters.minNotional || remaining <= 0
            {
                return .success(.reduce(quantity: held.quantity, closesAll: true))
            }
            guard quantity >= filters.minQuantity, quantity > 0 else {
                return .failure(
                    RiskRejection(
                        .size,
                        "the reduction \(quantity) (of \(held.quantity), keeping \(remaining)) is below the venue's minimum quantity \(filters.minQuantity)"
                    )
                )
            }
            return .success(.reduce(quantity: quantity, closesAll: false))
        }
        guard let entry = d.entry.flatMap(Money.init(finite:)), entry > 0 else {
            return .failure(RiskRejection(.invalidDecision, "an add needs a positive finite entry price"))
        }
        if let refusal = marketChecks(intent, entry: entry, market: market, account: account) {
            return .failure(refusal)
        }
        let price = market.venuePrice
        let long = held.side == .long
        guard let stop = held.stopLoss, long ? stop < price : stop > price else {
            return .failure(
                RiskRejection(
                    .wrongSide,
                    "no add to the \(held.side.rawValue) \(d.symbol): its stop \(held.stopLoss.map { "\($0)" } ?? "(none)") is not on the safe side of the price \(price)"
                )
            )
        }
        // Room in the risk budget: the loss at the stop of what is held (exit fee at the stop included)
        // against the budget; a stop moved past the average into profit leaves the whole budget.
        let budget = account.equity * limits.riskPerTradeFraction
        let heldLoss =
            held.quantity * ((long ? held.averagePrice - stop : stop - held.averagePrice) + limits.takerFeeRate * stop)
        let perUnit = (price - stop).magnitude + limits.takerFeeRate * (price + stop)
        let byRisk = max(budget - max(heldLoss, 0), 0).divided(by: perUnit, rounding: .down)
        // Room in the margin: the whole position within the position limit, the add within what is free.
        let leverage = Money(held.leverage)
        let positionCap = limits.maxPositionFraction * account.equity * leverage - held.quantity * held.averagePrice
        let byMargin = max(min(positionCap, account.availableMargin * leverage), 0).divided(by: price, rounding: .down)
        let wanted = held.quantity * (scale - 1)
        let quantity = filters.quantity(min(wanted, byRisk, byMargin, max(filters.maxQuantity - held.quantity, 0)))
        guard quantity >= filters.minQuantity, quantity > 0 else {
            return .failure(
                RiskRejection(
                    .size,
                    "no room to add to the \(held.side.rawValue) \(d.symbol): \(wanted) asked, \(quantity) fits the risk per trade at its stop \(stop), the position limit and the margin (venue minimum \(filters.minQuantity))"
                )
            )
        }
        guard quantity * price >= filters.minNotional else {
            return .failure(
                RiskRejection(
                    .size,
                    "the notional \(quantity * price) is below the venue's minimum \(filters.minNotional)"
                )
            )
        }
        let total = held.quantity + quantity
        let average = (held.quantity * held.averagePrice + quantity * price) / total
        guard (average - stop).magnitude <= limits.maxStopFraction * average || (long ? stop > average : stop < average)
        else {
            return .failure(
                RiskRejection(
                    .stopDistance,
                    "the stop \(stop) is \((average - stop).magnitude / average) from the new average \(average); at most \(limits.maxStopFraction)"
                )
            )
        }
        let maintenance = market.marginTiers?.rate(notional: total * price) ?? limits.maintenanceMarginRate
        let liquidation = Self.liquidationPrice(
            side: held.side,
            entry: average,
            leverage: leverage,
            maintenanceMarginRate: maintenance
        )
        let room = (average - liquidation).magnitude
        guard
            long
                ? stop > liquidation + limits.liquidationBufferFraction * room
                : stop < liquidation - limits.liquidationBufferFraction * room
        else {
            return .failure(
                RiskRejection(
                    .liquidation,
                    "the stop \(stop) is too near or past the liquidation price \(liquidation) of the grown position at \(held.leverage)x"
                )
            )
        }
        let loss = max(heldLoss, 0) + quantity * perUnit
        return .success(.add(quantity: quantity, riskUSD: loss, liquidationPrice: liquidation))
    }

    /// The checks an opposing decision must pass before it closes a position: a real decision
    /// (confidence a number in 0...1, leverage within limits), fresh, and confident enough. Nil when
    /// it passes. (An exit needs no entry, stop or target: those are not checked.)
    public func checkExit(_ intent: OrderIntent, now: Date) -> RiskRejection? {
        let d = intent.decision
        guard d.action != .hold else { return RiskRejection(.hold, "the decision is HOLD") }
        guard d.confidence.isFinite, (0...1).contains(d.confidence) else {
            return RiskRejection(.invalidDecision, "confidence \(d.confidence) is not a number in 0...1")
        }
        guard (1...limits.maxLeverage).contains(d.leverage) else {
            return RiskRejection(.leverage, "leverage \(d.leverage) is outside 1...\(limits.maxLeverage)")
        }
        let age = now.timeIntervalSince(intent.decidedAt)
        guard age <= limits.maxDecisionAge, age >= -5 else {
            return RiskRejection(.stale, "the decision is \(Int(age)) s old; at most \(Int(limits.maxDecisionAge)) s")
        }
        guard d.confidence >= limits.minConfidence else {
            return RiskRejection(.lowConfidence, "confidence \(d.confidence) is below \(limits.minConfidence)")
        }
        return nil
    }

    /// The liquidation price of an isolated position: where the loss eats the initial margin down to
    /// the maintenance margin.
    public static func liquidationPrice(
        side: PositionSide,
        entry: Money,
        leverage: Money,
        maintenanceMarginRate: Money
    ) -> Money {
        let initial = 1 / leverage
        return side == .long
            ? entry * (1 - initial + maintenanceMarginRate) : entry * (1 + initial - maintenanceMarginRate)
    }
}
