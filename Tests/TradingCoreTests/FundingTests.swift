import Foundation
import Testing

@testable import TradingCore

/// Funding: the files it comes from, how the paper venue charges it, and a backtest over the real
/// XRPUSDT funding times checked against the sum worked out by hand.
@Suite("Funding")
struct FundingTests {
    static func text(_ file: String) throws -> String {
        try String(
            contentsOf: BacktesterTests.root.appendingPathComponent("Tests/Fixtures/market-data/\(file)"),
            encoding: .utf8
        )
    }

    @Test("both file formats read; a settlement is found inside the candle that holds it")
    func files() throws {
        let real = try FundingSchedule.parse(try Self.text("XRPUSDT-PERP-funding-8h.csv"))
        #expect(real.events.count == 91)
        #expect(real.events.first == FundingEvent(time: Date(timeIntervalSince1970: 1_637_193_600.017), rate: 0.0001))
        // Binance's public archive: calc_time,funding_interval_hours,last_funding_rate.
        let archive = try FundingSchedule.parse(
            "calc_time,funding_interval_hours,last_funding_rate\n1637222400007,8,-0.00012345\n1637193600017,8,0.0001\n"
        )
        #expect(archive.events.map(\.rate) == [0.0001, Money(string: "-0.00012345")!], "sorted by time")
        let fiveMinutes = Date(timeIntervalSince1970: 1_637_193_600)
        #expect(real.event(from: fiveMinutes, before: fiveMinutes.addingTimeInterval(300))?.rate == 0.0001)
        #expect(
            real.event(from: fiveMinutes.addingTimeInterval(300), before: fiveMinutes.addingTimeInterval(600)) == nil
        )
        #expect(throws: FundingSchedule.ParseError.self) { try FundingSchedule.parse("time,rate\n1,0.1\n") }
        #expect { try FundingSchedule.parse("funding_time,funding_rate\n1637193600017,abc\n") } throws: {
            "\($0)" == "funding file line 2: expected a time in ms and a rate, got '1637193600017,abc'"
        }
    }

    @Test("the cache's form of a settlement reads back the same")
    func cacheValue() {
        let event = FundingEvent(time: Date(timeIntervalSince1970: 1_637_193_600.017), rate: -0.0003, markPrice: 1.0834)
        #expect(FundingEvent(cacheValue: event.cacheValue) == event)
        #expect(FundingEvent(cacheValue: Array("0.0001".utf8)) == nil)
    }

    @Test("a long pays a positive rate and a short receives it, once per settlement, at the candle's open")
    func charged() {
        for side in [OrderSide.buy, .sell] {
            var settings = PaperExchange.Settings()
            settings.slippageFraction = 0
            var paper = PaperExchange(settings: settings, balance: 10_000)
            _ = paper.submit(
                VenueOrderRequest(
                    clientOrderID: "e",
                    symbol: "X",
                    side: side,
                    quantity: 10,
                    leverage: 2,
                    reduceOnly: false
                )
            )
            let start = Date(timeIntervalSince1970: 1_637_193_300)
            paper.onCandle(symbol: "X", open: 2, high: 2, low: 2, close: 2, time: start)
            let settlement = FundingEvent(time: start.addingTimeInterval(300.017), rate: 0.0001)
            let before = paper.balance
            for minute in 1...2 {  // the same settlement twice: charged once
                paper.onCandle(
                    symbol: "X",
                    open: 2.5,
                    high: 2.5,
                    low: 2.5,
                    close: 2.5,
                    time: start.addingTimeInterval(Double(minute) * 300),
                    funding: settlement
                )
            }
            // 10 × 2.5 × 0.0001 = 0.0025, paid by the long, received by the short.
            let paid: Money = side == .buy ? Money(string: "0.0025")! : Money(string: "-0.0025")!
            #expect(before - paper.balance == paid, "\(side)")
            #expect(paper.positions["X"]?.funding == paid)
        }
    }

    @Test("the mark at a time is the open of the mark candle holding it; settlements it covers carry it")
    func marks() throws {
        let marks = try MarkPrices.parse(try Self.text("XRPUSDT-PERP-mark-1h.csv"))
        #expect(marks.length == 3_600_000 && marks.candles.count == 100)
        #expect(marks.price(at: Date(timeIntervalSince1970: 1_636_956_000)) == Money(string: "1.20932")!)
        #expect(marks.price(at: Date(timeIntervalSince1970: 1_636_959_599.999)) == Money(string: "1.20932")!)
        #expect(marks.price(at: Date(timeIntervalSince1970: 1_636_955_999)) == nil, "before the file")
        let schedule = try FundingSchedule.parse(try Self.text("XRPUSDT-PERP-funding-8h.csv")).marked(by: marks)
        #expect(schedule.markedCount == 5, "the mark file ends on 2021-11-19 03:00")
        #expect(throws: FundingSchedule.ParseError.self) { try MarkPrices.parse("open_time,open\n1,abc\n") }
    }

    @Test(
        "a backtest over the real XRPUSDT funding times charges each trade what the hand sum says, to the cent",
        arguments: [(false, false), (true, false), (false, true)]
    )
    func handSum(marked: Bool, hourly: Bool) throws {
        let candles = try BacktesterTests.candles("XRPUSDT-PERP-5m")
        let marks = try MarkPrices.parse(try Self.text("XRPUSDT-PERP-mark-1h.csv"))
        var schedule = try FundingSchedule.parse(try Self.text("XRPUSDT-PERP-funding-8h.csv"))
        if hourly {
            // Hyperliquid settles every hour (a few ms past it), at an eighth of the 8-hour rate.
            let first = candles.first!.openTime - candles.first!.openTime % 3_600_000
            schedule = FundingSchedule(
                stride(from: first, through: candles.last!.openTime, by: 3_600_000).map { hour in
                    let rate = schedule.events.last { $0.time.timeIntervalSince1970 * 1000 <= Double(hour) }?.rate
                    return FundingEvent(
                        time: Date(timeIntervalSince1970: Double(hour + 76) / 1000),
                        rate: (rate ?? Money(string: "0.0001")!) / 8
                    )
                }
            )
            #expect(schedule.events.count > 150)
        }
        if marked { schedule = schedule.marked(by: marks) }
        var settings = Backtester.Settings()
        settings.halts.maxConsecutiveLosses = 20
        let outcome = try Backtester(settings: settings, analyst: .rules)
            .run(candles, symbol: "XRPUSDT", interval: "5m", funding: schedule)
        let opens = Dictionary(uniqueKeysWithValues: candles.map { ($0.openTime, $0.open) })
        let length: Int64 = 300_000
        var held = 0
        for trade in outcome.trades {
            // Fills are stamped with the close of their candle. The position pays every settlement from
            // the candle it opened on, through the candle before its exit, and in its exit candle too when
            // a stop or a target closed it inside that candle (funding comes before them).
            let entryOpen = Int64((trade.entryTime.timeIntervalSince1970 * 1000).rounded()) - length
            let exitOpen = Int64((trade.exitTime.timeIntervalSince1970 * 1000).rounded()) - length
            let intrabar = ["stop_loss", "take_profit", "trailing_stop", "liquidation"].contains(trade.exitReason)
            var expected = 0.0
            for event in schedule.events {
                let time = Int64((event.time.timeIntervalSince1970 * 1000).rounded())
                let candleOpen = time - time % length
                guard candleOpen >= entryOpen, candleOpen < exitOpen || (intrabar && candleOpen == exitOpen),
                    let open = opens[candleOpen]
                else { continue }
                // At the mark where the mark file covers the time, else at the candle's open.
                let price = marked ? marks.price(at: event.time)?.doubleValue ?? open : open
                let signed = trade.side == .long ? trade.quantity.doubleValue : -trade.quantity.doubleValue
                expected += signed * price * event.rate.doubleValue
            }
            if expected != 0 { held += 1 }
            #expect(abs(trade.funding.doubleValue - expected) < 0.005, "\(trade.id): \(trade.funding) vs \(expected)")
        }
        #expect(held >= (hourly ? 5 : 1), "some trade is held across a funding time (\(outcome.trades.count) trades)")
        let report = PerformanceReport(
            trades: outcome.trades,
            equity: outcome.equity,
            initialCapital: 10_000,
            candles: candles.count,
            periodsPerYear: 105_120
        )
        #expect(report.funding == outcome.trades.map(\.funding.doubleValue).reduce(0, +))
    }
}

