import Foundation
import Testing

@testable import TradingCore

@Suite("Backtester and the paper venue's fast path")
struct BacktesterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func candles(_ file: String) throws -> [Candle] {
        try CandleFile.parse(
            try String(
                contentsOf: root.appendingPathComponent("Tests/Fixtures/market-data/\(file).csv"),
                encoding: .utf8
            )
        )
    }

    /// A random walk whose candles often reach the stops, targets and liquidation prices set below.
    static func walk(_ count: Int, seed: UInt64) -> [Candle] {
        var market = SyntheticMarket(
            symbols: ["X"],
            seed: seed,
            intervalMilliseconds: 60_000,
            startTime: 1_767_225_600_000,
            startPrice: 100,
            volatility: 0.01
        )
        return (0..<count).flatMap { _ in market.next() }
    }

    @Test(
        "a candle taken on the fast path (Doubles) leaves the paper venue exactly as the decimal path does: events, balance, positions, equity",
        arguments: [1, 2, 3, 4] as [UInt64]
    )
    func fastPathIsExact(seed: UInt64) throws {
        var settings = PaperExchange.Settings()
        settings.filters = ExchangeFilters(
            tickSize: 0.01,
            stepSize: 0.001,
            minQuantity: 0.001,
            maxQuantity: 1_000_000,
            minNotional: 5
        )
        var fast = PaperExchange(settings: settings, balance: 10_000, instance: "p")
        var exact = fast
        var generator = SplitMix64(seed: seed)
        var orders = 0
        var closes = 0
        var fastCandles = 0
        var openedAt = 0
        for (index, candle) in Self.walk(6_000, seed: seed).enumerated() {
            let time = Date(timeIntervalSince1970: Double(candle.openTime + 60_000) / 1000)
            let before = fast.positions.isEmpty ? nil : fast.lastCandle["X"]
            try fast.onCandle(symbol: "X", candle: candle, time: time)
            exact.onCandle(
                symbol: "X",
                open: Money(finite: candle.open)!,
                high: Money(finite: candle.high)!,
                low: Money(finite: candle.low)!,
                close: Money(finite: candle.close)!,
                time: time
            )
            if before != nil && fast.lastPrices["X"] == nil { fastCandles += 1 }
            if let position = fast.openPositions.first, position.stopLoss == nil {
                // Protect at random distances, sometimes inside the rest of the candle, at a random leverage's liquidation.
                let entry = position.entryPrice
                let long = position.side == .long
                let stop =
                    entry
                    * (long
                        ? 1 - Money(Int.random(in: 2...40, using: &generator)) / 1000
                        : 1 + Money(Int.random(in: 2...40, using: &generator)) / 1000)
                let target: Money? =
                    Int.random(in: 0...3, using: &generator) == 0
                    ? nil
                    : entry
                        * (long
                            ? 1 + Money(Int.random(in: 2...80, using: &generator)) / 1000
                            : 1 - Money(Int.random(in: 2...80, using: &generator)) / 1000)
                let rounded = ExecutionKernel.StopOrder(
                    clientID: "s\(index)",
                    side: long ? .sell : .buy,
                    quantity: position.quantity,
                    trigger: settings.filters.price(stop, toward: entry)
                )
                #expect((try? fast.placeStop(symbol: "X", rounded).get()) != nil)
                _ = exact.placeStop(symbol: "X", rounded)
                if let target {
                    let price = settings.filters.price(target, toward: entry)
                    _ = fast.placeTarget(symbol: "X", side: rounded.side, price: price, clientID: "t")
                    _ = exact.placeTarget(symbol: "X", side: rounded.side, price: price, clientID: "t")
                }
                openedAt = index
            }
            fast.finishCandle(symbol: "X")
            exact.finishCandle(symbol: "X")
            let events = fast.drainEvents()
            #expect(events == exact.drainEvents(), "candle \(index)")
            closes += events.filter { if case .closed = $0 { true } else { false } }.count
            #expect(
                fast.balance == exact.balance && fast.openPositions == exact.openPositions
                    && fast.equity == exact.equity,
                "candle \(index)"
            )
            #expect(fast.price(symbol: "X") == exact.price(symbol: "X"))
            if let position = fast.openPositions.first, index - openedAt == 100 {
                // Open too long (a position with no target that ran away from its stop): close it at market.
                let exit = VenueOrderRequest(
                    clientOrderID: "x\(index)",
                    symbol: "X",
                    side: position.side == .long ? .sell : .buy,
                    quantity: position.quantity,
                    leverage: 1,
                    reduceOnly: true
                )
                _ = fast.submit(exit)
                _ = exact.submit(exit)
            } else if fast.openPositions.isEmpty, fast.pendingEvents.isEmpty,
                Int.random(in: 0...4, using: &generator) == 0
            {
                let request = VenueOrderRequest(
                    clientOrderID: "o\(index)",
                    symbol: "X",
                    side: Int.random(in: 0...1, using: &generator) == 0 ? .buy : .sell,
                    quantity: 10,
                    leverage: Int.random(in: 1...50, using: &generator),
                    reduceOnly: false
                )
                _ = fast.submit(request)
                _ = exact.submit(request)
                orders += 1
            }
        }
        #expect(orders > 50 && closes > 50, "the walk should trade: \(orders) orders, \(closes) closes")
        #expect(fastCandles > 100, "positions should often sit clear of their levels: \(fastCandles)")
    }

    @Test("on real data the backtester is deterministic, trades, and keeps the configured risk limits")
    func deterministicAndBounded() throws {
        let candles = try Self.candles("XRPUSDT-PERP-5m")
        var settings = Backtester.Settings()
        settings.limits.maxLeverage = 2
        settings.framework.maxLeverage = 2
        let first = try Backtester(settings: settings, analyst: .rules).run(candles, symbol: "XRPUSDT", interval: "5m")
        let second = try Backtester(settings: settings, analyst: .rules).run(candles, symbol: "XRPUSDT", interval: "5m")
        #expect(first.trades == second.trades && first.equity == second.equity && first.decisions == second.decisions)
        #expect(
            first.trades.count >= 5 && first.equity.count == candles.count + 1 && first.times.count == candles.count
        )
        for trade in first.trades {
            #expect(trade.leverage <= 2)
            let stop = try #require(trade.stopLoss)
            // Sized at the signal candle's close and filled at the next open with slippage, the stop is
            // judged again against the fill: the distance and the loss at the stop hold exactly.
            let distance = (trade.entryPrice - stop).magnitude / trade.entryPrice
            #expect(
                distance >= settings.limits.minStopFraction && distance <= settings.limits.maxStopFraction,
                "\(trade.id)"
            )
            // The loss at the stop, fees in and out included, is within RISK_PER_TRADE_PERCENT of equity (under 11,000 on this file).
            let loss =
                trade.quantity
                * ((trade.entryPrice - stop).magnitude + settings.limits.takerFeeRate * (trade.entryPrice + stop))
            #expect(loss <= settings.limits.riskPerTradeFraction * 11_000, "\(trade.id)")
        }
        #expect(first.equity.allSatisfy { $0 < 11_000 && $0 > 9_000 })
    }

    @Test("a confidence floor above anything the rules analyst gives means no trade")
    func confidenceFloor() throws {
        var settings = Backtester.Settings()
        settings.framework.minConfidence = 0.99
        settings.limits.minConfidence = 0.99
        let outcome = try Backtester(settings: settings, analyst: .rules).run(
            try Self.candles("XRPUSDT-PERP-5m"),
            symbol: "XRPUSDT",
            interval: "5m"
        )
        #expect(outcome.trades.isEmpty && outcome.decisions > 100)
        #expect(outcome.equity.allSatisfy { $0 == 10_000 })
    }

    @Test(
        "a loss-run halt holds for the rest of the run (only an operator resets it); a daily-loss halt clears at the next UTC day"
    )
    func haltsHold() throws {
        let candles = try Self.candles("ETHBTC-5m")
        var settings = Backtester.Settings()
        settings.halts.maxConsecutiveLosses = 1
        let lossRun = try Backtester(settings: settings, analyst: .rules).run(candles, symbol: "ETHBTC", interval: "5m")
        #expect(
            lossRun.trades.last?.pnl ?? 0 < 0 && lossRun.trades.dropLast().allSatisfy { $0.pnl >= 0 },
            "the first loss is the last trade"
        )

        settings.halts.maxConsecutiveLosses = 100
        settings.halts.dailyLossFraction = 0.000_001  // any loss
        let daily = try Backtester(settings: settings, analyst: .rules).run(candles, symbol: "ETHBTC", interval: "5m")
        let day = { (date: Date) in Int(date.timeIntervalSince1970 / 86_400) }
        var realised: [Int: Money] = [:]
        var losses = 0
        for trade in daily.trades {
            // Once the day's realised PnL is below zero, the day is halted.
            #expect((realised[day(trade.entryTime)] ?? 0) >= 0, "\(trade.id) entered on a halted day")
            realised[day(trade.exitTime), default: 0] += trade.pnl
            if trade.pnl < 0 { losses += 1 }
        }
        #expect(losses >= 3, "the file should lose a few times: \(daily.trades.count) trades")
    }

    @Test("recorded decisions replay at their candles: the rules run's own decisions, replayed, make the same trades")
    func recorded() throws {
        let candles = try Self.candles("XRPUSDT-PERP-5m")
        // The decisions a rules run makes, recorded as the analyst records them.
        var records: [DecisionRecord] = []
        var context: [String: IndicatorSnapshot] = [:]
        var set = IndicatorSet()
        var previous: IndicatorSnapshot?
        let rules = RulesAnalyst(framework: TradingFramework())
        for candle in candles {
            let snapshot = set.update(candle)
            context["5m"] = snapshot
            defer { previous = snapshot }
            guard let previous else { continue }
            for signal in Signal.detect(previous: previous, current: snapshot) {
                let request = "sig:XRPUSDT:5m:\(candle.openTime):\(signal.kind.rawValue):\(signal.direction.rawValue)"
                let analysis = AnalysisContext(symbol: "XRPUSDT", interval: "5m", timeframes: context)
                let payload = DecisionPayload(
                    symbol: "XRPUSDT",
                    proposal: rules.checkedDecision(analysis),
                    provider: "rules",
                    model: RulesAnalyst.model,
                    promptVersion: RulesAnalyst.promptVersion,
                    attempts: 0,
                    candleTime: analysis.candleTime,
                    requestID: request
                )
                records.append(
                    DecisionRecord(
                        id: "decision:\(request)",
                        correlationID: request,
                        payload: payload,
                        createdAt: Date(timeIntervalSince1970: Double(analysis.candleTime) / 1000)
                    )
                )
            }
        }
        let live = try Backtester(settings: Backtester.Settings(), analyst: .rules).run(
            candles,
            symbol: "XRPUSDT",
            interval: "5m"
        )
        let replayed = try Backtester(settings: Backtester.Settings(), analyst: .recorded(records)).run(
            candles,
            symbol: "XRPUSDT",
            interval: "5m"
        )
        #expect(replayed.decisions == records.count && live.decisions == records.count)
        #expect(replayed.trades == live.trades && !live.trades.isEmpty)
    }

    @Test("an unknown interval is refused before anything runs")
    func unknownInterval() {
        #expect(throws: BacktestError.self) {
            try Backtester(settings: Backtester.Settings(), analyst: .rules).run([], symbol: "X", interval: "weekly")
        }
    }
}

