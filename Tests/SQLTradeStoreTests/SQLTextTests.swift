import Foundation
import SQLTradeStore
import SQLiteStore
import Testing

@Suite("SQL text encodings")
struct SQLTextTests {
    @Test("times round-trip at microsecond precision, before and after 1970")
    func timeRoundTrip() {
        // The last one is 2000-02-29.
        for seconds in [-86_400.5, 0, 1_763_700_000.123456, 951_782_400.000001] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = SQLText.time(date)
            #expect(abs(SQLText.date(text)!.timeIntervalSince(date)) < 0.000_001, "\(text)")
        }
        #expect(SQLText.time(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29 00:00:00.000000+00")
        #expect(SQLText.date("2026-01-01 00:00:00+00") == Date(timeIntervalSince1970: 1_767_225_600))
        #expect(SQLText.date("2026-01-01 00:00:00.5+00") == Date(timeIntervalSince1970: 1_767_225_600.5))
        #expect(SQLText.date("garbage") == nil)
    }
}

@Suite("SQL sessions")
struct SQLSessionTests {
    @Test("a transaction commits when its body returns and rolls back when it throws")
    func transaction() async throws {
        let database = SQLiteDatabase(path: ":memory:")
        struct Refused: Error {}
        let count = try await database.withSession { session -> String? in
            try session.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            try session.transaction {
                try session.query("INSERT INTO t (id, name) VALUES ($1, $2)", [.integer(1), .text("kept")])
            }
            do {
                try session.transaction {
                    try session.query("INSERT INTO t (id, name) VALUES ($1, $2)", [.integer(2), .text("rolled back")])
                    throw Refused()
                }
            } catch is Refused {}
            return try session.query("SELECT count(*) FROM t", []).first?.first ?? nil
        }
        #expect(count == "1")
        await database.close()
    }
}
