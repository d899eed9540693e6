import Foundation
import Testing
import TradingCore

/// The risk gateway: every check, at its limits, and properties over many random decisions.
@Suite("Risk gateway")
struct RiskGatewayTests {
    static let now = Date(timeIntervalSince1970: 1_767_225_600)
    static let filters = ExchangeFilters(
        tickSize: 0.1,
        stepSize: 0.001,
        minQuantity: 0.001,
        maxQuantity: 1_000,
        minNotional: 5
    )

    var limits: RiskLimits = {
        var limits = RiskLimits()
        limits.maxPriceDeviationFraction = 0.005
        return limits
    }()

    func decision(
        _ action: TradeAction = .long,
        confidence: Double = 0.82,
        leverage: Int = 3,
        entry: Double? = 100_000,
        stop: Double? = 98_000,
        target: Double? = 104_000
    ) -> OrderIntent {
        let proposal = TradeProposal(
            action: action,
            confidence: confidence,
            leverage: leverage,
            entry: entry,
            stopLoss: stop,
            takeProfit: target,
            reasoning: "test"
        )
        let payload = DecisionPayload(
            symbol: "BTCUSDT",
            proposal: proposal,
            provider: "rules",
            model: "m",
            promptVersion: "v",
            attempts: 0,
            candleTime: 0,
            requestID: "r"
        )
        return OrderIntent(decisionID: "decision:r", decision: payload, decidedAt: Self.now.addingTimeInterval(-10))
    }

    func market(
        price: Money = 100_000,
        reference: Money? = 100_000,
        filters: ExchangeFilters = RiskGatewayTests.filters
    ) -> MarketView {
        MarketView(venuePrice: price, referencePrice: reference, filters: filters, now: Self.now)
    }

    var account: AccountView { AccountView(equity: 10_000, availableMargin: 10_000, openSymbols: []) }

    func code(_ result: Result<ApprovedOrder, RiskRejection>) -> RiskRejection.Code? {
        if case .failure(let rejection) = result { return rejection.code }
        return nil
    }

