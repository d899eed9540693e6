import Foundation
import Hummingbird
import Logging
import Mustache
import NIOCore
import ServiceLifecycle
import Synchronization
import TradingCore

/// A request's context: Hummingbird's, with the client's address for the login limiter.
public struct CockpitRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// The operator's cockpit: its pages (see `CockpitPages.swift`) and its JSON API under `/api/v1/`: the
/// account's status, positions, trades (one with its decision, orders and fills), decisions, equity,
/// alerts, and control. Every API route needs a token (`Authorization: Bearer …`): none or a wrong one
/// answers 401, and never shows account data; every page needs a signed-in session, else it redirects
/// to the login. Control needs the operator's token. Failed tokens are limited per client and logged
/// without the token.
public struct CockpitService: Service {
    /// Sends an operator command to the account's executor and returns its reply (the `control.<account>`
    /// path; `status` included).
    public typealias Control = @Sendable (ControlRequest) async throws -> ControlReply

    let host: String
    let port: Int
    let tokens: CockpitTokens
    let store: any TradeStore
    let control: Control
    let logger: Logger
    let onRunning: @Sendable (Int) async -> Void
    let limiter = SharedLimiter()
    let sessions = SharedSessions(CockpitSessions())
    let library: MustacheLibrary
    /// Live events for the open pages.
    public let feed: CockpitFeed
    /// The account whose executor `control` reaches.
    let account: String
    /// Marks the session cookie Secure even without `X-Forwarded-Proto: https` (TLS in front).
    let secureCookies: Bool
    /// The messages waiting in the pipeline's queues, for the overview (the queues that exist).
    let queueDepths: @Sendable () async -> [QueueDepth]
    /// The workers' newest heartbeats, for the overview's health table and the LLM spend.
    let workers: @Sendable () async -> [WorkerHeartbeat]
    /// The followed leaders judged beside our copies of them (none when nobody is followed).
    let leaders: @Sendable () async throws -> [LeaderReport]

    /// One queue and the messages waiting in it.
    public struct QueueDepth: Sendable, Hashable {
        public var name: String
        public var messages: Int
        /// A `QueueDepth` with the fields given.
        public init(name: String, messages: Int) {
            self.name = name
            self.messages = messages
        }
    }