/// The paper venue's taker prices: fixed or volume-scaled slippage, and a spread.
@Suite("Slippage and spread")
struct SlippageTests {
    @Test("fixed slippage and half the spread move a taker's price against it; the volume model grows and caps")
    func prices() {
        var settings = PaperExchange.Settings()
        #expect(settings.takerPrice(100, buy: true, quantity: 1, quoteVolume: nil) == Money(string: "100.05")!)
        #expect(settings.takerPrice(100, buy: false, quantity: 1, quoteVolume: 1) == Money(string: "99.95")!)
        settings.spreadFraction = Money(string: "0.002")!
        #expect(settings.takerPrice(100, buy: true, quantity: 1, quoteVolume: nil) == Money(string: "100.15")!)
        settings.spreadFraction = 0
        settings.slippageModel = .volume
        // 1 % of the candle's quote volume at impact 0.1: 0.05 % + 0.1 %.
        #expect(settings.takerPrice(100, buy: true, quantity: 10, quoteVolume: 100_000) == Money(string: "100.15")!)
        // Half the candle's volume would be 5 % more: capped at 1 %.
        #expect(settings.takerPrice(100, buy: false, quantity: 500, quoteVolume: 100_000) == 99)
        // No volume known: the floor alone.
        #expect(settings.takerPrice(100, buy: true, quantity: 500, quoteVolume: nil) == Money(string: "100.05")!)
    }

