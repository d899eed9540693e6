import AsyncHTTPClient
import Foundation
import HTTPSupport
import Logging
import TradingCore

/// Bybit v5 linear (USDT perpetuals) over signed REST: one-way mode, isolated margin and leverage per
/// symbol, market entries and exits by `orderLinkId`, stops placed by the execution kernel as
/// reduce-only conditional market orders (``placeStop(symbol:_:)``), the target as the position's own
/// take-profit (`/v5/position/trading-stop`, whole position, mark price), and fills by polling
/// `/v5/execution/list`.
///
/// Why conditional orders and not the position's trading-stop for the stop: a trading-stop is one
/// stop for the whole position that a new one replaces, so it cannot be sized to a partial fill nor
/// replaced make-before-break; a conditional order has its own size and id, and a second one can be
/// working before the first is cancelled. A conditional order whose trigger the mark price has already
/// passed is refused with 110092 (expected to rise) or 110093 (expected to fall): `wouldTrigger`.
///
/// - Every private call carries the `X-BAPI-*` headers (`RequestSigning.bybitHeaders`: the HMAC of
///   timestamp, key, window and the query string of a GET or the JSON body of a POST), with a
///   timestamp corrected by the server's clock; a 10002 ("outside recv_window") re-syncs the clock from
///   `GET /v5/market/time` and tries once more.
/// - Bybit answers HTTP 200 with a `retCode`. An order whose answer is lost (timeout, HTTP 5xx, 10000
///   or 10016 server error) is `VenueError.outcomeUnknown`: the caller queries it by client id
///   (`orderLinkId`), never sends it again blindly. Sent again anyway, Bybit refuses the duplicate
///   `orderLinkId` (110072) and ``submit(_:)`` returns the order that exists.
/// - Bybit's create answer carries only the ids: ``submit(_:)`` returns the order `accepted`; its fills
///   come by polling (``events()``), its status from ``order(clientOrderID:symbol:)``.
/// - Execution ids are not ordered, so each symbol's cursor is a time, read again with some overlap for
///   executions listed late, and the ids already reported (``ExecutionCursor``).
/// - Fills build each symbol's position (``PositionBook``); the fill that brings it back to flat is a
///   ``VenueClose`` whose reason comes from the execution: its `stopOrderType` (the stop, the target,
///   a trailing stop), `BustTrade` for a liquidation, otherwise an exit.
/// - After a restart, ``resume(_:)`` seeds the positions and the fill cursors from the store.
/// - Every request goes through the account's ``RateGovernor`` (600 per 5 s per IP, orders before
///   polling): 10006 / 10018 (too many visits) stop requests until `X-Bapi-Limit-Reset-Timestamp`, an
///   HTTP 403 (the IP ban) for ten minutes; those answers are `unreachable`, with Bybit's headers.
public actor BybitLinearVenue: Venue {
    public nonisolated let name = "bybit"
    public nonisolated let isLive = true
    public static let mainnet = "https://api.bybit.com"
    public static let testnet = "https://api-testnet.bybit.com"

    let baseURL: String
    let apiKey: String
    let secret: String
    let recvWindow: Int
    let caller: HTTPCaller
    let timeout: Duration
    let logger: Logger
    let clock: @Sendable () -> Date
    var clockOffset: Int64 = 0
    var filterCache: [String: ExchangeFilters] = [:]
    var tradedSymbols: Set<String> = []
    var cursors: [String: ExecutionCursor] = [:]
    var pending: [VenueEvent] = []
    /// Symbols set to one-way mode and isolated margin.
    var prepared: Set<String> = []
    /// Each symbol's position as the fills build it.
    var book = PositionBook()
    /// The request budget (Bybit's IP limit, with its headers and bans).
    var governor: RateGovernor
    /// The private stream (`wss://stream.bybit.com/v5/private`; nil: REST polling only) and where it
    /// stands: see UserStreams.swift.
    let streamURL: String?
    var stream = UserStreamState<Execution>()
    /// Every symbol's working conditional orders, as last read at once (`order/realtime` with
    /// `settleCoin`, at most every ten seconds), kept up to date as we place and cancel them and as
    /// the stream's `order` topic says.
    var stops: (at: Date, rows: [StopRow])?
    static let stopsMaxAge: TimeInterval = 10
    /// Each symbol's risk limits as margin tiers, read at most once a day.
    var riskLimits: [String: (at: Date, tiers: MarginTiers)] = [:]
    /// Every symbol's position, as last read at once.
    var held: (at: Date, rows: [VenuePosition])?
    static let positionsMaxAge: TimeInterval = 1
    /// Our orders whose fills have not all come yet, by `orderLinkId`: REST reads them if the stream is late.
    var awaiting: [String: (symbol: String, quantity: Money, since: Date)] = [:]

    /// Bybit v5 linear perpetuals for one account, signed with its API key and secret.
    public init(
        baseURL: String = BybitLinearVenue.mainnet,
        apiKey: String,
        secret: String,
        recvWindow: Int = 5_000,
        http: HTTPClient = .shared,
        timeout: Duration = .seconds(10),
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() },
        rateLimitShare: Double = 0.8,
        streamURL: String? = nil
    ) {
        self.streamURL = streamURL
        // Bybit's IP limit: 600 requests in any 5 s; we spend `rateLimitShare` of it, polling half of that.
        self.governor = RateGovernor(
            venue: "bybit",
            budget: RequestBudget(limit: Int(600 * rateLimitShare), window: 5, pollShare: 0.5)
        )
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.secret = secret
        self.recvWindow = recvWindow
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
        self.logger = logger
        self.clock = clock
    }

    // MARK: Calls

    struct Status: Decodable {
        var retCode: Int
        var retMsg: String
    }
    struct Envelope<Payload: Decodable>: Decodable { var result: Payload }

    /// Our clock, corrected by the server's, in milliseconds.
    var now: Int64 { Int64(clock().timeIntervalSince1970 * 1000) + clockOffset }

    /// A call to Bybit, signed unless `signed` is false. Returns the answer when its retCode is 0 or
    /// one of `accepting`. `unknownOnFailure`: a lost answer means the effect is unknown (orders).
    func call(
        _ method: String,
        _ path: String,
        query: [(String, String)] = [],
        body: [String: any Sendable]? = nil,
        signed: Bool = true,
        accepting: Set<Int> = [],
        unknownOnFailure: Bool = false
    ) async throws(VenueError) -> (retCode: Int, body: [UInt8]) {
        let lost: VenueError.Code = unknownOnFailure ? .outcomeUnknown : .unreachable
        let queryString = RequestSigning.queryString(query)
        var json = ""
        if let body {
            guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else {
                throw VenueError(.rejected, "Bybit \(path): the request body is not JSON")
            }
            json = String(decoding: data, as: UTF8.self)
        }
        for attempt in 0..<2 {
            var headers: [(String, String)] = []
            if signed {
                headers = RequestSigning.bybitHeaders(
                    timestamp: now,
                    apiKey: apiKey,
                    recvWindow: recvWindow,
                    payload: method == "GET" ? queryString : json,
                    secret: secret
                )
            }
            if body != nil { headers.append(("Content-Type", "application/json")) }
            // Protection goes before polling for fills: orders, cancels, and the order and position reads
            // that the kernel's stop checks and reconciliation rest on.
            let priority: RequestBudget.Priority =
                method != "GET" || ["/v5/order/realtime", "/v5/position/list", "/v5/market/risk-limit"].contains(path)
                ? .order : .poll
            try governor.admit(weight: 1, priority: priority, what: "Bybit \(method) \(path)", now: clock())
            let answer: HTTPAnswer
            do {
                answer = try await caller.send(
                    method,
                    baseURL + path + (query.isEmpty ? "" : "?" + queryString),
                    headers: headers,
                    body: Array(json.utf8),
                    timeout: timeout
                )
            } catch {
                throw VenueError(lost, "Bybit \(method) \(path): \(error)")
            }
            governor.observeBybit(
                answer,
                retCode: (try? JSONDecoder().decode(Status.self, from: Data(answer.body)))?.retCode,
                now: clock()
            )
            if answer.status == 403 || answer.status == 429 {
                throw VenueError(
                    .unreachable,
                    "Bybit rate limit (HTTP \(answer.status), the IP limit)\(Self.limits(answer))"
                )
            }
            if answer.status >= 500 {
                throw VenueError(
                    lost,
                    "Bybit \(method) \(path) answered HTTP \(answer.status): \(answer.text.prefix(200))"
                )
            }
            guard let status = try? JSONDecoder().decode(Status.self, from: Data(answer.body)) else {
                guard (200..<300).contains(answer.status) else {
                    throw VenueError(
                        .rejected,
                        "Bybit \(method) \(path) answered HTTP \(answer.status): \(answer.text.prefix(200))"
                    )
                }
                throw VenueError(
                    lost,
                    "Bybit \(method) \(path) answered something other than its envelope: \(answer.text.prefix(200))"
                )
            }
            if status.retCode == 0 || accepting.contains(status.retCode) { return (status.retCode, answer.body) }
            switch status.retCode {
            case 10002 where signed:
                guard attempt == 0 else {
                    throw VenueError(.clockSkew, "Bybit 10002 after a clock re-sync: \(status.retMsg)")
                }
                logger.warning("Bybit says our clock is off; re-syncing", metadata: ["msg": "\(status.retMsg)"])
                try await syncClock()
            case 10006, 10018:
                throw VenueError(
                    .unreachable,
                    "Bybit rate limit (\(status.retCode): \(status.retMsg))\(Self.limits(answer))"
                )
            case 10000, 10016:
                throw VenueError(lost, "Bybit \(status.retCode): \(status.retMsg)")
            default:
                throw VenueError(.rejected, "Bybit \(status.retCode): \(status.retMsg)")
            }
        }
        throw VenueError(.clockSkew, "Bybit clock re-sync did not help")
    }

    /// The request budget, for `tradebus status`.
    public func rateLimit() async -> RateLimitStatus? { governor.status(now: clock()) }

    /// Bybit's rate-limit headers, for an error message: the calls left, the limit, when it resets.
    static func limits(_ answer: HTTPAnswer) -> String {
        let known = [
            ("left", "X-Bapi-Limit-Status"), ("of", "X-Bapi-Limit"), ("resets at", "X-Bapi-Limit-Reset-Timestamp"),
            ("Retry-After", "Retry-After"),
        ]
        let parts = known.compactMap { label, header in answer.header(header).map { "\(label) \($0)" } }
        return parts.isEmpty ? "" : "; " + parts.joined(separator: ", ")
    }

    /// The `result` of an answer; one that is not what Bybit documents is a `kind` error.
    func result<Payload: Decodable>(
        _ type: Payload.Type,
        _ body: [UInt8],
        _ what: String,
        else kind: VenueError.Code = .unreachable
    ) throws(VenueError) -> Payload {
        do {
            return try JSONDecoder().decode(Envelope<Payload>.self, from: Data(body)).result
        } catch {
            throw VenueError(kind, "Bybit \(what) answer is not what its documentation says: \(error)")
        }
    }

    /// Sets our offset to the server's clock.
    public func syncClock() async throws(VenueError) {
        struct Time: Decodable {
            struct Result: Decodable {
                var timeSecond: String?
                var timeNano: String?
            }
            var result: Result?
            var time: Int64?
        }
        let body = try await call("GET", "/v5/market/time", signed: false).body
        let after = Int64(clock().timeIntervalSince1970 * 1000)
        let time = try? JSONDecoder().decode(Time.self, from: Data(body))
        let nano = time?.result?.timeNano.flatMap { Int64($0) }.map { $0 / 1_000_000 }
        guard let server = nano ?? time?.time ?? time?.result?.timeSecond.flatMap({ Int64($0) }).map({ $0 * 1000 })
        else {
            throw VenueError(.unreachable, "Bybit /v5/market/time answered something else")
        }
        // Against our clock after the answer: our timestamps then err behind the server's, which the
        // recv window allows, never ahead, which Bybit refuses beyond 1 s (a slow answer made it so).
        clockOffset = server - after
    }

    // MARK: Market and account

    public func filters(symbol: String) async throws(VenueError) -> ExchangeFilters {
        if let cached = filterCache[symbol] { return cached }
        struct Info: Decodable {
            struct Instrument: Decodable {
                struct Price: Decodable { var tickSize: String }
                struct Lot: Decodable {
                    var qtyStep: String
                    var minOrderQty: String
                    var maxOrderQty: String
                    var maxMktOrderQty: String?
                    var minNotionalValue: String?
                }
                var symbol: String
                var priceFilter: Price
                var lotSizeFilter: Lot
            }
            var list: [Instrument]
        }
        let body = try await call(
            "GET",
            "/v5/market/instruments-info",
            query: [("category", "linear"), ("symbol", symbol)],
            signed: false
        ).body
        guard
            let instrument = try result(Info.self, body, "instruments-info").list.first(where: { $0.symbol == symbol })
        else {
            throw VenueError(.rejected, "Bybit does not list \(symbol)")
        }
        let lot = instrument.lotSizeFilter
        // Only market orders are sent: their largest size is `maxMktOrderQty` where Bybit gives it.
        guard let tick = Money(string: instrument.priceFilter.tickSize), let step = Money(string: lot.qtyStep),
            let minQty = Money(string: lot.minOrderQty),
            let maxQty = Money(string: lot.maxMktOrderQty ?? lot.maxOrderQty)
        else {
            throw VenueError(.unreachable, "Bybit instruments-info for \(symbol) is not what its documentation says")
        }
        let filters = ExchangeFilters(
            tickSize: tick,
            stepSize: step,
            minQuantity: minQty,
            maxQuantity: maxQty,
            minNotional: lot.minNotionalValue.flatMap { Money(string: $0) } ?? 0
        )
        filterCache[symbol] = filters
        return filters
    }

    /// The unified trading account's equity and available balance.
    /// The symbol's risk limits (`GET /v5/market/risk-limit`, public) as margin tiers: each tier's
    /// `riskLimitValue` and `maintenanceMargin`, its `mmDeduction` where Bybit gives one (else carried
    /// on so the margin is continuous). Read once a day per symbol; a failed refresh keeps the day-old tiers.
    public func marginTiers(symbol: String) async throws(VenueError) -> MarginTiers? {
        if let cached = riskLimits[symbol], clock().timeIntervalSince(cached.at) < 86_400 { return cached.tiers }
        struct Page: Decodable {
            struct Row: Decodable {
                var symbol: String
                var riskLimitValue: String
                var maintenanceMargin: String
                var mmDeduction: String?
            }
            var list: [Row]
        }
        let rows: [Page.Row]
        do {
            let body = try await call(
                "GET",
                "/v5/market/risk-limit",
                query: [("category", "linear"), ("symbol", symbol)],
                signed: false
            ).body
            rows = try result(Page.self, body, "risk limits").list.filter { $0.symbol == symbol }
        } catch {
            if let cached = riskLimits[symbol] { return cached.tiers }
            throw error
        }
        let parsed = rows.compactMap { row -> (cap: Money, rate: Money, deduction: Money?)? in
            guard let cap = Money(string: row.riskLimitValue), let rate = Money(string: row.maintenanceMargin)
            else { return nil }
            return (cap, rate, row.mmDeduction.flatMap { Money(string: $0) })
        }.sorted { $0.cap < $1.cap }
        guard !parsed.isEmpty else { throw VenueError(.unreachable, "Bybit lists no risk limits for \(symbol)") }
        var tiers = MarginTiers.continuous(
            parsed.enumerated().map { ($0.offset == parsed.count - 1 ? nil : $0.element.cap, $0.element.rate) }
        )
        if parsed.allSatisfy({ $0.deduction != nil }) {
            for index in tiers.tiers.indices { tiers.tiers[index].deduction = parsed[index].deduction! }
        }
        riskLimits[symbol] = (clock(), tiers)
        return tiers
    }

    public func account() async throws(VenueError) -> (equity: Money, availableMargin: Money) {
        struct Wallet: Decodable {
            struct Account: Decodable {
                var totalEquity: String
                var totalAvailableBalance: String
            }
            var list: [Account]
        }
        let body = try await call("GET", "/v5/account/wallet-balance", query: [("accountType", "UNIFIED")]).body
        guard let account = try result(Wallet.self, body, "wallet-balance").list.first,
            let equity = Money(string: account.totalEquity),
            let available = Money(string: account.totalAvailableBalance)
        else {
            throw VenueError(.unreachable, "Bybit wallet-balance answer is not what its documentation says")
        }
        return (equity, available)
    }

    public func price(symbol: String) async throws(VenueError) -> Money? {
        struct Tickers: Decodable {
            struct Ticker: Decodable {
                var symbol: String
                var lastPrice: String
            }
            var list: [Ticker]
        }
        let body = try await call(
            "GET",
            "/v5/market/tickers",
            query: [("category", "linear"), ("symbol", symbol)],
            signed: false
        ).body
        return try result(Tickers.self, body, "tickers").list.first { $0.symbol == symbol }.flatMap {
            Money(string: $0.lastPrice)
        }
    }

    // MARK: Orders

    struct OrderAnswer: Decodable {
        var orderId: String
        var orderLinkId: String
        var symbol: String
        var side: String
        var orderStatus: String
        var qty: String
        var cumExecQty: String
        var avgPrice: String?
        var reduceOnly: Bool?
    }

    func venueOrder(_ answer: OrderAnswer) -> VenueOrder {
        let status: OrderStatus =
            switch answer.orderStatus {
            case "Created", "New", "Untriggered", "Triggered": .accepted
            case "PartiallyFilled": .partiallyFilled
            case "Filled": .filled
            case "Cancelled", "PartiallyFilledCanceled", "Deactivated": .canceled
            case "Rejected": .rejected
            default: .unknown
            }
        return VenueOrder(
            clientOrderID: answer.orderLinkId,
            venueOrderID: answer.orderId,
            symbol: answer.symbol,
            side: answer.side == "Buy" ? .buy : .sell,
            quantity: Money(string: answer.qty) ?? 0,
            filledQuantity: Money(string: answer.cumExecQty) ?? 0,
            averagePrice: answer.avgPrice.flatMap { Money(string: $0) }.flatMap { $0 > 0 ? $0 : nil },
            status: status,
            reduceOnly: answer.reduceOnly ?? false
        )
    }

    /// Sends a market order under `orderLinkId`; an entry first sets the symbol's margin and leverage.
    /// The answer carries only ids: the order is `accepted`, its fills come by polling.
    public func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder {
        watch(request.symbol)
        if !request.reduceOnly {
            try await prepare(request.symbol, leverage: request.leverage)
            let leverage = String(request.leverage)
            _ = try await call(
                "POST",
                "/v5/position/set-leverage",
                body: [
                    "category": "linear", "symbol": request.symbol, "buyLeverage": leverage, "sellLeverage": leverage,
                ],
                accepting: [110043]
            )  // leverage not modified: it already is
            book.leverages[request.symbol] = request.leverage
        }
        let answer = try await call(
            "POST",
            "/v5/order/create",
            body: [
                "category": "linear", "symbol": request.symbol, "side": request.side == .buy ? "Buy" : "Sell",
                "orderType": "Market", "qty": "\(request.quantity)",
                "orderLinkId": request.clientOrderID, "reduceOnly": request.reduceOnly, "positionIdx": 0,
            ],
            accepting: [110072],
            unknownOnFailure: true
        )
        if answer.retCode == 110072 {
            // The orderLinkId was sent before: that order is this request's; never a second one.
            guard let existing = try await order(clientOrderID: request.clientOrderID, symbol: request.symbol) else {
                throw VenueError(
                    .outcomeUnknown,
                    "Bybit calls orderLinkId \(request.clientOrderID) a duplicate but does not show it yet"
                )
            }
            return existing
        }
        struct Created: Decodable {
            var orderId: String
            var orderLinkId: String
        }
        let created = try result(Created.self, answer.body, "order create", else: .outcomeUnknown)
        awaiting[request.clientOrderID] = (request.symbol, request.quantity, clock())
        held = nil
        return VenueOrder(
            clientOrderID: created.orderLinkId.isEmpty ? request.clientOrderID : created.orderLinkId,
            venueOrderID: created.orderId,
            symbol: request.symbol,
            side: request.side,
            quantity: request.quantity,
            filledQuantity: 0,
            averagePrice: nil,
            status: .accepted,
            reduceOnly: request.reduceOnly
        )
    }

    /// Once per symbol, before its first entry: one-way mode (the orders say `positionIdx` 0) and
    /// isolated margin, so a position can lose only its own margin. 110025 and 110026 mean it already is.
    func prepare(_ symbol: String, leverage: Int) async throws(VenueError) {
        guard !prepared.contains(symbol) else { return }
        _ = try await call(
            "POST",
            "/v5/position/switch-mode",
            body: ["category": "linear", "symbol": symbol, "mode": 0],
            accepting: [110025]
        )
        _ = try await call(
            "POST",
            "/v5/position/switch-isolated",
            body: [
                "category": "linear", "symbol": symbol, "tradeMode": 1, "buyLeverage": String(leverage),
                "sellLeverage": String(leverage),
            ],
            accepting: [110026]
        )
        prepared.insert(symbol)
    }

    /// The order with that `orderLinkId`: open and recently closed orders are in `order/realtime`,
    /// older ones only in `order/history`. Neither has it (or 110001): the venue never saw it.
    public func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder? {
        struct Orders: Decodable { var list: [OrderAnswer] }
        for path in ["/v5/order/realtime", "/v5/order/history"] {
            let answer = try await call(
                "GET",
                path,
                query: [("category", "linear"), ("symbol", symbol), ("orderLinkId", clientOrderID)],
                accepting: [110001]
            )
            guard answer.retCode == 0 else { continue }  // 110001: order does not exist
            if let found = try result(Orders.self, answer.body, "order query").list.first(where: {
                $0.orderLinkId == clientOrderID
            }) {
                return venueOrder(found)
            }
        }
        return nil
    }

    // MARK: Positions and protection

    /// Open positions (size above zero) with the stop and target Bybit holds for them: one
    /// `position/list` read for every symbol, at most once a second (an order of ours, or the stream's
    /// `position` topic, reads it again).
    public func positions() async throws(VenueError) -> [VenuePosition] {
        if let held, clock().timeIntervalSince(held.at) < Self.positionsMaxAge { return held.rows }
        let rows = try await readPositions()
        held = (clock(), rows)
        return rows
    }

    func readPositions() async throws(VenueError) -> [VenuePosition] {
        struct Page: Decodable {
            struct Row: Decodable {
                var symbol: String
                var side: String
                var size: String
                var avgPrice: String
                var leverage: String?
                var stopLoss: String?
                var takeProfit: String?
                var createdTime: String?
            }
            var list: [Row]
            var nextPageCursor: String?
        }
        var rows: [Page.Row] = []
        var cursor: String?
        repeat {
            var query = [("category", "linear"), ("settleCoin", "USDT"), ("limit", "200")]
            if let cursor { query.append(("cursor", cursor)) }
            let body = try await call("GET", "/v5/position/list", query: query).body
            let page = try result(Page.self, body, "position list")
            rows += page.list
            cursor = Self.next(page.nextPageCursor, after: cursor)
        } while cursor != nil
        /// "" and "0" mean none.
        func level(_ value: String?) -> Money? { value.flatMap { Money(string: $0) }.flatMap { $0 > 0 ? $0 : nil } }
        return rows.compactMap { row in
            guard let size = Money(string: row.size), size > 0, row.side == "Buy" || row.side == "Sell",
                let entry = Money(string: row.avgPrice)
            else { return nil }
            return VenuePosition(
                symbol: row.symbol,
                side: row.side == "Buy" ? .long : .short,
                quantity: size,
                entryPrice: entry,
                leverage: row.leverage.flatMap { Double($0) }.map { Int($0) } ?? 1,
                stopLoss: level(row.stopLoss),
                takeProfit: level(row.takeProfit),
                openedAt: Date(timeIntervalSince1970: (row.createdTime.flatMap { Double($0) } ?? 0) / 1000)
            )
        }
    }

    /// The next page's cursor: nil when Bybit gives none, or the same one again.
    static func next(_ cursor: String?, after previous: String?) -> String? {
        guard let cursor, !cursor.isEmpty, cursor != previous else { return nil }
        return cursor
    }

    /// A reduce-only conditional market order (`/v5/order/create` with `triggerPrice`), triggered by
    /// the mark price falling to the trigger (a long's stop) or rising to it (a short's);
    /// `closeOnTrigger` so that it closes even when margin is short. 110092 / 110093 (the mark is
    /// already past the trigger) is `wouldTrigger`; a lost answer is `outcomeUnknown`; the same
    /// `orderLinkId` again (110072) is the stop that exists.
    public func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError) {
        do {
            _ = try await call(
                "POST",
                "/v5/order/create",
                body: [
                    "category": "linear", "symbol": symbol, "side": stop.side == .buy ? "Buy" : "Sell",
                    "orderType": "Market", "qty": "\(stop.quantity)",
                    "triggerPrice": "\(stop.trigger)", "triggerDirection": stop.side == .sell ? 2 : 1,
                    "triggerBy": "MarkPrice", "reduceOnly": true,
                    "closeOnTrigger": true, "orderLinkId": stop.clientID, "positionIdx": 0,
                ],
                accepting: [110072],
                unknownOnFailure: true
            )
        } catch
            where error.code == .rejected
            && (error.message.hasPrefix("Bybit 110092") || error.message.hasPrefix("Bybit 110093"))
        {
            throw VenueError(.wouldTrigger, error.message)
        } catch {
            if error.code == .outcomeUnknown { stops = nil }  // placed or not: read the list again
            throw error
        }
        stops?.rows.removeAll { $0.orderLinkId == stop.clientID }
        stops?.rows.append(
            StopRow(
                orderLinkId: stop.clientID,
                symbol: symbol,
                side: stop.side == .buy ? "Buy" : "Sell",
                qty: "\(stop.quantity)",
                triggerPrice: "\(stop.trigger)",
                orderStatus: "Untriggered",
                reduceOnly: true
            )
        )
    }

    /// Cancels a stop by its `orderLinkId`; 110001 (no such open order: triggered, cancelled, gone) is done.
    public func cancelStop(symbol: String, clientID: String) async throws(VenueError) {
        _ = try await call(
            "POST",
            "/v5/order/cancel",
            body: ["category": "linear", "symbol": symbol, "orderLinkId": clientID],
            accepting: [110001]
        )
        stops?.rows.removeAll { $0.orderLinkId == clientID }
    }

    /// A conditional order as `order/realtime` and the stream's `order` topic list it.
    struct StopRow: Decodable, Sendable {
        var orderLinkId: String
        var symbol: String
        var side: String
        var qty: String
        var triggerPrice: String?
        var orderStatus: String
        var reduceOnly: Bool?
    }

    /// Every symbol's working conditional orders: one `order/realtime` read (`settleCoin=USDT`,
    /// `orderFilter=StopOrder`, followed through its pages) at most every ten seconds.
    func stopRows() async throws(VenueError) -> [StopRow] {
        if let stops, clock().timeIntervalSince(stops.at) < Self.stopsMaxAge { return stops.rows }
        struct Page: Decodable {
            var list: [StopRow]
            var nextPageCursor: String?
        }
        var rows: [StopRow] = []
        var cursor: String?
        repeat {
            var query = [("category", "linear"), ("settleCoin", "USDT"), ("orderFilter", "StopOrder"), ("limit", "50")]
            if let cursor { query.append(("cursor", cursor)) }
            let page = try result(
                Page.self,
                try await call("GET", "/v5/order/realtime", query: query).body,
                "open conditional orders"
            )
            rows += page.list.filter { $0.orderStatus == "Untriggered" }
            cursor = Self.next(page.nextPageCursor, after: cursor)
        } while cursor != nil
        stops = (clock(), rows)
        return rows
    }

    /// The symbol's working conditional orders that reduce only.
    public func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder] {
        try await stopRows().filter { $0.symbol == symbol && $0.reduceOnly == true }.compactMap { row in
            guard let quantity = Money(string: row.qty),
                let trigger = row.triggerPrice.flatMap({ Money(string: $0) })
            else { return nil }
            return ExecutionKernel.StopOrder(
                clientID: row.orderLinkId,
                side: row.side == "Buy" ? .buy : .sell,
                quantity: quantity,
                trigger: trigger
            )
        }
    }

    /// The target is the position's own take-profit (`trading-stop`, whole position, mark price): it
    /// closes whatever the position holds, so it needs no resizing. The stop is not touched.
    public func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError) {
        _ = try await call(
            "POST",
            "/v5/position/trading-stop",
            body: [
                "category": "linear", "symbol": symbol, "tpslMode": "Full", "takeProfit": "\(price)",
                "tpTriggerBy": "MarkPrice", "positionIdx": 0,
            ],
            accepting: [34040]
        )
    }

    /// Bybit has its own prices: a candle changes nothing here (the executor moves the stops).
    public func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError) {}

    // MARK: Fills

    /// Where a symbol's executions are read from (Bybit's execution ids are not ordered).
    typealias ExecutionCursor = OverlapCursor<String>

    /// How far back each poll reads again, in milliseconds.
    static var overlap: Int64 { ExecutionCursor.overlap }
    /// The longest span of one execution query (seven days), in milliseconds.
    static let window: Int64 = 7 * 24 * 3_600_000
    /// Executions that are fills: trades, liquidations (`BustTrade`) and auto-deleveraging, which
    /// all change the position. Funding and settlement are not.
    static let fillTypes: Set<String> = ["Trade", "BustTrade", "AdlTrade"]

    struct Execution: Decodable {
        var execId: String
        var orderId: String
        var orderLinkId: String?
        var symbol: String
        var side: String
        var execPrice: String
        var execQty: String
        var execFee: String?
        var execTime: String
        var execType: String
        var stopOrderType: String?
    }

    /// A symbol's executions are watched from now on, if they were not already.
    /// An adopted position: its symbol's executions from now on are followed.
    public func follow(_ position: VenuePosition) async throws(VenueError) {
        if cursors[position.symbol] == nil { cursors[position.symbol] = ExecutionCursor(from: now, floor: now) }
        watch(position.symbol)
        book.resume(position)
    }

    func watch(_ symbol: String) {
        tradedSymbols.insert(symbol)
        if cursors[symbol] == nil { cursors[symbol] = ExecutionCursor(from: now) }
    }

    /// New fills of the symbols traded, with the closes they make. With the private stream live they
    /// came with it, and REST reads every symbol's executions at once every `verifyEvery` (or
    /// when an order's fills are late); otherwise every poll does (`GET /v5/execution/list`, one read
    /// for all symbols).
    public func events() async throws(VenueError) -> [VenueEvent] {
        let phase = stream.phase
        let generation = stream.generation
        let started = clock()
        let late = awaiting.values.contains { started.timeIntervalSince($0.since) > StreamTiming.grace }
        let due = started.timeIntervalSince(stream.verifiedAt["*"] ?? .distantPast) >= StreamTiming.verifyEvery
        if phase != .live || late || due {
            try await pollAll()
            stream.verifiedAt["*"] = started
            // What REST has read is no longer waited for.
            awaiting = awaiting.filter { started.timeIntervalSince($0.value.since) <= StreamTiming.grace }
        }
        if phase == .catchingUp, stream.phase == .catchingUp, stream.generation == generation {
            stream.phase = .live
            let backlog = stream.backlog
            stream.backlog = []
            for execution in backlog { try record(execution) }
            logger.info("Bybit private stream caught up; fills come with it, REST checks what it may miss")
        }
        return pending
    }

    public func acknowledgeEvents(_ count: Int) async throws(VenueError) {
        pending.removeFirst(min(count, pending.count))
    }

    /// Every traded symbol's executions since its cursor, in one read from the oldest cursor.
    func pollAll() async throws(VenueError) {
        guard !tradedSymbols.isEmpty else { return }
        let until = now
        func start(_ symbol: String) -> Int64 { (cursors[symbol]?.from ?? until - Self.window) - Self.overlap }
        let all = try await executions(nil, from: tradedSymbols.map(start).min() ?? until, until: until)
        for symbol in tradedSymbols.sorted() {
            let from = start(symbol)
            for execution in all where execution.symbol == symbol && (Int64(execution.execTime) ?? 0) >= from {
                try record(execution)
            }
            // Read the cursor after the wait: another poll may have moved it meanwhile.
            var cursor = cursors[symbol] ?? ExecutionCursor(from: from)
            cursor.advance(to: until)
            cursors[symbol] = cursor
        }
    }

    /// One execution, from REST or the stream, as a fill (and the close it makes), once: the ids
    /// reported are kept in the symbol's cursor while they are inside its overlap.
    func record(_ execution: Execution) throws(VenueError) {
        let symbol = execution.symbol
        guard Self.fillTypes.contains(execution.execType), tradedSymbols.contains(symbol) else { return }
        guard let time = Int64(execution.execTime), let price = Money(string: execution.execPrice),
            let quantity = Money(string: execution.execQty)
        else {
            throw VenueError(.unreachable, "Bybit execution \(execution.execId) is not what its documentation says")
        }
        var cursor = cursors[symbol] ?? ExecutionCursor(from: time)
        // Older than the overlap: REST has read it already (and forgotten its id).
        guard cursor.admits(execution.execId, at: time) else { return }
        let link = execution.orderLinkId.flatMap { $0.isEmpty ? nil : $0 }
        let fill = VenueFill(
            tradeID: "bybit-\(execution.execId)",
            clientOrderID: link ?? "bybit-order-\(execution.orderId)",
            symbol: symbol,
            side: execution.side == "Buy" ? .buy : .sell,
            price: price,
            quantity: quantity,
            fee: execution.execFee.flatMap { Money(string: $0) } ?? 0,
            time: Date(timeIntervalSince1970: Double(time) / 1000)
        )
        cursor.take(execution.execId, at: time)
        cursors[symbol] = cursor
        if let link, let expected = awaiting[link] {
            let left = expected.quantity - quantity
            awaiting[link] = left > 0 ? (symbol, left, expected.since) : nil
        }
        pending.append(.fill(fill))
        held = nil  // the position moved: read it again
        if let close = book.record(fill, realizedPnl: nil, reason: reason(execution)) { pending.append(.closed(close)) }
    }

    /// What an execution means when it closes the position: a liquidation, or what its order's
    /// `stopOrderType` says (one of our conditional stops, the position's stop-loss or take-profit,
    /// Bybit's own trailing stop), otherwise an exit. (A stop a trailing policy moved is told apart
    /// by the executor, which moved it.)
    func reason(_ execution: Execution) -> String {
        if execution.execType == "BustTrade" { return "liquidation" }
        return switch execution.stopOrderType {
        case "Stop", "StopLoss", "PartialStopLoss": "stop_loss"
        case "TakeProfit", "PartialTakeProfit": "take_profit"
        case "TrailingStop": "trailing_stop"
        // A close by an order of nobody's here (by hand at the exchange) is the venue's doing.
        default: ClientOrderID.isOurs(execution.orderLinkId ?? "") ? "exit" : "closed_at_venue"
        }
    }

    /// Every execution of `symbol` from `from` on, oldest first: in spans of Bybit's longest window
    /// (the last one open-ended), each followed through `nextPageCursor`. Bybit lists newest first.
    func executions(_ symbol: String?, from: Int64, until: Int64) async throws(VenueError) -> [Execution] {
        struct Page: Decodable {
            var list: [Execution]
            var nextPageCursor: String?
        }
        var newestFirst: [Execution] = []
        var start = from
        while true {
            let last = until - start < Self.window
            var query =
                [("category", "linear")] + (symbol.map { [("symbol", $0)] } ?? []) + [("startTime", String(start))]
            if !last { query.append(("endTime", String(start + Self.window - 1))) }
            query.append(("limit", "100"))
            var spans: [[Execution]] = []
            var cursor: String?
            repeat {
                var pageQuery = query
                if let cursor { pageQuery.append(("cursor", cursor)) }
                let body = try await call("GET", "/v5/execution/list", query: pageQuery).body
                let page = try result(Page.self, body, "execution list")
                spans.append(page.list)
                cursor = Self.next(page.nextPageCursor, after: cursor)
            } while cursor != nil
            // Later spans are newer: they go first.
            newestFirst = spans.flatMap { $0 } + newestFirst
            if last { break }
            start += Self.window
        }
        let oldestFirst = Array(newestFirst.reversed())
        return oldestFirst.indices.sorted { a, b in
            let ta = Int64(oldestFirst[a].execTime) ?? 0
            let tb = Int64(oldestFirst[b].execTime) ?? 0
            return ta != tb ? ta < tb : a < b
        }.map { oldestFirst[$0] }
    }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    /// Where the store stands after a restart: executions already committed are not reported again.
    /// Each symbol reads on from its newest committed fill; one without any reads from its oldest
    /// order still open (``VenueResume/pendingSince``), or from now: never another's history of the
    /// last seven days. Open positions are tracked from their store record (their entry fees were
    /// booked with the entry).
    public func resume(_ state: VenueResume) async throws(VenueError) {
        tradedSymbols.formUnion(state.symbols)
        let start = now
        for symbol in state.symbols {
            let committed = (state.committedFills[symbol] ?? []).filter { $0.tradeID.hasPrefix("bybit-") }
            let since = state.pendingSince[symbol].map { max(Self.millis($0), start - Self.window) } ?? start
            var cursor = ExecutionCursor(from: committed.map { Self.millis($0.time) }.max() ?? since)
            for fill in committed {
                cursor.take(String(fill.tradeID.dropFirst("bybit-".count)), at: Self.millis(fill.time))
            }
            if let known = cursors[symbol] {
                cursor.from = max(cursor.from, known.from)
                cursor.seen.merge(known.seen) { max($0, $1) }
            }
            cursors[symbol] = cursor
        }
        for position in state.openPositions { book.resume(position) }
    }
}
