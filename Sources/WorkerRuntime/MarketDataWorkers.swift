import Exchanges
import Foundation
import Hyperliquid
import Logging
import ServiceLifecycle
import Synchronization
import TradingCore
import TradingServices

/// The live venues the feed reads, and each one's stream and REST history.
public enum LiveMarketSources {
    /// Venues with a live feed.
    public static let venues: Set<String> = ["binance", "bybit", "hyperliquid"]

    /// `venue`'s kline stream at `webSocketURL` and its candle and funding history at `restURL`.
    public static func make(
        venue: String,
        webSocketURL: String,
        restURL: String,
        logger: Logger
    ) -> (
        stream: any KlineStream, history: any KlineHistory & FundingHistory
    ) {
        switch venue {
        case "binance":
            (
                BinanceKlineStream(baseURL: webSocketURL, logger: logger),
                BinanceKlineHistory(baseURL: restURL, logger: logger)
            )
        case "bybit":
            (
                BybitKlineStream(baseURL: webSocketURL, logger: logger),
                BybitKlineHistory(baseURL: restURL, logger: logger)
            )
        default:
            (
                HyperliquidKlineStream(baseURL: webSocketURL, logger: logger),
                HyperliquidMarketHistory(baseURL: restURL, logger: logger)
            )
        }
    }
}

/// feed-ingester's configuration: where the candles come from (FEED_SOURCE) and that source's keys.
public struct FeedConfiguration: Sendable {
    /// Where candles come from: a file, a synthetic walk, or an exchange.
    public enum Source: Sendable {
        /// A candle file, once.
        case replay(file: String, symbol: String, speed: Double)
        /// A seeded random walk for many symbols.
        case synthetic(symbols: [String], seed: UInt64, candles: Int?, speed: Double, wallClock: Bool)
        /// An exchange's live WebSocket stream with REST backfill.
        case live(symbols: [String], webSocketURL: String, restURL: String, staleIntervals: Double)
    }

    public var dependencies: WorkerDependencies
    public var source: Source
    public var venue: String
    public var interval: String
    public var shards: Int
    /// A lockstep replay (`REPLAY_LOCKSTEP`): how long a candle may wait for the pipeline before the
    /// feed names what holds it (`LOCKSTEP_STALL_SECONDS`); nil otherwise.
    public var lockstepStall: Duration?

