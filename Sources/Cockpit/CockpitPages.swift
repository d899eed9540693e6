import Foundation
import Hummingbird
import Mustache
import NIOCore
import TradingCore

/// The cockpit's pages: server-rendered with Mustache, signed in through a login form (a session
/// cookie, HttpOnly and SameSite=Strict), every form carrying the session's CSRF token, and the overview
/// kept live by server-sent events. Values are escaped by Mustache; the only raw HTML is the inline SVG
/// the cockpit draws itself from numbers.
extension CockpitService {
    /// The templates shipped with the module.
    static func templates() throws -> MustacheLibrary {
        guard let url = Bundle.module.url(forResource: "Templates", withExtension: nil) else {
            throw CockpitConfigurationError(
                key: "Templates",
                message: "the cockpit's templates are missing from this build (TradeBus_Cockpit.resources)"
            )
        }
        var library = MustacheLibrary()
        let files = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".mustache") }
        for file in files {
            let text = try String(contentsOf: url.appendingPathComponent(file), encoding: .utf8)
            try library.register(text, named: String(file.dropLast(".mustache".count)))
        }
        return library
    }

    func addPages(to router: Router<CockpitRequestContext>) {
        router.get("login") { _, _ in
            render("login", ["title": "Sign in", "signedIn": false])
        }
        router.post("login") { request, context in try await login(request, context) }
        router.post("logout") { request, context in
            try await signedIn(request, context) { session, id in
                let form = try await Self.form(ControlForm.self, request)
                guard Self.sameToken(form?.csrf, session.csrf) else { return csrfRefused() }
                sessions.state.withLock { $0.close(id) }
                var response = Self.redirect("/login")
                response.headers[.setCookie] =
                    "\(CockpitSessions.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
                return response
            }
        }
        router.get("/") { request, context in
            try await signedIn(request, context) { session, _ in try await overview(session) }
        }
        router.get("trades") { request, context in
            try await signedIn(request, context) { session, _ in try await tradesPage(request, session) }
        }
        router.get("trades/:id") { request, context in
            try await signedIn(request, context) { session, _ in
                try await tradePage(try context.parameters.require("id"), session)
            }
        }
        // The list pages: one template each, fed the newest rows.
        let lists: [(path: String, title: String, rows: @Sendable () async throws -> [String: Any])] = [
            (
                "decisions", "Decisions",
                {
                    let decisions = try await store.recentDecisions(limit: 200)
                    return ["decisions": decisions.map(DecisionRow.init), "count": decisions.count]
                }
            ),
            ("alerts", "Alerts", { ["alerts": try await store.recentAlerts(limit: 200).map(AlertRow.init)] }),
            (
                "leaders", "Leaders",
                {
                    do {
                        let reports = try await leaders()
                        return ["leaders": reports.map(LeaderRow.init), "hasLeaders": !reports.isEmpty]
                    } catch {
                        return ["problem": "\(error)", "hasLeaders": false]
                    }
                }
            ),
            (
                "backtests", "Backtests",
                {
                    let backtests = try await store.backtests(limit: 100)
                    let divergences = try await store.divergences(limit: 50)
                    return [
                        "backtests": backtests.map(BacktestRow.init), "hasBacktests": !backtests.isEmpty,
                        "divergences": divergences.map(DivergenceRow.init), "hasDivergences": !divergences.isEmpty,
                    ]
                }
            ),
        ]
        for list in lists {
            router.get(RouterPath(list.path)) { request, context in
                try await signedIn(request, context) { session, _ in
                    render(list.path, chrome(list.title, session).merging(try await list.rows()) { $1 })
                }
            }
        }
        router.post("control/:command") { request, context in
            try await signedIn(request, context) { session, _ in
                try await controlPage(request, context, session)
            }
        }
        router.get("events") { request, context in
            try await signedIn(request, context, orBearer: true) { _, _ in events() }
        }
    }

    // MARK: Sign-in

    func login(_ request: Request, _ context: CockpitRequestContext) async throws -> Response {
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        let now = Date()
        let verdict = limiter.state.withLock { $0.check(client, now: now) }
        guard verdict.allowed else {
            var response = render(
                "login",
                ["title": "Sign in", "signedIn": false, "error": "Too many wrong tokens; try again later."],
                status: .tooManyRequests
            )
            response.headers[.retryAfter] = String(Int(verdict.retryAfter.rounded(.up)))
            return response
        }
        let token = try await Self.form(LoginForm.self, request)?.token ?? ""
        guard !token.isEmpty, let role = tokens.role(for: token) else {
            limiter.state.withLock { $0.fail(client, now: now) }
            logger.warning("cockpit: a failed sign-in", metadata: ["client": "\(client)"])
            return render(
                "login",
                ["title": "Sign in", "signedIn": false, "error": "That token is not valid."],
                status: .unauthorized
            )
        }
        let (id, _) = sessions.state.withLock { $0.open(role, now: now) }
        logger.notice("cockpit: signed in", metadata: ["client": "\(client)", "role": "\(role.rawValue)"])
        var response = Self.redirect("/")
        let secure = secureCookies || request.headers[.init("X-Forwarded-Proto")!]?.lowercased() == "https"
        response.headers[.setCookie] = CockpitSessions.setCookie(id, secure: secure, maxAge: 8 * 3600)
        return response
    }

    /// Runs `body` for a signed-in browser; any other goes to the login (a page) or gets 401 (`orBearer`:
    /// a client with a bearer token is let in too).
    func signedIn(
        _ request: Request,
        _ context: CockpitRequestContext,
        orBearer: Bool = false,
        _ body: (CockpitSessions.Session, String) async throws -> Response
    ) async throws -> Response {
        if let id = CockpitSessions.sessionID(cookieHeader: request.headers[.cookie]),
            let session = sessions.state.withLock({ $0.touch(id, now: Date()) })
        {
            return try await body(session, id)
        }
        if orBearer, request.headers[.authorization] != nil {
            return try await authorized(request, context, .viewer) { role in
                try await body(CockpitSessions.Session(role: role, csrf: "", expires: .distantFuture), "")
            }
        }
        return Self.redirect("/login")
    }

    // MARK: Overview

    func overview(_ session: CockpitSessions.Session) async throws -> Response {
        var page = chrome("Overview", session)
        let reply: ControlReply?
        do {
            reply = try await control(ControlRequest(command: .status, by: "cockpit:\(session.role.rawValue)"))
        } catch {
            reply = nil
            page["statusError"] = "The executor did not answer: \(error). Its mode, breakers and positions are unknown."
        }
        let status = reply?.status
        let trades = try await store.trades(since: nil)
        let equity = try await store.equitySnapshots(since: nil)
        let now = status?.time ?? Date()
        let dayStart = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
        let today = trades.filter { $0.exitTime >= dayStart }
        page["account"] = status?.account ?? account
        page["mode"] = status?.mode.rawValue ?? "unknown"
        page["modeLabel"] = status?.mode.rawValue.uppercased() ?? "UNKNOWN"
        page["equity"] = (status?.equity ?? equity.last?.equity).map { Self.usd($0) } ?? "-"
        page["todayPnL"] = Self.usd(today.reduce(Money.zero) { $0 + $1.pnl })
        page["totalPnL"] = Self.usd(trades.reduce(Money.zero) { $0 + $1.pnl })
        page["fees"] = Self.usd(trades.reduce(Money.zero) { $0 + $1.fees })
        page["funding"] = Self.usd(trades.reduce(Money.zero) { $0 + $1.funding })
        page["tradeCount"] = trades.count
        // The models' cost beside the venue's: what the trader keeps is net of all three.
        let spend = try await store.llmSpend(since: nil)
        let net = NetPnL(
            report: PerformanceReport(trades: trades, equity: [], initialCapital: 0, candles: 0, periodsPerYear: 1),
            llmCost: spend.cost,
            decisions: spend.decisions
        )
        page["grossPnL"] = Self.usd(Money(finite: net.grossPnL) ?? .zero)
        page["llmCost"] = String(format: "%.4f", net.llmCost)
        page["netPnL"] = Self.usd(Money(finite: net.netPnL) ?? .zero)
        page["llmPerTrade"] = String(format: "%.4f", net.llmCostPerTrade)
        page["llmPerDecision"] = String(format: "%.5f", net.llmCostPerDecision)
        page["equityChart"] = EquityChart(equity: equity.map(\.equity.doubleValue))?.svg(
            title: "Equity (\(equity.count) readings) and drawdown",
            id: "equity-chart"
        )
        var holds: [String] = []
        if let control = status?.control {
            if let halt = control.operatorHalt {
                holds.append("Halted by \(halt.by) since \(Self.time(halt.since)): \(halt.reason)")
            }
            if let reducing = control.reducing {
                holds.append("REDUCING by \(reducing.by) since \(Self.time(reducing.since)): \(reducing.reason)")
            }
        }
        page["holds"] = holds
        let records = try await store.openPositions()
        let positions = (status?.positions ?? []).map { p in
            PositionRow(
                symbol: p.symbol,
                side: p.side.rawValue,
                quantity: "\(p.quantity)",
                entry: "\(p.entryPrice)",
                price: p.price.map { "\($0)" } ?? "-",
                unrealized: p.unrealizedPnL.map { Self.usd($0) } ?? "-",
                stop: p.stopLoss.map { "\($0)" } ?? "NO STOP",
                target: records.first { $0.symbol == p.symbol }?.takeProfit.map { "\($0)" } ?? "-",
                workingStops: p.workingStops,
                liquidation: p.liquidationPrice.map { "\($0)" } ?? "-",
                distance: p.liquidationDistance.map { Self.percent($0) } ?? "-"
            )
        }
        page["positions"] = positions
        page["hasPositions"] = !positions.isEmpty
        let breakers = status?.control.breakers
        page["breakers"] = TradingHalts.Halt.Kind.allCases.map { kind in
            BreakerRow(
                name: kind.rawValue,
                state: breakers?.tripped.first { $0.kind == kind }.map {
                    "TRIPPED since \(Self.time($0.since)): \($0.reason)"
                } ?? (breakers == nil ? "no equity reading yet" : "ok")
            )
        }
        if let breakers {
            page["breakerFigures"] =
                "Day's realised PnL \(Self.usd(breakers.dayRealised)), losses in a row \(breakers.consecutiveLosses), equity peak \(Self.usd(breakers.peakEquity))."
        }
        if let report = status?.lastReconciliation {
            page["reconciliation"] =
                "\(Self.time(report.time)): "
                + (report.findings.isEmpty ? "the store and the venue agree." : "\(report.findings.count) finding(s).")
            page["findings"] = report.findings + report.unresolved.map { "unresolved: \($0)" }
        } else {
            page["reconciliation"] = "No reconciliation yet."
        }
        let heartbeats = await workers()
        page["workers"] = heartbeats.map { WorkerRow($0, now: Date()) }
        page["hasWorkers"] = !heartbeats.isEmpty
        let spent = heartbeats.filter { !$0.isStale(now: Date()) }
            .compactMap { $0.figures[WorkerHeartbeat.llmSpentToday].flatMap(Double.init) }
        page["llmSpend"] =
            spent.isEmpty
            ? "no analyst reports it" : "\(spent.reduce(0, +).formatted(.number.precision(.fractionLength(2)))) USD"
        let queues = await queueDepths()
        page["queues"] = queues.map { QueueRow(name: $0.name, messages: $0.messages) }
        page["hasQueues"] = !queues.isEmpty
        if let limit = status?.rateLimit {
            page["rateLimit"] =
                "\(limit.venue) request budget: \(limit.used) of \(limit.limit) per \(Int(limit.windowSeconds)) s"
                + (limit.banned ? "; BANNED" : "")
        }
        return render("overview", page)
    }

    // MARK: Trades

    func tradesPage(_ request: Request, _ session: CockpitSessions.Session) async throws -> Response {
        var page = chrome("Trades", session)
        let query = request.uri.queryParameters
        func field(_ name: String) -> String? {
            query[Substring(name)].map { String($0).trimmingCharacters(in: .whitespaces) }.flatMap {
                $0.isEmpty ? nil : $0
            }
        }
        let symbol = field("symbol")?.uppercased()
        let side = field("side")?.lowercased()
        let outcome = field("outcome")?.lowercased()
        let from = field("from")
        let to = field("to")
        page["filter"] =
            [
                "symbol": symbol ?? "", "long": side == "long", "short": side == "short", "win": outcome == "win",
                "loss": outcome == "loss", "from": from ?? "", "to": to ?? "",
            ] as [String: Any]
        func day(_ text: String?) -> Date?? {
            guard let text else { return .some(nil) }
            guard let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) else { return nil }
            return .some(date)
        }
        guard let since = day(from), let until = day(to) else {
            page["error"] = "Dates must be YYYY-MM-DD."
            page["trades"] = [TradeRow]()
            return render("trades", page, status: .badRequest)
        }
        var trades = try await store.trades(since: since)
        if let until { trades = trades.filter { $0.exitTime < until.addingTimeInterval(86_400) } }
        if let symbol { trades = trades.filter { $0.symbol == symbol } }
        if let side { trades = trades.filter { $0.side.rawValue.lowercased() == side } }
        if let outcome { trades = trades.filter { outcome == "win" ? $0.pnl > 0 : $0.pnl <= 0 } }
        let total = trades.reduce(Money.zero) { $0 + $1.pnl }
        page["summary"] =
            "\(trades.count) trade(s), \(trades.filter { $0.pnl > 0 }.count) won, PnL \(Self.usd(total)) after fees and funding."
        page["trades"] = trades.reversed().map(TradeRow.init)
        return render("trades", page)
    }

    func tradePage(_ id: String, _ session: CockpitSessions.Session) async throws -> Response {
        guard let trade = try await store.trade(id: id) else {
            var page = chrome("No such trade", session)
            page["error"] = "There is no trade \(id)."
            page["trades"] = [TradeRow]()
            return render("trades", page, status: .notFound)
        }
        let detail = try await TradeExplanation.load(trade, from: store)
        var page = chrome("Trade \(trade.symbol)", session)
        page["trade"] = TradeRow(trade)
        page["decision"] = detail.decision.map(DecisionView.init)
        let checks = detail.decision?.outcome?.checks ?? []
        page["checks"] = checks
        page["hasChecks"] = !checks.isEmpty
        page["orders"] = detail.orders.map(OrderRow.init)
        page["fills"] = detail.fills.map(FillRow.init)
        page["priceChart"] = try await priceChart(trade)
        return render("trade", page)
    }

    /// The candles around the trade from the market record, at the first interval that has them.
    func priceChart(_ trade: TradeRecord) async throws -> String? {
        guard let market = store as? any MarketRecord else { return nil }
        for interval in ["1m", "5m", "15m", "1h", "4h"] {
            guard let length = CandleInterval.milliseconds(interval) else { continue }
            let from = Int64(trade.entryTime.timeIntervalSince1970 * 1000) - 30 * length
            let through = Int64(trade.exitTime.timeIntervalSince1970 * 1000) + 10 * length
            guard (through - from) / length <= 2_000 else { continue }
            let candles = try await market.candles(
                symbol: trade.symbol,
                interval: interval,
                from: from,
                through: through
            )
            if candles.count >= 5 { return PriceChart.svg(candles: candles, interval: length, trade: trade) }
        }
        return nil
    }

    // MARK: Control

    func controlPage(
        _ request: Request,
        _ context: CockpitRequestContext,
        _ session: CockpitSessions.Session
    ) async throws -> Response {
        let form = try await Self.form(ControlForm.self, request)
        guard Self.sameToken(form?.csrf, session.csrf) else { return csrfRefused() }
        var page = chrome("Control", session)
        guard session.role >= .operator else {
            page["heading"] = "Not allowed"
            page["result"] = "Control needs the operator's token; this session signed in as a viewer."
            page["resultClass"] = "error"
            return render("control", page, status: .forbidden)
        }
        let name = try context.parameters.require("command")
        guard let command = ControlRequest.Command(rawValue: name), command != .status else {
            page["heading"] = "Unknown command"
            page["result"] = "There is no command '\(name)'."
            page["resultClass"] = "error"
            return render("control", page, status: .notFound)
        }
        let argument = form?.argument.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        let request = ControlRequest(command: command, argument: argument, by: "cockpit:operator@\(client)")
        page["command"] = name
        page["argument"] = argument ?? ""
        do {
            _ = try request.validated()
        } catch {
            page["heading"] = "Not sent"
            page["result"] = error.message
            page["resultClass"] = "error"
            return render("control", page, status: .badRequest)
        }
        guard form?.confirm == "yes" else {
            page["heading"] = "Confirm"
            page["confirm"] = true
            page["question"] = "Send '\(name)\(argument.map { " \($0)" } ?? "")' to the executor of account \(account)?"
            return render("control", page)
        }
        page["heading"] = "The executor's answer"
        do {
            let reply = try await control(request)
            page["result"] = (reply.ok ? "Done: " : "Refused: ") + reply.message
            page["resultClass"] = reply.ok ? "ok" : "error"
            feed.publish(
                CockpitEvent(
                    kind: "control",
                    text: "\(name)\(argument.map { " \($0)" } ?? ""): \(reply.message)",
                    time: Date(),
                    refresh: true
                )
            )
            return render("control", page, status: reply.ok ? .ok : .conflict)
        } catch {
            page["result"] = "The executor did not answer: \(error). Check that it runs, then look at its status."
            page["resultClass"] = "error"
            return render("control", page, status: .badGateway)
        }
    }

    func csrfRefused() -> Response {
        render(
            "control",
            [
                "title": "Refused", "signedIn": false, "heading": "Refused",
                "result": "The form's CSRF token is missing or wrong; reload the page and try again.",
                "resultClass": "error",
            ],
            status: .forbidden
        )
    }

    // MARK: Live events

    /// Server-sent events: one `data:` line of JSON per event, a comment every 15 s to keep proxies from
    /// closing the connection; the stream ends after 10 minutes (the browser reconnects) or at shutdown.
    func events() -> Response {
        let (id, stream, own) = feed.subscribe()
        let feed = self.feed
        let body = ResponseBody { writer in
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
            let deadline = ContinuousClock.now + .seconds(600)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    feed.unsubscribe(id)
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(15))
                        own.yield(CockpitEvent(kind: "heartbeat", text: "", time: Date(), refresh: false))
                    }
                }
                do {
                    for await event in stream {
                        if event.kind == "heartbeat" {
                            try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                            continue
                        }
                        let data = String(decoding: try encoder.encode(event), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "data: \(data)\n\n"))
                    }
                } catch {
                    // The browser went away.
                }
                feed.unsubscribe(id)
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: body
        )
    }

    // MARK: Rendering

    func chrome(_ title: String, _ session: CockpitSessions.Session) -> [String: Any] {
        [
            "title": title, "signedIn": true, "role": session.role.rawValue, "csrf": session.csrf,
            "isOperator": session.role >= .operator,
        ]
    }

    func render(_ template: String, _ context: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(context, withTemplate: template) ?? "template \(template) is missing"
        return Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .init("X-Frame-Options")!: "DENY",
                .init("Content-Security-Policy")!:
                    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html))
        )
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func form<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T? {
        let body = try await request.body.collect(upTo: 64 << 10)
        return try? URLEncodedFormDecoder().decode(T.self, from: String(buffer: body))
    }

    static func sameToken(_ given: String?, _ expected: String) -> Bool {
        guard let given, !expected.isEmpty else { return false }
        return CockpitTokens.constantTimeEquals(Array(given.utf8), Array(expected.utf8))
    }

    static func usd(_ value: Money) -> String {
        value.doubleValue.formatted(.number.precision(.fractionLength(2)).grouping(.never))
    }

    static func percent(_ fraction: Money) -> String {
        (fraction.doubleValue * 100).formatted(.number.precision(.fractionLength(1))) + " %"
    }

    static func time(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false))
    }

    struct LoginForm: Decodable { var token: String? }
    struct ControlForm: Decodable {
        var csrf: String?
        var argument: String?
        var confirm: String?
    }

    struct PositionRow {
        var symbol, side, quantity, entry, price, unrealized, stop, target: String
        var workingStops: Int
        var liquidation, distance: String
    }

    struct WorkerRow {
        var worker, instance, state, heard, problems: String
        init(_ beat: WorkerHeartbeat, now: Date) {
            worker = beat.worker
            instance = beat.instance
            state = beat.isStale(now: now) ? "GONE" : beat.state.uppercased()
            heard = "\(Int(now.timeIntervalSince(beat.time).rounded())) s ago"
            problems = beat.dependencies.filter { $0.value != "up" }.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value)" }.joined(separator: "; ")
        }
    }

    struct BacktestRow {
        var id, time, market, source, trades, winRate, pnl, pnlClass, returnPercent, drawdown, sharpe: String
        var chart: String?
        init(_ b: BacktestRecord) {
            let r = b.report
            id = b.id
            time = CockpitService.time(b.time)
            market = "\(b.symbol) \(b.interval), \(r.candles) candles"
            source = b.source
            trades = "\(r.trades)"
            winRate = String(format: "%.1f %%", r.winRate * 100)
            pnl = String(format: "%.2f", r.totalPnL)
            pnlClass = r.totalPnL > 0 ? "win" : "loss"
            returnPercent = String(format: "%.2f %%", r.returnPercent)
            drawdown = String(format: "%.2f %%", r.maxDrawdownPercent)
            sharpe = String(format: "%.2f", r.sharpe)
            chart = EquityChart(equity: b.equity)?.svg(title: "\(b.symbol) \(b.interval) equity and drawdown")
        }
    }

    struct DivergenceRow {
        var id, time, market, trades, pnlDifference, causes, report: String
        init(_ d: DivergenceRecord) {
            id = d.id
            time = CockpitService.time(d.time)
            market = "\(d.symbol) \(d.interval)"
            trades =
                "run \(d.runTrades), backtest \(d.backtestTrades): \(d.identical) identical, \(d.differing) differing"
            pnlDifference = CockpitService.usd(d.pnlDifference)
            causes = d.byCause.sorted { $0.key < $1.key }.map { "\($0.key) \(CockpitService.usd($0.value))" }
                .joined(separator: ", ")
            report = d.report
        }
    }

    struct QueueRow {
        var name: String
        var messages: Int
    }

    struct BreakerRow {
        var name, state: String
    }

    struct TradeRow {
        var id, symbol, side, entry, exit, quantity, pnl, pnlClass, fees, funding, exitReason, entryTime,
            exitTime: String
        init(_ t: TradeRecord) {
            id = t.id
            symbol = t.symbol
            side = t.side.rawValue
            entry = "\(t.entryPrice)"
            exit = "\(t.exitPrice)"
            quantity = "\(t.quantity)"
            pnl = CockpitService.usd(t.pnl)
            pnlClass = t.pnl > 0 ? "win" : "loss"
            fees = CockpitService.usd(t.fees)
            funding = CockpitService.usd(t.funding)
            exitReason = t.exitReason
            entryTime = CockpitService.time(t.entryTime)
            exitTime = CockpitService.time(t.exitTime)
        }
    }

    struct DecisionView {
        var provider, model, promptVersion, action, confidence, entry, stop, target, candleTime, reasoning: String
        var leverage: Int
        var prompt, reply: String?
        init(_ d: DecisionRecord) {
            provider = d.provider
            model = d.model
            promptVersion = d.promptVersion
            action = d.action.rawValue
            confidence = String(format: "%.2f", d.confidence)
            entry = d.entry.map { "\($0)" } ?? "-"
            stop = d.stopLoss.map { "\($0)" } ?? "-"
            target = d.takeProfit.map { "\($0)" } ?? "-"
            candleTime = CockpitService.time(d.candleTime)
            reasoning = d.reasoning
            leverage = d.leverage
            prompt = d.prompt
            reply = d.reply
        }
    }

    struct DecisionRow {
        var time, symbol, action, confidence, analyst, status, why: String
        init(_ d: DecisionRecord) {
            time = CockpitService.time(d.createdAt)
            symbol = d.symbol
            action = d.action.rawValue
            confidence = String(format: "%.2f", d.confidence)
            analyst = "\(d.provider) \(d.model)"
            status = d.outcome?.status.rawValue ?? "pending"
            switch d.outcome?.status {
            case .refused?: why = "\(d.outcome?.code ?? ""): \(d.outcome?.reason ?? "")"
            case .ordered?: why = "passed \(d.outcome?.checks.count ?? 0) risk checks"
            case .closing?: why = d.outcome?.reason ?? ""
            case .hold?: why = d.reasoning
            case nil: why = "not yet seen by the executor"
            }
        }
    }

    struct OrderRow {
        var clientOrderID, purpose, side, type, quantity, price, stop, status, created: String
        init(_ o: OrderRecord) {
            clientOrderID = o.clientOrderID
            purpose = o.purpose.rawValue
            side = o.side.rawValue
            type = o.type.rawValue
            quantity = "\(o.quantity)"
            price = o.price.map { "\($0)" } ?? "-"
            stop = o.stopPrice.map { "\($0)" } ?? "-"
            status = o.status.rawValue
            created = CockpitService.time(o.createdAt)
        }
    }

    struct FillRow {
        var time, clientOrderID, side, quantity, price, fee: String
        init(_ f: FillRecord) {
            time = CockpitService.time(f.time)
            clientOrderID = f.clientOrderID
            side = f.side.rawValue
            quantity = "\(f.quantity)"
            price = "\(f.price)"
            fee = "\(f.fee) \(f.feeAsset)"
        }
    }

    struct AlertRow {
        var time, severity, kind, title, message: String
        init(_ a: AlertRecord) {
            time = CockpitService.time(a.time)
            severity = a.alert.severity.rawValue
            kind = a.alert.kind
            title = a.alert.title
            message = a.alert.message
        }
    }

    /// One leader: theirs, theirs while followed, and ours, side by side.
    struct LeaderRow {
        struct Side {
            var name, trades, winRate, pnl, pnlClass, returnPercent, drawdown: String
            init(_ name: String, _ side: LeaderReport.Side) {
                self.name = name
                trades = "\(side.trades)"
                winRate = side.trades == 0 ? "–" : String(format: "%.0f %%", side.winRate * 100)
                pnl = String(format: "%.2f", side.pnl)
                pnlClass = side.pnl > 0 ? "win" : side.pnl < 0 ? "loss" : ""
                returnPercent = String(format: "%.2f %%", side.returnPercent)
                drawdown = String(format: "%.2f %%", side.maxDrawdownPercent)
            }
        }
        var leader, weight, equity, followedSince: String
        var sides: [Side]
        init(_ report: LeaderReport) {
            leader = report.leader
            weight = "\(report.weight)"
            equity = report.equity.map { String(format: "%.2f", $0) } ?? "unknown"
            followedSince = report.followedSince.map(CockpitService.time) ?? "not copied yet"
            sides = [
                Side("Theirs", report.theirs), Side("Theirs while followed", report.theirsWhileFollowed),
                Side("Ours, copied", report.ours),
            ]
        }
    }
}
