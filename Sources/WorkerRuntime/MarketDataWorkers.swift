import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices

/// feed-ingester's configuration. This build replays files; the exchange WebSocket and synthetic
/// sources arrive later, and asking for them is a configuration error that says so.
public struct FeedConfiguration: Sendable {
    public var dependencies: WorkerDependencies
    public var file: String
    public var venue: String
    public var symbol: String
    public var interval: String
    public var speed: Double
    public var shards: Int

    public static func read(_ config: ConfigReader, instance: String) throws -> FeedConfiguration {
        _ = try config.choice("FEED_SOURCE", default: "replay", allowed: ["replay"], help: "replay (binance, bybit and synthetic are not in this build)")
        let interval = try config.string("FEED_INTERVAL", default: "1m", help: "interval of the file's candles")!
        guard CandleInterval.milliseconds(interval) != nil else {
            throw ConfigError(key: "FEED_INTERVAL", message: "'\(interval)' is not an interval like 1m, 5m, 15m, 1h, 4h, 1d")
        }
        return FeedConfiguration(
            dependencies: try WorkerDependencies.configure([.bus, .cache], config: config, instance: instance),
            file: try config.required("FEED_FILE", help: "candle file to replay"),
            venue: try config.string("FEED_VENUE", default: "replay", help: "venue name in routing keys")!,
            symbol: try config.required("FEED_SYMBOL", help: "symbol of the file's candles"),
            interval: interval,
            speed: try config.double("REPLAY_SPEED", default: 0, range: 0...1_000_000, help: "0: as fast as the bus takes it; N: N× real time"),
            shards: try config.int("INDICATOR_SHARDS", default: 1, range: 1...256, help: "shards of the indicator workers' queue"))
    }
}

/// Replays the file once, then keeps serving health and its report until shutdown.
struct ReplayService: Service {
    let feed: ReplayFeed
    let file: String
    let report: ReportBox
    let logger: Logger

    func run() async throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw StartupError("cannot read FEED_FILE '\(file)'")
        }
        let candles = try CandleFile.parse(text)
        let result = try await feed.replay(candles)
        report.set(result)
        logger.info("replay finished", metadata: [
            "published": "\(result.published)", "duplicates": "\(result.duplicates)", "rejected": "\(result.rejected)",
            "gaps": "\(result.gaps)", "missing": "\(result.missingCandles)",
        ])
        try? await gracefulShutdown()
    }
}

/// The replay's report, for `/status`.
final class ReportBox: Sendable {
    private let value = Mutex<ReplayFeed.Report?>(nil)
    func set(_ report: ReplayFeed.Report) { value.withLock { $0 = report } }
    var status: [String: String] {
        guard let report = value.withLock({ $0 }) else { return ["replay": "running"] }
        return [
            "replay": "finished", "published": "\(report.published)", "duplicates": "\(report.duplicates)",
            "rejected": "\(report.rejected)", "gaps": "\(report.gaps)", "missing_candles": "\(report.missingCandles)",
        ]
    }
}

extension WorkerMain {
    /// feed-ingester: replay a candle file onto the bus.
    public static func runFeedIngester() async -> Never {
        await run(
            worker: "feed-ingester", defaultPort: 9101, summary: "market data onto the bus as closed candles (file replay in this build)",
            configure: { try FeedConfiguration.read($0, instance: "feed-ingester") },
            start: { feed, context in
                try await feed.dependencies.connect(context)
                let bus = feed.dependencies.bus!, cache = feed.dependencies.cache!
                try await bus.declare(WorkerQueues.indicatorCandles(shards: feed.shards))
                let replay = ReplayFeed(
                    venue: feed.venue, symbol: feed.symbol, interval: feed.interval, speed: feed.speed,
                    source: context.settings.instance, bus: bus, cache: cache, logger: context.logger)
                let report = ReportBox()
                return WorkerPlan(
                    services: [ReplayService(feed: replay, file: feed.file, report: report, logger: context.logger)],
                    checks: { await feed.dependencies.checks() },
                    status: { ["worker": "feed-ingester", "source": "replay"].merging(report.status) { $1 } },
                    shutdown: { await feed.dependencies.close() })
            })
    }

    /// indicator-worker: one shard of the candle queue; indicators, snapshots and signals.
    public static func runIndicatorWorker() async -> Never {
        struct Settings: Sendable {
            var dependencies: WorkerDependencies
            var shards: Int
            var shard: Int
        }
        await run(
            worker: "indicator-worker", defaultPort: 9102, summary: "incremental indicators and signals, sharded by symbol",
            configure: { config in
                let shards = try config.int("INDICATOR_SHARDS", default: 1, range: 1...256, help: "shards of the candle queue")
                return Settings(
                    dependencies: try WorkerDependencies.configure([.bus, .cache], config: config, instance: "indicator-worker"),
                    shards: shards,
                    shard: try config.int("SHARD_INDEX", default: 0, range: 0...(shards - 1), help: "the shard this worker consumes (0-based)"))
            },
            start: { settings, context in
                try await settings.dependencies.connect(context)
                let bus = settings.dependencies.bus!, cache = settings.dependencies.cache!
                let spec = WorkerQueues.indicatorCandles(shards: settings.shards)
                try await bus.declare(spec)
                let processor = IndicatorProcessor(bus: bus, cache: cache, source: context.settings.instance)
                let consumer = ConsumerService(bus: bus, queue: spec.shard(settings.shard), options: ConsumerOptions(prefetch: 256)) {
                    try await processor.handle($0)
                }
                return WorkerPlan(
                    services: [consumer], checks: { await settings.dependencies.checks() },
                    status: { ["worker": "indicator-worker", "queue": spec.shard(settings.shard)] },
                    shutdown: { await settings.dependencies.close() })
            })
    }
}

import Synchronization
