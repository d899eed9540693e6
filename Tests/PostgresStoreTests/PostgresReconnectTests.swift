import Foundation
import PostgresStore
import SQLTradeStore
import TestSupport
import Testing
import TradingCore

#if canImport(Glibc)
import Glibc
#endif

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

    @Test(
        "a statement that runs past DATABASE_STATEMENT_TIMEOUT_MS is cancelled by the server with an error, and the connection goes on"
    )
    func statementTimeout() async throws {
        let database = PostgresDatabase(
            url: TestServices.databaseURL,
            connections: 1,
            statementTimeout: .milliseconds(300)
        )
        // Without the timeout it would sleep its 30 s and succeed.
        await #expect { try await database.withSession { try $0.query("SELECT pg_sleep(30)", []) } } throws: {
            "\($0)".contains("statement timeout")
        }
        let answer = try await database.withSession { try $0.query("SHOW statement_timeout", [])[0][0] }
        #expect(answer == "300ms")
        await database.close()
    }

    @Test(
        "a server that accepts the connection and never answers: the connection attempt gives up after DATABASE_CONNECT_TIMEOUT_SECONDS"
    )
    func connectTimeout() async throws {
        // A listening socket that never speaks: libpq waits for the server's first message.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        #expect(bound == 0 && listen(listener, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        let store = SQLTradeStore.postgres(
            url: "postgres://nobody:secret@127.0.0.1:\(port)/none",
            connectTimeout: .seconds(2)
        )
        let clock = ContinuousClock()
        let started = clock.now
        await #expect { try await store.migrate() } throws: { error in
            // libpq's own words for its connect_timeout, so the give-up is the timeout's.
            "\(error)".contains("timeout")
        }
        // 2 s alone; the bound is loose because a CI machine's two cores are shared by every test at
        // once (10.1 s there once, 30.3 s another time). Without the timeout libpq waits for ever.
        #expect(clock.now - started < .seconds(120), "gave up after \(clock.now - started)")
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
