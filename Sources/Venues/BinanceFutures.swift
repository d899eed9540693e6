import AsyncHTTPClient
import Foundation
import HTTPSupport
import Logging
import TradingCore

/// Binance USDⓈ-M futures over signed REST: isolated margin and leverage per symbol, market entries
/// and exits, and fills by polling `userTrades`. Stops and targets are conditional orders on the
/// algo-order API (`POST /fapi/v1/algoOrder`, `algoType=CONDITIONAL`, `workingType=MARK_PRICE`):
/// since 2025-12-09 Binance refuses them on `/fapi/v1/order` with -4120 `STOP_ORDER_SWITCH_ALGO`.
/// The execution kernel places, resizes and cancels the stops (``placeStop(symbol:_:)``: reduce-only,
/// for the position's quantity); -2021 "Order would immediately trigger" is `wouldTrigger`.
///
/// - Every private call is signed (`RequestSigning.binanceQuery`) with `recvWindow` and a timestamp
///   corrected by the server's clock; a -1021 ("timestamp outside recvWindow") re-syncs the clock from
///   `GET /fapi/v1/time` and tries once more.
/// - An order whose answer is lost (timeout, 5xx, -1007 "execution status unknown") is
///   `VenueError.outcomeUnknown`: the caller queries it by client id (`origClientOrderId`), never sends
///   it again blindly. Binance keeps a client id unique only among open orders.
/// - Fills build each symbol's position; the fill that brings it back to flat is a ``VenueClose``
///   whose reason comes from the order that made it (the stop, the target, an exit; `autoclose-`
///   orders are liquidations). Orders from before a restart are looked up by their order id.
/// - Trailing, break-even and ATR stops are the executor's (``ManagedStop``): it moves the stop through
///   the kernel, new stop first.
/// - The trade-history cursor is the newest committed fill's trade id (the fill row is the cursor, so
///   both are written in one statement). A symbol with no committed fill starts from the newest trade
///   at the exchange before our first order, so `userTrades` without `fromId` (the last seven days) is
///   never read as ours. After a restart, ``resume(_:)`` seeds the positions and the cursor from the store.
/// - Every request goes through the account's ``RateGovernor``: weights as Binance documents them,
///   `X-MBX-USED-WEIGHT-1M` correcting our count, orders before polling, and a 429 or 418 stopping
///   every request until its `Retry-After` (a request that would break it is not sent: `unreachable`).
public actor BinanceFuturesVenue: Venue {
    public nonisolated let name = "binance"
    public nonisolated let isLive = true
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
    var clientIDs: [Int64: String] = [:]
    var tradedSymbols: Set<String> = []
    var lastTradeID: [String: Int64] = [:]
    var pending: [VenueEvent] = []
    var isolated: Set<String> = []
    /// Each symbol's position as the fills build it, its stop and target, and its stop as the policy moves it.
    var book = PositionBook()
    /// Protective orders by Binance order id: what a fill of theirs means.
    var protective: [Int64: String] = [:]
    /// Symbols with no cursor whose history is read from a time (orders in flight at a restart).
    var startTimes: [String: Date] = [:]
    /// The request-weight budget: 2,400 per minute at Binance, of which we spend `rateLimitShare`,
    /// and polling half of that.
    var governor: RateGovernor
    /// The account's positions and open conditional orders, as last read for every symbol at once, so
    /// that polling costs the same for one symbol as for fifty: positions at most once a second, the
    /// conditional orders (weight 40 for all symbols) at most every ten; ours are added and removed as
    /// we place and cancel them, and an order of ours that fills reads the positions again.
    var risks: (at: Date, rows: [Risk])?
    var algos: (at: Date, rows: [AlgoOrder])?
    static let positionsMaxAge: TimeInterval = 1
    static let algoOrdersMaxAge: TimeInterval = 10
    /// Our orders whose fills are not all read yet, by Binance order id: their symbol's trades are read
    /// until they are, even when the position shows nothing new (an entry and its stop within one poll).
    var awaiting: [Int64: (symbol: String, quantity: Money, since: Date)] = [:]
    /// The user-data stream (`wss://fstream.binance.com/private/ws`; nil: REST polling only), how often
    /// its listen key is kept alive, and where it stands: see BinanceUserStream.swift.
    let streamURL: String?
    let listenKeyKeepalive: Duration
    var stream = UserStreamState<Trade>()
    /// Orders whose outcome is not known yet (a lost answer, or not filled at once), by symbol: their
    /// symbol's trades are read for a minute after.
    var ordersSent: [String: Date] = [:]
    /// Each symbol's leverage brackets as margin tiers, read at most once a day.
    var brackets: [String: (at: Date, tiers: MarginTiers)] = [:]
    static let bracketsMaxAge: TimeInterval = 86_400
    /// Fee assets' prices by asset, quote and minute.
    var feeRates: [String: Money] = [:]

    /// Binance USDⓈ-M futures for one account, signed with its API key and secret.
    public init(
        baseURL: String = "https://fapi.binance.com",
        apiKey: String,
        secret: String,
        recvWindow: Int = 5_000,
        http: HTTPClient = .shared,
        timeout: Duration = .seconds(10),
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() },
        rateLimitShare: Double = 0.8,
        streamURL: String? = nil,
        listenKeyKeepalive: Duration = .seconds(30 * 60)
    ) {
        self.streamURL = streamURL
        self.listenKeyKeepalive = listenKeyKeepalive
        self.governor = RateGovernor(
            venue: "binance",
            budget: RequestBudget(limit: Int(2_400 * rateLimitShare), window: 60, pollShare: 0.5)
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

    struct Failure: Decodable {
        var code: Int
        var msg: String
    }

    /// A public GET; `priority` `.order` for what protection needs (the symbols' filters).
    func get(_ path: String, priority: RequestBudget.Priority = .poll) async throws(VenueError) -> [UInt8] {
        try governor.admit(
            weight: Self.weight("GET", path),
            priority: priority,
            what: "Binance GET \(path)",
            now: clock()
        )
        let answer: HTTPAnswer
        do { answer = try await caller.send("GET", baseURL + path, headers: [], timeout: timeout) } catch {
            throw VenueError(.unreachable, "Binance \(path): \(error)")
        }
        governor.observeBinance(answer, now: clock())
        guard (200..<300).contains(answer.status) else {
            // A 4xx other than a rate limit is Binance refusing the request (e.g. -1121 "Invalid symbol."): no retry helps.
            let refused = (400..<500).contains(answer.status) && answer.status != 429 && answer.status != 418
            throw VenueError(
                refused ? .rejected : .unreachable,
                "Binance \(path) answered \(answer.status): \(answer.text.prefix(200))"
            )
        }
        return answer.body
    }

    /// A signed call. `unknownOnFailure`: a lost answer means the effect is unknown (orders).
    func signed(
        _ method: String,
        _ path: String,
        _ parameters: [(String, String)],
        unknownOnFailure: Bool = false
    ) async throws(VenueError) -> [UInt8] {
        for attempt in 0..<2 {
            let timestamp = Int64(clock().timeIntervalSince1970 * 1000) + clockOffset
            let query = RequestSigning.binanceQuery(
                parameters,
                timestamp: timestamp,
                recvWindow: recvWindow,
                secret: secret
            )
            // Protection goes before polling for fills: orders, cancels, order queries, and the position and
            // open-order reads that the kernel's stop checks and reconciliation rest on.
            let protection: Set<String> = [
                "/fapi/v1/order", "/fapi/v2/positionRisk", "/fapi/v1/openAlgoOrders", "/fapi/v1/leverageBracket",
            ]
            let priority: RequestBudget.Priority = method != "GET" || protection.contains(path) ? .order : .poll
            try governor.admit(
                weight: Self.weight(method, path, parameters),
                priority: priority,
                what: "Binance \(method) \(path)",
                now: clock()
            )
            let answer: HTTPAnswer
            do {
                answer = try await caller.send(
                    method,
                    "\(baseURL)\(path)?\(query)",
                    headers: [("X-MBX-APIKEY", apiKey)],
                    timeout: timeout
                )
            } catch {
                throw VenueError(
                    unknownOnFailure ? .outcomeUnknown : .unreachable,
                    "Binance \(method) \(path): \(error)"
                )
            }
            governor.observeBinance(answer, now: clock())
            if (200..<300).contains(answer.status) { return answer.body }
            let failure = try? JSONDecoder().decode(Failure.self, from: Data(answer.body))
            let code = failure?.code
            let message = failure?.msg ?? answer.text
            if code == -1021 {
                guard attempt == 0 else {
                    throw VenueError(.clockSkew, "Binance -1021 after a clock re-sync: \(message)")
                }
                logger.warning("Binance says our clock is off; re-syncing", metadata: ["msg": "\(message)"])
                try await syncClock()
                continue
            }
            if code == -1007 { throw VenueError(.outcomeUnknown, "Binance -1007: \(message)") }
            if code == -2021 { throw VenueError(.wouldTrigger, "Binance -2021: \(message)") }
            if answer.status == 429 || answer.status == 418 {
                throw VenueError(
                    .unreachable,
                    "Binance rate limit (\(answer.status)); Retry-After \(answer.header("Retry-After") ?? "?")"
                )
            }
            if answer.status >= 500 {
                throw VenueError(
                    unknownOnFailure ? .outcomeUnknown : .unreachable,
                    "Binance \(answer.status): \(message.prefix(200))"
                )
            }
            throw VenueError(.rejected, "Binance \(code.map { "\($0): \(message)" } ?? "HTTP \(answer.status)")")
        }
        throw VenueError(.clockSkew, "Binance clock re-sync did not help")
    }

    /// A request's weight, as Binance's USDⓈ-M documentation gives it (1 where it says nothing more).
    static func weight(_ method: String, _ path: String, _ parameters: [(String, String)] = []) -> Int {
        let bySymbol = parameters.contains { $0.0 == "symbol" }
        switch (method, path) {
        case ("GET", "/fapi/v2/account"), ("GET", "/fapi/v2/positionRisk"), ("GET", "/fapi/v1/userTrades"),
            ("GET", "/fapi/v1/allAlgoOrders"):
            return 5
        case ("GET", "/fapi/v1/openAlgoOrders"), ("GET", "/fapi/v1/openOrders"): return bySymbol ? 1 : 40
        default: return 1
        }
    }

    /// The request budget, for `tradebus status`.
    public func rateLimit() async -> RateLimitStatus? { governor.status(now: clock()) }

    /// Sets our offset to the server's clock.
    public func syncClock() async throws(VenueError) {
        struct Time: Decodable { var serverTime: Int64 }
        let timeBody = try await get("/fapi/v1/time")
        let after = Int64(clock().timeIntervalSince1970 * 1000)
        guard let time = try? JSONDecoder().decode(Time.self, from: Data(timeBody)) else {
            throw VenueError(.unreachable, "Binance /fapi/v1/time answered something else")
        }
        // Against our clock after the answer: our timestamps then err behind the server's, which
        // recvWindow allows, never ahead, which Binance refuses beyond 1 s (a slow answer made it so).
        clockOffset = time.serverTime - after
    }

    public func filters(symbol: String) async throws(VenueError) -> ExchangeFilters {
        if let cached = filterCache[symbol] { return cached }
        struct Info: Decodable {
            struct Symbol: Decodable {
                struct Filter: Decodable {
                    var filterType: String
                    var tickSize: String?
                    var stepSize: String?
                    var minQty: String?
                    var maxQty: String?
                    var notional: String?
                }
                var symbol: String
                var filters: [Filter]
            }
            var symbols: [Symbol]
        }
        let infoBody = try await get("/fapi/v1/exchangeInfo", priority: .order)
        guard let info = try? JSONDecoder().decode(Info.self, from: Data(infoBody)) else {
            throw VenueError(.unreachable, "Binance exchangeInfo is not what its documentation says")
        }
        for entry in info.symbols {
            func value(_ type: String, _ field: KeyPath<Info.Symbol.Filter, String?>) -> Money? {
                entry.filters.first { $0.filterType == type }?[keyPath: field].flatMap { Money(string: $0) }
            }
            guard let tick = value("PRICE_FILTER", \.tickSize), let step = value("LOT_SIZE", \.stepSize),
                let minQty = value("LOT_SIZE", \.minQty),
                let maxQty = value("LOT_SIZE", \.maxQty)
            else { continue }
            filterCache[entry.symbol] = ExchangeFilters(
                tickSize: tick,
                stepSize: step,
                minQuantity: minQty,
                maxQuantity: maxQty,
                minNotional: value("MIN_NOTIONAL", \.notional) ?? 0
            )
        }
        guard let filters = filterCache[symbol] else { throw VenueError(.rejected, "Binance does not list \(symbol)") }
        return filters
    }

    /// The symbol's leverage brackets (`GET /fapi/v1/leverageBracket`, signed, weight 1) as margin
    /// tiers: each bracket's `notionalCap`, `maintMarginRatio` and `cum`. Read once a day per symbol;
    /// a failed refresh keeps the day-old tiers.
    public func marginTiers(symbol: String) async throws(VenueError) -> MarginTiers? {
        if let cached = brackets[symbol], clock().timeIntervalSince(cached.at) < Self.bracketsMaxAge {
            return cached.tiers
        }
        struct Entry: Decodable {
            struct Bracket: Decodable {
                var notionalCap: Money
                var maintMarginRatio: Money
                var cum: Money
            }
            var symbol: String
            var brackets: [Bracket]
        }
        let body: [UInt8]
        do {
            body = try await signed("GET", "/fapi/v1/leverageBracket", [("symbol", symbol)])
        } catch {
            if let cached = brackets[symbol] { return cached.tiers }
            throw error
        }
        // An array, or (Binance's documentation shows both) one object when a symbol is given.
        let entries =
            (try? JSONDecoder().decode([Entry].self, from: Data(body)))
            ?? (try? JSONDecoder().decode(Entry.self, from: Data(body))).map { [$0] }
        guard let entry = entries?.first(where: { $0.symbol == symbol }), !entry.brackets.isEmpty else {
            throw VenueError(
                .unreachable,
                "Binance leverageBracket answer for \(symbol) is not what its documentation says"
            )
        }
        let sorted = entry.brackets.sorted { $0.notionalCap < $1.notionalCap }
        let tiers = MarginTiers(
            tiers: sorted.enumerated().map { index, bracket in
                MarginTiers.Tier(
                    notionalCap: index == sorted.count - 1 ? nil : bracket.notionalCap,
                    rate: bracket.maintMarginRatio,
                    deduction: bracket.cum
                )
            }
        )
        brackets[symbol] = (clock(), tiers)
        return tiers
    }

    public func account() async throws(VenueError) -> (equity: Money, availableMargin: Money) {
        struct Account: Decodable {
            var totalMarginBalance: String
            var availableBalance: String
        }
        let accountBody = try await signed("GET", "/fapi/v2/account", [])
        guard let account = try? JSONDecoder().decode(Account.self, from: Data(accountBody)),
            let equity = Money(string: account.totalMarginBalance),
            let available = Money(string: account.availableBalance)
        else {
            throw VenueError(.unreachable, "Binance account answer is not what its documentation says")
        }
        return (equity, available)
    }

    struct OrderAnswer: Decodable {
        var orderId: Int64
        var clientOrderId: String
        var symbol: String
        var side: String
        var status: String
        var origQty: String
        var executedQty: String
        var avgPrice: String?
        var reduceOnly: Bool?
    }

    func venueOrder(_ answer: OrderAnswer) -> VenueOrder {
        let status: OrderStatus =
            switch answer.status {
            case "NEW": .accepted
            case "PARTIALLY_FILLED": .partiallyFilled
            case "FILLED": .filled
            case "CANCELED": .canceled
            case "REJECTED": .rejected
            case "EXPIRED", "EXPIRED_IN_MATCH": .expired
            default: .unknown
            }
        clientIDs[answer.orderId] = answer.clientOrderId
        return VenueOrder(
            clientOrderID: answer.clientOrderId,
            venueOrderID: String(answer.orderId),
            symbol: answer.symbol,
            side: answer.side == "BUY" ? .buy : .sell,
            quantity: Money(string: answer.origQty) ?? 0,
            filledQuantity: Money(string: answer.executedQty) ?? 0,
            averagePrice: answer.avgPrice.flatMap { Money(string: $0) }.flatMap { $0 > 0 ? $0 : nil },
            status: status,
            reduceOnly: answer.reduceOnly ?? false
        )
    }

    public func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder {
        try await baselineTradeCursor(request.symbol)
        tradedSymbols.insert(request.symbol)
        if !request.reduceOnly {
            try await isolateMargin(request.symbol)
            book.leverages[request.symbol] = request.leverage
            _ = try await signed(
                "POST",
                "/fapi/v1/leverage",
                [("symbol", request.symbol), ("leverage", String(request.leverage))]
            )
        }
        let body = try await signed(
            "POST",
            "/fapi/v1/order",
            [
                ("symbol", request.symbol), ("side", request.side.rawValue), ("type", "MARKET"),
                ("quantity", "\(request.quantity)"),
                ("newClientOrderId", request.clientOrderID), ("reduceOnly", request.reduceOnly ? "true" : "false"),
                ("newOrderRespType", "RESULT"),
            ],
            unknownOnFailure: true
        )
        risks = nil
        guard let answer = try? JSONDecoder().decode(OrderAnswer.self, from: Data(body)) else {
            ordersSent[request.symbol] = clock()
            throw VenueError(.outcomeUnknown, "Binance order answer is not what its documentation says")
        }
        let order = venueOrder(answer)
        if order.filledQuantity > 0 { awaiting[answer.orderId] = (request.symbol, order.filledQuantity, clock()) }
        if !order.status.isFinal { ordersSent[request.symbol] = clock() }
        return order
    }

    /// Isolated margin, so a position can lose only its own margin; -4046 means it already is.
    func isolateMargin(_ symbol: String) async throws(VenueError) {
        guard !isolated.contains(symbol) else { return }
        do {
            _ = try await signed("POST", "/fapi/v1/marginType", [("symbol", symbol), ("marginType", "ISOLATED")])
        } catch  where error.code == .rejected && error.message.contains("-4046") {}
        isolated.insert(symbol)
    }

    public func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder? {
        let body: [UInt8]
        do {
            body = try await signed(
                "GET",
                "/fapi/v1/order",
                [("symbol", symbol), ("origClientOrderId", clientOrderID)]
            )
        } catch {
            if error.code == .rejected && error.message.contains("-2013") { return nil }  // "Order does not exist."
            throw error
        }
        guard let answer = try? JSONDecoder().decode(OrderAnswer.self, from: Data(body)) else {
            throw VenueError(.unreachable, "Binance order query answer is not what its documentation says")
        }
        return venueOrder(answer)
    }

    struct Risk: Decodable {
        var symbol: String
        var positionAmt: String
        var entryPrice: String
        var leverage: String
        var updateTime: Int64?
    }

    /// Every symbol's position (one `positionRisk` call, at most once a second unless `fresh`, or
    /// once every `maxAge` while the user-data stream keeps the rows current).
    func positionRows(fresh: Bool = false, maxAge: TimeInterval = positionsMaxAge) async throws(VenueError) -> [Risk] {
        if !fresh, let risks, clock().timeIntervalSince(risks.at) < maxAge { return risks.rows }
        let body = try await signed("GET", "/fapi/v2/positionRisk", [])
        guard let rows = try? JSONDecoder().decode([Risk].self, from: Data(body)) else {
            throw VenueError(.unreachable, "Binance positionRisk answer is not what its documentation says")
        }
        risks = (clock(), rows)
        return rows
    }

    /// Every symbol's open conditional orders (one `openAlgoOrders` call, at most every ten seconds;
    /// ours kept up to date as we place and cancel them).
    func algoRows() async throws(VenueError) -> [AlgoOrder] {
        if let algos, clock().timeIntervalSince(algos.at) < Self.algoOrdersMaxAge { return algos.rows }
        let rows = try await openAlgoOrders(symbol: nil)
        algos = (clock(), rows)
        return rows
    }

    public func positions() async throws(VenueError) -> [VenuePosition] {
        let held = try await positionRows().filter { (Money(string: $0.positionAmt) ?? 0) != 0 }
        guard !held.isEmpty else { return [] }
        let open = try await algoRows()
        func level(_ symbol: String, _ type: String) -> Money? {
            open.first { $0.symbol == symbol && $0.orderType == type }?.triggerPrice.flatMap { Money(string: $0) }
                .flatMap { $0 > 0 ? $0 : nil }
        }
        return held.compactMap { risk in
            guard let amount = Money(string: risk.positionAmt), let entry = Money(string: risk.entryPrice) else {
                return nil
            }
            return VenuePosition(
                symbol: risk.symbol,
                side: amount > 0 ? .long : .short,
                quantity: amount.magnitude,
                entryPrice: entry,
                leverage: Int(risk.leverage) ?? 1,
                stopLoss: level(risk.symbol, "STOP_MARKET"),
                takeProfit: level(risk.symbol, "TAKE_PROFIT_MARKET"),
                openedAt: Date(timeIntervalSince1970: Double(risk.updateTime ?? 0) / 1000)
            )
        }
    }

    /// A conditional order as `openAlgoOrders` and `algoOrder` list it.
    struct AlgoOrder: Decodable, Sendable {
        var algoId: Int64
        var clientAlgoId: String
        var symbol: String
        var orderType: String?
        var algoStatus: String?
        var triggerPrice: String?
        var actualOrderId: String?
        var side: String?
        var quantity: String?
    }

    func openAlgoOrders(symbol: String?) async throws(VenueError) -> [AlgoOrder] {
        let body = try await signed("GET", "/fapi/v1/openAlgoOrders", symbol.map { [("symbol", $0)] } ?? [])
        guard let open = try? JSONDecoder().decode([AlgoOrder].self, from: Data(body)) else {
            throw VenueError(.unreachable, "Binance openAlgoOrders answer is not what its documentation says")
        }
        return open
    }

    public func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError) {
        try await placeConditional(
            symbol: symbol,
            type: "STOP_MARKET",
            side: stop.side,
            trigger: stop.trigger,
            clientID: stop.clientID,
            quantity: stop.quantity
        )
    }

    /// The position's take-profit: a `closePosition` conditional order, so it fits whatever the quantity becomes.
    public func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError) {
        try await placeConditional(
            symbol: symbol,
            type: "TAKE_PROFIT_MARKET",
            side: side,
            trigger: price,
            clientID: clientID,
            quantity: nil
        )
    }

    func placeConditional(
        symbol: String,
        type: String,
        side: OrderSide,
        trigger: Money,
        clientID: String,
        quantity: Money?
    ) async throws(VenueError) {
        var parameters = [
            ("algoType", "CONDITIONAL"), ("symbol", symbol), ("side", side.rawValue), ("type", type),
            ("triggerPrice", "\(trigger)"),
            ("workingType", "MARK_PRICE"), ("clientAlgoId", clientID),
        ]
        if let quantity {
            parameters += [("quantity", "\(quantity)"), ("reduceOnly", "true")]
        } else {
            parameters.append(("closePosition", "true"))
        }
        let body: [UInt8]
        do {
            body = try await signed("POST", "/fapi/v1/algoOrder", parameters, unknownOnFailure: true)
        } catch {
            if error.code == .outcomeUnknown { algos = nil }  // placed or not: read the list again
            throw error
        }
        guard var placed = try? JSONDecoder().decode(AlgoOrder.self, from: Data(body)) else {
            algos = nil
            throw VenueError(.outcomeUnknown, "Binance algoOrder answer is not what its documentation says")
        }
        placed.symbol = symbol
        placed.orderType = placed.orderType ?? type
        placed.side = placed.side ?? side.rawValue
        placed.triggerPrice = placed.triggerPrice ?? "\(trigger)"
        placed.quantity = placed.quantity ?? quantity.map { "\($0)" }
        algos?.rows.removeAll { $0.clientAlgoId == clientID }
        algos?.rows.append(placed)
    }

    public func cancelStop(symbol: String, clientID: String) async throws(VenueError) {
        do {
            _ = try await signed("DELETE", "/fapi/v1/algoOrder", [("clientAlgoId", clientID)])
        } catch  where error.code == .rejected && (error.message.contains("-2011") || error.message.contains("-2013")) {
            // Unknown order: already cancelled, triggered or expired.
        }
        algos?.rows.removeAll { $0.clientAlgoId == clientID }
    }

    public func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder] {
        try await algoRows().filter { $0.symbol == symbol && $0.orderType == "STOP_MARKET" }.map {
            ExecutionKernel.StopOrder(
                clientID: $0.clientAlgoId,
                side: $0.side == "BUY" ? .buy : .sell,
                quantity: $0.quantity.flatMap { Money(string: $0) } ?? 0,
                trigger: $0.triggerPrice.flatMap { Money(string: $0) } ?? 0
            )
        }
    }

    /// The newest trade id of `symbol` at the exchange, as the cursor of a symbol with none: the
    /// history before our first order there is not ours to record.
    func baselineTradeCursor(_ symbol: String) async throws(VenueError) {
        guard lastTradeID[symbol] == nil else { return }
        struct Trade: Decodable { var id: Int64 }
        let body = try await signed("GET", "/fapi/v1/userTrades", [("symbol", symbol), ("limit", "1")])
        guard let trades = try? JSONDecoder().decode([Trade].self, from: Data(body)) else {
            throw VenueError(.unreachable, "Binance userTrades answer is not what its documentation says")
        }
        lastTradeID[symbol] = trades.map(\.id).max() ?? 0
    }

    /// A fill as `userTrades` lists it, or as the user-data stream's `ORDER_TRADE_UPDATE` carries it.
    struct Trade: Decodable, Sendable {
        var id: Int64
        var orderId: Int64
        var symbol: String
        var side: String
        var price: String
        var qty: String
        var commission: String
        var commissionAsset: String?
        var realizedPnl: String?
        var time: Int64
        /// The order's client id (the stream gives it; `userTrades` does not).
        var clientOrderId: String?
    }

    /// New fills of the symbols traded. With the user-data stream live they came with it, and REST
    /// reads only what it may have missed; otherwise `GET /fapi/v1/userTrades` (polling).
    public func events() async throws(VenueError) -> [VenueEvent] {
        let live = stream.phase == .live
        let generation = stream.generation
        let catchingUp = stream.phase == .catchingUp
        // Only the symbols whose fills can be new: a position that differs from what the fills built, an
        // order of ours with fills not read yet (or an outcome not known, for a minute), or no cursor yet.
        // The rest cost nothing. Read fresh each poll (one call for every symbol); the kernel's checks
        // until the next poll use it. While the stream is live, its position updates keep the rows
        // current, and a difference must last a few seconds (the fill may be on its way) before REST reads.
        let rows =
            live ? try await positionRows(maxAge: StreamTiming.positionsMaxAge) : try await positionRows(fresh: true)
        let amounts = Dictionary(rows.map { ($0.symbol, Money(string: $0.positionAmt) ?? 0) }) { $1 }
        let now = clock()
        for symbol in tradedSymbols.sorted() {
            let recent = ordersSent[symbol].map { now.timeIntervalSince($0) < 60 } ?? false
            let unread = awaiting.values.contains {
                $0.symbol == symbol && (!live || now.timeIntervalSince($0.since) > StreamTiming.grace)
            }
            var differs = amounts[symbol, default: 0] != book.signedQuantity(symbol)
            if differs && live {
                let since = stream.differsSince[symbol] ?? now
                stream.differsSince[symbol] = since
                differs = now.timeIntervalSince(since) > StreamTiming.grace
            } else if !differs {
                stream.differsSince[symbol] = nil
            }
            // Fills the stream brought are checked against REST now and then, which moves the cursor on.
            let unverified =
                !(stream.seen[symbol]?.isEmpty ?? true)
                && now.timeIntervalSince(stream.verifiedAt[symbol] ?? .distantPast) >= StreamTiming.verifyEvery
            guard catchingUp || recent || unread || unverified || lastTradeID[symbol] == nil || differs else {
                continue
            }
            var parameters = [("symbol", symbol)]
            if lastTradeID[symbol] == nil, let start = startTimes[symbol] {
                parameters.append(("startTime", String(Int64(start.timeIntervalSince1970 * 1000))))
            } else {
                try await baselineTradeCursor(symbol)
                parameters.append(("fromId", String((lastTradeID[symbol] ?? 0) + 1)))
            }
            let tradesBody = try await signed("GET", "/fapi/v1/userTrades", parameters)
            guard let trades = try? JSONDecoder().decode([Trade].self, from: Data(tradesBody)) else {
                throw VenueError(.unreachable, "Binance userTrades answer is not what its documentation says")
            }
            for trade in trades.sorted(by: { $0.id < $1.id }) where trade.id > lastTradeID[symbol] ?? 0 {
                try await record(trade, streamed: false)
            }
            stream.verifiedAt[symbol] = now
        }
        // Caught up with REST since the stream connected: from now on the stream brings the fills.
        if catchingUp, stream.phase == .catchingUp, stream.generation == generation {
            stream.phase = .live
            let backlog = stream.backlog
            stream.backlog = []
            for trade in backlog { try await record(trade, streamed: true) }
            logger.info("Binance user-data stream caught up; fills come with it, REST checks what it may miss")
        }
        return pending
    }

    /// One fill, from REST or from the stream, into the position book and the pending events, once:
    /// REST moves the trade-id cursor; a fill the stream brought first is remembered until REST lists it.
    func record(_ trade: Trade, streamed: Bool) async throws(VenueError) {
        let symbol = trade.symbol
        if streamed {
            guard tradedSymbols.contains(symbol), let cursor = lastTradeID[symbol], trade.id > cursor,
                stream.seen[symbol, default: []].insert(trade.id).inserted
            else { return }
            // REST checks it within `verifyEvery`, counted from the first fill it has not listed.
            if stream.verifiedAt[symbol] == nil { stream.verifiedAt[symbol] = clock() }
        } else if stream.seen[symbol]?.remove(trade.id) != nil {
            lastTradeID[symbol] = trade.id
            return
        }
        let fee: Money
        do {
            if let client = trade.clientOrderId, clientIDs[trade.orderId] == nil, ClientOrderID.isOurs(client) {
                clientIDs[trade.orderId] = client
            }
            if clientIDs[trade.orderId] == nil { try await learnOrder(trade.orderId, symbol: symbol) }
            fee = try await feeInQuote(
                Money(string: trade.commission) ?? 0,
                asset: trade.commissionAsset,
                symbol: symbol,
                time: trade.time
            )
        } catch {
            // Read again by REST: the next poll lists it (a streamed fill is no longer counted as seen).
            if streamed { stream.seen[symbol]?.remove(trade.id) }
            throw error
        }
        if !streamed { lastTradeID[symbol] = trade.id }
        if let expected = awaiting[trade.orderId] {
            let left = expected.quantity - (Money(string: trade.qty) ?? 0)
            awaiting[trade.orderId] = left > 0 ? (symbol, left, expected.since) : nil
        }
        let fill = VenueFill(
            tradeID: Self.tradeID(symbol: symbol, trade.id),
            clientOrderID: clientIDs[trade.orderId] ?? "binance-order-\(trade.orderId)",
            symbol: symbol,
            side: trade.side == "BUY" ? .buy : .sell,
            price: Money(string: trade.price) ?? 0,
            quantity: Money(string: trade.qty) ?? 0,
            fee: fee,
            time: Date(timeIntervalSince1970: Double(trade.time) / 1000)
        )
        pending.append(.fill(fill))
        // A close by an order of nobody's here (by hand at the exchange) is the venue's doing.
        let reason =
            protective[trade.orderId] ?? (ClientOrderID.isOurs(fill.clientOrderID) ? "exit" : "closed_at_venue")
        if let close = book.record(
            fill,
            realizedPnl: trade.realizedPnl.flatMap { Money(string: $0) } ?? 0,
            reason: reason
        ) {
            pending.append(.closed(close))
        }
    }

    /// A commission in the quote currency: one paid in another asset (BNB) is converted at that
    /// asset's price in the minute of the fill (its 1m candle's close on Binance futures), cached.
    func feeInQuote(_ amount: Money, asset: String?, symbol: String, time: Int64) async throws(VenueError) -> Money {
        let quote = ["USDT", "USDC"].first { symbol.hasSuffix($0) } ?? "USDT"
        guard let asset, asset != quote, amount != 0 else { return amount }
        let minute = time / 60_000 * 60_000
        let key = "\(asset)\(quote)@\(minute)"
        if let rate = feeRates[key] { return amount * rate }
        let body = try await get(
            "/fapi/v1/klines?symbol=\(asset)\(quote)&interval=1m&startTime=\(minute)&limit=1",
            priority: .order
        )
        guard let rows = try? JSONSerialization.jsonObject(with: Data(body)) as? [[Any]],
            let close = rows.first?[4] as? String,
            let rate = Money(string: close), rate > 0
        else {
            throw VenueError(
                .unreachable,
                "Binance has no \(asset)\(quote) price for the minute of a fill; its \(asset) fee cannot be converted yet"
            )
        }
        if feeRates.count > 1_000 { feeRates.removeAll() }
        feeRates[key] = rate
        return amount * rate
    }

    public func acknowledgeEvents(_ count: Int) async throws(VenueError) {
        pending.removeFirst(min(count, pending.count))
    }

    /// A fill's unique id: Binance numbers trades per symbol, so the symbol is part of it.
    static func tradeID(symbol: String, _ id: Int64) -> String { "binance-\(symbol)-\(id)" }

    /// An order this process did not place (before a restart, or a liquidation): its client id, and
    /// what its fill means.
    func learnOrder(_ orderID: Int64, symbol: String) async throws(VenueError) {
        struct Known: Decodable {
            var clientOrderId: String
            var type: String
        }
        let body = try await signed("GET", "/fapi/v1/order", [("symbol", symbol), ("orderId", String(orderID))])
        guard let known = try? JSONDecoder().decode(Known.self, from: Data(body)) else {
            throw VenueError(.unreachable, "Binance order query answer is not what its documentation says")
        }
        clientIDs[orderID] = known.clientOrderId
        guard protective[orderID] == nil else { return }
        // An order one of our conditional orders made when it triggered: its fills are that stop's or target's.
        if known.type == "MARKET", !known.clientOrderId.hasPrefix("autoclose-") {
            let body = try await signed("GET", "/fapi/v1/allAlgoOrders", [("symbol", symbol)])
            let all = (try? JSONDecoder().decode([AlgoOrder].self, from: Data(body))) ?? []
            if let algo = all.first(where: { $0.actualOrderId == String(orderID) }) {
                clientIDs[orderID] = algo.clientAlgoId
                protective[orderID] = algo.orderType == "TAKE_PROFIT_MARKET" ? "take_profit" : "stop_loss"
                return
            }
        }
        if known.clientOrderId.hasPrefix("autoclose-") {
            protective[orderID] = "liquidation"
        } else {
            switch known.type {
            case "STOP_MARKET": protective[orderID] = "stop_loss"
            case "TAKE_PROFIT_MARKET": protective[orderID] = "take_profit"
            default: break
            }
        }
    }

    /// Where the store stands after a restart: fills after the newest committed one are new; open
    /// positions are tracked from their store record, with their entry's fees.
    public func resume(_ state: VenueResume) async throws(VenueError) {
        tradedSymbols.formUnion(state.symbols)
        for (symbol, fills) in state.committedFills {
            let prefix = Self.tradeID(symbol: symbol, 0).dropLast()
            let ids = fills.compactMap {
                $0.tradeID.hasPrefix(prefix) ? Int64($0.tradeID.dropFirst(prefix.count)) : nil
            }
            if let newest = ids.max() { lastTradeID[symbol] = max(lastTradeID[symbol] ?? 0, newest) }
        }
        for position in state.openPositions { book.resume(position) }
        // Orders in flight at the restart on a symbol with no committed fill: from a minute before the oldest.
        for (symbol, since) in state.pendingSince where lastTradeID[symbol] == nil {
            startTimes[symbol] = since.addingTimeInterval(-60)
        }
    }

    /// An adopted position: its symbol's trades from the newest one on are followed.
    public func follow(_ position: VenuePosition) async throws(VenueError) {
        tradedSymbols.insert(position.symbol)
        try await baselineTradeCursor(position.symbol)
        book.resume(position)
    }

    /// Nothing to do: trailing, break-even and ATR stops are moved by the executor, through the kernel.
    public func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError) {}

    public func price(symbol: String) async throws(VenueError) -> Money? {
        struct Ticker: Decodable { var price: String }
        let body = try await get("/fapi/v1/ticker/price?symbol=\(symbol)")
        return (try? JSONDecoder().decode(Ticker.self, from: Data(body))).flatMap { Money(string: $0.price) }
    }
}
