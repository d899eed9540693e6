import Foundation
import Testing
import TradingCore

@Suite("Paper exchange")
struct PaperExchangeTests {
    static let t0 = Date(timeIntervalSince1970: 1_767_225_600)  // 00:00 UTC
    var settings: PaperExchange.Settings = {
        var s = PaperExchange.Settings()
        s.slippageFraction = 0.001
        s.takerFeeRate = 0.0005
        return s
    }()

    /// A position of 10 filled at the open (100) of a candle reaching `high` and `low`, the rest of that candle still ahead.
    func filled(_ side: OrderSide = .buy, high: Money = 101, low: Money = 99, leverage: Int = 2) -> PaperExchange {
        var paper = PaperExchange(settings: settings, balance: 10_000)
        _ = paper.submit(
            VenueOrderRequest(
                clientOrderID: "c1",
                symbol: "X",
                side: side,
                quantity: 10,
                leverage: leverage,
                reduceOnly: false
            )
        )
        paper.onCandle(symbol: "X", open: 100, high: high, low: low, close: 100, time: Self.t0)
        return paper
    }

    /// A position of 10 opened at the open of a quiet candle, protected with a stop for all of it and a target.
    func opened(
        _ side: OrderSide = .buy,
        stop: Money = 95,
        target: Money? = 110,
        leverage: Int = 2
    ) -> PaperExchange {
        var paper = filled(side, leverage: leverage)
        protect(&paper, side, stop: stop, target: target)
        paper.finishCandle(symbol: "X")
        _ = paper.drainEvents()
        return paper
    }

    func protect(
        _ paper: inout PaperExchange,
        _ side: OrderSide,
        stop: Money,
        target: Money?,
        quantity: Money = 10
    ) {
        let closing: OrderSide = side == .buy ? .sell : .buy
        let stopLevel = side == .buy ? stop : 200 - stop
        _ = paper.placeStop(
            symbol: "X",
            ExecutionKernel.StopOrder(clientID: "s1", side: closing, quantity: quantity, trigger: stopLevel)
        )
        if let target {
            _ = paper.placeTarget(
                symbol: "X",
                side: closing,
                price: side == .buy ? target : 200 - target,
                clientID: "t1"
            )
        }
    }

    func closes(_ events: [VenueEvent]) -> [VenueClose] {
        events.compactMap { if case .closed(let close) = $0 { return close } else { return nil } }
    }

