import BlockingIO
import Foundation
import SQLTradeStore
import TradingCore

/// Postgres through libpq: a small pool of connections, each on its own thread. A connection that
/// fails is replaced on its next use, so the store recovers by itself when Postgres comes back.
public final class PostgresDatabase: SQLDatabase {
    public let dialect = SQLDialect(
        name: "postgres",
        decimalType: "NUMERIC",
        timeType: "TIMESTAMPTZ",
        booleanType: "BOOLEAN",
        floatType: "DOUBLE PRECISION",
        beginMigration: "SELECT pg_advisory_lock(724201)",
        endMigration: "SELECT pg_advisory_unlock(724201)"
    )

    private let url: String
    private let statementTimeout: Duration
    private let slots: [Slot]
    private let pool: SlotPool

    /// `url` is a libpq connection URL (`postgres://user:password@host:port/db`). A connection attempt
    /// gives up after `connectTimeout` (libpq's `connect_timeout`, unless the URL sets one) and every
    /// statement after `statementTimeout` (Postgres's `statement_timeout`), so a hung server fails
    /// calls instead of holding them for ever.
    public init(
        url: String,
        connections: Int = 2,
        connectTimeout: Duration = .seconds(5),
        statementTimeout: Duration = .seconds(30)
    ) {
        self.url =
            url.contains("connect_timeout=")
            ? url
            : url + (url.contains("?") ? "&" : "?") + "connect_timeout=\(max(2, connectTimeout.components.seconds))"
        self.statementTimeout = statementTimeout
        self.slots = (0..<max(1, connections)).map { Slot(thread: ConnectionThread(name: "postgres-\($0)")) }
        self.pool = SlotPool(count: slots.count)
    }

    /// Opens a connection now, so a worker fails fast at start when Postgres is unreachable.
    public func connect() async throws {
        _ = try await withSession { _ in true }
    }

    public func withSession<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        let index = await pool.acquire()
        // Released on every path, awaited: no task outlives the call.
        do {
            let result = try await run(body, slot: slots[index])
            await pool.release(index)
            return result
        } catch {
            await pool.release(index)
            throw error
        }
    }

    /// Runs `body` on `slot`'s connection thread, opening its connection if it has none or lost it.
    private func run<T: Sendable>(
        _ body: @escaping @Sendable (any SQLSession) throws -> T,
        slot: Slot
    ) async throws -> T {
        let url = self.url
        let timeout =
            statementTimeout.components.seconds * 1_000 + statementTimeout.components.attoseconds
            / 1_000_000_000_000_000
        return try await slot.thread.run {
            let connection: PostgresConnection
            if let existing = slot.connection, existing.isHealthy {
                connection = existing
            } else {
                slot.connection = nil
                connection = try PostgresConnection(url: url, statementTimeoutMilliseconds: timeout)
                slot.connection = connection
            }
            do {
                return try body(connection)
            } catch let error as StoreError where error.code == .connection {
                slot.connection = nil
                throw error
            }
        }
    }

    public func close() async {
        for slot in slots {
            _ = try? await slot.thread.run { slot.connection = nil }
            slot.thread.stop()
        }
    }
}

extension SQLTradeStore {
    /// The trade store on Postgres.
    public static func postgres(
        url: String,
        connections: Int = 2,
        connectTimeout: Duration = .seconds(5),
        statementTimeout: Duration = .seconds(30)
    ) -> SQLTradeStore {
        SQLTradeStore(
            database: PostgresDatabase(
                url: url,
                connections: connections,
                connectTimeout: connectTimeout,
                statementTimeout: statementTimeout
            )
        )
    }
}

/// One connection and its thread.
///
/// `@unchecked Sendable`: `connection` is read and written only in jobs on `thread`, one at a time.
private final class Slot: @unchecked Sendable {
    let thread: ConnectionThread
    var connection: PostgresConnection?
    init(thread: ConnectionThread) { self.thread = thread }
}

/// Hands out free connection slots; waiters queue in order.
private actor SlotPool {
    private var free: [Int]
    private var waiters: [CheckedContinuation<Int, Never>] = []

    init(count: Int) { free = Array((0..<count).reversed()) }

    func acquire() async -> Int {
        if let index = free.popLast() { return index }
        return await withCheckedContinuation { waiters.append($0) }
    }

    func release(_ index: Int) {
        if waiters.isEmpty { free.append(index) } else { waiters.removeFirst().resume(returning: index) }
    }
}