@Suite("Money from a Double")
struct MoneyFromDoubleTests {
    @Test(
        "Money(finite:) is the printed Double read as a decimal and rounded to 20 places, on doubles of every magnitude and sign, by both its paths"
    )
    func agreesWithStringParsing() {
        var generator = SplitMix64(seed: 42)
        var samples: [Double] = [
            0, -0.0, 1, -1, 0.1, 0.3, 100_000.0, 1e-5, 1.2345e-7, 5e-19, 1.5e-18, 2.5e-18, 1.2345e19, 1e20, 1.7e20,
            9_007_199_254_740_993, 90_071_992.547_409_93, 1.23456789, -90_068_077.781_75, 45_035_996.273_704_95,
            45_035_996.273_704_97,
        ]
        for _ in 0..<100_000 {
            samples.append(Double.random(in: 0.0001...100_000, using: &generator))
            samples.append((Double.random(in: 0.0001...100_000, using: &generator) * 10_000).rounded() / 10_000)
            samples.append(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator)))
            // Around the fast path's bound, where doubles are 10⁻⁸ apart.
            samples.append(-(Double.random(in: 1e7...1e8, using: &generator) * 1e5).rounded() / 1e5)
        }
        var compared = 0
        for value in samples where value.isFinite && (value == 0 || (1e-60...1e60).contains(value.magnitude)) {
            let exact = Decimal(string: String(value))!
            let expected = exact.magnitude < 1.7e20 ? Money(exact) : nil
            let actual = Money(finite: value)
            guard let expected, let actual else {
                #expect(expected == nil && actual == nil, "\(value)")
                continue
            }
            compared += 1
            if actual != expected {
                Issue.record("\(value): \(actual) vs \(expected)")
                return
            }
        }
        #expect(compared > 200_000)
        #expect(Money(finite: .nan) == nil && Money(finite: .infinity) == nil && Money(finite: 1e300) == nil)
        #expect(Money(finite: 5e-324) == .zero && Money(finite: 0.1) == Money(string: "0.1"))
    }
}

