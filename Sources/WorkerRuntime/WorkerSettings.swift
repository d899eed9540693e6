import Foundation
import Logging
import SQLTradeStore
import TradingCore
import TradingServices

/// `REPLAY_LOCKSTEP`: a replay across the workers, on the market's clock and one candle at a time. The
/// feed-ingester waits for each candle's work to finish before the next; the indicator worker, the
/// analyst and the executor read the time from the messages they handle and publish watermarks.
public enum ReplayLockstep {
    /// Whether this worker takes part in a lockstep replay.
    public static func read(_ config: SettingsReader) throws -> Bool {
        try config.bool(
            "REPLAY_LOCKSTEP",
            default: false,
            help: "a replay on the market's clock, one candle through the whole pipeline at a time"
        )
    }

    /// The worker's part, when `on`.
    public static func progress(_ on: Bool, worker: String, bus: any MessageBus, logger: Logger) -> LockstepProgress? {
        on ? LockstepProgress(worker: worker, bus: bus, logger: logger) : nil
    }

    /// The worker's clock: the market's in a lockstep replay, else the wall clock.
    public static func now(_ progress: LockstepProgress?) -> @Sendable () -> Date {
        guard let clock = progress?.clock else { return { Date() } }
        return clock.now
    }
}

/// executor's settings: its servers, and the venue, limits, breakers and stop policy.
public struct ExecutorWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var executor: ExecutorConfiguration
    /// `REPLAY_LOCKSTEP`.
    public var lockstep: Bool

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        Self(
            dependencies: try WorkerDependencies.configure(
                [.bus, .cache, .store],
                config: config,
                instance: "executor"
            ),
            executor: try ExecutorConfiguration.read(config),
            lockstep: try ReplayLockstep.read(config)
        )
    }
}

/// indicator-worker's settings: its servers and the shard it consumes.
public struct IndicatorWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var shards: Int
    public var shard: Int
    /// `REPLAY_LOCKSTEP`.
    public var lockstep: Bool

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        let shards = try config.int("INDICATOR_SHARDS", default: 1, range: 1...256, help: "shards of the candle queue")
        return Self(
            dependencies: try WorkerDependencies.configure(
                [.bus, .cache],
                config: config,
                instance: "indicator-worker"
            ),
            shards: shards,
            shard: try config.int(
                "SHARD_INDEX",
                default: 0,
                range: 0...(shards - 1),
                help: "the shard this worker consumes (0-based)"
            ),
            lockstep: try ReplayLockstep.read(config)
        )
    }
}

/// ai-analyst's settings: its servers and the analysts.
public struct AnalystWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var analyst: AnalystConfiguration
    /// Where the shadow candidate's decisions are recorded, apart from the live ones
    /// (`SHADOW_DATABASE_URL`, required with `ANALYST_SHADOW`).
    public var shadowStore: SQLTradeStore?
    /// `REPLAY_LOCKSTEP`.
    public var lockstep: Bool
    /// `ANALYST_PROVIDERS=copy`: whom to follow and how.
    public var copy: CopyConfiguration?

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        let analyst = try AnalystConfiguration.read(config)
        let copy = analyst.copying ? try CopyConfiguration.read(config, framework: analyst.framework) : nil
        return Self(
            dependencies: try WorkerDependencies.configure(
                [.bus, .cache, .store],
                config: config,
                instance: "ai-analyst"
            ),
            analyst: analyst,
            shadowStore: analyst.shadow == nil ? nil : try Infrastructure.store(config, key: "SHADOW_DATABASE_URL"),
            lockstep: try ReplayLockstep.read(config),
            copy: copy
        )
    }
}

/// notifier's settings: its servers and the sinks.
public struct NotifierWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var notifier: NotifierConfiguration

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        let notifier = try NotifierConfiguration.read(config, logger: Logger(label: "tradebus.notifications"))
        let needs: WorkerDependencies.Needs =
            notifier.summaryHour == nil && notifier.chatBot == nil ? [.bus, .cache] : [.bus, .cache, .store]
        return Self(
            dependencies: try WorkerDependencies.configure(needs, config: config, instance: "notifier"),
            notifier: notifier
        )
    }
}

/// Every worker's settings by name, as its `main` reads them: what `tradebus config --worker NAME` shows.
public enum WorkerSettings {
    /// The five workers, with their default health ports.
    public static let workers: [(name: String, port: Int)] = [
        ("feed-ingester", 9101), ("indicator-worker", 9102), ("ai-analyst", 9103), ("executor", 9104),
        ("notifier", 9105),
    ]

    /// Reads everything `worker` reads at start from `config` (which records it), checking it as the
    /// worker would.
    public static func read(worker: String, _ config: SettingsReader) throws {
        guard let port = workers.first(where: { $0.name == worker })?.port else {
            throw ConfigError(
                key: "--worker",
                message: "'\(worker)' is not one of \(workers.map(\.name).joined(separator: ", "))"
            )
        }
        _ = try RuntimeSettings(worker: worker, defaultPort: port, config: config)
        _ = try WorkerMain.startupTimeout(config)
        switch worker {
        case "feed-ingester": _ = try FeedConfiguration.read(config, instance: worker)
        case "indicator-worker": _ = try IndicatorWorkerSettings.read(config)
        case "ai-analyst": _ = try AnalystWorkerSettings.read(config)
        case "executor": _ = try ExecutorWorkerSettings.read(config)
        default: _ = try NotifierWorkerSettings.read(config)
        }
    }
}