    /// Serves on `host:port` (127.0.0.1 unless told otherwise); `onRunning` receives the bound port.
    /// Throws when the templates are missing from the build.
    public init(
        host: String = "127.0.0.1",
        port: Int,
        tokens: CockpitTokens,
        store: any TradeStore,
        control: @escaping Control,
        account: String = "default",
        feed: CockpitFeed = CockpitFeed(),
        secureCookies: Bool = false,
        queueDepths: @escaping @Sendable () async -> [QueueDepth] = { [] },
        workers: @escaping @Sendable () async -> [WorkerHeartbeat] = { [] },
        leaders: @escaping @Sendable () async throws -> [LeaderReport] = { [] },
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws {
        self.queueDepths = queueDepths
        self.workers = workers
        self.leaders = leaders
        self.library = try Self.templates()
        self.account = account
        self.feed = feed
        self.secureCookies = secureCookies
        self.host = host
        self.port = port
        self.tokens = tokens
        self.store = store
        self.control = control
        self.logger = logger
        self.onRunning = onRunning
    }

    /// Serves until the group shuts down gracefully; open event streams end first.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await application().run()
        } onGracefulShutdown: { [feed] in
            feed.finish()
        }
    }

    func application() -> some Service {
        let router = Router(context: CockpitRequestContext.self)
        let api = router.group("api/v1")
        api.get("openapi.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: CockpitOpenAPI.document))
            )
        }
        api.get("status") { request, context in
            try await authorized(request, context, .viewer) { role in
                let reply = try await control(ControlRequest(command: .status, by: "cockpit:\(role)"))
                return Self.json(reply, status: reply.ok ? .ok : .badGateway)
            }
        }
        api.get("positions") { request, context in
            try await authorized(request, context, .viewer) { _ in Self.json(try await store.openPositions()) }
        }
        api.get("trades") { request, context in
            try await authorized(request, context, .viewer) { _ in
                let query = request.uri.queryParameters
                var since: Date?
                if let text = query["since"] {
                    guard let date = try? Date(String(text), strategy: .iso8601) else {
                        return Self.json(
                            Problem(error: "since: '\(text)' is not an ISO 8601 time"),
                            status: .badRequest
                        )
                    }
                    since = date
                }
                let side = query["side"].map { String($0).uppercased() }
                if let side, PositionSide(rawValue: side) == nil {
                    return Self.json(Problem(error: "side: '\(side)' is not long or short"), status: .badRequest)
                }
                let outcome = query["outcome"].map(String.init)
                if let outcome, outcome != "win", outcome != "loss" {
                    return Self.json(Problem(error: "outcome: '\(outcome)' is not win or loss"), status: .badRequest)
                }
                var trades = try await store.trades(since: since)
                if let symbol = query["symbol"] { trades = trades.filter { $0.symbol == String(symbol) } }
                if let side { trades = trades.filter { $0.side.rawValue == side } }
                if let outcome { trades = trades.filter { outcome == "win" ? $0.pnl > 0 : $0.pnl <= 0 } }
                return Self.json(trades)
            }
        }
        api.get("trades/:id") { request, context in
            try await authorized(request, context, .viewer) { _ in
                let id = try context.parameters.require("id")
                guard let trade = try await store.trade(id: id) else {
                    return Self.json(Problem(error: "no trade \(id)"), status: .notFound)
                }
                return Self.json(try await TradeExplanation.load(trade, from: store))
            }
        }
        api.get("decisions") { request, context in
            try await authorized(request, context, .viewer) { _ in
                let limit = request.uri.queryParameters["limit"].flatMap { Int(String($0)) } ?? 200
                guard (1...5_000).contains(limit) else {
                    return Self.json(Problem(error: "limit: must be 1 to 5000"), status: .badRequest)
                }
                return Self.json(try await store.recentDecisions(limit: limit))
            }
        }
        api.get("alerts") { request, context in
            try await authorized(request, context, .viewer) { _ in
                let limit = request.uri.queryParameters["limit"].flatMap { Int(String($0)) } ?? 200
                guard (1...5_000).contains(limit) else {
                    return Self.json(Problem(error: "limit: must be 1 to 5000"), status: .badRequest)
                }
                return Self.json(try await store.recentAlerts(limit: limit))
            }
        }
        api.get("backtests") { request, context in
            try await authorized(request, context, .viewer) { _ in Self.json(try await store.backtests(limit: 100)) }
        }
        api.get("divergences") { request, context in
            try await authorized(request, context, .viewer) { _ in Self.json(try await store.divergences(limit: 50)) }
        }
        api.get("workers") { request, context in
            try await authorized(request, context, .viewer) { _ in Self.json(await workers()) }
        }
        api.get("leaders") { request, context in
            try await authorized(request, context, .viewer) { _ in
                do { return Self.json(try await leaders()) } catch {
                    return Self.json(Problem(error: "\(error)"), status: .badGateway)
                }
            }
        }
        api.get("equity") { request, context in
            try await authorized(request, context, .viewer) { _ in
                Self.json(try await store.equitySnapshots(since: nil))
            }
        }
        api.post("control/:command") { request, context in
            try await authorized(request, context, .operator) { role in
                let name = try context.parameters.require("command")
                guard let command = ControlRequest.Command(rawValue: name), command != .status else {
                    return Self.json(Problem(error: "unknown command '\(name)'"), status: .notFound)
                }
                let body = try await request.body.collect(upTo: 64 << 10)
                let arguments: ControlArguments
                do {
                    arguments =
                        body.readableBytes == 0
                        ? ControlArguments() : try JSONDecoder().decode(ControlArguments.self, from: body)
                } catch {
                    return Self.json(
                        Problem(error: #"the body must be JSON such as {"argument": "BTCUSDT"}, or empty"#),
                        status: .badRequest
                    )
                }
                let request = ControlRequest(command: command, argument: arguments.argument, by: "cockpit:\(role)")
                do {
                    let reply = try await control(try request.validated())
                    return Self.json(reply, status: reply.ok ? .ok : .conflict)
                } catch let error as ControlError {
                    return Self.json(Problem(error: error.message), status: .badRequest)
                }
            }
        }
        addPages(to: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [onRunning] channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Runs `body` when the request carries a token of at least `role`; else 401 (no token or a wrong
    /// one), 403 (a viewer's token where an operator's is needed) or 429 (too many wrong ones).
    func authorized(
        _ request: Request,
        _ context: CockpitRequestContext,
        _ needed: CockpitRole,
        _ body: (CockpitRole) async throws -> Response
    ) async throws -> Response {
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        let now = Date()
        let verdict = limiter.state.withLock { $0.check(client, now: now) }
        guard verdict.allowed else {
            var response = Self.json(Problem(error: "too many wrong tokens; try again later"), status: .tooManyRequests)
            response.headers[.retryAfter] = String(Int(verdict.retryAfter.rounded(.up)))
            return response
        }
        let header = request.headers[.authorization] ?? ""
        let token = header.hasPrefix("Bearer ") ? String(header.dropFirst("Bearer ".count)) : ""
        guard let role = token.isEmpty ? nil : tokens.role(for: token) else {
            if !token.isEmpty {
                limiter.state.withLock { $0.fail(client, now: now) }
                logger.warning(
                    "cockpit: a wrong token",
                    metadata: ["client": "\(client)", "path": "\(request.uri.path)"]
                )
            }
            var response = Self.json(Problem(error: "a viewer or operator token is needed"), status: .unauthorized)
            response.headers[.wwwAuthenticate] = "Bearer realm=\"tradebus\""
            return response
        }
        guard role >= needed else {
            return Self.json(Problem(error: "this needs the operator's token"), status: .forbidden)
        }
        return try await body(role)
    }

    /// The limiter, shared by every request (a class: `Mutex` cannot be copied with the service).
    final class SharedLimiter: Sendable {
        let state = Mutex(LoginLimiter())
    }

    struct Problem: Codable { var error: String }
    struct ControlArguments: Codable { var argument: String? }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
