import Foundation
import PostgresStore
import SQLTradeStore
import TestSupport
import Testing
import TradingCore

@Suite("PostgresStore connections")
struct PostgresReconnectTests {
    @Test("a connection killed by the server is replaced on the next call")
    func reconnectsAfterTermination() async throws {
        let database = PostgresDatabase(url: TestServices.databaseURL, connections: 1)
        let store = SQLTradeStore(database: database)
        try await store.migrate()
        let marker = TestServices.uniqueName("app")
        let pid = try await database.withSession { session in
            try session.execute("SET application_name = '\(marker)'")
            return try session.query("SELECT pg_backend_pid()", [])[0][0]!
        }
        // Kill our backend from a second connection.
        let killer = PostgresDatabase(url: TestServices.databaseURL, connections: 1)
        _ = try await killer.withSession { try $0.query("SELECT pg_terminate_backend($1::int)", [.text(pid)]) }
        await killer.close()

        // The next call fails on the dead connection; the one after works on a new one.
        let id = TestServices.uniqueName("m")
        do { _ = try await store.markProcessed(messageID: id, consumer: "t", at: Date()) } catch {}
        let recorded = try await store.markProcessed(messageID: id + "-2", consumer: "t", at: Date())
        #expect(recorded)
        let newPID = try await database.withSession { try $0.query("SELECT pg_backend_pid()", [])[0][0]! }
        #expect(newPID != pid)
        await store.close()
    }

    @Test("an unreachable server gives a connection error that names it")
    func unreachable() async throws {
        let store = SQLTradeStore.postgres(url: "postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
        await #expect { try await store.migrate() } throws: { error in
            let text = "\(error)"
            return text.contains("cannot connect to Postgres") && !text.contains("secret")
        }
        await store.close()
    }
}