    @Test("with the volume model a large entry fills worse than a small one on the same candle")
    func largeOrders() throws {
        var settings = PaperExchange.Settings()
        settings.slippageModel = .volume
        var prices: [Money] = []
        for quantity: Money in [1, 1_000] {
            var paper = PaperExchange(settings: settings, balance: 1_000_000)
            _ = paper.submit(
                VenueOrderRequest(
                    clientOrderID: "e",
                    symbol: "X",
                    side: .buy,
                    quantity: quantity,
                    leverage: 1,
                    reduceOnly: false
                )
            )
            // Quote volume 50 × 100 = 5,000: the large order is 20 times it, the small one 2 %.
            let candle = Candle(openTime: 0, open: 100, high: 101, low: 99, close: 100, volume: 50)
            try paper.onCandle(symbol: "X", candle: candle, time: Date(timeIntervalSince1970: 60))
            prices.append(try #require(paper.positions["X"]?.entry))
        }
        #expect(prices[0] == Money(string: "100.25")!, "0.05 % + 0.1 × 2 %")
        #expect(prices[1] == 101, "capped at 1 %")
    }

    @Test("settings saved by an earlier version read back, new fields at their defaults")
    func olderState() throws {
        let saved =
            #"{"slippageFraction":0.001,"takerFeeRate":0.0004,"maintenanceMarginRate":0.005,"fundingInterval":28800,"filters":{"tickSize":0.0001,"stepSize":0.001,"minQuantity":0.001,"maxQuantity":1000000,"minNotional":5}}"#
        let settings = try JSONDecoder().decode(PaperExchange.Settings.self, from: Data(saved.utf8))
        #expect(settings.slippageFraction == Money(string: "0.001")! && settings.slippageModel == .fixed)
        #expect(settings.spreadFraction == 0 && settings.takerFeeRate == Money(string: "0.0004")!)
    }
}

/// Intrabar order: with a lower-timeframe file, what the path reached first inside a candle happens first.
@Suite("Intrabar fills")
struct IntrabarTests {
    @Test("a candle holding both: the stop without detail; with 1m detail, whichever the path reached first")
    func order() throws {
        func run(_ detail: [Candle]?) -> String? {
            var settings = PaperExchange.Settings()
            settings.slippageFraction = 0
            var paper = PaperExchange(settings: settings, balance: 10_000)
            _ = paper.submit(
                VenueOrderRequest(
                    clientOrderID: "e",
                    symbol: "X",
                    side: .buy,
                    quantity: 1,
                    leverage: 2,
                    reduceOnly: false
                )
            )
            paper.onCandle(
                symbol: "X",
                open: 100,
                high: 100,
                low: 100,
                close: 100,
                time: Date(timeIntervalSince1970: 300)
            )
            _ = paper.placeStop(symbol: "X", .init(clientID: "s", side: .sell, quantity: 1, trigger: 98))
            _ = paper.placeTarget(symbol: "X", side: .sell, price: 104, clientID: "t")
            _ = paper.drainEvents()
            let up = Candle(openTime: 300_000, open: 100, high: 105, low: 99.5, close: 104.5, volume: 1)
            let down = Candle(openTime: 360_000, open: 104.5, high: 104.6, low: 97, close: 97.5, volume: 1)
            let whole = Candle(openTime: 300_000, open: 100, high: 105, low: 97, close: 97.5, volume: 1)
            let steps = IntrabarPath.steps(
                candle: whole,
                close: Date(timeIntervalSince1970: 600),
                funding: nil,
                mark: nil,
                detail: detail.map { _ in [up, down] }
            )
            for step in steps {
                try? paper.onCandle(symbol: "X", candle: step.candle, time: step.time, funding: step.funding)
            }
            return paper.drainEvents().compactMap { if case .closed(let close) = $0 { close.reason } else { nil } }
                .first
        }
        #expect(run(nil) == "stop_loss")
        #expect(run([]) == "take_profit")
    }
}

extension IntrabarTests {
    @Test("UNITTESTBTC-1m aggregated to 5m: a trade stopped out without the detail reaches its target with it")
    func realMinutes() throws {
        let minutes = try BacktesterTests.candles("UNITTESTBTC-1m")
        let fives = CandleInterval.aggregate(minutes, to: 300_000)
        let parts = CandleInterval.group(minutes, by: 300_000)
        // A 5m candle whose minutes rise 1.3 % above its open before any falls 0.8 % below it, and that
        // does fall that far later: it holds both levels of a long entered at its open.
        let index = try #require(
            fives.indices.dropFirst().first { index in
                let candle = fives[index]
                let (up, down) = (candle.open * 1.013, candle.open * 0.992)
                guard fives[index - 1].openTime + 300_000 == candle.openTime, candle.low <= down,
                    let minutes = parts[candle.openTime],
                    let rise = minutes.firstIndex(where: { $0.high >= up }),
                    let fall = minutes.firstIndex(where: { $0.low <= down })
                else { return false }
                return rise < fall
            }
        )
        let candle = fives[index]
        let open = candle.open
        // Entered at that candle's open: decided at the close of the one before.
        let decided = Date(timeIntervalSince1970: Double(candle.openTime) / 1000)
        let proposal = TradeProposal(
            action: .long,
            confidence: 0.8,
            leverage: 3,
            entry: open,
            stopLoss: open * 0.994,
            takeProfit: open * 1.011,
            reasoning: "a level pair inside one 5m candle"
        )
        let payload = DecisionPayload(
            symbol: "UNITTESTBTC",
            proposal: proposal,
            provider: "test",
            model: "m",
            promptVersion: "v",
            attempts: 0,
            candleTime: candle.openTime,
            requestID: "r"
        )
        let record = DecisionRecord(id: "decision:intrabar", correlationID: "r", payload: payload, createdAt: decided)
        var outcomes: [String] = []
        // Prices near 0.002 BTC: the venue's filters at that scale.
        var settings = Backtester.Settings()
        settings.paper.filters = ExchangeFilters(
            tickSize: Money(string: "0.00000001")!,
            stepSize: 1,
            minQuantity: 1,
            maxQuantity: 1_000_000_000,
            minNotional: Money(string: "0.0001")!
        )
        for detail in [nil, minutes] {
            let outcome = try Backtester(settings: settings, analyst: .recorded([record]))
                .run(fives, symbol: "UNITTESTBTC", interval: "5m", detail: detail)
            let trade = try #require(
                outcome.trades.first,
                "the decision at \(decided) trades (\(outcome.decisions) decisions)"
            )
            // Without the detail the exit is at the candle's close; with it, at the end of the minute
            // that reached the target.
            let close = Date(timeIntervalSince1970: Double(candle.openTime + 300_000) / 1000)
            #expect(detail == nil ? trade.exitTime == close : trade.exitTime < close)
            #expect(trade.exitTime > Date(timeIntervalSince1970: Double(candle.openTime) / 1000))
            outcomes.append(trade.exitReason)
        }
        #expect(outcomes == ["stop_loss", "take_profit"])
    }
}