    /// Reads and checks the feed-ingester's keys; a bad one stops it at start, naming the key. A live feed
    /// keeps its candles and funding settlements in the store (`DATABASE_URL`) unless `recordsMarket` is
    /// false (the embedded run, which has its own store).
    public static func read(
        _ config: SettingsReader,
        instance: String,
        recordsMarket: Bool = true
    ) throws -> FeedConfiguration {
        let kind = try config.choice(
            "FEED_SOURCE",
            default: "replay",
            allowed: ["replay", "synthetic", "binance", "bybit", "hyperliquid"],
            help: "where candles come from"
        )
        let interval = try config.string(
            "FEED_INTERVAL",
            default: "1m",
            help: "candle interval (1m, 5m, 15m, 1h, 4h, 1d)"
        )!
        guard CandleInterval.milliseconds(interval) != nil else {
            throw ConfigError(
                key: "FEED_INTERVAL",
                message: "'\(interval)' is not an interval like 1m, 5m, 15m, 1h, 4h, 1d"
            )
        }
        let speedHelp = "0: as fast as the bus takes it; N: N× real time"
        let source: Source
        let venue: String
        var lockstepStall: Duration?
        switch kind {
        case "replay":
            if try ReplayLockstep.read(config) {
                lockstepStall = .seconds(
                    try config.double(
                        "LOCKSTEP_STALL_SECONDS",
                        default: 60,
                        range: 1...86_400,
                        help: "a candle the pipeline has not finished after this long is reported as a stall"
                    )
                )
            }
            venue = try config.string("FEED_VENUE", default: "replay", help: "venue name in routing keys")!
            source = .replay(
                file: try config.required("FEED_FILE", help: "candle file to replay (csv, Binance csv or JSON arrays)"),
                symbol: try config.required("FEED_SYMBOL", help: "symbol of the file's candles"),
                speed: try config.double("REPLAY_SPEED", default: 0, range: 0...1_000_000, help: speedHelp)
            )
        case "synthetic":
            venue = try config.string("FEED_VENUE", default: "synthetic", help: "venue name in routing keys")!
            let count = try config.int(
                "SYNTHETIC_CANDLES",
                default: 10_000,
                range: 0...1_000_000_000,
                help: "candles per symbol; 0 runs until stopped"
            )
            source = .synthetic(
                symbols: try symbols(config, default: "SYN00,SYN01,SYN02,SYN03"),
                seed: UInt64(
                    try config.int("SYNTHETIC_SEED", default: 42, range: 0...Int.max, help: "seed of the random walk")
                ),
                candles: count == 0 ? nil : count,
                speed: try config.double("REPLAY_SPEED", default: 0, range: 0...1_000_000, help: speedHelp),
                wallClock: try config.choice(
                    "SYNTHETIC_CLOCK",
                    default: "market",
                    allowed: ["market", "wall"],
                    help: "market: candles one interval apart; wall: each stamped as closing now (latency benchmarks)"
                ) == "wall"
            )
        default:
            venue = kind
            let upper = kind.uppercased()
            let (ws, rest) =
                switch kind {
                case "binance": ("wss://fstream.binance.com", "https://fapi.binance.com")
                case "bybit": ("wss://stream.bybit.com", "https://api.bybit.com")
                default: ("wss://api.hyperliquid.xyz", "https://api.hyperliquid.xyz")
                }
            if kind == "bybit", BybitMessages.bybitInterval(interval) == nil {
                throw ConfigError(key: "FEED_INTERVAL", message: "'\(interval)' is not a Bybit kline interval")
            }
            if kind == "hyperliquid", !HyperliquidMessages.intervals.contains(interval) {
                throw ConfigError(
                    key: "FEED_INTERVAL",
                    message: "'\(interval)' is not a Hyperliquid candle interval (1m, 5m, 15m, 1h, 4h, 1d, …)"
                )
            }
            source = .live(
                symbols: try symbols(config, default: nil),
                webSocketURL: try url(config, "\(upper)_WS_URL", default: ws, schemes: ["ws", "wss"]),
                restURL: try url(config, "\(upper)_REST_URL", default: rest, schemes: ["http", "https"]),
                staleIntervals: try config.double(
                    "FEED_STALE_INTERVALS",
                    default: 3,
                    range: 0.01...10_000,
                    help: "alert when a stream is silent this many intervals"
                )
            )
        }
        return FeedConfiguration(
            // A live feed keeps the candles and funding settlements it saw in the store (the run's record).
            dependencies: try WorkerDependencies.configure(
                recordsMarket && LiveMarketSources.venues.contains(kind) ? [.bus, .cache, .store] : [.bus, .cache],
                config: config,
                instance: instance
            ),
            source: source,
            venue: venue,
            interval: interval,
            shards: try config.int(
                "INDICATOR_SHARDS",
                default: 1,
                range: 1...256,
                help: "shards of the indicator workers' queue"
            ),
            lockstepStall: lockstepStall
        )
    }

    static func symbols(_ config: SettingsReader, default defaultValue: String?) throws -> [String] {
        let text =
            try defaultValue.map { try config.string("FEED_SYMBOLS", default: $0, help: "comma-separated symbols")! }
            ?? config.required("FEED_SYMBOLS", help: "comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
        let symbols = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
        guard !symbols.isEmpty, symbols.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber } })
        else {
            throw ConfigError(
                key: "FEED_SYMBOLS",
                message: "'\(text)' is not a comma-separated list of symbols like BTCUSDT,ETHUSDT"
            )
        }
        guard Set(symbols).count == symbols.count else {
            throw ConfigError(key: "FEED_SYMBOLS", message: "lists a symbol twice")
        }
        return symbols
    }

    static func url(
        _ config: SettingsReader,
        _ key: String,
        default defaultValue: String,
        schemes: Set<String>
    ) throws -> String {
        let text = try config.string(key, default: defaultValue, help: "base URL")!
        guard let scheme = URL(string: text)?.scheme, schemes.contains(scheme), URL(string: text)?.host != nil else {
            throw ConfigError(key: key, message: "'\(text)' is not a \(schemes.sorted().joined(separator: " or ")) URL")
        }
        return text
    }
}