@Suite("Exchange filters' rounding")
struct FilterRoundingTests {
    /// The rounding by `Decimal` division that floor and ceil are held to.
    static func byDivision(_ value: Money, step: Money, _ mode: NSDecimalNumber.RoundingMode) -> Money {
        var steps = value.decimal / step.decimal
        var whole = Decimal()
        NSDecimalRound(&whole, &steps, 0, mode)
        return Money(exactly: whole * step.decimal)!
    }

    @Test(
        "floor and ceil give what dividing by the step gives, for steps that are powers of ten and others, on values of both signs"
    )
    func sameAsDivision() {
        var generator = SplitMix64(seed: 9)
        let steps: [Money] = ["0.0001", "0.001", "0.01", "0.1", "1", "10", "0.00001", "0.5", "0.0005", "0.25"].map {
            Money(string: $0)!
        }
        for _ in 0..<50_000 {
            let step = steps[Int.random(in: 0..<steps.count, using: &generator)]
            let value =
                Money(finite: Double.random(in: -1_000...100_000, using: &generator))!
                * (Bool.random(using: &generator) ? 1 : Money(string: "1.00000001")!)
            let floor = ExchangeFilters.floor(value, step: step)
            let ceil = ExchangeFilters.ceil(value, step: step)
            let expectedFloor = Self.byDivision(value, step: step, .down)
            let expectedCeil = Self.byDivision(value, step: step, .up)
            guard floor == expectedFloor, floor.description == expectedFloor.description, ceil == expectedCeil,
                ceil.description == expectedCeil.description
            else {
                Issue.record(
                    "\(value) step \(step): floor \(floor) vs \(expectedFloor), ceil \(ceil) vs \(expectedCeil)"
                )
                return
            }
        }
    }
}
