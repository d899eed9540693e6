import Foundation
import Testing
import TradingCore

@Suite("Backoff, request budget, exchange requests, synthetic market")
struct FeedRulesTests {
    @Test("backoff doubles up to its cap, and full jitter spans 0 to the ceiling")
    func backoff() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        #expect(
            (0...6).map { backoff.ceiling(attempt: $0) }
                == [100, 200, 400, 800, 1600, 2000, 2000].map { .milliseconds($0) }
        )
        #expect(backoff.ceiling(attempt: 500) == .seconds(2))
        #expect(backoff.delay(attempt: 3, unit: 0) == .zero)
        #expect(backoff.delay(attempt: 3, unit: 1) == .milliseconds(800))
        #expect(backoff.delay(attempt: 3, unit: 0.5) == .milliseconds(400))
        let samples = (0..<200).map { _ in backoff.delay(attempt: 2) }
        #expect(samples.allSatisfy { $0 >= .zero && $0 <= .milliseconds(400) })
        #expect(Set(samples).count > 100)
    }

    @Test(
        "request budget: polling stops at its share, orders and cancels spend the rest; a ban (418) is reported until it ends"
    )
    func budgetPriorities() {
        var budget = RequestBudget(limit: 10, window: 60, pollShare: 0.5)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(budget.reserve(weight: 5, priority: .poll, now: start) == 0)
        #expect(budget.reserve(weight: 1, priority: .poll, now: start + 1) == 59, "polling has spent its half")
        #expect(budget.reserve(weight: 4, priority: .order, now: start + 1) == 0, "an order still goes")
        #expect(budget.reserve(weight: 2, priority: .order, now: start + 2) == 58)
        budget.block(for: 120, now: start + 70, ban: true)
        #expect(budget.banned && budget.blocked(now: start + 100) == start + 190)
        #expect(budget.reserve(weight: 1, priority: .order, now: start + 150) == 40, "a ban stops orders too")
        #expect(
            budget.reserve(weight: 1, priority: .order, now: start + 190) == 0 && !budget.banned
                && budget.blocked(now: start + 190) == nil
        )
    }

    @Test(
        "request budget: spends inside the window, waits for the next one, trusts the exchange's higher count, obeys Retry-After"
    )
    func budget() {
        var budget = RequestBudget(limit: 10, window: 60)
        let start = Date(timeIntervalSince1970: 1_800_000_000)  // a window boundary (divisible by 60)
        #expect(budget.reserve(weight: 5, now: start) == 0)
        #expect(budget.reserve(weight: 5, now: start + 1) == 0)
        #expect(budget.reserve(weight: 1, now: start + 2) == 58)
        #expect(budget.reserve(weight: 5, now: start + 60) == 0)  // a new window
        budget.observe(used: 9, now: start + 61)
        #expect(budget.used(now: start + 61) == 9)
        #expect(budget.reserve(weight: 2, now: start + 61) == 59)
        budget.observe(used: 3, now: start + 62)  // lower than ours: ours stands
        #expect(budget.used(now: start + 62) == 9)
        budget.block(for: 30, now: start + 130)
        #expect(budget.reserve(weight: 1, now: start + 140) == 20)
        #expect(budget.reserve(weight: 1, now: start + 160) == 0)
        // One request heavier than the whole limit still goes, alone, in an empty window.
        #expect(budget.reserve(weight: 50, now: start + 300) == 0)
    }

    @Test("Binance paths and weights as documented")
    func binanceRequests() {
        let streams = [
            CandleStreamID(symbol: "BTCUSDT", interval: "1m"), CandleStreamID(symbol: "ETHUSDT", interval: "5m"),
        ]
        // The market-data route, klines then each symbol's mark price once (Binance since 2026-04-23).
        #expect(
            BinanceMessages.combinedStreamPath(streams + [CandleStreamID(symbol: "BTCUSDT", interval: "5m")])
                == "/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_5m/btcusdt@kline_5m/btcusdt@markPrice@1s/ethusdt@markPrice@1s"
        )
        #expect(
            BinanceMessages.combinedStreamPath(streams, marks: false)
                == "/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_5m"
        )
        #expect(
            BinanceMessages.klinesPath(symbol: "btcusdt", interval: "1m", startTime: 1, endTime: 2, limit: 3)
                == "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=1&endTime=2&limit=3"
        )
        #expect(
            [1, 99, 100, 499, 500, 1000, 1001, 1500].map(BinanceMessages.klinesWeight) == [1, 1, 2, 2, 5, 5, 10, 10]
        )
        #expect(
            BinanceMessages.errorMessage(Array(#"{"code":-1121,"msg":"Invalid symbol."}"#.utf8))
                == "Binance error -1121: Invalid symbol."
        )
        #expect(BinanceMessages.errorMessage(Array("<html>".utf8)) == nil)
    }

    @Test("Bybit intervals, topics, subscriptions and paths as documented")
    func bybitRequests() throws {
        #expect(
            ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"].map(BybitMessages.bybitInterval)
                == ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W"]
        )
        #expect(BybitMessages.bybitInterval("7m") == nil && BybitMessages.bybitInterval("2d") == nil)
        for ours in ["1m", "5m", "1h", "4h", "1d"] {
            #expect(BybitMessages.interval(BybitMessages.bybitInterval(ours)!) == ours)
        }
        #expect(BybitMessages.topic(symbol: "btcusdt", interval: "1h") == "kline.60.BTCUSDT")
        let request =
            try JSONSerialization.jsonObject(with: Data(BybitMessages.subscribe(["kline.1.BTCUSDT"], requestID: "r1")))
            as? [String: Any]
        #expect(
            request?["op"] as? String == "subscribe" && request?["args"] as? [String] == ["kline.1.BTCUSDT"]
                && request?["req_id"] as? String == "r1"
        )
        #expect(
            BybitMessages.subscriptionFailure(
                Array(#"{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}"#.utf8)
            ) == "error:handler not found"
        )
        #expect(
            BybitMessages.subscriptionFailure(Array(#"{"success":true,"ret_msg":"","op":"subscribe"}"#.utf8)) == nil
        )
        #expect(
            BybitMessages.klinesPath(symbol: "BTCUSDT", interval: "4h", start: 1, end: 2, limit: 3)
                == "/v5/market/kline?category=linear&symbol=BTCUSDT&interval=240&start=1&end=2&limit=3"
        )
    }

    @Test(
        "the synthetic market is fixed by its seed, valid, aligned, and symbol i walks the same whatever else is listed"
    )
    func synthetic() {
        var a = SyntheticMarket(
            symbols: ["A", "B", "C"],
            seed: 7,
            intervalMilliseconds: 60_000,
            startTime: 1_767_225_601_234
        )
        var b = SyntheticMarket(
            symbols: ["X", "Y"],
            seed: 7,
            intervalMilliseconds: 60_000,
            startTime: 1_767_225_600_000
        )
        var c = SyntheticMarket(
            symbols: ["A", "B", "C"],
            seed: 8,
            intervalMilliseconds: 60_000,
            startTime: 1_767_225_600_000
        )
        var previousClose: Double?
        for step in 0..<1_000 {
            let candles = a.next()
            let others = b.next()
            let reseeded = c.next()
            #expect(candles.count == 3)
            #expect(candles.allSatisfy { $0.defect == nil && $0.openTime == 1_767_225_600_000 + Int64(step) * 60_000 })
            #expect(Array(candles.prefix(2)) == others)
            #expect(candles != reseeded)
            if let previousClose { #expect(candles[0].open == previousClose) }
            previousClose = candles[0].close
        }
        var generator = SplitMix64(seed: 0)
        #expect(generator.next() == 0xE220_A839_7B1D_CDAF)  // SplitMix64's published first output for seed 0
    }
}
