import Foundation
import Logging
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Replay → bus → indicator processor, in process: what the workers do, without the processes.
@Suite("Market data pipeline (in process)")
struct MarketDataPipelineTests {
    func candles(_ file: String) throws -> [Candle] {
        try CandleFile.parse(
            try String(
                contentsOf: TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/\(file)"),
                encoding: .utf8
            )
        )
    }

    @Test("replaying XRPUSDT-PERP-5m gives, per candle, the snapshots tradebus indicators computes")
    func replayMatchesIndicators() async throws {
        let bus = InProcessBus()
        let cache = LocalCache()
        try await bus.declare(QueueSpec(name: "candles", bindings: ["md.candle.#"]))
        try await bus.declare(QueueSpec(name: "snapshots", bindings: ["ind.#"]))
        let data = try candles("XRPUSDT-PERP-5m.csv")
        let feed = ReplayFeed(
            stream: CandleStreamID(symbol: "XRPUSDT", interval: "5m"),
            output: FeedOutput(venue: "binance", source: "test", bus: bus, cache: cache, logger: Logger(label: "test"))
        )
        // Published twice: the second replay is all redeliveries, and changes nothing.
        let report = try await feed.replay(data)
        _ = try await feed.replay(data)
        #expect(report.published == data.count && report.gaps == 0 && report.duplicates == 0)

        let processor = IndicatorProcessor(bus: bus, cache: cache, source: "test")
        let snapshots = Collector<IndicatorSnapshot>()
        let worker = RunningConsumer.start(bus, queue: "candles") { try await processor.handle($0) }
        let reader = RunningConsumer.start(bus, queue: "snapshots") { delivery in
            snapshots.append(try EnvelopeCodec.decode(SnapshotPayload.self, from: delivery.body).payload.snapshot)
        }
        #expect(await eventually(timeout: .seconds(30)) { snapshots.count == data.count })
        try await worker.stop()
        try await reader.stop()

        var reference = IndicatorSet()
        let expected = data.map { reference.update($0) }
        let mismatch = zip(snapshots.all, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(
            snapshots.all == expected,
            "first difference at \(String(describing: mismatch.map { ($0.offset, $0.element.0, $0.element.1) }))"
        )
        let cached = try #require(await cache.get(SnapshotPayload.cacheKey(symbol: "XRPUSDT", interval: "5m")))
        #expect(try EnvelopeCodec.decode(SnapshotPayload.self, from: cached.bytes).payload.snapshot == expected.last)
        #expect(cached.sourceTime == Date(timeIntervalSince1970: Double(data.last!.openTime + 300_000) / 1000))
        #expect(await cache.get("price:binance:XRPUSDT")?.string == String(data.last!.close))
    }

    @Test("1m candles also update 5m, 15m, 1h and 4h; gaps are reported, not filled")
    func multiTimeframe() async throws {
        let bus = InProcessBus()
        let cache = LocalCache()
        try await bus.declare(QueueSpec(name: "candles", bindings: ["md.candle.#"]))
        let data = Array(try candles("UNITTESTBTC-1m.csv").prefix(2000))
        let feed = ReplayFeed(
            stream: CandleStreamID(symbol: "UNITTESTBTC", interval: "1m"),
            output: FeedOutput(venue: "binance", source: "test", bus: bus, cache: cache, logger: Logger(label: "test"))
        )
        let report = try await feed.replay(data)
        #expect(report.gaps > 0 && report.missingCandles > 0)
        let processor = IndicatorProcessor(bus: bus, cache: cache, source: "test")
        let worker = RunningConsumer.start(bus, queue: "candles") { try await processor.handle($0) }
        #expect(
            await eventually {
                await processor.snapshot(symbol: "UNITTESTBTC", interval: "1m")?.openTime == data.last!.openTime
            }
        )
        try await worker.stop()
        for interval in ["5m", "15m", "1h", "4h"] {
            #expect(await processor.snapshot(symbol: "UNITTESTBTC", interval: interval) != nil, "\(interval)")
            #expect(await cache.get(SnapshotPayload.cacheKey(symbol: "UNITTESTBTC", interval: interval)) != nil)
        }
    }

    @Test("an invalid candle is never published: it raises an alert instead")
    func invalidCandleAlert() async throws {
        let bus = InProcessBus()
        try await bus.declare(QueueSpec(name: "candles", bindings: ["md.candle.#"]))
        try await bus.declare(QueueSpec(name: "alerts", bindings: ["alert.#"]))
        let good = Candle(openTime: 0, open: 10, high: 12, low: 9, close: 11, volume: 5)
        var bad = good
        bad.openTime = 60_000
        bad.high = 8
        var next = good
        next.openTime = 120_000
        let feed = ReplayFeed(
            stream: CandleStreamID(symbol: "BTCUSDT", interval: "1m"),
            output: FeedOutput(
                venue: "binance",
                source: "test",
                bus: bus,
                cache: LocalCache(),
                logger: Logger(label: "test")
            )
        )
        let report = try await feed.replay([good, bad, next])
        #expect(report.published == 2 && report.rejected == 1)
        #expect(try await bus.messageCount("candles") == 2)
        let alerts = Collector<Delivery>()
        let consumer = RunningConsumer.start(bus, queue: "alerts") { alerts.append($0) }
        #expect(await eventually { alerts.count == 1 })
        try await consumer.stop()
        let alert = try #require(alerts.all.first)
        #expect(alert.routingKey == "alert.warning.invalid_candle")
        let payload = try EnvelopeCodec.decode(AlertPayload.self, from: alert.body, expectedType: MessageType.alert)
            .payload
        #expect(
            payload.severity == .warning && payload.symbol == "BTCUSDT"
                && payload.fields?["defect"] == .string("high_below_low")
        )
    }

    @Test("a body that is not a candle goes to the dead-letter queue with the reason")
    func poisonCandle() async throws {
        let bus = InProcessBus()
        try await bus.declare(QueueSpec(name: "candles", bindings: ["md.candle.#"]))
        try await bus.publish(OutgoingMessage(routingKey: "md.candle.binance.X.1m", body: Array("{}".utf8)))
        let processor = IndicatorProcessor(bus: bus, cache: LocalCache(), source: "test")
        let dead = Collector<Delivery>()
        let worker = RunningConsumer.start(bus, queue: "candles") { try await processor.handle($0) }
        let dlq = RunningConsumer.start(bus, queue: "candles.dlq") { dead.append($0) }
        #expect(await eventually { dead.count == 1 })
        try await worker.stop()
        try await dlq.stop()
        #expect(dead.all.first?.headers[DeadLetterHeader.reason]?.hasPrefix("not a candle") == true)
    }
}
