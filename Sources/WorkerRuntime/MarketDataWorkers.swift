import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices

/// feed-ingester's configuration: where the candles come from (FEED_SOURCE) and that source's keys.
public struct FeedConfiguration: Sendable {
    public enum Source: Sendable {
        /// A candle file, once.
        case replay(file: String, symbol: String, speed: Double)
        /// A seeded random walk for many symbols.
        case synthetic(symbols: [String], seed: UInt64, candles: Int?, speed: Double)
        /// An exchange's live WebSocket stream with REST backfill.
        case live(symbols: [String], webSocketURL: String, restURL: String, staleIntervals: Double)
    }

    public var dependencies: WorkerDependencies
    public var source: Source
    public var venue: String
    public var interval: String
    public var shards: Int

    public static func read(_ config: ConfigReader, instance: String) throws -> FeedConfiguration {
        let kind = try config.choice("FEED_SOURCE", default: "replay", allowed: ["replay", "synthetic", "binance", "bybit"], help: "where candles come from")
        let interval = try config.string("FEED_INTERVAL", default: "1m", help: "candle interval (1m, 5m, 15m, 1h, 4h, 1d)")!
        guard CandleInterval.milliseconds(interval) != nil else {
            throw ConfigError(key: "FEED_INTERVAL", message: "'\(interval)' is not an interval like 1m, 5m, 15m, 1h, 4h, 1d")
        }
        let speedHelp = "0: as fast as the bus takes it; N: N× real time"
        let source: Source
        let venue: String
        switch kind {
        case "replay":
            venue = try config.string("FEED_VENUE", default: "replay", help: "venue name in routing keys")!
            source = .replay(
                file: try config.required("FEED_FILE", help: "candle file to replay (csv, Binance csv or JSON arrays)"),
                symbol: try config.required("FEED_SYMBOL", help: "symbol of the file's candles"),
                speed: try config.double("REPLAY_SPEED", default: 0, range: 0...1_000_000, help: speedHelp))
        case "synthetic":
            venue = try config.string("FEED_VENUE", default: "synthetic", help: "venue name in routing keys")!
            let count = try config.int("SYNTHETIC_CANDLES", default: 10_000, range: 0...1_000_000_000, help: "candles per symbol; 0 runs until stopped")
            source = .synthetic(
                symbols: try symbols(config, default: "SYN00,SYN01,SYN02,SYN03"),
                seed: UInt64(try config.int("SYNTHETIC_SEED", default: 42, range: 0...Int.max, help: "seed of the random walk")),
                candles: count == 0 ? nil : count,
                speed: try config.double("REPLAY_SPEED", default: 0, range: 0...1_000_000, help: speedHelp))
        default:
            venue = kind
            let upper = kind.uppercased()
            let (ws, rest) = kind == "binance"
                ? ("wss://fstream.binance.com", "https://fapi.binance.com") : ("wss://stream.bybit.com", "https://api.bybit.com")
            if kind == "bybit", BybitMessages.bybitInterval(interval) == nil {
                throw ConfigError(key: "FEED_INTERVAL", message: "'\(interval)' is not a Bybit kline interval")
            }
            source = .live(
                symbols: try symbols(config, default: nil),
                webSocketURL: try url(config, "\(upper)_WS_URL", default: ws, schemes: ["ws", "wss"]),
                restURL: try url(config, "\(upper)_REST_URL", default: rest, schemes: ["http", "https"]),
                staleIntervals: try config.double("FEED_STALE_INTERVALS", default: 3, range: 0.01...10_000, help: "alert when a stream is silent this many intervals"))
        }
        return FeedConfiguration(
            dependencies: try WorkerDependencies.configure([.bus, .cache], config: config, instance: instance),
            source: source, venue: venue, interval: interval,
            shards: try config.int("INDICATOR_SHARDS", default: 1, range: 1...256, help: "shards of the indicator workers' queue"))
    }

    static func symbols(_ config: ConfigReader, default defaultValue: String?) throws -> [String] {
        let text = try defaultValue.map { try config.string("FEED_SYMBOLS", default: $0, help: "comma-separated symbols")! }
            ?? config.required("FEED_SYMBOLS", help: "comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
        let symbols = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
        guard !symbols.isEmpty, symbols.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber } }) else {
            throw ConfigError(key: "FEED_SYMBOLS", message: "'\(text)' is not a comma-separated list of symbols like BTCUSDT,ETHUSDT")
        }
        guard Set(symbols).count == symbols.count else { throw ConfigError(key: "FEED_SYMBOLS", message: "lists a symbol twice") }
        return symbols
    }

    static func url(_ config: ConfigReader, _ key: String, default defaultValue: String, schemes: Set<String>) throws -> String {
        let text = try config.string(key, default: defaultValue, help: "base URL")!
        guard let scheme = URL(string: text)?.scheme, schemes.contains(scheme), URL(string: text)?.host != nil else {
            throw ConfigError(key: key, message: "'\(text)' is not a \(schemes.sorted().joined(separator: " or ")) URL")
        }
        return text
    }
}

