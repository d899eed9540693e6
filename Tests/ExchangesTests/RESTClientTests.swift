import Exchanges
import Foundation
import Logging
import TestSupport
import Testing
import TradingCore

/// REST history against a local exchange: paging, the weight budget, and the exchanges' errors.
@Suite("Exchange REST (local exchange)")
struct RESTClientTests {
    let logger = Logger(label: "test")
    let stream = CandleStreamID(symbol: "BTCUSDT", interval: "1m")

    func minutes(_ count: Int) -> [Candle] {
        (0..<count).map { index in
            Candle(
                openTime: 1_767_225_600_000 + Int64(index) * 60_000,
                open: 100,
                high: 101,
                low: 99,
                close: 100 + Double(index % 7),
                volume: 5
            )
        }
    }

    @Test(
        "Binance: 2,500 candles take three pages of at most 1,000 (weight 5 each, 500 is weight 5 too), and come back whole and in order"
    )
    func binancePaging() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let history = minutes(2_500)
        exchange.setHistory(history, for: stream)
        let client = BinanceKlineHistory(baseURL: exchange.restURL, logger: logger)
        let candles = try await client.candles(stream, from: history[0].openTime, through: history.last!.openTime)
        #expect(candles == history)
        #expect(exchange.restPaths.map { $0.components(separatedBy: "limit=").last } == ["1000", "1000", "500"])
        #expect(await client.client.usedWeight() == 5 + 5 + 5)
        await exchange.stop()
    }

    @Test("Bybit: newest-first pages of 1,000 come back oldest first")
    func bybitPaging() async throws {
        let exchange = try await FakeExchange.start(.bybit)
        let history = minutes(1_500)
        exchange.setHistory(history, for: stream)
        let client = BybitKlineHistory(baseURL: exchange.restURL, logger: logger)
        let candles = try await client.candles(stream, from: history[0].openTime, through: history.last!.openTime)
        #expect(candles == history)
        #expect(exchange.restPaths.count == 2)
        await exchange.stop()
    }

    @Test("a 429 with Retry-After stops requests until then; 5xx retries; a 400 fails at once with Binance's message")
    func errors() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let history = minutes(10)
        exchange.setHistory(history, for: stream)
        let client = RESTClient(
            baseURL: exchange.restURL,
            conventions: BinanceKlineHistory.conventions(),
            logger: logger,
            retry: Backoff(initial: .milliseconds(10), maximum: .milliseconds(50)),
            attempts: 4
        )
        let binance = BinanceKlineHistory(client: client)

        exchange.failNextRequests([
            .init(status: 429, body: #"{"code":-1003,"msg":"Too many requests."}"#, retryAfter: 1)
        ])
        let started = Date()
        #expect(try await binance.candles(stream, from: history[0].openTime, through: history[9].openTime) == history)
        let times = exchange.restTimes
        #expect(times.count == 2 && times[1].timeIntervalSince(times[0]) >= 0.95)
        #expect(Date().timeIntervalSince(started) >= 0.95)

        exchange.failNextRequests([.init(status: 503, body: "unavailable"), .init(status: 502, body: "bad gateway")])
        #expect(try await binance.candles(stream, from: history[0].openTime, through: history[9].openTime) == history)

        exchange.failNextRequests([.init(status: 400, body: #"{"code":-1121,"msg":"Invalid symbol."}"#)])
        let before = exchange.restPaths.count
        await #expect {
            try await binance.candles(stream, from: history[0].openTime, through: history[9].openTime)
        } throws: { error in
            "\(error)".contains("Binance error -1121: Invalid symbol.") && "\(error)".contains("HTTP 400")
        }
        #expect(exchange.restPaths.count == before + 1)

        exchange.failNextRequests(Array(repeating: .init(status: 500, body: "down"), count: 4))
        await #expect {
            try await binance.candles(stream, from: history[0].openTime, through: history[9].openTime)
        } throws: { error in
            "\(error)".contains("failed 4 times")
        }
        await exchange.stop()
    }

    @Test("Bybit's retCode errors say what Bybit said")
    func bybitError() async throws {
        let exchange = try await FakeExchange.start(.bybit)
        let client = BybitKlineHistory(baseURL: exchange.restURL, logger: logger)
        exchange.failNextRequests([
            .init(status: 200, body: #"{"retCode":10001,"retMsg":"params error","result":{},"retExtInfo":{},"time":0}"#)
        ])
        await #expect {
            try await client.candles(stream, from: 1_767_225_600_000, through: 1_767_225_660_000)
        } throws: { error in
            "\(error)".contains("retCode 10001: params error")
        }
        await exchange.stop()
    }
}
