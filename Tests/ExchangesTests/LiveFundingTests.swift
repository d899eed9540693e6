import Exchanges
import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Mark prices and funding from a live feed, against a local exchange speaking Binance's and Bybit's
/// documented formats, recorded in a real SQLite store.
@Suite("Live funding and mark prices (Binance and Bybit formats, local exchange)")
struct LiveFundingTests {
    static let base = LiveFeedTests.base
    let logger = Logger(label: "test")

    static func time(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    /// A migrated SQLite store in a temporary file, removed by `done`.
    static func store() async throws -> (SQLTradeStore, done: @Sendable () async -> Void) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("funding-\(UUID().uuidString).sqlite")
            .path
        let store = SQLTradeStore.sqlite(path: path)
        try await store.migrate()
        return (
            store,
            {
                await store.close()
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        )
    }

    @Test(
        "Binance: history and the venue's interval at start; marks cached and carried by each candle; a settlement recorded when the next funding time moves on, REST's figures replacing the stream's"
    )
    func binance() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let harness = try await LiveFeedTests.Harness()
        let (store, done) = try await Self.store()
        let btc = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let eth = CandleStreamID(symbol: "ETHUSDT", interval: "1m")
        let hour: Int64 = 3_600_000
        // BTCUSDT's funding was moved to 4 h (fundingInfo lists it); ETHUSDT is not listed: 8 h apart.
        exchange.setFundingInterval(hours: 4, for: "BTCUSDT")
        let btcHistory = (1...3).map {
            FundingEvent(time: Self.time(Self.base - Int64($0) * 4 * hour), rate: Money($0) / 10_000, markPrice: 99)
        }
        exchange.setFunding(btcHistory, for: "BTCUSDT")
        exchange.setFunding(
            [-16, -8].map { FundingEvent(time: Self.time(Self.base + $0 * hour), rate: 0.0001, markPrice: 2_000) },
            for: "ETHUSDT"
        )
        let clock = ManualClock(millis: Self.base + 1_000)
        let history = BinanceKlineHistory(baseURL: exchange.restURL, logger: logger)
        let feed = try LiveFeed(
            source: BinanceKlineStream(baseURL: exchange.webSocketURL, logger: logger),
            history: history,
            funding: history,
            output: FeedOutput(
                venue: "binance",
                source: "test",
                bus: harness.bus,
                cache: harness.cache,
                logger: logger,
                record: store
            ),
            settings: .init(streams: [btc, eth], staleIntervals: 1_000, reconnect: LiveFeedTests.quickReconnect),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        #expect(await eventually { exchange.openConnections == 1 })
        #expect(await feed.fundingIntervals == ["BTCUSDT": .seconds(4 * 3600), "ETHUSDT": .seconds(8 * 3600)])
        let week = (Self.time(Self.base - 8 * 86_400_000), Self.time(Self.base))
        #expect(try await store.funding(symbol: "BTCUSDT", from: week.0, through: week.1) == btcHistory.reversed())
        let cached = await harness.cache.get("funding:BTCUSDT").flatMap { FundingEvent(cacheValue: $0.bytes) }
        #expect(cached == btcHistory[0], "the newest settlement")

        // Marks inside minute 0; the next settlement at minute 1.
        let next = Self.time(Self.base + 60_000)
        for (offset, price) in [(1_000, Money(string: "100.5")!), (20_000, 101.2), (40_000, 99.8), (59_000, 100)] {
            exchange.pushMark(
                symbol: "BTCUSDT",
                price: price,
                rate: Money(string: "0.0003")!,
                nextFunding: next,
                at: Self.time(Self.base + Int64(offset))
            )
        }
        #expect(
            await eventually {
                await harness.cache.get("mark:BTCUSDT").flatMap { MarkUpdate(cacheValue: $0.bytes) }?.markPrice == 100
            }
        )
        exchange.push(LiveFeedTests().candle(0), for: btc, closed: true)
        #expect(await eventually { harness.candles.count == 1 })
        #expect(
            harness.candles.all.first?.mark
                == Candle(openTime: Self.base, open: 100.5, high: 101.2, low: 99.8, close: 100, volume: 0)
        )
        #expect(try await store.candles(symbol: "BTCUSDT", interval: "1m", from: 0, through: .max).count == 1)

