import Foundation
import Logging
import RabbitMQBus
import RedisCache
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Indicator workers sharing the symbols over the real RabbitMQ and Redis: each worker is a processor
/// with its own bus connection and its own cache client, as separate processes would have.
extension MarketDataSystemTests {
    @Suite("Indicator sharding and takeover (RabbitMQ, Redis)")
    struct IndicatorShardingTests {
        static let start: Int64 = 1_767_225_600_000
        static let intervals = ["1m", "5m", "15m", "1h"]

        struct Worker {
            let bus: RabbitMQBus
            let cache: RedisCache
            let processor: IndicatorProcessor
            let consumer: RunningConsumer

            static func start(queue: String, name: String) async throws -> Worker {
                let bus = RabbitMQBus(
                    configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: name)
                )
                try await bus.connect()
                let cache = RedisCache(
                    configuration: .init(
                        url: try RedisURL(TestServices.redisURL),
                        commandTimeout: .seconds(2),
                        localFreshness: .zero
                    )
                )
                let processor = IndicatorProcessor(bus: bus, cache: cache, source: name)
                let consumer = RunningConsumer.start(bus, queue: queue, options: ConsumerOptions(prefetch: 64)) {
                    try await processor.handle($0)
                }
                return Worker(bus: bus, cache: cache, processor: processor, consumer: consumer)
            }

            func stop() async throws {
                try await consumer.stop()
                await bus.shutdown()
            }
        }

        /// A fresh run: its own venue (so its own bindings), symbols and queue.
        struct Run {
            let id = "t" + UUID().uuidString.prefix(8).lowercased()
            var venue: String { id }
            var symbols: [String] { (0..<12).map { "\(id.uppercased())S\($0)" } }
            func spec(shards: Int) -> QueueSpec {
                QueueSpec(
                    name: "test.indicators.\(id)",
                    bindings: ["md.candle.\(venue).#"],
                    singleActiveConsumer: true,
                    sharding: .byShardKey(count: shards)
                )
            }
        }