    @Test(
        "a market order fills at the next open, moved by the slippage, paying the taker fee; a repeated client id is the same order"
    )
    func fillsAtNextPrice() throws {
        var paper = PaperExchange(settings: settings, balance: 10_000)
        let order = try paper.submit(
            VenueOrderRequest(
                clientOrderID: "c1",
                symbol: "X",
                side: .buy,
                quantity: 10,
                leverage: 2,
                reduceOnly: false
            )
        ).get()
        #expect(order.status == .accepted && paper.openPositions.isEmpty)
        let again = try paper.submit(
            VenueOrderRequest(
                clientOrderID: "c1",
                symbol: "X",
                side: .buy,
                quantity: 99,
                leverage: 2,
                reduceOnly: false
            )
        ).get()
        #expect(again == order)
        paper.onCandle(symbol: "X", open: 100, high: 101, low: 99, close: 100.5, time: Self.t0)
        let fills = paper.drainEvents().compactMap { if case .fill(let f) = $0 { return f } else { return nil } }
        #expect(
            fills.count == 1 && fills[0].price == Money(string: "100.1") && fills[0].quantity == 10
                && fills[0].fee == Money(string: "0.5005")
        )
        #expect(paper.order(clientOrderID: "c1")?.status == .filled)
        #expect(
            paper.openPositions.first?.entryPrice == Money(string: "100.1")
                && paper.balance == Money(string: "9999.4995")
        )
    }

    @Test("when a candle holds both the stop and the take-profit, the stop is taken first")
    func stopFirst() {
        var paper = opened()
        paper.onCandle(symbol: "X", open: 100, high: 112, low: 94, close: 105, time: Self.t0.addingTimeInterval(60))
        let close = closes(paper.drainEvents())
        #expect(close.count == 1 && close[0].reason == "stop_loss" && close[0].exitPrice == Money(string: "94.905"))
    }

    @Test("a gap through the stop fills at the open; a take-profit fills at its price; PnL is after fees")
    func exits() {
        var gap = opened()
        gap.onCandle(symbol: "X", open: 90, high: 91, low: 89, close: 90, time: Self.t0.addingTimeInterval(60))
        #expect(closes(gap.drainEvents()).first?.exitPrice == Money(string: "89.91"))

        var profit = opened()
        profit.onCandle(symbol: "X", open: 105, high: 111, low: 104, close: 110, time: Self.t0.addingTimeInterval(60))
        let close = try! #require(closes(profit.drainEvents()).first)
        #expect(close.reason == "take_profit" && close.exitPrice == 110)
        // (110 − 100.1) × 10 = 99, fees 0.5005 + 0.55
        #expect(close.pnl == Money(string: "97.9495") && close.fees == Money(string: "1.0505"))
        #expect(profit.balance == 10_000 + close.pnl && profit.openPositions.isEmpty)
    }

    @Test("shorts: the stop is above, the target below")
    func short() {
        var paper = opened(.sell)
        paper.onCandle(symbol: "X", open: 100, high: 106, low: 99, close: 104, time: Self.t0.addingTimeInterval(60))
        #expect(closes(paper.drainEvents()).first?.reason == "stop_loss")
    }

    @Test(
        "the candle a position opens on counts: a stop placed after the fill triggers on the rest of that candle, before the target"
    )
    func entryCandle() throws {
        var paper = filled(high: 112, low: 94)
        #expect(closes(paper.pendingEvents).isEmpty && paper.openPositions.count == 1)
        protect(&paper, .buy, stop: 95, target: 110)
        paper.finishCandle(symbol: "X")
        let close = try #require(closes(paper.drainEvents()).first)
        #expect(
            close.reason == "stop_loss" && close.exitPrice == Money(string: "94.905") && paper.openPositions.isEmpty
        )
        #expect(paper.workingStops(symbol: "X").isEmpty)

        var target = filled(high: 112, low: 99)
        protect(&target, .buy, stop: 95, target: 110)
        target.finishCandle(symbol: "X")
        #expect(closes(target.drainEvents()).first?.reason == "take_profit")
    }

    @Test("a stop whose trigger the price has already passed is refused as would-trigger; so is such a target")
    func wouldTrigger() throws {
        var paper = filled()
        let refused = paper.placeStop(
            symbol: "X",
            ExecutionKernel.StopOrder(clientID: "s", side: .sell, quantity: 10, trigger: 100.5)
        )
        guard case .failure(let error) = refused else {
            Issue.record("a stop above the price was accepted for a long")
            return
        }
        #expect(error.code == .wouldTrigger)
        guard case .failure(let target) = paper.placeTarget(symbol: "X", side: .sell, price: 99.5, clientID: "t") else {
            Issue.record("target accepted")
            return
        }
        #expect(target.code == .wouldTrigger && paper.workingStops(symbol: "X").isEmpty)
        guard
            case .failure(let wrong) = paper.placeStop(
                symbol: "Y",
                ExecutionKernel.StopOrder(clientID: "s", side: .sell, quantity: 1, trigger: 1)
            )
        else {
            Issue.record("a stop with no position was accepted")
            return
        }
        #expect(wrong.code == .rejected)
    }

    @Test(
        "a stop for part of the position reduces it; the close comes when the rest goes, with the whole trade's PnL and size"
    )
    func partialStop() throws {
        var paper = filled()
        protect(&paper, .buy, stop: 95, target: nil, quantity: 4)
        paper.finishCandle(symbol: "X")
        paper.onCandle(symbol: "X", open: 96, high: 96, low: 94, close: 95, time: Self.t0.addingTimeInterval(60))
        #expect(closes(paper.pendingEvents).isEmpty && paper.openPositions.first?.quantity == 6)
        _ = paper.submit(
            VenueOrderRequest(clientOrderID: "x", symbol: "X", side: .sell, quantity: 6, leverage: 1, reduceOnly: true)
        )
        paper.onCandle(symbol: "X", open: 95, high: 95, low: 95, close: 95, time: Self.t0.addingTimeInterval(120))
        let close = try #require(closes(paper.drainEvents()).first)
        // (94.905 − 100.1) × 4 + (94.905 − 100.1) × 6, less the three fees
        #expect(close.quantity == 10 && close.pnl == paper.balance - 10_000 && close.pnl < -51)
    }

    @Test(
        "an impossible candle (a price not positive, high below low, open outside the range) is refused: no fill, no stop, no liquidation"
    )
    func impossibleCandles() throws {
        var paper = opened(stop: 95, target: nil, leverage: 10)
        _ = try paper.submit(
            VenueOrderRequest(
                clientOrderID: "more",
                symbol: "X",
                side: .buy,
                quantity: 1,
                leverage: 10,
                reduceOnly: false
            )
        ).get()
        for (index, candle) in [
            Candle(openTime: 1, open: 100, high: 101, low: -5, close: 100, volume: 1),
            Candle(openTime: 2, open: 100, high: 90, low: 95, close: 92, volume: 1),
            Candle(openTime: 3, open: 80, high: 101, low: 99, close: 100, volume: 1),
            Candle(openTime: 4, open: .nan, high: 101, low: 99, close: 100, volume: 1),
        ].enumerated() {
            #expect(throws: VenueError.self) {
                try paper.onCandle(
                    symbol: "X",
                    candle: candle,
                    time: Self.t0.addingTimeInterval(Double(60 * (index + 1)))
                )
            }
        }
        #expect(
            paper.drainEvents().isEmpty && paper.openPositions.first?.quantity == 10
                && paper.order(clientOrderID: "more")?.status == .accepted
        )
    }

    @Test(
        "liquidation at the venue's maintenance tier: a 1,000 notional at 2.75 % liquidates where a flat 0.5 % would not"
    )
    mutating func liquidationByTier() {
        let low: Money = 92  // flat 0.5 % at 10x: liquidation near 90.6; the tier's 2.75 %: near 92.8
        var flat = opened(stop: 60, target: nil, leverage: 10)
        flat.onCandle(symbol: "X", open: 95, high: 96, low: low, close: 93, time: Self.t0.addingTimeInterval(60))
        #expect(closes(flat.drainEvents()).isEmpty, "not liquidated at the flat rate")
        settings.marginTiers = .continuous([(Money(500), Money(string: "0.005")!), (nil, Money(string: "0.05")!)])
        var tiered = opened(stop: 60, target: nil, leverage: 10)
        tiered.onCandle(symbol: "X", open: 95, high: 96, low: low, close: 93, time: Self.t0.addingTimeInterval(60))
        #expect(closes(tiered.drainEvents()).first?.reason == "liquidation")
    }

    @Test("a gap past the liquidation price liquidates: the margin is lost")
    func liquidation() {
        var paper = opened(stop: 60, target: nil, leverage: 10)  // liquidation ≈ 90.6; the stop at 60 is past it
        paper.onCandle(symbol: "X", open: 95, high: 96, low: 85, close: 88, time: Self.t0.addingTimeInterval(60))
        let events = paper.drainEvents()
        let close = closes(events).first
        #expect(close?.reason == "liquidation")
        // The fill tells whoever counts the position (the execution kernel) that it is gone.
        #expect(
            events.contains {
                if case .fill(let fill) = $0 { fill.quantity == 10 && fill.side == .sell } else { false }
            }
        )
        #expect(paper.openPositions.isEmpty && paper.balance < 10_000 - 100)
    }

    @Test("a reduce-only order needs a position to reduce; an exit closes it and realises the PnL")
    func reduceOnly() throws {
        var flat = PaperExchange(settings: settings, balance: 1_000)
        guard
            case .failure = flat.submit(
                VenueOrderRequest(
                    clientOrderID: "x",
                    symbol: "X",
                    side: .sell,
                    quantity: 1,
                    leverage: 1,
                    reduceOnly: true
                )
            )
        else {
            Issue.record("accepted a reduce-only order without a position")
            return
        }
        var paper = opened()
        _ = try paper.submit(
            VenueOrderRequest(
                clientOrderID: "exit",
                symbol: "X",
                side: .sell,
                quantity: 10,
                leverage: 2,
                reduceOnly: true
            )
        ).get()
        paper.onCandle(symbol: "X", open: 102, high: 103, low: 101, close: 102, time: Self.t0.addingTimeInterval(60))
        let close = try #require(closes(paper.drainEvents()).first)
        #expect(close.reason == "exit" && paper.openPositions.isEmpty && close.exitPrice == Money(string: "101.898"))
    }
}