        // The next funding time moves on: the settlement at minute 1 happened. REST does not have it
        // yet, so the stream's figures are recorded: its last rate and mark before it.
        exchange.pushMark(
            symbol: "BTCUSDT",
            price: 100.4,
            rate: Money(string: "0.0001")!,
            nextFunding: Self.time(Self.base + 60_000 + 4 * hour),
            at: Self.time(Self.base + 61_000)
        )
        let settled = FundingEvent(time: next, rate: Money(string: "0.0003")!, markPrice: 100)
        #expect(
            await eventually {
                await harness.cache.get("funding:BTCUSDT").flatMap { FundingEvent(cacheValue: $0.bytes) } == settled
            }
        )
        #expect(try await store.funding(symbol: "BTCUSDT", from: next, through: next) == [settled])

        // The next one: by then REST has both, and its figures replace the stream's.
        let later = Self.time(Self.base + 60_000 + 4 * hour)
        let official = [
            FundingEvent(time: next, rate: Money(string: "0.00031")!, markPrice: Money(string: "100.01")!),
            FundingEvent(time: later, rate: Money(string: "0.00012")!, markPrice: Money(string: "100.5")!),
        ]
        exchange.setFunding(btcHistory + official, for: "BTCUSDT")
        exchange.pushMark(
            symbol: "BTCUSDT",
            price: 100.6,
            rate: 0,
            nextFunding: Self.time(Self.base + 60_000 + 8 * hour),
            at: Self.time(Self.base + 60_000 + 4 * hour + 1_000)
        )
        #expect(
            await eventually {
                (try? await store.funding(symbol: "BTCUSDT", from: next, through: later)) == official
            }
        )
        #expect(
            await harness.cache.get("funding:BTCUSDT").flatMap { FundingEvent(cacheValue: $0.bytes) } == official[1]
        )
        #expect(exchange.restPaths.contains { $0.hasPrefix("/fapi/v1/fundingRate?symbol=BTCUSDT&startTime=") })
        #expect(exchange.restPaths.contains("/fapi/v1/fundingInfo"))

        try await LiveFeedTests().stop(running, harness, exchange)
        await done()
    }

    @Test("Bybit: the interval from instruments-info, history newest first, a ticker snapshot then deltas merged")
    func bybit() async throws {
        let exchange = try await FakeExchange.start(.bybit)
        let harness = try await LiveFeedTests.Harness()
        let (store, done) = try await Self.store()
        let stream = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let hour: Int64 = 3_600_000
        exchange.setFundingInterval(hours: 1, for: "BTCUSDT")
        let history = (1...250).map {
            FundingEvent(time: Self.time(Self.base - Int64($0) * hour), rate: Money($0) / 1_000_000)
        }
        exchange.setFunding(history, for: "BTCUSDT")
        let rest = BybitKlineHistory(baseURL: exchange.restURL, logger: logger)
        let feed = try LiveFeed(
            source: BybitKlineStream(baseURL: exchange.webSocketURL, logger: logger),
            history: rest,
            funding: rest,
            output: FeedOutput(
                venue: "bybit",
                source: "test",
                bus: harness.bus,
                cache: harness.cache,
                logger: logger,
                record: store
            ),
            settings: .init(streams: [stream], staleIntervals: 1_000, reconnect: LiveFeedTests.quickReconnect),
            now: ManualClock(millis: Self.base).now
        )
        let running = Task { try await feed.run() }
        #expect(await eventually { exchange.received.contains { $0.contains("tickers.BTCUSDT") } })
        #expect(await feed.fundingIntervals == ["BTCUSDT": .seconds(3600)])
        // The week read at start: 168 hourly settlements, newest first on the wire, oldest first here.
        let recorded = try await store.funding(
            symbol: "BTCUSDT",
            from: Self.time(Self.base - 8 * 86_400_000),
            through: Self.time(Self.base)
        )
        #expect(recorded.count == 168 && recorded.last == history[0])
        try await Task.sleep(for: .milliseconds(100))  // the subscription answers are in
        exchange.pushMark(
            symbol: "BTCUSDT",
            price: 100,
            rate: Money(string: "0.0001")!,
            nextFunding: Self.time(Self.base + hour),
            at: Self.time(Self.base + 1_000)
        )
        exchange.pushMark(
            symbol: "BTCUSDT",
            price: 101,
            rate: Money(string: "0.0002")!,
            nextFunding: Self.time(Self.base + hour),
            at: Self.time(Self.base + 2_000)
        )
        #expect(
            await eventually {
                let mark = await harness.cache.get("mark:BTCUSDT").flatMap { MarkUpdate(cacheValue: $0.bytes) }
                return mark?.markPrice == 101 && mark?.fundingRate == Money(string: "0.0002")!
                    && mark?.nextFundingTime == Self.time(Self.base + hour)
            }
        )
        try await LiveFeedTests().stop(running, harness, exchange)
        await done()
    }

    @Test("the wire formats: Binance markPriceUpdate, Bybit ticker deltas holding only what changed")
    func messages() throws {
        let binance = try #require(
            try BinanceMessages.markPrice(
                Array(
                    #"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","ap":"11794.15","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#
                        .utf8
                )
            )
        )
        #expect(
            binance.markPrice == Money(string: "11794.15")! && binance.fundingRate == Money(string: "0.00038167")!
        )
        #expect(binance.nextFundingTime == Self.time(1_562_306_400_000))
        #expect(try BinanceMessages.markPrice(Array(#"{"e":"kline","E":1,"s":"X","p":"1"}"#.utf8)) == nil)
        let delta = try #require(
            try BybitMessages.ticker(
                Array(
                    #"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"1"},"cs":2,"ts":1673272861686}"#
                        .utf8
                )
            )
        )
        #expect(delta.markPrice == nil && delta.fundingRate == nil)
        let earlier = MarkUpdate(symbol: "BTCUSDT", time: Self.time(0), markPrice: 5, fundingRate: 0.0001)
        #expect(delta.merged(into: earlier).markPrice == 5 && delta.merged(into: earlier).fundingRate == 0.0001)
        #expect(throws: ExchangeMessageError.self) {
            try BybitMessages.ticker(
                Array(
                    #"{"topic":"tickers.X","type":"delta","data":{"symbol":"X","markPrice":"-1"},"cs":2,"ts":1}"#.utf8
                )
            )
        }
        #expect(MarkUpdate(cacheValue: earlier.cacheValue) == earlier)
    }
}