        func publish(_ run: Run, candles: Int, seed: UInt64 = 11) async throws {
            let bus = RabbitMQBus(
                configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "test-feed")
            )
            try await bus.connect()
            let output = FeedOutput(
                venue: run.venue,
                source: "test-feed",
                bus: bus,
                cache: LocalCache(),
                logger: Logger(label: "test")
            )
            try await SyntheticFeed(
                symbols: run.symbols,
                interval: "1m",
                seed: seed,
                candles: candles,
                startTime: Self.start,
                output: output
            ).run()
            await bus.shutdown()
        }

        /// Every stream's snapshot in Redis, by symbol position and interval.
        func snapshots(_ run: Run, cache: RedisCache) async throws -> [String: IndicatorSnapshot] {
            var result: [String: IndicatorSnapshot] = [:]
            for (index, symbol) in run.symbols.enumerated() {
                for interval in Self.intervals {
                    let value = try #require(
                        await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: interval)),
                        "\(symbol) \(interval)"
                    )
                    result["\(index) \(interval)"] = try EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes)
                        .payload.snapshot
                }
            }
            return result
        }

        /// Waits until every symbol's snapshot of every interval is the one of the last candle closed by
        /// minute `lastMinute` (the intervals are written one after the other, so each is checked).
        func waitForLast(_ run: Run, lastMinute: Int, cache: RedisCache) async -> Bool {
            let lastOpen = Self.intervals.map { interval -> (String, Int64) in
                let minutes = Int(CandleInterval.milliseconds(interval)! / 60_000)
                return (interval, Self.start + Int64((lastMinute + 1) / minutes * minutes - minutes) * 60_000)
            }
            return await eventually(timeout: .seconds(90), interval: .milliseconds(100)) {
                for symbol in run.symbols {
                    for (interval, openTime) in lastOpen {
                        guard let value = await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: interval)),
                            let payload = try? EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes),
                            payload.payload.snapshot.openTime == openTime
                        else { return false }
                    }
                }
                return true
            }
        }

        /// Runs `workers` workers over 12 symbols of 180 synthetic 1m candles; returns the snapshots and
        /// which symbols each worker handled.
        func shardedRun(workers count: Int) async throws -> (snapshots: [String: IndicatorSnapshot], handled: [[Int]]) {
            let run = Run()
            let spec = run.spec(shards: count)
            let setup = RabbitMQBus(
                configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "test-setup")
            )
            try await setup.connect()
            try await setup.declare(spec)
            await setup.shutdown()
            var workers: [Worker] = []
            for index in 0..<count {
                workers.append(try await Worker.start(queue: spec.shard(index), name: "worker-\(index)"))
            }
            try await publish(run, candles: 180)
            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(TestServices.redisURL),
                    commandTimeout: .seconds(2),
                    localFreshness: .zero
                )
            )
            #expect(await waitForLast(run, lastMinute: 179, cache: cache))
            var handled: [[Int]] = []
            for worker in workers {
                var mine: [Int] = []
                for (index, symbol) in run.symbols.enumerated()
                where await worker.processor.snapshot(symbol: symbol, interval: "1m") != nil {
                    mine.append(index)
                }
                handled.append(mine)
                try await worker.stop()
            }
            return (try await snapshots(run, cache: cache), handled)
        }

        /// The snapshots one in-process processor computes over the same candles.
        func reference(candles: Int, seed: UInt64 = 11) async throws -> [String: IndicatorSnapshot] {
            let symbols = (0..<12).map { "S\($0)" }
            let bus = InProcessBus()
            let processor = IndicatorProcessor(bus: bus, cache: LocalCache(), source: "reference")
            let output = FeedOutput(
                venue: "reference",
                source: "reference",
                bus: bus,
                cache: LocalCache(),
                logger: Logger(label: "test")
            )
            var market = SyntheticMarket(
                symbols: symbols,
                seed: seed,
                intervalMilliseconds: 60_000,
                startTime: Self.start
            )
            for _ in 0..<candles {
                for (candle, symbol) in zip(market.next(), symbols) {
                    let message = try output.message(
                        candle,
                        of: CandleStreamID(symbol: symbol, interval: "1m"),
                        intervalMilliseconds: 60_000
                    )
                    try await processor.handle(
                        Delivery(
                            routingKey: message.routingKey,
                            body: message.body,
                            messageID: message.messageID,
                            correlationID: message.correlationID
                        )
                    )
                }
            }
            var result: [String: IndicatorSnapshot] = [:]
            for (index, symbol) in symbols.enumerated() {
                for interval in Self.intervals {
                    result["\(index) \(interval)"] = await processor.snapshot(symbol: symbol, interval: interval)
                }
            }
            return result
        }

        @Test(
            "3 workers over 12 symbols produce the same snapshots as 1 worker; each symbol goes to exactly one worker"
        )
        func threeWorkersEqualOne() async throws {
            let one = try await shardedRun(workers: 1)
            let three = try await shardedRun(workers: 3)
            let expected = try await reference(candles: 180)
            let wrongInOne = expected.keys.sorted().filter { one.snapshots[$0] != expected[$0] }
            let wrongInThree = expected.keys.sorted().filter { three.snapshots[$0] != expected[$0] }
            #expect(
                wrongInOne.isEmpty,
                "1 worker: \(wrongInOne) \(wrongInOne.first.map { "\n got \(String(describing: one.snapshots[$0]))\n want \(String(describing: expected[$0]))" } ?? "")"
            )
            #expect(wrongInThree.isEmpty, "3 workers: \(wrongInThree)")
            #expect(one.snapshots.count == 12 * Self.intervals.count)
            let differing = one.snapshots.keys.sorted().filter { three.snapshots[$0] != one.snapshots[$0] }
            #expect(
                differing.isEmpty,
                "\(differing.prefix(2).map { "\($0): one \(String(describing: one.snapshots[$0]))\n three \(String(describing: three.snapshots[$0]))" })"
            )
            #expect(one.handled == [Array(0..<12)])
            #expect(
                three.handled.flatMap { $0 }.sorted() == Array(0..<12),
                "each symbol on exactly one worker: \(three.handled)"
            )
            #expect(three.handled.filter { !$0.isEmpty }.count > 1, "the symbols are spread: \(three.handled)")
            // Higher timeframes were built: 180 minutes make three 1h candles.
            #expect(one.snapshots["0 1h"]?.openTime == Self.start + 2 * 3_600_000)
        }

        @Test(
            "a worker that takes over mid-stream restores the state from Redis: same snapshots as one uninterrupted worker, redeliveries skipped"
        )
        func takeover() async throws {
            let run = Run()
            let spec = run.spec(shards: 1)
            let setup = RabbitMQBus(
                configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "test-setup")
            )
            try await setup.connect()
            try await setup.declare(spec)
            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(TestServices.redisURL),
                    commandTimeout: .seconds(2),
                    localFreshness: .zero
                )
            )

            // The reference: one processor, in process, over every candle.
            var market = SyntheticMarket(
                symbols: run.symbols,
                seed: 5,
                intervalMilliseconds: 60_000,
                startTime: Self.start
            )
            let steps = (0..<150).map { _ in market.next() }
            let referenceBus = InProcessBus()
            try await referenceBus.declare(QueueSpec(name: "all", bindings: ["md.candle.#"]))
            let reference = IndicatorProcessor(bus: referenceBus, cache: LocalCache(), source: "reference")
            let output = FeedOutput(
                venue: run.venue,
                source: "test-feed",
                bus: setup,
                cache: LocalCache(),
                logger: Logger(label: "test")
            )
            func messages(_ range: Range<Int>) throws -> [OutgoingMessage] {
                try range.flatMap { step in
                    try zip(steps[step], run.symbols).map {
                        try output.message(
                            $0,
                            of: CandleStreamID(symbol: $1, interval: "1m"),
                            intervalMilliseconds: 60_000
                        )
                    }
                }
            }
            for message in try messages(0..<150) {
                try await reference.handle(
                    Delivery(
                        routingKey: message.routingKey,
                        body: message.body,
                        messageID: message.messageID,
                        correlationID: message.correlationID
                    )
                )
            }

            // Worker A handles the first 100 minutes, then goes away.
            let first = try await Worker.start(queue: spec.shard(0), name: "worker-a")
            try await setup.publish(try messages(0..<100))
            #expect(await waitForLast(run, lastMinute: 99, cache: cache))
            try await first.stop()

            // Worker B starts with nothing in memory; the last 20 minutes A saw arrive again (redeliveries).
            let second = try await Worker.start(queue: spec.shard(0), name: "worker-b")
            try await setup.publish(try messages(80..<150))
            #expect(await waitForLast(run, lastMinute: 149, cache: cache))
            try await second.stop()
            await setup.shutdown()

            for symbol in run.symbols {
                for interval in Self.intervals {
                    let value = try #require(
                        await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: interval))
                    )
                    let snapshot = try EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes).payload.snapshot
                    #expect(
                        snapshot == (await reference.snapshot(symbol: symbol, interval: interval)),
                        "\(symbol) \(interval)"
                    )
                }
            }
        }
    }
}
