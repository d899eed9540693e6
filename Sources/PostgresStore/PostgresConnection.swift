import CLibPQ
import Foundation
import SQLTradeStore
import TradingCore

/// One libpq connection. Not thread-safe: it belongs to one `ConnectionThread`, and every call
/// happens there. Owns the `PGconn` and frees it in `deinit`; no other type touches libpq.
final class PostgresConnection: SQLSession {
    private let connection: OpaquePointer
    /// Prepared statements by SQL text.
    private var prepared: [String: String] = [:]

    init(url: String, statementTimeoutMilliseconds: Int64 = 30_000) throws {
        guard let connection = PQconnectdb(url) else {
            throw StoreError(.connection, "libpq could not allocate a connection")
        }
        self.connection = connection
        guard PQstatus(connection) == CONNECTION_OK else {
            throw StoreError(.connection, "cannot connect to Postgres: \(Self.trimmed(PQerrorMessage(connection)))")
        }
        // Times are read back in UTC, in the format SQLText parses.
        try execute("SET TIME ZONE 'UTC'")
        try execute("SET client_min_messages TO WARNING")
        try execute("SET statement_timeout = \(statementTimeoutMilliseconds)")
    }

    deinit {
        PQfinish(connection)
    }

    var isHealthy: Bool { PQstatus(connection) == CONNECTION_OK }

    func execute(_ sql: String) throws {
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql)
    }

    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        let name: String
        if let existing = prepared[sql] {
            name = existing
        } else {
            name = "s\(prepared.count + 1)"
            let result = PQprepare(connection, name, sql, Int32(parameters.count), nil)
            defer { PQclear(result) }
            try check(result, sql)
            prepared[sql] = name
        }
        let texts: [String?] = parameters.map {
            switch $0 {
            case .null: nil
            case .text(let text): text
            case .integer(let value): String(value)
            }
        }
        let cStrings = texts.map { $0.map { strdup($0) } ?? nil }
        defer {
            for string in cStrings { free(string) }
        }
        let result = cStrings.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                PQexecPrepared(connection, name, Int32(values.count), values.baseAddress, nil, nil, 0)
            }
        }
        defer { PQclear(result) }
        try check(result, sql)
        return rows(result)
    }

    /// COPY into a temporary table, then one INSERT ... SELECT that skips conflicting rows.
    func bulkInsert(table: String, columns: [String], rows: [[SQLValue]], conflictColumns: [String]) throws -> Int {
        let columnList = columns.joined(separator: ", ")
        return try transaction {
            try execute(
                "CREATE TEMP TABLE IF NOT EXISTS bulk_\(table) (LIKE \(table) INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            let start = PQexec(connection, "COPY bulk_\(table) (\(columnList)) FROM STDIN")
            defer { PQclear(start) }
            guard PQresultStatus(start) == PGRES_COPY_IN else {
                try check(start, "COPY")
                return 0
            }
            var buffer = [UInt8]()
            buffer.reserveCapacity(64 * 1024)
            for row in rows {
                for (index, value) in row.enumerated() {
                    if index > 0 { buffer.append(UInt8(ascii: "\t")) }
                    Self.appendCopyField(value, to: &buffer)
                }
                buffer.append(UInt8(ascii: "\n"))
                if buffer.count >= 60 * 1024 { try putCopyData(&buffer) }
            }
            try putCopyData(&buffer)
            guard PQputCopyEnd(connection, nil) == 1 else {
                throw StoreError(.query, "COPY end failed: \(Self.trimmed(PQerrorMessage(connection)))")
            }
            while let result = PQgetResult(connection) {
                defer { PQclear(result) }
                try check(result, "COPY bulk_\(table)")
            }
            let insert = PQexec(
                connection,
                """
                INSERT INTO \(table) (\(columnList)) SELECT \(columnList) FROM bulk_\(table) \
                ON CONFLICT (\(conflictColumns.joined(separator: ", "))) DO NOTHING
                """
            )
            defer { PQclear(insert) }
            try check(insert, "INSERT INTO \(table) from COPY")
            return Int(String(cString: PQcmdTuples(insert))) ?? 0
        }
    }

    private func putCopyData(_ buffer: inout [UInt8]) throws {
        guard !buffer.isEmpty else { return }
        let status = buffer.withUnsafeBytes { raw in
            PQputCopyData(connection, raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard status == 1 else {
            throw StoreError(.query, "COPY data failed: \(Self.trimmed(PQerrorMessage(connection)))")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// COPY text format: `\N` for NULL; backslash, tab, newline and carriage return escaped.
    private static func appendCopyField(_ value: SQLValue, to buffer: inout [UInt8]) {
        switch value {
        case .null:
            buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
        case .integer(let number):
            buffer.append(contentsOf: String(number).utf8)
        case .text(let text):
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): buffer.append(contentsOf: [92, 92])
                case UInt8(ascii: "\t"): buffer.append(contentsOf: [92, UInt8(ascii: "t")])
                case UInt8(ascii: "\n"): buffer.append(contentsOf: [92, UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): buffer.append(contentsOf: [92, UInt8(ascii: "r")])
                default: buffer.append(byte)
                }
            }
        }
    }

    private func rows(_ result: OpaquePointer?) -> [SQLRow] {
        let count = Int(PQntuples(result))
        let fields = Int(PQnfields(result))
        guard count > 0 else { return [] }
        var rows: [SQLRow] = []
        rows.reserveCapacity(count)
        for row in 0..<count {
            var values: SQLRow = []
            values.reserveCapacity(fields)
            for field in 0..<fields {
                if PQgetisnull(result, Int32(row), Int32(field)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(field))))
                }
            }
            rows.append(values)
        }
        return rows
    }

    private func check(_ result: OpaquePointer?, _ sql: String) throws {
        guard let result else {
            throw StoreError(.connection, "Postgres did not answer: \(Self.trimmed(PQerrorMessage(connection)))")
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_IN:
            return
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? "?"
            let message = Self.trimmed(PQresultErrorMessage(result))
            let code: StoreError.Code = isHealthy ? .query : .connection
            throw StoreError(code, "\(message) [SQLSTATE \(state)] in: \(sql.prefix(120))")
        }
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        message.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown error"
    }
}
