import Foundation
import Logging
import PostgresStore
import RabbitMQBus
import RedisCache
import SQLTradeStore
import SQLiteStore
import TradingCore

/// Builds the adapters from configuration and connects them at start, retrying while the servers
/// come up (compose and Kubernetes start everything at once), then failing with the server's words.
public enum Infrastructure {
    /// The RabbitMQ bus from `AMQP_URL` and `AMQP_CONFIRM_WINDOW`.
    public static func bus(_ config: SettingsReader, instance: String, logger: Logger) throws -> RabbitMQBus {
        let text = try config.required("AMQP_URL", help: "amqp://user:password@host:5672/vhost")
        let url: AMQPURL
        do { url = try AMQPURL(text) } catch { throw ConfigError(key: "AMQP_URL", message: "\(error)") }
        let window = try config.int(
            "AMQP_CONFIRM_WINDOW",
            default: 512,
            range: 1...65_535,
            help: "unconfirmed publishes in flight"
        )
        let limit = try config.int(
            "MAX_MESSAGE_BYTES",
            default: ConsumerOptions.defaultMaxMessageBytes,
            range: 4_096...134_217_728,
            help: "a larger message is dead-lettered unread"
        )
        return RabbitMQBus(
            configuration: .init(url: url, confirmWindow: window, connectionName: instance, maxMessageBytes: limit),
            logger: logger
        )
    }

    /// The Redis cache from `REDIS_URL`, `REDIS_TIMEOUT_MS` and `CACHE_LRU_CAPACITY`.
    public static func cache(_ config: SettingsReader, logger: Logger) throws -> RedisCache {
        let text = try config.required("REDIS_URL", help: "redis://:password@host:6379/0")
        let url: RedisURL
        do { url = try RedisURL(text) } catch { throw ConfigError(key: "REDIS_URL", message: "\(error)") }
        let timeout = try config.int(
            "REDIS_TIMEOUT_MS",
            default: 50,
            range: 1...10_000,
            help: "per-command timeout before the LRU answers"
        )
        let capacity = try config.int(
            "CACHE_LRU_CAPACITY",
            default: 100_000,
            range: 1...100_000_000,
            help: "entries in the in-process LRU"
        )
        return RedisCache(
            configuration: .init(url: url, commandTimeout: .milliseconds(timeout), lruCapacity: capacity),
            logger: logger
        )
    }

    /// The trade store from `DATABASE_URL` (or `key`): `postgres://...` or `sqlite:///path/to/file.sqlite`.
    public static func store(_ config: SettingsReader, key: String = "DATABASE_URL") throws -> SQLTradeStore {
        let text = try config.required(key, help: "postgres://user:password@host:5432/db or sqlite:///path")
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            let connections = try config.int(
                "DATABASE_POOL_SIZE",
                default: 2,
                range: 1...64,
                help: "Postgres connections"
            )
            let connect = try config.int(
                "DATABASE_CONNECT_TIMEOUT_SECONDS",
                default: 5,
                range: 2...120,
                help: "libpq connect_timeout"
            )
            let statement = try config.int(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                default: 30_000,
                range: 100...3_600_000,
                help: "Postgres statement_timeout"
            )
            return .postgres(
                url: text,
                connections: connections,
                connectTimeout: .seconds(connect),
                statementTimeout: .milliseconds(statement)
            )
        }
        if text.hasPrefix("sqlite://") {
            return .sqlite(path: String(text.dropFirst("sqlite://".count)))
        }
        throw ConfigError(
            key: "DATABASE_URL",
            message: "'\(SettingsReader.redactURL(text))' must start with postgres:// or sqlite://"
        )
    }

    /// Retries `attempt` with backoff until it succeeds or `timeout` passes, logging each failure.
    public static func connect<T: Sendable>(
        _ what: String,
        timeout: Duration,
        logger: Logger,
        _ attempt: @Sendable () async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        var delay = Duration.milliseconds(200)
        while true {
            do {
                return try await attempt()
            } catch {
                if ContinuousClock.now + delay > deadline {
                    throw StartupError("\(what) is unreachable: \(error)")
                }
                logger.warning(
                    "\(what) not reachable yet; retrying",
                    metadata: ["error": "\(error)", "retry_in": "\(delay)"]
                )
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

/// A worker could not start; the message says which dependency and why.
public struct StartupError: Error, CustomStringConvertible {
    public var description: String
    /// A `StartupError` with the field given.
    public init(_ description: String) { self.description = description }
}
