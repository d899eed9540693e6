import Foundation
import Logging
import RabbitMQBus
import RedisCache
import SQLTradeStore
import TradingCore

/// The servers a worker uses, configured together, connected at start, and checked by `/ready`.
public struct WorkerDependencies: Sendable {
    /// Which servers a worker needs: the bus, the cache, the store.
    public struct Needs: OptionSet, Sendable {
        public let rawValue: Int
        /// A `Needs` with the field given.
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let bus = Needs(rawValue: 1)
        public static let cache = Needs(rawValue: 2)
        public static let store = Needs(rawValue: 4)
    }

    public var bus: RabbitMQBus?
    public var cache: RedisCache?
    public var store: SQLTradeStore?

    /// Reads the keys of what is needed (validating them) without connecting.
    public static func configure(_ needs: Needs, config: SettingsReader, instance: String) throws -> WorkerDependencies
    {
        let logger = Logger(label: "tradebus.dependencies")
        return WorkerDependencies(
            bus: needs.contains(.bus)
                ? try Infrastructure.bus(config, instance: instance, logger: Logger(label: "tradebus.rabbitmq")) : nil,
            cache: needs.contains(.cache) ? try Infrastructure.cache(config, logger: logger) : nil,
            store: needs.contains(.store) ? try Infrastructure.store(config) : nil
        )
    }

    /// Connects everything (the store also migrates), retrying until the startup timeout.
    public func connect(_ context: WorkerContext) async throws {
        if let bus {
            try await Infrastructure.connect(
                "RabbitMQ (\(bus.configuration.url))",
                timeout: context.startupTimeout,
                logger: context.logger
            ) {
                try await bus.connect()
            }
        }
        if let cache, !(await cache.checkConnection()) {
            // A cache that is down is not fatal: the LRU answers and a reconnect runs in the background.
            context.logger.warning("Redis is down at start; answering from the in-process LRU until it returns")
        }
        if let store {
            try await Infrastructure.connect("the trade store", timeout: context.startupTimeout, logger: context.logger)
            {
                try await store.migrate()
            }
        }
    }

    /// `/ready`'s view of each dependency.
    public func checks() async -> [String: DependencyStatus] {
        var results: [String: DependencyStatus] = [:]
        if let bus { results["rabbitmq"] = await bus.isConnected() ? .up : .down("not connected; reconnecting") }
        if let cache {
            switch cache.health {
            case .healthy: results["redis"] = .up
            case .degraded, .localOnly: results["redis"] = .degraded("answering from the in-process LRU")
            }
        }
        if let store {
            do {
                _ = try await store.appliedMigrations()
                results["store"] = .up
            } catch {
                results["store"] = .down("\(error)")
            }
        }
        return results
    }

    /// Closes connections after the services stopped.
    public func close() async {
        await bus?.shutdown()
        await store?.close()
        await (cache as? RedisCache)?.close()
    }
}
