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

    func opened(_ side: OrderSide = .buy, stop: Decimal = 95, target: Decimal? = 110, policy: StopPolicy = StopPolicy(), leverage: Int = 2) -> PaperExchange {
        var paper = PaperExchange(settings: settings, balance: 10_000)
        _ = paper.submit(VenueOrderRequest(clientOrderID: "c1", symbol: "X", side: side, quantity: 10, leverage: leverage, reduceOnly: false))
        paper.onCandle(symbol: "X", open: 100, high: 101, low: 99, close: 100, time: Self.t0)
        let stopLevel = side == .buy ? stop : 200 - stop
        let targetLevel = target.map { side == .buy ? $0 : 200 - $0 }
        _ = paper.protect(symbol: "X", stopLoss: stopLevel, takeProfit: targetLevel, policy: policy)
        _ = paper.drainEvents()
        return paper
    }

    func closes(_ events: [VenueEvent]) -> [VenueClose] {
        events.compactMap { if case .closed(let close) = $0 { return close } else { return nil } }
    }

    @Test("a market order fills at the next open, moved by the slippage, paying the taker fee; a repeated client id is the same order")
    func fillsAtNextPrice() throws {
        var paper = PaperExchange(settings: settings, balance: 10_000)
        let order = try paper.submit(VenueOrderRequest(clientOrderID: "c1", symbol: "X", side: .buy, quantity: 10, leverage: 2, reduceOnly: false)).get()
        #expect(order.status == .accepted && paper.openPositions.isEmpty)
        let again = try paper.submit(VenueOrderRequest(clientOrderID: "c1", symbol: "X", side: .buy, quantity: 99, leverage: 2, reduceOnly: false)).get()
        #expect(again == order)
        paper.onCandle(symbol: "X", open: 100, high: 101, low: 99, close: 100.5, time: Self.t0)
        let fills = paper.drainEvents().compactMap { if case .fill(let f) = $0 { return f } else { return nil } }
        #expect(fills.count == 1 && fills[0].price == Decimal(string: "100.1") && fills[0].quantity == 10 && fills[0].fee == Decimal(string: "0.5005"))
        #expect(paper.order(clientOrderID: "c1")?.status == .filled)
        #expect(paper.openPositions.first?.entryPrice == Decimal(string: "100.1") && paper.balance == Decimal(string: "9999.4995"))
    }

    @Test("when a candle holds both the stop and the take-profit, the stop is taken first")
    func stopFirst() {
        var paper = opened()
        paper.onCandle(symbol: "X", open: 100, high: 112, low: 94, close: 105, time: Self.t0.addingTimeInterval(60))
        let close = closes(paper.drainEvents())
        #expect(close.count == 1 && close[0].reason == "stop_loss" && close[0].exitPrice == Decimal(string: "94.905"))
    }

    @Test("a gap through the stop fills at the open; a take-profit fills at its price; PnL is after fees")
    func exits() {
        var gap = opened()
        gap.onCandle(symbol: "X", open: 90, high: 91, low: 89, close: 90, time: Self.t0.addingTimeInterval(60))
        #expect(closes(gap.drainEvents()).first?.exitPrice == Decimal(string: "89.91"))

        var profit = opened()
        profit.onCandle(symbol: "X", open: 105, high: 111, low: 104, close: 110, time: Self.t0.addingTimeInterval(60))
        let close = try! #require(closes(profit.drainEvents()).first)
        #expect(close.reason == "take_profit" && close.exitPrice == 110)
        // (110 − 100.1) × 10 = 99, fees 0.5005 + 0.55
        #expect(close.pnl == Decimal(string: "97.9495") && close.fees == Decimal(string: "1.0505"))
        #expect(profit.balance == 10_000 + close.pnl && profit.openPositions.isEmpty)
    }

    @Test("shorts: the stop is above, the target below")
    func short() {
        var paper = opened(.sell)
        paper.onCandle(symbol: "X", open: 100, high: 106, low: 99, close: 104, time: Self.t0.addingTimeInterval(60))
        #expect(closes(paper.drainEvents()).first?.reason == "stop_loss")
    }

    @Test("a trailing stop follows the best price once activated, and exits as trailing_stop")
    func trailing() {
        var paper = opened(policy: StopPolicy(trailingActivationR: 1, trailingCallbackFraction: 0.02))
        paper.onCandle(symbol: "X", open: 101, high: 106, low: 100.5, close: 105.5, time: Self.t0.addingTimeInterval(60))  // +1.2R: trail at 106 × 0.98
        #expect(paper.openPositions.first?.stopLoss == Decimal(string: "103.88"))
        paper.onCandle(symbol: "X", open: 105, high: 105.5, low: 103, close: 103.5, time: Self.t0.addingTimeInterval(120))
        #expect(closes(paper.drainEvents()).first?.reason == "trailing_stop")
    }

    @Test("break-even after +1R moves the stop to entry; the ATR stop only tightens")
    func breakEvenAndATR() {
        var paper = opened(policy: StopPolicy(breakEvenAfterOneR: true))
        paper.onCandle(symbol: "X", open: 101, high: 105.2, low: 100.5, close: 104, time: Self.t0.addingTimeInterval(60))
        #expect(paper.openPositions.first?.stopLoss == Decimal(string: "100.1"))
        var atr = opened(policy: StopPolicy(atrMultiple: 2))
        atr.onCandle(symbol: "X", open: 101, high: 103, low: 100.5, close: 102, time: Self.t0.addingTimeInterval(60), atr: 1)
        #expect(atr.openPositions.first?.stopLoss == 100)
        atr.onCandle(symbol: "X", open: 101, high: 101.5, low: 100.5, close: 101, time: Self.t0.addingTimeInterval(120), atr: 1)
        #expect(atr.openPositions.first?.stopLoss == 100)  // would be 99: a stop never loosens
    }

    @Test("a gap past the liquidation price liquidates: the margin is lost")
    func liquidation() {
        var paper = opened(stop: 60, target: nil, leverage: 10)  // liquidation ≈ 90.6; the stop at 60 is past it
        paper.onCandle(symbol: "X", open: 95, high: 96, low: 85, close: 88, time: Self.t0.addingTimeInterval(60))
        let close = closes(paper.drainEvents()).first
        #expect(close?.reason == "liquidation")
        #expect(paper.openPositions.isEmpty && paper.balance < 10_000 - 100)
    }

    @Test("funding is charged at each 8-hour boundary: longs pay a positive rate, shorts receive it")
    func funding() {
        var long = opened()
        long.onCandle(symbol: "X", open: 100, high: 100, low: 100, close: 100, time: Self.t0.addingTimeInterval(4 * 3_600), fundingRate: 0.0001)
        let before = long.balance
        long.onCandle(symbol: "X", open: 100, high: 100, low: 100, close: 100, time: Self.t0.addingTimeInterval(8 * 3_600), fundingRate: 0.0001)
        long.onCandle(symbol: "X", open: 100, high: 100, low: 100, close: 100, time: Self.t0.addingTimeInterval(9 * 3_600), fundingRate: 0.0001)
        #expect(long.balance == before - Decimal(string: "0.1")!)
        var short = opened(.sell)
        let start = short.balance
        short.onCandle(symbol: "X", open: 100, high: 100, low: 100, close: 100, time: Self.t0.addingTimeInterval(8 * 3_600), fundingRate: 0.0001)
        #expect(short.balance == start + Decimal(string: "0.1")!)
    }

    @Test("a reduce-only order needs a position to reduce; an exit closes it and realises the PnL")
    func reduceOnly() throws {
        var flat = PaperExchange(settings: settings, balance: 1_000)
        guard case .failure = flat.submit(VenueOrderRequest(clientOrderID: "x", symbol: "X", side: .sell, quantity: 1, leverage: 1, reduceOnly: true)) else {
            Issue.record("accepted a reduce-only order without a position")
            return
        }
        var paper = opened()
        _ = try paper.submit(VenueOrderRequest(clientOrderID: "exit", symbol: "X", side: .sell, quantity: 10, leverage: 2, reduceOnly: true)).get()
        paper.onCandle(symbol: "X", open: 102, high: 103, low: 101, close: 102, time: Self.t0.addingTimeInterval(60))
        let close = try #require(closes(paper.drainEvents()).first)
        #expect(close.reason == "exit" && paper.openPositions.isEmpty && close.exitPrice == Decimal(string: "101.898"))
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
        #expect(halts.recordTrade(pnl: -300, equityAfter: 9_700, now: Self.day) == nil)
        #expect(halts.recordTrade(pnl: 100, equityAfter: 9_800, now: Self.day) == nil)
        #expect(halts.recordTrade(pnl: -300, equityAfter: 9_500, now: Self.day)?.kind == .dailyLoss)  // −500 = 5 %
        halts.roll(now: Self.day.addingTimeInterval(86_400), equity: 9_500)
        #expect(halts.halt == nil)
    }

    @Test("N losses in a row trip; a win resets the run")
    func consecutive() {
        var halts = TradingHalts(limits: limits, equity: 100_000, now: Self.day)
        for pnl: Decimal in [-10, -10, 5, -10, -10] { #expect(halts.recordTrade(pnl: pnl, equityAfter: 100_000, now: Self.day) == nil) }
        #expect(halts.recordTrade(pnl: -10, equityAfter: 100_000, now: Self.day)?.kind == .consecutiveLosses)
    }

    @Test("the drawdown halt needs an operator's reset, not a new day")
    func drawdown() {
        var halts = TradingHalts(limits: limits, equity: 10_000, now: Self.day)
        #expect(halts.observe(equity: 12_000, now: Self.day) == nil)
        #expect(halts.observe(equity: 10_201, now: Self.day) == nil)
        #expect(halts.observe(equity: 10_200, now: Self.day)?.kind == .maxDrawdown)  // 15 % of 12,000
        halts.roll(now: Self.day.addingTimeInterval(86_400 * 2), equity: 10_200)
        #expect(halts.halt?.kind == .maxDrawdown)
        halts.reset(now: Self.day.addingTimeInterval(86_400 * 2), equity: 10_200)
        #expect(halts.halt == nil && halts.peakEquity == 10_200)
    }
}
