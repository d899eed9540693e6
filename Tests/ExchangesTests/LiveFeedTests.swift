import Exchanges
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// A bus whose candle publishes fail while `failing` is set, as RabbitMQ's do when it is unreachable.
final class FailingBus: MessageBus {
    let inner: InProcessBus
    let failing = Mutex(false)
    init(inner: InProcessBus) { self.inner = inner }

    func declare(_ queue: QueueSpec) async throws { try await inner.declare(queue) }
    func publish(_ message: OutgoingMessage) async throws { try await publish([message]) }
    func publish(_ messages: [OutgoingMessage]) async throws {
        if failing.withLock({ $0 }), messages.contains(where: { $0.routingKey.hasPrefix("md.candle.") }) {
            throw BusError.connection("test: the broker is away")
        }
        try await inner.publish(messages)
    }
    func messageCount(_ queue: String) async throws -> Int { try await inner.messageCount(queue) }
    func consume(
        _ queue: String,
        options: ConsumerOptions,
        control: ConsumerControl?,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async throws {
        try await inner.consume(queue, options: options, control: control, handler: handler)
    }
}

/// The live feed against a local exchange that speaks Binance's or Bybit's documented formats.
@Suite("Live feed (Binance and Bybit formats, local exchange)")
struct LiveFeedTests {
    static let base: Int64 = 1_767_225_600_000  // 2026-01-01T00:00Z
    let logger = Logger(label: "test")

    func candle(_ index: Int, price: Double? = nil) -> Candle {
        let close = price ?? (100 + Double(index))
        return Candle(
            openTime: Self.base + Int64(index) * 60_000,
            open: close - 0.5,
            high: close + 1,
            low: close - 1,
            close: close,
            volume: 10 + Double(index)
        )
    }

    /// A feed on `exchange`, publishing into an in-process bus whose candles and alerts the test collects.
    struct Harness {
        let bus = InProcessBus()
        let cache = LocalCache()
        let candles = Collector<CandlePayload>()
        let alerts = Collector<AlertPayload>()
        var consumers: [RunningConsumer] = []

        init() async throws {
            try await bus.declare(QueueSpec(name: "candles", bindings: ["md.candle.#"]))
            try await bus.declare(QueueSpec(name: "alerts", bindings: ["alert.#"]))
            let candles = self.candles
            let alerts = self.alerts
            consumers.append(
                RunningConsumer.start(bus, queue: "candles") {
                    candles.append(
                        try EnvelopeCodec.decode(
                            CandlePayload.self,
                            from: $0.body,
                            expectedType: MessageType.candleClosed
                        ).payload
                    )
                }
            )
            consumers.append(
                RunningConsumer.start(bus, queue: "alerts") {
                    alerts.append(
                        try EnvelopeCodec.decode(AlertPayload.self, from: $0.body, expectedType: MessageType.alert)
                            .payload
                    )
                }
            )
        }

        func output(_ venue: String) -> FeedOutput {
            FeedOutput(venue: venue, source: "test", bus: bus, cache: cache, logger: Logger(label: "test"))
        }

        func stop() async throws {
            for consumer in consumers { try await consumer.stop() }
        }
    }

    /// Cancels the feed and waits for it, then stops the consumers and the exchange.
    func stop(
        _ running: Task<Void, any Error>,
        _ harness: Harness,
        _ exchange: FakeExchange,
        test: String = #function
    ) async throws {
        running.cancel()
        _ = await awaitSayingIfSlow("\(test): the cancelled live feed to return") { await running.result }
        try await awaitSayingIfSlow("\(test): the test's bus consumers to stop") { try await harness.stop() }
        await awaitSayingIfSlow("\(test): the local exchange to stop") { await exchange.stop() }
    }