@Suite("Stop policies (ManagedStop)")
struct ManagedStopTests {
    let filters = ExchangeFilters(
        tickSize: 0.01,
        stepSize: 0.001,
        minQuantity: 0.001,
        maxQuantity: 1_000_000,
        minNotional: 5
    )

    func long(_ policy: StopPolicy) -> ManagedStop {
        ManagedStop(
            side: .long,
            entry: Money(string: "100.1")!,
            initialStop: 95,
            stop: 95,
            bestPrice: Money(string: "100.1")!,
            policy: policy
        )
    }

    @Test(
        "a trailing stop follows the best price once activated, and a close on it is a trailing_stop that records the first stop"
    )
    func trailing() {
        var stop = long(StopPolicy(trailingActivationR: 1, trailingCallbackFraction: 0.02))
        #expect(stop.tighten(high: 102, low: 100, close: 101, atr: nil, filters: filters) == nil)  // not +1R yet
        #expect(
            stop.tighten(
                high: 106,
                low: Money(string: "100.5")!,
                close: Money(string: "105.5")!,
                atr: nil,
                filters: filters
            ) == Money(string: "103.88")
        )
        var close = VenueClose(
            symbol: "X",
            side: .long,
            quantity: 10,
            entryPrice: Money(string: "100.1")!,
            exitPrice: 103,
            openedAt: Date(),
            closedAt: Date(),
            reason: "stop_loss",
            pnl: 0,
            fees: 0,
            funding: 0,
            leverage: 2,
            stopLoss: Money(string: "103.88"),
            takeProfit: nil
        )
        stop.settle(&close)
        #expect(close.reason == "trailing_stop" && close.stopLoss == 95)
    }

    @Test("break-even after +1R moves the stop to entry; the ATR stop only tightens")
    func breakEvenAndATR() {
        var even = long(StopPolicy(breakEvenAfterOneR: true))
        #expect(
            even.tighten(
                high: Money(string: "105.2")!,
                low: Money(string: "100.5")!,
                close: 104,
                atr: nil,
                filters: filters
            ) == Money(string: "100.1")
        )
        var atr = long(StopPolicy(atrMultiple: 2))
        #expect(atr.tighten(high: 103, low: Money(string: "100.5")!, close: 102, atr: 1, filters: filters) == 100)
        #expect(
            atr.tighten(
                high: Money(string: "101.5")!,
                low: Money(string: "100.5")!,
                close: 101,
                atr: 1,
                filters: filters
            ) == nil
        )  // 99 would loosen
    }
}