/// Replays the file once, then keeps serving health and its report until shutdown.
public struct ReplayService: Service {
    public let feed: ReplayFeed
    public let file: String
    public let report: StatusValue<ReplayFeed.Report?>
    /// A lockstep replay's gate (`REPLAY_LOCKSTEP`); nil otherwise.
    public let gate: LockstepGate?
    public let logger: Logger

    /// A `ReplayService` with the fields given.
    public init(
        feed: ReplayFeed,
        file: String,
        report: StatusValue<ReplayFeed.Report?>,
        gate: LockstepGate? = nil,
        logger: Logger
    ) {
        self.gate = gate
        self.feed = feed
        self.file = file
        self.report = report
        self.logger = logger
    }

    public func run() async throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw StartupError("cannot read FEED_FILE '\(file)'")
        }
        let candles = try CandleFile.parse(text)
        let result: ReplayFeed.Report
        do {
            result = try await cancelWhenGracefulShutdown { try await feed.replay(candles, gate: gate) }
        } catch is CancellationError {
            // Stopped by a graceful shutdown (SIGTERM) before the file's end: a clean stop.
            logger.info("replay stopped before the end of the file")
            return
        }
        report.set(result)
        logger.info(
            "replay finished",
            metadata: [
                "published": "\(result.published)", "duplicates": "\(result.duplicates)",
                "rejected": "\(result.rejected)",
                "gaps": "\(result.gaps)", "missing": "\(result.missingCandles)",
            ]
        )
        try? await gracefulShutdown()
    }
}

/// A synthetic walk: runs its candles, then waits for shutdown.
public struct SyntheticService: Service {
    public let feed: SyntheticFeed
    public let published: StatusValue<Int>
    public let logger: Logger

    /// A `SyntheticService` with the fields given.
    public init(
        feed: SyntheticFeed,
        published: StatusValue<Int>,
        logger: Logger
    ) {
        self.feed = feed
        self.published = published
        self.logger = logger
    }

    public func run() async throws {
        let count: Int
        do {
            count = try await cancelWhenGracefulShutdown { try await feed.run() }
        } catch is CancellationError {
            // Stopped by a graceful shutdown (SIGTERM) before its last candle: a clean stop.
            logger.info("synthetic feed stopped")
            return
        }
        published.set(count)
        logger.info("synthetic feed finished", metadata: ["published": "\(count)"])
        try? await gracefulShutdown()
    }
}

/// A live exchange feed: runs until shutdown.
public struct LiveFeedService: Service {
    public let feed: LiveFeed

    /// A `LiveFeedService` with the fields given.
    public init(
        feed: LiveFeed
    ) {
        self.feed = feed
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await feed.run() }
        } catch is CancellationError {}
    }
}

/// A value a service sets and `/status` reads.
/// A value a service updates and the status page reads.
public final class StatusValue<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    /// A value starting at `initial`.
    public init(_ initial: Value) { value = Mutex(initial) }
    /// Replaces the value.
    public func set(_ new: Value) { value.withLock { $0 = new } }
    /// The value now.
    public var current: Value { value.withLock { $0 } }
}

extension StatusValue where Value == ReplayFeed.Report? {
    /// A replay's report, for the status page.
    public var status: [String: String] {
        guard let report = current else { return ["replay": "running"] }
        return [
            "replay": "finished", "published": "\(report.published)", "duplicates": "\(report.duplicates)",
            "rejected": "\(report.rejected)", "gaps": "\(report.gaps)", "missing_candles": "\(report.missingCandles)",
        ]
    }
}