    @Test("a good LONG: sized by risk, rounded to the venue's rules, within every limit")
    func approved() throws {
        let order = try RiskGateway(limits: limits).check(decision(), market: market(), account: account).get()
        // Risk 1 % of 10,000 = 100 USD over a 2,000 stop plus the fees in and out (0.05 % of 100,000 + 98,000 = 99):
        // 100 / 2,099 = 0.0476 → 0.047 BTC (notional 4,700; margin 1,567 ≤ 25 % of equity).
        #expect(order.quantity == Money(string: "0.047") && order.side == .long && order.leverage == 3)
        #expect(order.stopLoss == 98_000 && order.takeProfit == 104_000 && order.riskUSD == 94)
        #expect(order.notional == 4_700 && order.margin == Money(4_700) / 3)
        // Fees: (4,700 + 4,888) × 0.05 % = 4.794; profit 188 − 4.794.
        #expect(order.profitAfterFeesUSD == Money(string: "183.206"))
        #expect(
            order.liquidationPrice == Money(string: "67166.66666666666666666666666666666667")
                || order.liquidationPrice < 98_000
        )
    }

    @Test("the mirror SHORT is approved too")
    func short() throws {
        let order = try RiskGateway(limits: limits).check(
            decision(.short, stop: 102_000, target: 96_000),
            market: market(),
            account: account
        ).get()
        #expect(order.side == .short && order.quantity == Money(string: "0.047") && order.stopLoss == 102_000)
    }

    @Test(
        "HOLD, NaN, infinities, zero and negative prices are refused as invalid",
        arguments: [
            ("hold", 0), ("nan confidence", 1), ("nan entry", 2), ("inf stop", 3), ("-inf target", 4),
            ("zero entry", 5), ("negative stop", 6),
            ("missing target", 7), ("confidence above 1", 8),
        ]
    )
    func invalid(name: String, index: Int) {
        let intents = [
            decision(.hold), decision(confidence: .nan), decision(entry: .nan), decision(stop: .infinity),
            decision(target: -.infinity),
            decision(entry: 0), decision(stop: -1), decision(target: nil), decision(confidence: 1.01),
        ]
        let result = RiskGateway(limits: limits).check(intents[index], market: market(), account: account)
        #expect(code(result) == (index == 0 ? .hold : .invalidDecision), "\(name)")
    }

    @Test("stale decisions and run-away prices are refused")
    func freshness() {
        let gateway = RiskGateway(limits: limits)
        var old = decision()
        old.decidedAt = Self.now.addingTimeInterval(-121)
        #expect(code(gateway.check(old, market: market(), account: account)) == .stale)
        var future = decision()
        future.decidedAt = Self.now.addingTimeInterval(60)
        #expect(code(gateway.check(future, market: market(), account: account)) == .stale)
        #expect(
            code(gateway.check(decision(), market: market(price: 101_001, reference: 101_001), account: account))
                == .priceMoved
        )
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: 101_000, reference: 101_000),
                    account: account
                )
            ) == nil
        )  // 1 % exactly: allowed
    }

    @Test("confidence, leverage and halts")
    func limitsOnTheDecision() {
        let gateway = RiskGateway(limits: limits)
        #expect(code(gateway.check(decision(confidence: 0.7499), market: market(), account: account)) == .lowConfidence)
        #expect(code(gateway.check(decision(confidence: 0.75), market: market(), account: account)) == nil)
        #expect(code(gateway.check(decision(leverage: 0), market: market(), account: account)) == .leverage)
        #expect(code(gateway.check(decision(leverage: 6), market: market(), account: account)) == .leverage)
        var halted = account
        halted.halt = "daily loss limit"
        #expect(code(gateway.check(decision(), market: market(), account: halted)) == .halted)
    }

    /// The guard a copy-trading bot lost $8,000 without: exactly at the limit passes, a hair above fails.
    @Test("price deviation guard exactly at, just below and just above the limit")
    func deviationGuard() {
        let gateway = RiskGateway(limits: limits)
        // Reference 100,000; limit 0.5 %: 100,500 is exactly at it.
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: 100_500, reference: 100_000),
                    account: account
                )
            ) == nil
        )
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: Money(string: "100499.9")!, reference: 100_000),
                    account: account
                )
            ) == nil
        )
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: Money(string: "100500.1")!, reference: 100_000),
                    account: account
                )
            ) == .priceDeviation
        )
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: 99_500, reference: 100_000),
                    account: account
                )
            ) == nil
        )
        #expect(
            code(
                gateway.check(
                    decision(target: 106_000),
                    market: market(price: Money(string: "99499.9")!, reference: 100_000),
                    account: account
                )
            ) == .priceDeviation
        )
        #expect(code(gateway.check(decision(), market: market(reference: nil), account: account)) == .noReferencePrice)
        var lenient = limits
        lenient.requireReferencePrice = false
        #expect(
            code(RiskGateway(limits: lenient).check(decision(), market: market(reference: nil), account: account))
                == nil
        )
    }

    @Test("one position per symbol, and at most MAX_OPEN_POSITIONS")
    func positions() {
        let gateway = RiskGateway(limits: limits)
        var open = account
        open.openSymbols = ["BTCUSDT"]
        #expect(code(gateway.check(decision(), market: market(), account: open)) == .positionOpen)
        open.openSymbols = ["A", "B", "C"]
        #expect(code(gateway.check(decision(), market: market(), account: open)) == .tooManyPositions)
        open.openSymbols = ["A", "B"]
        #expect(code(gateway.check(decision(), market: market(), account: open)) == nil)
    }

    @Test("stop side, stop distance, reward to risk and minimum profit")
    func stopAndTarget() {
        let gateway = RiskGateway(limits: limits)
        #expect(code(gateway.check(decision(stop: 100_500), market: market(), account: account)) == .wrongSide)
        #expect(code(gateway.check(decision(.short), market: market(), account: account)) == .wrongSide)
        #expect(
            code(gateway.check(decision(stop: 99_600, target: 101_000), market: market(), account: account))
                == .stopDistance
        )  // 0.4 %
        #expect(
            code(gateway.check(decision(stop: 92_000, target: 120_000), market: market(), account: account))
                == .stopDistance
        )  // 8 %
        // 7 % exactly
        #expect(code(gateway.check(decision(stop: 93_000, target: 120_000), market: market(), account: account)) == nil)
        #expect(code(gateway.check(decision(target: 102_999.9), market: market(), account: account)) == .rewardRisk)
        // 1.5 exactly
        #expect(code(gateway.check(decision(target: 103_000), market: market(), account: account)) == nil)
        var strict = limits
        strict.minProfitUSD = 1_000
        #expect(code(RiskGateway(limits: strict).check(decision(), market: market(), account: account)) == .minProfit)
    }

    @Test("off-tick stops round toward entry; off-step sizes round down; below the venue's minimums is refused")
    func rounding() throws {
        let gateway = RiskGateway(limits: limits)
        let order = try gateway.check(decision(stop: 97_999.97, target: 104_000.06), market: market(), account: account)
            .get()
        #expect(order.stopLoss == 98_000 && order.takeProfit == 104_000)  // both toward entry
        #expect(order.quantity == Money(string: "0.047"))
        let short = try gateway.check(
            decision(.short, stop: 102_000.04, target: 95_999.93),
            market: market(),
            account: account
        ).get()
        #expect(short.stopLoss == 102_000 && short.takeProfit == 96_000)
        // 100 USD of risk over 2,000 is 0.05 BTC; a 0.1 step makes it 0.
        var coarse = Self.filters
        coarse.stepSize = 0.1
        coarse.minQuantity = 0.1
        #expect(code(gateway.check(decision(), market: market(filters: coarse), account: account)) == .size)
        var bigNotional = Self.filters
        bigNotional.minNotional = 6_000
        #expect(code(gateway.check(decision(), market: market(filters: bigNotional), account: account)) == .size)
        var capped = Self.filters
        capped.maxQuantity = 0.02
        #expect(
            try gateway.check(decision(), market: market(filters: capped), account: account).get().quantity
                == Money(string: "0.02")
        )
    }

    @Test("size is capped by MAX_POSITION_PERCENT and by the margin available")
    func margin() throws {
        let gateway = RiskGateway(limits: limits)
        // A tight stop asks for 0.2 BTC (20,000 notional, 6,667 margin); the cap is 25 % of equity: 2,500 margin → 0.075 BTC.
        let order = try gateway.check(decision(stop: 99_500, target: 101_000), market: market(), account: account).get()
        #expect(order.quantity == Money(string: "0.075") && order.margin <= 2_500)
        var poor = account
        poor.availableMargin = 1_000
        let smaller = try gateway.check(decision(stop: 99_500, target: 101_000), market: market(), account: poor).get()
        #expect(smaller.margin <= 1_000 && smaller.quantity == Money(string: "0.03"))
        poor.availableMargin = 0
        #expect(code(gateway.check(decision(), market: market(), account: poor)) == .margin)
    }

    @Test("the stop must trigger before liquidation, with a buffer")
    func liquidation() {
        var wide = limits
        wide.maxLeverage = 50
        wide.maxStopFraction = 0.1
        let gateway = RiskGateway(limits: wide)
        // 20x: liquidation near 95,500; a 4 % stop (96,000) is inside the 25 % buffer.
        #expect(
            code(
                gateway.check(decision(leverage: 20, stop: 96_000, target: 108_000), market: market(), account: account)
            ) == .liquidation
        )
        #expect(
            code(
                gateway.check(decision(leverage: 20, stop: 98_000, target: 104_000), market: market(), account: account)
            ) == nil
        )
        #expect(
            RiskGateway.liquidationPrice(side: .short, entry: 100, leverage: 10, maintenanceMarginRate: 0.005)
                == Money(string: "109.5")
        )
    }

    @Test("the liquidation check uses the venue's maintenance tier for the order's notional, not a flat 0.5 %")
    func liquidationByTier() {
        var wide = limits
        wide.maxLeverage = 50
        let gateway = RiskGateway(limits: wide)
        let intent = decision(leverage: 20, stop: 98_000, target: 104_000)
        // Flat 0.5 %: liquidation 95,500, the stop at 98,000 is clear of its buffer.
        #expect(code(gateway.check(intent, market: market(), account: account)) == nil)
        // The venue's tiers: 0.5 % to 1,000 of notional, 3 % above. The order's 4,700 needs 2.47 %:
        // liquidation near 97,470, and the stop at 98,000 is inside the 25 % buffer.
        var tiered = market()
        tiered.marginTiers = .continuous([(Money(1_000), Money(string: "0.005")!), (nil, Money(string: "0.03")!)])
        guard case .failure(let refusal) = gateway.check(intent, market: tiered, account: account) else {
            Issue.record("approved with the venue's tiers")
            return
        }
        #expect(refusal.code == .liquidation && refusal.message.contains("97468"), "\(refusal.message)")
    }

    /// Over many random decisions, markets and accounts: whatever is approved keeps every promise.
    // MARK: Resizes

    func resize(_ scale: Double, action: TradeAction = .long) -> OrderIntent {
        var intent = decision(
            action,
            stop: action == .long ? 98_000 : 102_000,
            target: action == .long ? 104_000 : 96_000
        )
        intent.decision.scale = scale
        return intent
    }

    /// 0.02 BTC long at 100,000, 3x, stop 98,000: 40 USD (plus the exit fee) of the 100 USD budget at risk.
    static let held = HeldPosition(side: .long, quantity: 0.02, averagePrice: 100_000, leverage: 3, stopLoss: 98_000)

    @Test(
        "an add is sized to what the leader asked, then cut to the room left in the risk budget at the position's own stop; with no room it is refused"
    )
    func resizeAdd() throws {
        let gateway = RiskGateway(limits: limits)
        // Half as much again: 0.01, within the budget.
        let half = try gateway.checkResize(resize(1.5), held: Self.held, market: market(), account: account).get()
        guard case .add(let quantity, let risk, _) = half else {
            Issue.record(
                "not an add: \(gateway.checkResize(resize(1.5), held: Self.held, market: market(), account: account))"
            )
            return
        }
        #expect(quantity == Money(string: "0.01")!)
        // 0.02 × (2,000 + 49) + 0.01 × (2,000 + 99) = 40.98 + 20.99.
        #expect(risk == Money(string: "61.97")!)
        // Ten times as much: cut to the 100 USD budget: (100 − 40.98) / 2,099 = 0.0281 → 0.028.
        let cut = try gateway.checkResize(resize(11), held: Self.held, market: market(), account: account).get()
        #expect(
            cut
                == .add(
                    quantity: Money(string: "0.028")!,
                    riskUSD: Money(string: "99.752")!,
                    liquidationPrice: cut.liquidation
                )
        )
        // The budget spent already: refused, and why.
        let full = HeldPosition(side: .long, quantity: 0.048, averagePrice: 100_000, leverage: 3, stopLoss: 98_000)
        let refused = gateway.checkResize(resize(2), held: full, market: market(), account: account)
        guard case .failure(let rejection) = refused else {
            Issue.record("approved: \(refused)")
            return
        }
        #expect(rejection.code == .size && rejection.message.contains("no room to add"))
        // A stop trailed into profit leaves the whole budget.
        var trailed = full
        trailed.stopLoss = 100_500
        let price = market(price: 101_000, reference: 101_000)
        #expect(gateway.checkResize(resize(2), held: trailed, market: price, account: account).isSuccess)
    }

    @Test(
        "an add passes the entry's checks (halt, freshness, run-away price, reference, the stop's side and the new liquidation); a reduce only the exit's"
    )
    func resizeChecks() {
        let gateway = RiskGateway(limits: limits)
        let halted = AccountView(equity: 10_000, availableMargin: 10_000, openSymbols: [], halt: "daily loss")
        #expect(gateway.checkResize(resize(2), held: Self.held, market: market(), account: halted).code == .halted)
        #expect(gateway.checkResize(resize(0.5), held: Self.held, market: market(), account: halted).isSuccess)
        #expect(
            gateway.checkResize(resize(2), held: Self.held, market: market(price: 101_500), account: account).code
                == .priceMoved
        )
        #expect(
            gateway.checkResize(resize(2), held: Self.held, market: market(reference: 101_000), account: account).code
                == .priceDeviation
        )
        // The price under the stop: no add.
        var under = Self.held
        under.stopLoss = 100_100
        #expect(gateway.checkResize(resize(2), held: under, market: market(), account: account).code == .wrongSide)
        // At 40x the grown position is liquidated (98,000) before its stop.
        var levered = Self.held
        levered.leverage = 40
        var loose = limits
        loose.maxLeverage = 50
        var intent = resize(2)
        intent.decision.leverage = 40
        #expect(
            RiskGateway(limits: loose).checkResize(intent, held: levered, market: market(), account: account).code
                == .liquidation
        )
        // The side must be the position's; the scale a positive number other than 1.
        #expect(
            gateway.checkResize(resize(2, action: .short), held: Self.held, market: market(), account: account).code
                == .wrongSide
        )
        for scale in [1, 0, -1, Double.nan] {
            #expect(
                gateway.checkResize(resize(scale), held: Self.held, market: market(), account: account).code
                    == .invalidDecision
            )
        }
    }

    @Test(
        "a reduce leaves what is held times the scale, rounded down to the step; nothing left, it closes all; a reduction below the venue's minimum is refused"
    )
    func resizeReduce() {
        let gateway = RiskGateway(limits: limits)
        #expect(
            gateway.checkResize(resize(0.5), held: Self.held, market: market(), account: account).order
                == .reduce(quantity: Money(string: "0.01")!, closesAll: false)
        )
        // 0.02 × 0.33 = 0.0066 left, rounded down to 0.006: 0.014 goes.
        #expect(
            gateway.checkResize(resize(0.33), held: Self.held, market: market(), account: account).order
                == .reduce(quantity: Money(string: "0.014")!, closesAll: false)
        )
        // 0.02 × 0.01 = 0.0002 left rounds to nothing: everything goes.
        #expect(
            gateway.checkResize(resize(0.01), held: Self.held, market: market(), account: account).order
                == .reduce(quantity: Money(string: "0.02")!, closesAll: true)
        )
        // A venue whose minimum is 0.005: 0.002 to take off is refused, and why.
        let coarse = ExchangeFilters(
            tickSize: 0.1,
            stepSize: 0.001,
            minQuantity: 0.005,
            maxQuantity: 1_000,
            minNotional: 5
        )
        #expect(
            gateway.checkResize(resize(0.9), held: Self.held, market: market(filters: coarse), account: account).code
                == .size
        )
    }

    @Test("properties of every approved order, over 20,000 random cases")
    func properties() {
        var random = SplitMix64(seed: 2026)
        let gateway = RiskGateway(limits: limits)
        var approved = 0
        for _ in 0..<20_000 {
            func unit() -> Double { random.nextUnit() }
            let price = 10 + unit() * 100_000
            let long = unit() < 0.5
            let stopFraction = unit() * 0.1
            let rewardRisk = unit() * 3
            let stop = long ? price * (1 - stopFraction) : price * (1 + stopFraction)
            let target = long ? price * (1 + stopFraction * rewardRisk) : price * (1 - stopFraction * rewardRisk)
            let special: [Double] = [.nan, .infinity, -1, 0]
            let entry = unit() < 0.02 ? special[Int(unit() * 4)] : price * (1 + (unit() - 0.5) * 0.03)
            let intent = decision(
                long ? .long : .short,
                confidence: unit(),
                leverage: Int(unit() * 8),
                entry: entry,
                stop: stop,
                target: target
            )
            let venue = Money(finite: (price * 10).rounded() / 10)!
            let reference = unit() < 0.1 ? nil : Money(finite: price * (1 + (unit() - 0.5) * 0.02))
            let account = AccountView(
                equity: Money(finite: (unit() * 50_000).rounded())!,
                availableMargin: Money(finite: (unit() * 20_000).rounded())!,
                openSymbols: unit() < 0.2 ? ["BTCUSDT"] : []
            )
            guard
                case .success(let order) = gateway.check(
                    intent,
                    market: market(price: venue, reference: reference),
                    account: account
                )
            else { continue }
            approved += 1
            let f = Self.filters
            #expect(
                order.quantity >= f.minQuantity && order.quantity <= f.maxQuantity
                    && f.quantity(order.quantity) == order.quantity
            )
            #expect(
                order.notional >= f.minNotional && order.margin <= account.availableMargin
                    && order.margin <= limits.maxPositionFraction * account.equity + 0.0001
            )
            #expect(f.isOnTick(order.stopLoss) && f.isOnTick(order.takeProfit))
            let risk = (order.entryPrice - order.stopLoss).magnitude
            let reward = (order.takeProfit - order.entryPrice).magnitude
            #expect(
                order.side == .long
                    ? order.stopLoss < order.entryPrice && order.entryPrice < order.takeProfit
                    : order.takeProfit < order.entryPrice && order.entryPrice < order.stopLoss
            )
            #expect(
                risk / order.entryPrice >= limits.minStopFraction && risk / order.entryPrice <= limits.maxStopFraction
            )
            #expect(reward >= limits.minRewardRisk * risk && order.profitAfterFeesUSD >= limits.minProfitUSD)
            #expect(order.riskUSD <= account.equity * limits.riskPerTradeFraction + 0.000001)
            #expect(
                order.side == .long ? order.stopLoss > order.liquidationPrice : order.stopLoss < order.liquidationPrice
            )
            #expect(
                (1...limits.maxLeverage).contains(order.leverage) && intent.decision.confidence >= limits.minConfidence
            )
            if let reference {
                #expect((order.entryPrice - reference).magnitude / reference <= limits.maxPriceDeviationFraction)
            }
            #expect(reference != nil && !account.openSymbols.contains("BTCUSDT"))
        }
        #expect(approved > 200, "enough approved cases to mean something: \(approved)")
    }
}

extension Result where Success == ResizeOrder, Failure == RiskRejection {
    var code: RiskRejection.Code? { if case .failure(let rejection) = self { rejection.code } else { nil } }
    var order: ResizeOrder? { try? get() }
    var isSuccess: Bool { order != nil }
}

extension ResizeOrder {
    var liquidation: Money { if case .add(_, _, let price) = self { price } else { 0 } }
}
