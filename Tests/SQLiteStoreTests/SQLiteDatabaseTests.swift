import Foundation
import SQLTradeStore
import SQLiteStore
import Testing

/// SQLite, the embedded store, through its own session: parameters, bulk inserts, a file that outlives
/// its connection, and errors that say what failed.
@Suite("SQLite database")
struct SQLiteDatabaseTests {
    func file() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tradebus-\(UUID().uuidString).sqlite").path
    }

    @Test("parameters in, text out; NULL is nil; what is written survives closing and reopening the file")
    func roundTrip() async throws {
        let path = file()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let database = SQLiteDatabase(path: path)
        try await database.withSession { session in
            try session.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, price TEXT)")
            try session.query(
                "INSERT INTO t (id, name, price) VALUES ($1, $2, $3)",
                [.integer(1), .text("BTC 'quoted'"), .text("0.1")]
            )
            try session.query("INSERT INTO t (id, name, price) VALUES ($1, $2, $3)", [.integer(2), .null, .text("2")])
        }
        await database.close()
        let reopened = SQLiteDatabase(path: path)
        let rows = try await reopened.withSession { try $0.query("SELECT id, name, price FROM t ORDER BY id", []) }
        #expect(rows == [["1", "BTC 'quoted'", "0.1"], ["2", nil, "2"]])
        await reopened.close()
    }

    @Test("a bulk insert skips the rows that conflict and counts the new ones")
    func bulkInsert() async throws {
        let database = SQLiteDatabase(path: ":memory:")
        let inserted = try await database.withSession { session -> (Int, Int) in
            try session.execute("CREATE TABLE fills (trade_id TEXT PRIMARY KEY, qty TEXT NOT NULL)")
            let first = try session.bulkInsert(
                table: "fills",
                columns: ["trade_id", "qty"],
                rows: [[.text("a"), .text("1")], [.text("b"), .text("2")]],
                conflictColumns: ["trade_id"]
            )
            let second = try session.bulkInsert(
                table: "fills",
                columns: ["trade_id", "qty"],
                rows: [[.text("b"), .text("9")], [.text("c"), .text("3")]],
                conflictColumns: ["trade_id"]
            )
            return (first, second)
        }
        #expect(inserted == (2, 1))
        let rows = try await database.withSession {
            try $0.query("SELECT trade_id, qty FROM fills ORDER BY trade_id", [])
        }
        #expect(rows == [["a", "1"], ["b", "2"], ["c", "3"]], "the conflicting row kept its first value")
        await database.close()
    }

    @Test("bad SQL is an error that quotes SQLite's message")
    func badSQL() async throws {
        let database = SQLiteDatabase(path: ":memory:")
        await #expect { try await database.withSession { try $0.query("SELECT * FROM nowhere", []) } } throws: {
            "\($0)".contains("no such table")
        }
        await database.close()
    }
}