extension IntrabarTests {
    @Test("with 1m detail a trailing stop moves inside the candle: the minutes' rise lifts it, their fall takes it")
    func trailingInsideTheCandle() throws {
        // Entered at 100 (decided at the close of the first candle), stop 99 (1R = 1), target 110;
        // trailing 0.5 % behind the best price once it is 1R up. The second candle rises to 103 in its
        // first minutes, then falls to 101.5: its range never reaches the stop at 99, and after it the
        // stop trails to 102.485, above the third candle.
        let minute: Int64 = 60_000
        func candle(_ minutes: Int64, _ open: Double, _ high: Double, _ low: Double, _ close: Double) -> Candle {
            Candle(openTime: minutes * minute, open: open, high: high, low: low, close: close, volume: 1_000)
        }
        let fives = [
            candle(0, 100, 100, 100, 100), candle(5, 100, 103, 100, 101.6), candle(10, 101.6, 101.7, 101.5, 101.6),
        ]
        let minutes = [
            candle(5, 100, 101.5, 100, 101.5), candle(6, 101.5, 103, 101.5, 103), candle(7, 103, 103, 102, 102),
            candle(8, 102, 102, 101.5, 101.6), candle(9, 101.6, 101.6, 101.5, 101.6),
        ]
        let proposal = TradeProposal(
            action: .long,
            confidence: 0.8,
            leverage: 2,
            entry: 100,
            stopLoss: 99,
            takeProfit: 110,
            reasoning: "a trailing stop inside one candle"
        )
        let payload = DecisionPayload(
            symbol: "X",
            proposal: proposal,
            provider: "test",
            model: "m",
            promptVersion: "v",
            attempts: 0,
            candleTime: 300_000,
            requestID: "r"
        )
        let record = DecisionRecord(
            id: "decision:trail",
            correlationID: "r",
            payload: payload,
            createdAt: Date(timeIntervalSince1970: 300)
        )
        var settings = Backtester.Settings()
        settings.paper.slippageFraction = 0
        settings.policy = StopPolicy(trailingActivationR: 1, trailingCallbackFraction: Money(string: "0.005")!)
        let plain = try Backtester(settings: settings, analyst: .recorded([record]))
            .run(fives, symbol: "X", interval: "5m")
        let detailed = try Backtester(settings: settings, analyst: .recorded([record]))
            .run(fives, symbol: "X", interval: "5m", detail: minutes)
        #expect(plain.trades.isEmpty, "without the detail the stop moves only after the candle, and nothing hits it")
        let trade = try #require(detailed.trades.first)
        // The best price 103 puts the stop at 103 × 0.995 = 102.485, rounded toward the close to the tick.
        #expect(trade.exitReason == "trailing_stop")
        #expect(trade.exitPrice == Money(string: "102.485")!)
        #expect(trade.exitTime == Date(timeIntervalSince1970: 8 * 60), "the minute 7 candle fell through it")
    }
}

