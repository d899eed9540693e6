import Foundation
import HTTPSupport
import Logging
import SQLTradeStore
import SQLiteStore
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing
import TradingCore

@testable import Cockpit

/// The cockpit's API over HTTP, on a SQLite trade store with one traded position in it.
@Suite("Cockpit JSON API (HTTP, SQLite store)")
struct CockpitServiceTests {
    static let viewer = "viewer-token-0123456789"
    static let operatorToken = "operator-token-0123456789"
    let t0 = Date(timeIntervalSince1970: 1_763_700_000)

    /// A store with a decision, its entry order and fill, the position and its trade, and equity.
    func seeded() async throws -> any TradeStore { try await SeededTrade.store() }

    /// Runs a cockpit on a free port of 127.0.0.1 and calls `body` with its base URL; control requests
    /// are answered by `control` and collected.
    func withCockpit(
        feed: CockpitFeed = CockpitFeed(),
        leaders: @escaping @Sendable () async throws -> [LeaderReport] = { [] },
        _ body: (String, HTTPCaller, @escaping @Sendable () -> [ControlRequest]) async throws -> Void
    ) async throws {
        let store = try await seeded()
        let sent = Mutex<[ControlRequest]>([])
        let port = AsyncStream.makeStream(of: Int.self)
        let service = try CockpitService(
            port: 0,
            tokens: try CockpitTokens(viewer: Self.viewer, operator: Self.operatorToken),
            store: store,
            control: { request in
                sent.withLock { $0.append(request) }
                return ControlReply(
                    ok: true,
                    message: "\(request.command.rawValue) done",
                    status: request.command == .status ? SeededTrade.status : nil
                )
            },
            feed: feed,
            queueDepths: { [CockpitService.QueueDepth(name: "ai-analyst.signals", messages: 3)] },
            leaders: leaders,
            logger: Logger(label: "cockpit-test"),
            onRunning: { port.continuation.yield($0) }
        )
        let group = ServiceGroup(services: [service], logger: Logger(label: "cockpit-test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ports = port.stream.makeAsyncIterator()
            let bound = try #require(await ports.next())
            try await body("http://127.0.0.1:\(bound)", HTTPCaller(), { sent.withLock { $0 } })
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    func get(_ http: HTTPCaller, _ url: String, token: String?) async throws -> HTTPAnswer {
        try await http.send(
            "GET",
            url,
            headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [],
            timeout: .seconds(10)
        )
    }

    func json(_ answer: HTTPAnswer) throws -> Any { try JSONSerialization.jsonObject(with: Data(answer.body)) }

    @Test("no token, or a wrong one: 401 on every route, with no account data")
    func unauthorized() async throws {
        try await withCockpit { base, http, _ in
            for path in ["status", "positions", "trades", "trades/t1", "equity"] {
                for token in [nil, "wrong-token-0123456789", Self.viewer + "x"] {
                    let answer = try await get(http, "\(base)/api/v1/\(path)", token: token)
                    #expect(answer.status == 401, "\(path) \(token ?? "none")")
                    let text = String(decoding: answer.body, as: UTF8.self)
                    #expect(!text.contains("BTCUSDT") && !text.contains("97010"), "\(text)")
                    #expect(answer.header("www-authenticate")?.hasPrefix("Bearer") == true)
                }
            }
        }
    }

    @Test("a viewer reads trades (filtered), one trade with its decision, orders and fills, and equity")
    func viewerReads() async throws {
        try await withCockpit { base, http, _ in
            let trades = try json(try await get(http, "\(base)/api/v1/trades?symbol=BTCUSDT", token: Self.viewer))
            let rows = try #require(trades as? [[String: Any]])
            #expect(rows.count == 1 && rows[0]["id"] as? String == "t1" && rows[0]["pnl"] as? String == "39.9")
            let none = try json(try await get(http, "\(base)/api/v1/trades?side=short", token: Self.viewer))
            #expect((none as? [Any])?.isEmpty == true)
            let losses = try json(try await get(http, "\(base)/api/v1/trades?outcome=loss", token: Self.viewer))
            #expect((losses as? [Any])?.isEmpty == true)
            for bad in ["since=yesterday", "side=up", "outcome=draw"] {
                let refused = try await get(http, "\(base)/api/v1/trades?\(bad)", token: Self.viewer)
                let problem = try json(refused) as? [String: Any]
                #expect(refused.status == 400 && problem?["error"] != nil, "\(bad)")
            }

            let detail = try #require(
                try json(try await get(http, "\(base)/api/v1/trades/t1", token: Self.viewer)) as? [String: Any]
            )
            let decision = try #require(detail["decision"] as? [String: Any])
            #expect(decision["reasoning"] as? String == "MACD crossed up over rising RSI")
            #expect((detail["orders"] as? [[String: Any]])?.first?["clientOrderID"] as? String == "tb-d1-e")
            #expect((detail["fills"] as? [[String: Any]])?.first?["fee"] as? String == "0.48505")
            #expect(try await get(http, "\(base)/api/v1/trades/nope", token: Self.viewer).status == 404)

            let equity = try #require(
                try json(try await get(http, "\(base)/api/v1/equity", token: Self.viewer)) as? [Any]
            )
            #expect(equity.count == 2)
            let positions = try json(try await get(http, "\(base)/api/v1/positions", token: Self.viewer))
            #expect((positions as? [Any])?.isEmpty == true, "the one position is closed")
        }
    }

    @Test("control: a viewer gets 403 and nothing is sent; an operator's halt reaches the executor, who and what")
    func control() async throws {
        try await withCockpit { base, http, sent in
            let halt = "\(base)/api/v1/control/halt"
            let refused = try await http.post(
                halt,
                headers: [("Authorization", "Bearer \(Self.viewer)")],
                body: [],
                timeout: .seconds(10)
            )
            #expect(refused.status == 403 && sent().isEmpty)
            let done = try await http.post(
                halt,
                headers: [("Authorization", "Bearer \(Self.operatorToken)")],
                body: [],
                timeout: .seconds(10)
            )
            #expect(done.status == 200)
            #expect((try json(done) as? [String: Any])?["message"] as? String == "halt done")
            let flatten = try await http.post(
                "\(base)/api/v1/control/flatten",
                headers: [("Authorization", "Bearer \(Self.operatorToken)"), ("Content-Type", "application/json")],
                body: Array(#"{"argument":"BTCUSDT"}"#.utf8),
                timeout: .seconds(10)
            )
            #expect(flatten.status == 200)
            let unknown = try await http.post(
                "\(base)/api/v1/control/explode",
                headers: [("Authorization", "Bearer \(Self.operatorToken)")],
                body: [],
                timeout: .seconds(10)
            )
            #expect(unknown.status == 404)
            let malformed = try await http.post(
                "\(base)/api/v1/control/flatten",
                headers: [("Authorization", "Bearer \(Self.operatorToken)")],
                body: Array("not json".utf8),
                timeout: .seconds(10)
            )
            #expect(malformed.status == 400)
            #expect(sent().map(\.command) == [.halt, .flatten])
            #expect(sent().last?.argument == "BTCUSDT" && sent().allSatisfy { $0.by == "cockpit:operator" })
            let status = try await get(http, "\(base)/api/v1/status", token: Self.viewer)
            #expect(status.status == 200 && sent().last?.command == .status)
        }
    }

    @Test("the OpenAPI document is served without a token, and describes every route served, each answering")
    func openAPI() async throws {
        try await withCockpit { base, http, _ in
            let answer = try await get(http, "\(base)/api/v1/openapi.json", token: nil)
            #expect(answer.status == 200)
            let document = try #require(try json(answer) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            #expect(
                Set(paths.keys) == [
                    "/api/v1/status", "/api/v1/positions", "/api/v1/trades", "/api/v1/trades/{id}", "/api/v1/equity",
                    "/api/v1/decisions", "/api/v1/alerts", "/api/v1/workers", "/api/v1/backtests",
                    "/api/v1/divergences", "/api/v1/leaders", "/api/v1/control/{command}",
                    "/api/v1/openapi.json",
                ]
            )
            // Each GET it lists is served (a 404 would mean a route it invents).
            for (path, methods) in paths where methods["get"] != nil {
                let concrete = path.replacingOccurrences(of: "{id}", with: "t1")
                #expect(try await get(http, base + concrete, token: Self.viewer).status == 200, "\(path)")
            }
        }
    }

    @Test("wrong tokens from one client: after ten, 429 with Retry-After, even for a right one")
    func limited() async throws {
        try await withCockpit { base, http, _ in
            for _ in 0..<10 {
                #expect(try await get(http, "\(base)/api/v1/trades", token: "wrong-token-0123456789").status == 401)
            }
            let limited = try await get(http, "\(base)/api/v1/trades", token: Self.viewer)
            #expect(limited.status == 429 && Int(limited.header("retry-after") ?? "") ?? 0 > 0)
        }
    }
}
