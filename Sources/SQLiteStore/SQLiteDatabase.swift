import BlockingIO
import CSQLite
import Foundation
import SQLTradeStore
import TradingCore

/// SQLite, the embedded store: one connection on its own thread, in WAL mode.
public final class SQLiteDatabase: SQLDatabase {
    public let dialect = SQLDialect(
        name: "sqlite",
        decimalType: "TEXT",
        timeType: "TEXT",
        booleanType: "INTEGER",
        floatType: "REAL",
        beginMigration: "SELECT 1",
        endMigration: "SELECT 1"
    )

    public let path: String
    private let thread = ConnectionThread(name: "sqlite")
    private let holder: Holder

    /// Opens (creating if needed) the database at `path`; `:memory:` for a private in-memory one.
    public init(path: String) {
        self.path = path
        self.holder = Holder()
    }

    public func withSession<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        let holder = self.holder
        let path = self.path
        return try await thread.run {
            if holder.connection == nil { holder.connection = try SQLiteConnection(path: path) }
            return try body(holder.connection!)
        }
    }

    public func close() async {
        let holder = self.holder
        _ = try? await thread.run { holder.connection = nil }
        thread.stop()
    }
}

extension SQLTradeStore {
    /// The trade store on a SQLite file.
    public static func sqlite(path: String) -> SQLTradeStore {
        SQLTradeStore(database: SQLiteDatabase(path: path))
    }
}

/// `@unchecked Sendable`: `connection` is touched only in jobs on the database's single thread.
private final class Holder: @unchecked Sendable {
    var connection: SQLiteConnection?
}

/// One sqlite3 handle. Not thread-safe: used only on the database's thread. Owns the handle and its
/// prepared statements, finalised in `deinit`; no other type touches sqlite3.
final class SQLiteConnection: SQLSession {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(path: String) throws {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError(.connection, "cannot open SQLite database '\(path)': \(message)")
        }
        self.handle = handle
        sqlite3_busy_timeout(handle, 5000)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=NORMAL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    var beginTransaction: String { "BEGIN IMMEDIATE" }

    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? lastError
            sqlite3_free(error)
            throw StoreError(.query, "\(message) in: \(sql.prefix(120))")
        }
    }

    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, parameter) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32 =
                switch parameter {
                case .null: sqlite3_bind_null(statement, index)
                case .integer(let value): sqlite3_bind_int64(statement, index, value)
                case .text(let text): sqlite3_bind_text(statement, index, text, -1, Self.transient)
                }
            guard status == SQLITE_OK else { throw StoreError(.query, "binding parameter \(index): \(lastError)") }
        }
        var rows: [SQLRow] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw StoreError(.query, "\(lastError) in: \(sql.prefix(120))") }
            let columns = sqlite3_column_count(statement)
            rows.append(
                (0..<columns).map { column in
                    sqlite3_column_type(statement, column) == SQLITE_NULL
                        ? nil : String(cString: sqlite3_column_text(statement, column))
                }
            )
        }
        return rows
    }

    /// One transaction of prepared inserts that skip conflicting rows.
    func bulkInsert(table: String, columns: [String], rows: [[SQLValue]], conflictColumns: [String]) throws -> Int {
        let placeholders = (1...columns.count).map { "$\($0)" }.joined(separator: ", ")
        let sql =
            "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(placeholders)) ON CONFLICT (\(conflictColumns.joined(separator: ", "))) DO NOTHING"
        return try transaction {
            var inserted = 0
            for row in rows {
                try query(sql, row)
                inserted += Int(sqlite3_changes(handle))
            }
            return inserted
        }
    }

    /// Prepares once per SQL text; `$N` placeholders become SQLite's `?N`.
    private func prepare(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        let native = sql.replacingOccurrences(of: #"\$(\d+)"#, with: "?$1", options: .regularExpression)
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, native, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw StoreError(.query, "\(lastError) in: \(sql.prefix(120))")
        }
        statements[sql] = statement
        return statement
    }

    private var lastError: String { String(cString: sqlite3_errmsg(handle)) }
}