@Suite("Trading halts (circuit breakers)")
struct TradingHaltsTests {
    static let day = Date(timeIntervalSince1970: 86_400 * 20_454 + 3_600)
    var limits: TradingHalts.Limits = {
        var l = TradingHalts.Limits()
        l.dailyLossFraction = 0.05
        l.maxConsecutiveLosses = 3
        l.maxDrawdownFraction = 0.15
        return l
    }()

    @Test("the daily loss limit trips and clears at the next UTC day")
    func dailyLoss() {
        var halts = TradingHalts(limits: limits, equity: 10_000, now: Self.day)
        #expect(halts.recordTrade(pnl: -300, equityAfter: 9_700, now: Self.day).isEmpty)
        #expect(halts.recordTrade(pnl: 100, equityAfter: 9_800, now: Self.day).isEmpty)
        // −500 = 5 %
        #expect(halts.recordTrade(pnl: -300, equityAfter: 9_500, now: Self.day).map(\.kind) == [.dailyLoss])
        #expect(halts.roll(now: Self.day.addingTimeInterval(86_400), equity: 9_500).map(\.kind) == [.dailyLoss])
        #expect(halts.halt == nil)
    }

    @Test("N losses in a row trip; a win resets the run; a new day does not clear the halt")
    func consecutive() {
        var halts = TradingHalts(limits: limits, equity: 100_000, now: Self.day)
        for pnl: Money in [-10, -10, 5, -10, -10] {
            #expect(halts.recordTrade(pnl: pnl, equityAfter: 100_000, now: Self.day).isEmpty)
        }
        #expect(halts.recordTrade(pnl: -10, equityAfter: 100_000, now: Self.day).map(\.kind) == [.consecutiveLosses])
        #expect(halts.roll(now: Self.day.addingTimeInterval(86_400), equity: 100_000).isEmpty)
        #expect(halts.halt?.kind == .consecutiveLosses)
        #expect(
            halts.reset(.consecutiveLosses, now: Self.day.addingTimeInterval(86_400), equity: 100_000).map(\.kind) == [
                .consecutiveLosses
            ]
        )
        #expect(halts.halt == nil && halts.consecutiveLosses == 0)
    }

    @Test("the drawdown halt needs an operator's reset, not a new day")
    func drawdown() {
        var halts = TradingHalts(limits: limits, equity: 10_000, now: Self.day)
        #expect(halts.observe(equity: 12_000, now: Self.day).isEmpty)
        #expect(halts.observe(equity: 10_201, now: Self.day).isEmpty)
        let tripped = halts.observe(equity: 10_200, now: Self.day)  // 15 % of 12,000
        #expect(
            tripped.map(\.kind) == [.maxDrawdown] && tripped.first?.equity == 10_200 && tripped.first?.since == Self.day
        )
        halts.roll(now: Self.day.addingTimeInterval(86_400 * 2), equity: 10_200)
        #expect(halts.halt?.kind == .maxDrawdown)
        halts.reset(.maxDrawdown, now: Self.day.addingTimeInterval(86_400 * 2), equity: 10_200)
        #expect(halts.halt == nil && halts.peakEquity == 10_200)
    }

    @Test("one close can trip every breaker: each is evaluated, not only the first; a reset by name leaves the others")
    func everyBreakerEvaluated() throws {
        var one = limits
        one.maxConsecutiveLosses = 1
        var halts = TradingHalts(limits: one, equity: 10_000, now: Self.day)
        let tripped = halts.recordTrade(pnl: -2_000, equityAfter: 8_000, now: Self.day)
        #expect(tripped.map(\.kind) == [.dailyLoss, .consecutiveLosses, .maxDrawdown])
        #expect(halts.reset(.dailyLoss, now: Self.day, equity: 8_000).map(\.kind) == [.dailyLoss])
        #expect(halts.tripped.map(\.kind) == [.consecutiveLosses, .maxDrawdown])
        // What is persisted comes back the same: a restart never clears a halt.
        let restored = try JSONDecoder().decode(TradingHalts.self, from: try JSONEncoder().encode(halts))
        #expect(restored == halts)
        #expect(halts.reset(nil, now: Self.day, equity: 8_000).count == 2 && halts.halt == nil)
    }
}
