import Exchanges
import Foundation
import Logging
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Hyperliquid market data against a local server speaking its documented format: the `candle` and
/// `activeAssetCtx` subscriptions with the ping heartbeat, and `POST /info` `candleSnapshot` and
/// `fundingHistory`, recorded in a real SQLite store.
@Suite("Hyperliquid live feed (local Hyperliquid)")
struct HyperliquidFeedTests {
    static let base = LiveFeedTests.base
    let logger = Logger(label: "test")

    @Test(
        "candles close when the next one starts, a gap is filled by candleSnapshot, marks and hourly funding come in, a trade's price is the latest"
    )
    func feed() async throws {
        let exchange = try await FakeExchange.start(.hyperliquid)
        let harness = try await LiveFeedTests.Harness()
        let (store, done) = try await LiveFundingTests.store()
        let btc = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let hour: Int64 = 3_600_000
        let history = (1...200).map {
            FundingEvent(time: LiveFundingTests.time(Self.base - Int64($0) * hour), rate: Money($0) / 1_000_000)
        }
        exchange.setFunding(history, for: "BTCUSDT")
        let rest = HyperliquidMarketHistory(baseURL: exchange.restURL, logger: logger)
        let clock = ManualClock(millis: Self.base)
        let feed = try LiveFeed(
            source: HyperliquidKlineStream(
                baseURL: exchange.webSocketURL,
                heartbeatPeriod: .milliseconds(50),
                logger: logger
            ),
            history: rest,
            funding: rest,
            output: FeedOutput(
                venue: "hyperliquid",
                source: "test",
                bus: harness.bus,
                cache: harness.cache,
                logger: logger,
                record: store
            ),
            settings: .init(streams: [btc], staleIntervals: 1_000, reconnect: LiveFeedTests.quickReconnect),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        // Subscribed by coin, candles and the asset context; pinged as Hyperliquid asks.
        #expect(
            await eventually {
                let received = exchange.received
                return received.contains { $0.contains(#""type":"candle","coin":"BTC","interval":"1m""#) }
                    && received.contains { $0.contains(#""type":"activeAssetCtx","coin":"BTC""#) }
                    && received.contains { $0.contains(#""type":"trades","coin":"BTC""#) }
                    && received.contains(#"{"method":"ping"}"#)
            }
        )
        #expect(await feed.fundingIntervals == ["BTCUSDT": .seconds(3600)])
        // The week read at start: 168 hourly settlements, oldest first.
        let week = (
            from: LiveFundingTests.time(Self.base - 8 * 86_400_000), through: LiveFundingTests.time(Self.base)
        )
        #expect(
            await eventually {
                let recorded = try? await store.funding(symbol: "BTCUSDT", from: week.from, through: week.through)
                return recorded?.count == 168 && recorded?.last == history[0]
            }
        )

        let candle = LiveFeedTests().candle
        var first = candle(0, nil)
        first.close = 99
        exchange.push(first, for: btc, closed: false)  // candle 0 as it stands after a trade
        exchange.push(candle(0, nil), for: btc, closed: false)  // and after the next
        #expect(await eventually { await harness.cache.get("price:hyperliquid:BTCUSDT")?.string == "100.0" })
        #expect(harness.candles.count == 0)  // no candle is closed until the next one starts
        exchange.push(candle(1, nil), for: btc, closed: false)  // closes 0 as it last stood
        #expect(await eventually { harness.candles.count == 1 })
        #expect(harness.candles.all.first?.candle == candle(0, nil))
        exchange.push(candle(0, nil), for: btc, closed: false)  // late: dropped
        exchange.addHistory([candle(2, nil)], for: btc)
        exchange.push(candle(3, nil), for: btc, closed: false)  // closes 1
        exchange.push(candle(4, nil), for: btc, closed: false)  // closes 3; 2 comes from candleSnapshot
        #expect(await eventually { harness.candles.count == 4 })
        #expect(harness.candles.all.map(\.candle) == (0...3).map { candle($0, nil) })
        #expect(harness.candles.all.allSatisfy { $0.venue == "hyperliquid" && $0.symbol == "BTCUSDT" })
        #expect(
            exchange.received.contains(
                #"{"type":"candleSnapshot","req":{"coin":"BTC","interval":"1m","startTime":\#(candle(2, nil).openTime),"endTime":\#(candle(2, nil).openTime)}}"#
            )
        )

        exchange.pushMark(
            symbol: "BTCUSDT",
            price: Money(string: "104.5")!,
            rate: Money(string: "0.0000125")!,
            nextFunding: Date(),
            at: Date()
        )
        #expect(
            await eventually {
                let mark = await harness.cache.get("mark:BTCUSDT").flatMap { MarkUpdate(cacheValue: $0.bytes) }
                return mark?.markPrice == Money(string: "104.5")! && mark?.fundingRate == Money(string: "0.0000125")!
                    && (mark?.nextFundingTime.map { $0 > Date() && $0 <= Date().addingTimeInterval(3600) } ?? false)
            }
        )
        // A trade: its price is the latest, before any candle says so.
        exchange.pushTrade(symbol: "BTCUSDT", price: Money(string: "104.25")!, at: Date())
        #expect(await eventually { await harness.cache.get("price:hyperliquid:BTCUSDT")?.string == "104.25" })
        #expect(harness.alerts.count == 0)
        try await LiveFeedTests().stop(running, harness, exchange)
        await done()
    }

    @Test("fundingHistory pages 500 at a time forward; an unreadable answer names Hyperliquid's text")
    func fundingPages() async throws {
        let exchange = try await FakeExchange.start(.hyperliquid)
        let hour: Int64 = 3_600_000
        let history = (0..<1_100).map {
            FundingEvent(time: LiveFundingTests.time(Self.base + Int64($0) * hour), rate: Money($0) / 1_000_000)
        }
        exchange.setFunding(history, for: "ETHUSDT")
        let rest = HyperliquidMarketHistory(baseURL: exchange.restURL, logger: logger)
        let events = try await rest.fundingRates(
            symbol: "ETHUSDT",
            from: LiveFundingTests.time(Self.base),
            through: LiveFundingTests.time(Self.base + 1_099 * hour)
        )
        #expect(events == history)
        #expect(exchange.restPaths == ["/info", "/info", "/info"])
        exchange.failNextRequests([.init(status: 422, body: "Failed to deserialize the JSON body into the target type")]
        )
        await #expect {
            _ = try await rest.candles(
                CandleStreamID(symbol: "ETHUSDT", interval: "1m"),
                from: Self.base,
                through: Self.base
            )
        } throws: {
            "\($0)".contains("POST /info failed with HTTP 422: Failed to deserialize")
        }
        await exchange.stop()
    }
}