/// Replays the file once, then keeps serving health and its report until shutdown.
struct ReplayService: Service {
    let feed: ReplayFeed
    let file: String
    let report: StatusValue<ReplayFeed.Report?>
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

/// A synthetic walk: runs its candles, then waits for shutdown.
struct SyntheticService: Service {
    let feed: SyntheticFeed
    let published: StatusValue<Int>
    let logger: Logger

    func run() async throws {
        let count = try await cancelWhenGracefulShutdown { try await feed.run() }
        published.set(count)
        logger.info("synthetic feed finished", metadata: ["published": "\(count)"])
        try? await gracefulShutdown()
    }
}

/// A live exchange feed: runs until shutdown.
struct LiveFeedService: Service {
    let feed: LiveFeed

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await feed.run() }
        } catch is CancellationError {}
    }
}

/// A value a service sets and `/status` reads.
final class StatusValue<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
    func set(_ new: Value) { value.withLock { $0 = new } }
    var current: Value { value.withLock { $0 } }
}

extension StatusValue where Value == ReplayFeed.Report? {
    var status: [String: String] {
        guard let report = current else { return ["replay": "running"] }
        return [
            "replay": "finished", "published": "\(report.published)", "duplicates": "\(report.duplicates)",
            "rejected": "\(report.rejected)", "gaps": "\(report.gaps)", "missing_candles": "\(report.missingCandles)",
        ]
    }
}

extension WorkerMain {
    /// feed-ingester: market data (a file, a synthetic walk, or Binance or Bybit live) onto the bus.
    public static func runFeedIngester() async -> Never {
        await run(
            worker: "feed-ingester", defaultPort: 9101, summary: "market data onto the bus as closed candles",
            configure: { try FeedConfiguration.read($0, instance: "feed-ingester") },
            start: { feed, context in
                try await feed.dependencies.connect(context)
                let bus = feed.dependencies.bus!, cache = feed.dependencies.cache!
                try await bus.declare(WorkerQueues.indicatorCandles(shards: feed.shards))
                let output = FeedOutput(venue: feed.venue, source: context.settings.instance, bus: bus, cache: cache, logger: context.logger)
                let service: any Service
                let status: @Sendable () async -> [String: String]
                switch feed.source {
                case .replay(let file, let symbol, let speed):
                    let report = StatusValue<ReplayFeed.Report?>(nil)
                    service = ReplayService(
                        feed: ReplayFeed(stream: CandleStreamID(symbol: symbol, interval: feed.interval), speed: speed, output: output),
                        file: file, report: report, logger: context.logger)
                    status = { ["source": "replay"].merging(report.status) { $1 } }
                case .synthetic(let symbols, let seed, let candles, let speed):
                    let published = StatusValue(0)
                    let synthetic = SyntheticService(
                        feed: SyntheticFeed(symbols: symbols, interval: feed.interval, seed: seed, candles: candles, speed: speed, output: output),
                        published: published, logger: context.logger)
                    service = synthetic
                    status = { ["source": "synthetic", "symbols": "\(symbols.count)", "published": "\(synthetic.published.current)"] }
                case .live(let symbols, let webSocketURL, let restURL, let staleIntervals):
                    let stream: any KlineStream, history: any KlineHistory
                    if feed.venue == "binance" {
                        stream = BinanceKlineStream(baseURL: webSocketURL, logger: context.logger)
                        history = BinanceKlineHistory(baseURL: restURL, logger: context.logger)
                    } else {
                        stream = BybitKlineStream(baseURL: webSocketURL, logger: context.logger)
                        history = BybitKlineHistory(baseURL: restURL, logger: context.logger)
                    }
                    let live = try LiveFeed(
                        source: stream, history: history, output: output,
                        settings: LiveFeed.Settings(streams: symbols.map { CandleStreamID(symbol: $0, interval: feed.interval) }, staleIntervals: staleIntervals))
                    service = LiveFeedService(feed: live)
                    status = {
                        let counts = await live.counts
                        return [
                            "source": feed.venue, "connected": "\(await live.isConnected)", "published": "\(counts.published)",
                            "duplicates": "\(counts.duplicates)", "rejected": "\(counts.rejected)", "gaps": "\(counts.gaps)",
                            "backfilled": "\(counts.backfilled)", "still_missing": "\(counts.stillMissing)",
                            "connections": "\(counts.connections)", "stale_alerts": "\(counts.staleAlerts)",
                        ]
                    }
                }
                return WorkerPlan(
                    services: [service],
                    checks: { await feed.dependencies.checks() },
                    status: { ["worker": "feed-ingester", "venue": feed.venue].merging(await status()) { $1 } },
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
                let processor = IndicatorProcessor(bus: bus, cache: cache, source: context.settings.instance, logger: context.logger)
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
