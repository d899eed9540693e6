import AsyncHTTPClient
import Foundation
import HTTPSupport
import NIOCore
import Testing
import TradingCore

@testable import Cockpit

/// The cockpit's pages over HTTP: the login form and its cookie, pages behind it, CSRF on every form,
/// control only for the operator and only once confirmed, and live events.
@Suite("Cockpit pages (HTTP, SQLite store)")
struct CockpitPagesTests {
    let api = CockpitServiceTests()

    /// A client that does not follow redirects, so that each 303 is seen.
    func withBrowser(_ body: (HTTPCaller) async throws -> Void) async throws {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .disallow)
        )
        do { try await body(HTTPCaller(http: client)) } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    /// Signs in with `token` and returns the session cookie and the page's CSRF token.
    func signIn(_ http: HTTPCaller, _ base: String, token: String) async throws -> (cookie: String, csrf: String) {
        let answer = try await form(http, "\(base)/login", ["token": token], cookie: nil)
        #expect(answer.status == 303 && answer.header("location") == "/")
        let setCookie = try #require(answer.header("set-cookie"))
        let cookie = String(try #require(setCookie.split(separator: ";").first))
        let overview = try await page(http, "\(base)/", cookie: cookie)
        let csrf = try #require(overview.text.firstMatch(of: /name="csrf" value="([0-9a-f]{64})"/)?.1)
        return (cookie, String(csrf))
    }

    func form(_ http: HTTPCaller, _ url: String, _ fields: [String: String], cookie: String?) async throws -> HTTPAnswer
    {
        let body = fields.map { key, value in
            "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }.joined(separator: "&")
        var headers = [("Content-Type", "application/x-www-form-urlencoded")]
        if let cookie { headers.append(("Cookie", cookie)) }
        return try await http.send("POST", url, headers: headers, body: Array(body.utf8), timeout: .seconds(10))
    }

    func page(_ http: HTTPCaller, _ url: String, cookie: String?) async throws -> HTTPAnswer {
        try await http.send("GET", url, headers: cookie.map { [("Cookie", $0)] } ?? [], timeout: .seconds(10))
    }

    @Test("without a session every page redirects to the login and shows nothing of the account")
    func signedOut() async throws {
        try await api.withCockpit { base, _, _ in
            try await withBrowser { http in
                for path in [
                    "/", "/trades", "/trades/t1", "/decisions", "/alerts", "/backtests", "/leaders", "/events",
                ] {
                    let answer = try await page(http, base + path, cookie: nil)
                    #expect(answer.status == 303 && answer.header("location") == "/login", "\(path)")
                    #expect(!answer.text.contains("BTCUSDT"))
                }
                let forged = try await page(
                    http,
                    "\(base)/",
                    cookie: "tradebus_session=\(String(repeating: "ab", count: 32))"
                )
                #expect(forged.status == 303)
                let control = try await form(http, "\(base)/control/halt", ["confirm": "yes"], cookie: nil)
                #expect(control.status == 303)
                let login = try await page(http, "\(base)/login", cookie: nil)
                #expect(login.status == 200 && login.text.contains("name=\"token\""))
            }
        }
    }

    @Test("a wrong token is refused with no cookie; a right one opens an HttpOnly, SameSite=Strict session")
    func login() async throws {
        try await api.withCockpit { base, _, _ in
            try await withBrowser { http in
                let wrong = try await form(http, "\(base)/login", ["token": "not-the-token-0123456789"], cookie: nil)
                #expect(wrong.status == 401 && wrong.header("set-cookie") == nil && wrong.text.contains("not valid"))
                #expect(!wrong.text.contains("not-the-token"))
                let right = try await form(http, "\(base)/login", ["token": CockpitServiceTests.viewer], cookie: nil)
                let cookie = try #require(right.header("set-cookie"))
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"))
                // Behind TLS (a proxy that says so), the cookie is Secure too.
                let body = Array("token=\(CockpitServiceTests.viewer)".utf8)
                let tls = try await http.send(
                    "POST",
                    "\(base)/login",
                    headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Forwarded-Proto", "https")],
                    body: body,
                    timeout: .seconds(10)
                )
                #expect(tls.header("set-cookie")?.contains("; Secure") == true)
            }
        }
    }

    @Test(
        "signed in, the pages show the account: overview with its chart, trades, one trade explained, decisions, alerts escaped"
    )
    func pages() async throws {
        try await api.withCockpit { base, _, _ in
            try await withBrowser { http in
                let (cookie, _) = try await signIn(http, base, token: CockpitServiceTests.viewer)
                let overview = try await page(http, "\(base)/", cookie: cookie)
                #expect(overview.status == 200)
                #expect(overview.text.contains("id=\"equity-chart\"") && overview.text.contains("data-points=\"2\""))
                #expect(overview.text.contains("39.90"), "the total PnL")
                #expect(
                    overview.text.contains("id=\"llm-cost\"") && overview.text.contains(">0.2500</div>")
                        && overview.text.contains("id=\"net-pnl\">39.65</div>"),
                    "the LLM cost and the PnL net of it"
                )
                for cell in ["ETHUSDT", "2950", "75.00", "3090", "32.6 %"] {
                    #expect(
                        overview.text.contains("<td class=\"num\">\(cell)</td>")
                            || overview.text.contains("<td>\(cell)</td>"),
                        "\(cell)"
                    )
                }
                #expect(overview.text.contains("<td>ai-analyst.signals</td><td class=\"num\">3</td>"), "queue depths")
                // A viewer sees no control forms.
                #expect(!overview.text.contains("action=\"/control/halt\""))
                let trades = try await page(http, "\(base)/trades?symbol=btcusdt&outcome=win", cookie: cookie)
                #expect(trades.status == 200 && trades.text.contains("href=\"/trades/t1\""))
                let none = try await page(http, "\(base)/trades?outcome=loss", cookie: cookie)
                #expect(!none.text.contains("href=\"/trades/t1\""))
                let badDate = try await page(http, "\(base)/trades?from=yesterday", cookie: cookie)
                #expect(badDate.status == 400 && badDate.text.contains("YYYY-MM-DD"))
                let trade = try await page(http, "\(base)/trades/t1", cookie: cookie)
                #expect(trade.status == 200)
                for part in ["MACD crossed up over rising RSI", "stop_distance", "2.06 %", "tb-d1-e", "take_profit"] {
                    #expect(trade.text.contains(part), "\(part)")
                }
                #expect(try await page(http, "\(base)/trades/nope", cookie: cookie).status == 404)
                let decisions = try await page(http, "\(base)/decisions", cookie: cookie)
                #expect(decisions.text.contains("outcome-ordered") && decisions.text.contains("passed 1 risk checks"))
                let backtests = try await page(http, "\(base)/backtests", cookie: cookie)
                #expect(
                    backtests.text.contains("BTCUSDT 1h, 3 candles") && backtests.text.contains("data-points=\"3\"")
                )
                let alerts = try await page(http, "\(base)/alerts", cookie: cookie)
                #expect(alerts.text.contains("&lt;script&gt;") && !alerts.text.contains("<script>alert(1)"))
            }
        }
    }

    @Test(
        "control: a viewer is refused, a form without the CSRF token is refused, and the operator's goes once confirmed"
    )
    func control() async throws {
        try await api.withCockpit { base, _, all in
            // Loading the overview asks for the status; only commands count here.
            let sent = { all().filter { $0.command != .status } }
            try await withBrowser { http in
                let viewer = try await signIn(http, base, token: CockpitServiceTests.viewer)
                let refused = try await form(
                    http,
                    "\(base)/control/halt",
                    ["csrf": viewer.csrf, "confirm": "yes"],
                    cookie: viewer.cookie
                )
                #expect(refused.status == 403 && refused.text.contains("operator"))
                let operatorSession = try await signIn(http, base, token: CockpitServiceTests.operatorToken)
                let noToken = try await form(
                    http,
                    "\(base)/control/halt",
                    ["confirm": "yes"],
                    cookie: operatorSession.cookie
                )
                #expect(noToken.status == 403 && noToken.text.contains("CSRF"))
                // Another session's token is no good either.
                let crossed = try await form(
                    http,
                    "\(base)/control/halt",
                    ["csrf": viewer.csrf, "confirm": "yes"],
                    cookie: operatorSession.cookie
                )
                #expect(crossed.status == 403)
                #expect(sent().isEmpty)
                let asked = try await form(
                    http,
                    "\(base)/control/flatten",
                    ["csrf": operatorSession.csrf, "argument": "BTCUSDT"],
                    cookie: operatorSession.cookie
                )
                #expect(asked.status == 200 && asked.text.contains("id=\"confirm\"") && sent().isEmpty)
                let done = try await form(
                    http,
                    "\(base)/control/flatten",
                    ["csrf": operatorSession.csrf, "argument": "BTCUSDT", "confirm": "yes"],
                    cookie: operatorSession.cookie
                )
                #expect(done.status == 200 && done.text.contains("Done: flatten done"))
                let request = try #require(sent().first)
                #expect(sent().count == 1 && request.command == .flatten && request.argument == "BTCUSDT")
                #expect(request.by.hasPrefix("cockpit:operator@"))
                let unknown = try await form(
                    http,
                    "\(base)/control/explode",
                    ["csrf": operatorSession.csrf, "confirm": "yes"],
                    cookie: operatorSession.cookie
                )
                #expect(unknown.status == 404 && sent().count == 1)
                // Signing out ends the session.
                let out = try await form(
                    http,
                    "\(base)/logout",
                    ["csrf": operatorSession.csrf],
                    cookie: operatorSession.cookie
                )
                #expect(out.status == 303)
                #expect(try await page(http, "\(base)/", cookie: operatorSession.cookie).status == 303)
            }
        }
    }

    @Test(
        "the leader page shows each leader's trades, win rate, PnL and drawdown beside ours, from the same reports as /api/v1/leaders; a leader that cannot be read is said, not hidden"
    )
    func leaders() async throws {
        let address = "0xabcdef0123456789abcdef0123456789abcdef01"
        // Long 1 at 100, out at 110 (closedPnl 10); long 1 at 110, out at 104 (−6).
        let fills = [(1, 100, true, 0, nil), (2, 110, false, 1, 10), (3, 110, true, 0, nil), (4, 104, false, 1, -6)].map
        {
            LeaderFill(
                coin: "BTC",
                price: Money($0.1),
                size: 1,
                isBuy: $0.2,
                startPosition: Money($0.3),
                time: Int64($0.0) * 60_000,
                tid: Int64($0.0),
                closedPnl: $0.4.map { Money($0) }
            )
        }
        let report = LeaderReport(
            leader: Leader(address: address, weight: 0.5),
            fills: fills,
            equity: 1_004,
            ourTrades: [],
            ourCapital: 10_000
        )
        let readable: @Sendable () async throws -> [LeaderReport] = { [report] }
        try await api.withCockpit(leaders: readable) { base, http, _ in
            try await withBrowser { browser in
                let session = try await signIn(browser, base, token: CockpitServiceTests.viewer)
                let page = try await page(browser, "\(base)/leaders", cookie: session.cookie)
                #expect(page.status == 200 && page.text.contains(address) && page.text.contains("weight 0.5"))
                #expect(page.text.contains("<td>Theirs</td><td class=\"num\">2</td><td class=\"num\">50 %</td>"))
                #expect(page.text.contains("<td>Ours, copied</td><td class=\"num\">0</td>"))
                #expect(page.text.contains("not copied yet"))
            }
            let answer = try await api.get(http, "\(base)/api/v1/leaders", token: CockpitServiceTests.viewer)
            let rows = try api.json(answer) as? [[String: Any]]
            #expect(answer.status == 200 && rows?.first?["leader"] as? String == address)
            #expect((rows?.first?["theirs"] as? [String: Any])?["pnl"] as? Double == 4)
        }
        let unreadable: @Sendable () async throws -> [LeaderReport] = {
            throw CopyError("the leader \(address) could not be read: HTTP 429")
        }
        try await api.withCockpit(leaders: unreadable) { base, http, _ in
            try await withBrowser { browser in
                let session = try await signIn(browser, base, token: CockpitServiceTests.viewer)
                let page = try await page(browser, "\(base)/leaders", cookie: session.cookie)
                #expect(page.status == 200 && page.text.contains("could not be read: HTTP 429"))
            }
            let answer = try await api.get(http, "\(base)/api/v1/leaders", token: CockpitServiceTests.viewer)
            #expect(answer.status == 502)
        }
    }

    @Test("live events reach a signed-in page as server-sent events")
    func liveEvents() async throws {
        let feed = CockpitFeed()
        try await api.withCockpit(feed: feed) { base, _, _ in
            try await withBrowser { http in
                let (cookie, _) = try await signIn(http, base, token: CockpitServiceTests.viewer)
                var request = HTTPClientRequest(url: "\(base)/events")
                request.headers.add(name: "Cookie", value: cookie)
                let response = try await http.http.execute(request, timeout: .seconds(10))
                #expect(
                    response.status.code == 200 && response.headers.first(name: "content-type") == "text/event-stream"
                )
                var received = ""
                for try await chunk in response.body {
                    received += String(buffer: chunk)
                    if received.contains(": connected") && !received.contains("data:") {
                        feed.publish(
                            CockpitEvent(kind: "trade_closed", text: "BTCUSDT +39.90", time: Date(), refresh: true)
                        )
                    }
                    if received.contains("\n\n"), received.contains("data:") { break }
                }
                let line = try #require(received.split(separator: "\n").first { $0.hasPrefix("data: ") })
                let event = try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
                #expect(event?["kind"] as? String == "trade_closed" && event?["refresh"] as? Bool == true)
            }
        }
    }
}