/// Mark price and liquidation on the paper venue.
@Suite("Mark price and liquidation")
struct MarkPriceTests {
    static func long(leverage: Int, feeRate: Money) -> PaperExchange {
        var settings = PaperExchange.Settings()
        settings.slippageFraction = 0
        settings.takerFeeRate = 0
        settings.liquidationFeeRate = feeRate
        var paper = PaperExchange(settings: settings, balance: 1_000)
        _ = paper.submit(
            VenueOrderRequest(
                clientOrderID: "e",
                symbol: "X",
                side: .buy,
                quantity: 1,
                leverage: leverage,
                reduceOnly: false
            )
        )
        paper.onCandle(symbol: "X", open: 100, high: 100, low: 100, close: 100, time: Date(timeIntervalSince1970: 60))
        _ = paper.drainEvents()
        return paper
    }

    @Test(
        "leverage 20: the mark crosses the liquidation price, and the position is liquidated there, the fee charged",
        arguments: [
            (Money(string: "0.0125")!, Money(string: "0.5")!),
            (Money(string: "0.002")!, Money(string: "0.191")!),
        ]
    )
    func liquidation(feeRate: Money, fee: Money) throws {
        var paper = Self.long(leverage: 20, feeRate: feeRate)
        // Isolated, maintenance rate 0.5 %: liquidation = entry × (1 − 1/20 + 0.005) = 95.5. The traded
        // candle stays above it; the mark (0.6 lower) does not.
        let traded = Candle(openTime: 60_000, open: 99, high: 99.5, low: 95.9, close: 96, volume: 1)
        let mark = Candle(openTime: 60_000, open: 98.4, high: 98.9, low: 95.3, close: 95.4, volume: 0)
        try paper.onCandle(symbol: "X", candle: traded, time: Date(timeIntervalSince1970: 120), mark: mark)
        let events = paper.drainEvents()
        let close = try #require(
            events.compactMap { if case .closed(let close) = $0 { close } else { nil } }.first
        )
        #expect(close.reason == "liquidation" && close.exitPrice == Money(string: "95.5")!)
        // The loss to 95.5 is 4.5; the fee is 95.5 × rate, out of the 0.5 of margin left, never more.
        #expect(close.fees == fee)
        #expect(close.pnl == -(Money(string: "4.5")! + fee))
        #expect(paper.balance == 1_000 - Money(string: "4.5")! - fee)
        // Without the mark, the same traded candle liquidates nothing.
        var unmarked = Self.long(leverage: 20, feeRate: feeRate)
        try unmarked.onCandle(symbol: "X", candle: traded, time: Date(timeIntervalSince1970: 120))
        #expect(unmarked.drainEvents().isEmpty && unmarked.openPositions.count == 1)
    }

    @Test("a stop triggers on the mark and fills at the traded price then (the trigger less the basis)")
    func stopOnTheMark() throws {
        var paper = Self.long(leverage: 2, feeRate: 0)
        _ = paper.placeStop(symbol: "X", .init(clientID: "s", side: .sell, quantity: 1, trigger: 98))
        // The mark runs 0.5 above the traded price: it reaches 98 when the trade is at 97.5.
        let traded = Candle(openTime: 60_000, open: 99, high: 99, low: 97.4, close: 97.6, volume: 1)
        let mark = Candle(openTime: 60_000, open: 99.5, high: 99.5, low: 97.9, close: 98.1, volume: 0)
        try paper.onCandle(symbol: "X", candle: traded, time: Date(timeIntervalSince1970: 120), mark: mark)
        let close = try #require(
            paper.drainEvents().compactMap { if case .closed(let close) = $0 { close } else { nil } }.first
        )
        #expect(close.reason == "stop_loss" && close.exitPrice == Money(string: "97.5")!)
        // A stop is refused as would-trigger against the mark, not the traded price.
        var other = Self.long(leverage: 2, feeRate: 0)
        try other.onCandle(
            symbol: "X",
            candle: Candle(openTime: 60_000, open: 100, high: 100, low: 98, close: 98.2, volume: 1),
            time: Date(timeIntervalSince1970: 120),
            mark: Candle(openTime: 60_000, open: 99.9, high: 99.9, low: 97.8, close: 97.9, volume: 0)
        )
        guard
            case .failure(let error) = other.placeStop(
                symbol: "X",
                .init(clientID: "s", side: .sell, quantity: 1, trigger: 98)
            )
        else {
            Issue.record("a stop above the mark is refused")
            return
        }
        #expect(error.code == .wouldTrigger)
    }

    @Test("mark candles longer than the traded ones move them by the basis, held in the mark's range")
    func coarseMarks() throws {
        let marks = try MarkPrices.parse(
            "open_time,open,high,low,close\n0,10.5,11,10,10.2\n3600000,10.2,10.4,10,10.3\n"
        )
        let traded = [
            Candle(openTime: 0, open: 10, high: 10.2, low: 9.9, close: 10.1, volume: 1),
            Candle(openTime: 300_000, open: 10.1, high: 10.8, low: 9.2, close: 10.0, volume: 1),
            Candle(openTime: 3_600_000, open: 10.0, high: 10.1, low: 9.9, close: 10.0, volume: 1),
        ]
        let candles = marks.candles(for: traded, length: 300_000)
        // Basis 0.5 in the first hour: 10.1 + 0.5, the high 11.3 held at the mark's 11, the low 9.7 at 10.
        #expect(candles[0] == Candle(openTime: 0, open: 10.5, high: 10.7, low: 10.4, close: 10.6, volume: 0))
        #expect(candles[300_000] == Candle(openTime: 300_000, open: 10.6, high: 11, low: 10, close: 10.5, volume: 0))
        // Basis 0.2 from the second hour's open.
        #expect(candles[3_600_000]?.open == 10.2 && abs((candles[3_600_000]?.high ?? 0) - 10.3) < 1e-9)
        // Marks as fine as the candles are aggregated, exactly.
        let fine = marks.candles(
            for: [Candle(openTime: 0, open: 1, high: 1, low: 1, close: 1, volume: 1)],
            length: 7_200_000
        )
        #expect(fine[0] == Candle(openTime: 0, open: 10.5, high: 11, low: 10, close: 10.3, volume: 0))
    }
}