    static let quickReconnect = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200))

    @Test(
        "Binance: closed candles once and in order; duplicates, late and malformed messages dropped; gaps and a disconnect filled from REST"
    )
    func binance() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let harness = try await Harness()
        let btc = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let eth = CandleStreamID(symbol: "ETHUSDT", interval: "1m")
        let clock = ManualClock(millis: Self.base + 60_000 * 5 + 1_000)
        let feed = try LiveFeed(
            source: BinanceKlineStream(baseURL: exchange.webSocketURL, logger: logger),
            history: BinanceKlineHistory(baseURL: exchange.restURL, logger: logger),
            output: harness.output("binance"),
            settings: .init(streams: [btc, eth], staleIntervals: 1_000, reconnect: Self.quickReconnect),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        #expect(await eventually { exchange.openConnections == 1 })

        exchange.push(candle(0), for: btc, closed: true)
        exchange.push(candle(1, price: 150), for: btc, closed: false)  // still open: a price, not a candle
        #expect(await eventually { await harness.cache.get("price:binance:BTCUSDT")?.string == "150.0" })
        exchange.push(candle(1), for: btc, closed: true)
        exchange.push(candle(1), for: btc, closed: true)  // duplicate
        exchange.pushRaw("this is not JSON")  // malformed: skipped, the connection stays
        exchange.push(candle(0), for: eth, closed: true)
        exchange.addHistory([candle(2), candle(3)], for: btc)
        exchange.push(candle(4), for: btc, closed: true)  // after a gap: 2 and 3 come from REST first
        exchange.push(candle(3), for: btc, closed: true)  // late: already filled
        #expect(await eventually { harness.candles.count == 6 })
        let btcTimes = harness.candles.all.filter { $0.symbol == "BTCUSDT" }.map(\.candle.openTime)
        #expect(btcTimes == (0...4).map { candle($0).openTime })
        #expect(harness.candles.all.filter { $0.symbol == "BTCUSDT" }.map(\.candle) == (0...4).map { candle($0) })
        #expect(
            exchange.restPaths == [
                "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=\(candle(2).openTime)&endTime=\(candle(3).openTime)&limit=2"
            ]
        )
        #expect(harness.candles.all.allSatisfy { $0.venue == "binance" && $0.interval == "1m" })
        #expect(await harness.cache.get("price:binance:BTCUSDT")?.string == "104.0")
        #expect(exchange.openConnections == 1)

        // The exchange drops the connection; while it is down, candles 5 to 7 (and ETH's 1 to 7) close.
        exchange.addHistory([candle(5), candle(6), candle(7)], for: btc)
        exchange.addHistory((1...7).map { candle($0) }, for: eth)
        clock.set(millis: Self.base + 60_000 * 8 + 500)
        exchange.dropConnections()
        #expect(await eventually { exchange.connectionsOpened == 2 && harness.candles.count == 16 })
        exchange.push(candle(8), for: btc, closed: true)
        #expect(await eventually { harness.candles.count == 17 })
        #expect(harness.candles.all.filter { $0.symbol == "BTCUSDT" }.map(\.candle) == (0...8).map { candle($0) })
        #expect(harness.candles.all.filter { $0.symbol == "ETHUSDT" }.map(\.candle) == (0...7).map { candle($0) })
        let counts = await feed.counts
        #expect(
            counts.duplicates == 2 && counts.gaps == 1 && counts.backfilled == 12 && counts.stillMissing == 0
                && counts.connections == 2
        )
        #expect(harness.alerts.count == 0)

        try await stop(running, harness, exchange)
    }

    @Test(
        "Bybit: subscriptions ten topics at a time, the ping heartbeat, newest-first REST; invalid candles alerted, unfillable gaps reported"
    )
    func bybit() async throws {
        let exchange = try await FakeExchange.start(.bybit)
        let harness = try await Harness()
        let symbols = (0..<12).map { String(format: "S%02dUSDT", $0) }
        let streams = symbols.map { CandleStreamID(symbol: $0, interval: "5m") }
        let first = streams[0]
        let clock = ManualClock(millis: Self.base + 3_600_000)
        let feed = try LiveFeed(
            source: BybitKlineStream(
                baseURL: exchange.webSocketURL,
                heartbeatPeriod: .milliseconds(100),
                logger: logger
            ),
            history: BybitKlineHistory(baseURL: exchange.restURL, logger: logger),
            output: harness.output("bybit"),
            settings: .init(streams: streams, staleIntervals: 1_000, reconnect: Self.quickReconnect),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        // 12 kline topics, then the 12 symbols' tickers: 24 topics, ten to a request.
        #expect(await eventually { exchange.received.filter { $0.contains("subscribe") }.count == 3 })
        let subscriptions = exchange.received.filter { $0.contains("subscribe") }
        #expect(
            subscriptions[0].contains("kline.5.S00USDT") && subscriptions[0].contains("kline.5.S09USDT")
                && !subscriptions[0].contains("S10USDT")
        )
        #expect(subscriptions[1].contains("kline.5.S10USDT") && subscriptions[1].contains("kline.5.S11USDT"))
        #expect(subscriptions[1].contains("tickers.S00USDT") && subscriptions[2].contains("tickers.S11USDT"))
        #expect(await eventually { exchange.received.filter { $0 == #"{"op":"ping"}"# }.count >= 2 })

        func fiveMinute(_ index: Int) -> Candle {
            var c = candle(index * 5)
            c.openTime = Self.base + Int64(index) * 300_000
            return c
        }
        try await Task.sleep(for: .milliseconds(100))  // the subscription answers are in
        exchange.push(fiveMinute(0), for: first, closed: true)
        var broken = fiveMinute(1)
        broken.high = broken.low - 1  // high < low: never published
        exchange.push(broken, for: first, closed: true)
        exchange.push(fiveMinute(1), for: first, closed: true)
        exchange.addHistory([fiveMinute(2), fiveMinute(3)], for: first)
        exchange.push(fiveMinute(4), for: first, closed: true)
        #expect(await eventually { harness.candles.count == 5 })
        #expect(harness.candles.all.map(\.candle) == (0...4).map(fiveMinute))
        #expect(
            exchange.restPaths.first?.hasPrefix("/v5/market/kline?category=linear&symbol=S00USDT&interval=5&start=")
                == true
        )
        #expect(
            await eventually { harness.alerts.all.contains { $0.kind == "invalid_candle" && $0.symbol == "S00USDT" } }
        )

        // REST has nothing for the next gap: the candle still goes out, the gap is reported, nothing is invented.
        exchange.push(fiveMinute(7), for: first, closed: true)
        #expect(await eventually { harness.candles.count == 6 })
        #expect(harness.candles.all.last?.candle == fiveMinute(7))
        #expect(
            await eventually { harness.alerts.all.contains { $0.kind == "feed_gap" && $0.message.contains("2 of 2") } }
        )
        #expect(await feed.counts.stillMissing == 2)

        try await stop(running, harness, exchange)
    }

    @Test(
        "a candle the bus refused is not lost: the connection is dropped, and after the reconnect REST brings it back"
    )
    func publishFailure() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let harness = try await Harness()
        let bus = FailingBus(inner: harness.bus)
        let btc = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let clock = ManualClock(millis: Self.base + 60_000 * 3 + 1_000)
        let feed = try LiveFeed(
            source: BinanceKlineStream(baseURL: exchange.webSocketURL, logger: logger),
            history: BinanceKlineHistory(baseURL: exchange.restURL, logger: logger),
            output: FeedOutput(venue: "binance", source: "test", bus: bus, cache: harness.cache, logger: logger),
            settings: .init(streams: [btc], staleIntervals: 1_000, reconnect: Self.quickReconnect),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        #expect(await eventually { exchange.openConnections == 1 })
        exchange.push(candle(0), for: btc, closed: true)
        #expect(await eventually { harness.candles.count == 1 })

        bus.failing.withLock { $0 = true }
        exchange.setHistory([candle(0), candle(1), candle(2)], for: btc)
        exchange.push(candle(1), for: btc, closed: true)
        #expect(await eventually { exchange.connectionsOpened >= 2 })
        bus.failing.withLock { $0 = false }
        exchange.dropConnections()  // the next reconnect catches up on 1 and 2 from REST
        #expect(await eventually { harness.candles.count == 3 })
        #expect(harness.candles.all.map(\.candle) == [candle(0), candle(1), candle(2)])

        try await stop(running, harness, exchange)
    }

    @Test("a stream silent for N intervals raises one alert.warning.feed_stale, and another only after it recovers")
    func staleFeed() async throws {
        let exchange = try await FakeExchange.start(.binance)
        let harness = try await Harness()
        let btc = CandleStreamID(symbol: "BTCUSDT", interval: "1m")
        let clock = ManualClock(millis: Self.base)
        let feed = try LiveFeed(
            source: BinanceKlineStream(baseURL: exchange.webSocketURL, logger: logger),
            history: BinanceKlineHistory(baseURL: exchange.restURL, logger: logger),
            output: harness.output("binance"),
            settings: .init(
                streams: [btc],
                staleIntervals: 3,
                reconnect: Self.quickReconnect,
                watchdogPeriod: .milliseconds(20)
            ),
            now: clock.now
        )
        let running = Task { try await feed.run() }
        #expect(await eventually { exchange.openConnections == 1 })
        clock.set(millis: Self.base + 170_000)  // under 3 intervals: nothing
        try await Task.sleep(for: .milliseconds(100))
        #expect(harness.alerts.count == 0)
        clock.set(millis: Self.base + 181_000)
        #expect(await eventually { harness.alerts.count == 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(harness.alerts.count == 1)
        let alert = try #require(harness.alerts.all.first)
        #expect(alert.kind == "feed_stale" && alert.severity == .warning && alert.symbol == "BTCUSDT")

        exchange.push(candle(2, price: 120), for: btc, closed: false)  // data again
        #expect(await eventually { await harness.cache.get("price:binance:BTCUSDT") != nil })
        clock.set(millis: Self.base + 400_000)
        #expect(await eventually { harness.alerts.count == 2 })

        try await stop(running, harness, exchange)
    }
}
