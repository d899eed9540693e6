import Foundation
import TradingCore

/// A statement parameter. Times and decimals travel as text (see ``SQLText``).
public enum SQLValue: Sendable, Hashable {
    case null
    case text(String)
    case integer(Int64)
}

/// One row, each column as text (nil for NULL): both libpq's text format and sqlite3_column_text.
public typealias SQLRow = [String?]

/// A database session, used synchronously on its connection's own thread.
public protocol SQLSession {
    /// Runs one parameterised statement (`$1`, `$2`, ...) and returns its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow]
    /// Runs statements without parameters (DDL, BEGIN, COMMIT).
    func execute(_ sql: String) throws
    /// Inserts many rows on the fast path (COPY for Postgres, one transaction of prepared inserts for
    /// SQLite), skipping rows that conflict on `conflictColumns`. Returns how many rows were new.
    func bulkInsert(table: String, columns: [String], rows: [[SQLValue]], conflictColumns: [String]) throws -> Int
    /// The statement that opens a write transaction (SQLite takes its write lock up front).
    var beginTransaction: String { get }
}

/// Where the SQL dialects differ.
public struct SQLDialect: Sendable {
    public var name: String
    /// Column types: exact decimals, timestamps with time zone, booleans.
    public var decimalType: String
    public var timeType: String
    public var booleanType: String
    public var floatType: String
    /// Serialises concurrent migrators (a Postgres advisory lock; SQLite's write lock).
    public var beginMigration: String
    public var endMigration: String

    /// A `SQLDialect` with the fields given.
    public init(
        name: String,
        decimalType: String,
        timeType: String,
        booleanType: String,
        floatType: String,
        beginMigration: String,
        endMigration: String
    ) {
        self.name = name
        self.floatType = floatType
        self.decimalType = decimalType
        self.timeType = timeType
        self.booleanType = booleanType
        self.beginMigration = beginMigration
        self.endMigration = endMigration
    }
}

/// A database that runs sessions on its own threads.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` with a session on a connection thread.
    func withSession<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T
    /// Closes every connection.
    func close() async
}

extension SQLSession {
    public var beginTransaction: String { "BEGIN" }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute(beginTransaction)
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// How values are written to and read from text columns, the same for every dialect.
public enum SQLText {
    /// `2026-01-01 00:00:00.123456+00`, which Postgres parses as timestamptz and SQLite sorts as text.
    public static func time(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = Int(micros.floorDiv(1_000_000))
        let fraction = Int(micros - Int64(seconds) * 1_000_000)
        let days = seconds.floorDiv(86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        // Hand-formatted: String(format:) costs microseconds, and bulk writes format every row.
        var bytes = [UInt8]()
        bytes.reserveCapacity(29)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            for _ in 0..<count {
                bytes.append(UInt8(48 + rest / divisor % 10))
                rest %= divisor
                divisor /= 10
                if divisor == 0 { break }
            }
        }
        digits(year, 4)
        bytes.append(45)
        digits(month, 2)
        bytes.append(45)
        digits(day, 2)
        bytes.append(32)
        digits(secondOfDay / 3600, 2)
        bytes.append(58)
        digits(secondOfDay / 60 % 60, 2)
        bytes.append(58)
        digits(secondOfDay % 60, 2)
        bytes.append(46)
        digits(fraction, 6)
        bytes.append(contentsOf: [43, 48, 48])  // +00
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+00]` (UTC), as written by ``time(_:)`` or Postgres.
    public static func date(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = Int(bytes[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var micros = 0
        var index = 19
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 100_000
            while index < bytes.count, let digit = number(index..<(index + 1)) {
                micros += digit * scale
                scale /= 10
                index += 1
            }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    /// A decimal as the exact text the store keeps.
    public static func decimal(_ value: Money) -> String { "\(value)" }

    // Howard Hinnant's civil-date algorithms.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension BinaryInteger {
    fileprivate func floorDiv(_ divisor: Self) -> Self {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}
