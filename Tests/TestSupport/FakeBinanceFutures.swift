import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local Binance USDⓈ-M futures server implementing the documented subset the venue uses, that
/// checks every signature (`X-MBX-APIKEY`, HMAC-SHA256 of the query, timestamp within `recvWindow`)
/// and answers Binance's error format. Market orders fill at once at the ticker price (which is also
/// the mark price here).
///
/// As the real exchange does since 2025-12-09, `POST /fapi/v1/order` refuses conditional types
/// (`STOP_MARKET`, `TAKE_PROFIT_MARKET`, `STOP`, `TAKE_PROFIT`, `TRAILING_STOP_MARKET`) with -4120
/// `STOP_ORDER_SWITCH_ALGO`; they go through the algo-order API (`POST`/`DELETE`/`GET /fapi/v1/algoOrder`,
/// `GET /fapi/v1/openAlgoOrders`), which refuses a trigger already crossed by the mark price with
/// -2021 "Order would immediately trigger." A triggered conditional order becomes a market order
/// (its `actualOrderId`), whose fills `userTrades` lists.
///
/// The user-data stream is Binance's: `POST`/`PUT`/`DELETE /fapi/v1/listenKey` (API key, no
/// signature; a key lives 60 minutes unless kept alive, and `PUT` on an unknown key is -1125), and a
/// WebSocket at `/private/ws/<listenKey>` that pushes `ORDER_TRADE_UPDATE` for every fill,
/// `ACCOUNT_UPDATE` for every position change and `ALGO_UPDATE` for every conditional order's change,
/// and `listenKeyExpired` before it closes an expired key's connection. Fault modes: events dropped or
/// sent twice, connections dropped, the key expired early.
public final class FakeBinanceFutures: Sendable {
    public enum OrderFault: Sendable {
        case none
        /// The order is created, then Binance answers -1007 "execution status unknown".
        case unknownAfterCreate
        /// The order is created, and the answer comes only after `delay`: the caller times out first.
        case slowAfterCreate(Duration)
        /// Nothing happens: the connection is refused as if the exchange were down (HTTP 503, no order).
        case unavailable
        /// A market order fills `fraction` of its quantity, then expires (as in a thin book).
        case partialThenExpire(Decimal)
        /// A market order fills in `parts` trades (walking the book).
        case fillsInParts(Int)
    }

    /// What the next conditional order meets.
    /// What the next signed request gets instead of its answer: Binance's rate-limit refusals.
    public enum RateFault: Sendable {
        /// HTTP 429, -1003, with `Retry-After` seconds: too many requests.
        case tooManyRequests(retryAfter: Int)
        /// HTTP 418, -1003, with `Retry-After` seconds: the IP is banned.
        case banned(retryAfter: Int)
    }

    public enum AlgoFault: Sendable {
        /// Refused with this code and message (e.g. -2021, or -4120).
        case refuse(Int, String)
        /// HTTP 503 and nothing placed.
        case unavailable
        /// Placed, then the answer is lost (503 -1007).
        case lostAfterCreate
    }

    struct Algo: Sendable {
        var id: Int64
        var clientID: String
        var symbol: String
        var side: String
        var type: String
        var quantity: Decimal?
        var closePosition: Bool
        var trigger: Decimal
        var workingType: String
        var status: String
        var actualOrderID: Int64?
    }

    struct Order: Sendable {
        var id: Int64
        var clientID: String
        var symbol: String
        var side: String
        var type: String
        var quantity: Decimal
        var stopPrice: Decimal?
        var status: String
        var price: Decimal
        var executed: Decimal = 0
    }

    struct State {
        var orders: [Order] = []
        var positions: [String: Decimal] = [:]
        var entry: [String: Decimal] = [:]
        var trades:
            [(id: Int64, orderID: Int64, symbol: String, side: String, price: Decimal, qty: Decimal, realized: Decimal)] =
                []
        var prices: [String: Decimal] = [:]
        var leverage: [String: Int] = [:]
        var marginType: [String: String] = [:]
        var skewMillis: Int64 = 0
        var orderFaults: [OrderFault] = []
        var algoFaults: [AlgoFault] = []
        var algos: [Algo] = []
        var requests: [String] = []
        /// Each signed request's `recvWindow`: which client sent it, when clients differ in it.
        var windows: [String] = []
        /// When each signed request arrived.
        var requestTimes: [Date] = []
        var rateFaults: [RateFault] = []
        /// After a 429 or 418: requests before this time are refused again (Binance escalates them to bans).
        var blockedUntil = Date.distantPast
        /// Requests that came while blocked.
        var violations = 0
        /// Weight used in the current minute, reported in `X-MBX-USED-WEIGHT-1M`.
        var minute = 0
        var usedWeight = 0
        var nextOrderID: Int64 = 1
        var nextTradeID: Int64 = 1
        var tradeTimes: [Int64: Int64] = [:]
        /// Each trade's commission and its asset, as charged when it filled.
        var tradeFees: [Int64: (Decimal, String)] = [:]
        /// `userTrades` lists every trade twice, oldest last (a replayed, reordered feed).
        var duplicatedAndReordered = false
        /// The user-data stream: listen keys and their expiry, open connections by key, faults.
        var listenKeys: [String: Date] = [:]
        var listenKeyValidity: TimeInterval = 3_600
        var streams: [Int: (key: String, out: AsyncStream<String>.Continuation)] = [:]
        var nextStream = 0
        var streamsOpened = 0
        var dropStreamEvents = 0
        var duplicateStreamEvents = false
        var streamEventsSent: [String] = []
        var listenKeyRequests: [String] = []
        /// Commissions in BNB at this BNB price (nil: in USDT).
        var bnbFeePrice: Decimal?
        /// Leverage brackets by symbol (cap, maintenance rate, cum); any other symbol gets `defaultBrackets`.
        var brackets: [String: [(cap: Decimal, rate: Decimal, cum: Decimal)]] = [:]
        /// Each symbol's price over time (for klines).
        var priceHistory: [String: [(time: Int64, price: Decimal)]] = [:]
    }

    public let apiKey: String
    public let secret: String
    private let state = Mutex(State())
    private let server = ServerSlot()

    init(apiKey: String, secret: String) {
        self.apiKey = apiKey
        self.secret = secret
    }

    public static func start(
        apiKey: String = "test-key",
        secret: String = "test-secret"
    ) async throws -> FakeBinanceFutures {
        let fake = FakeBinanceFutures(apiKey: apiKey, secret: secret)
        let router = Router(context: BasicWebSocketRequestContext.self)
        fake.userDataRoutes(router)
        router.get("fapi/v1/time") { _, _ in fake.json(["serverTime": fake.serverTime]) }
        router.get("fapi/v1/exchangeInfo") { _, _ in
            // BTCUSDT, and every symbol that has a price.
            let symbols = Set(fake.state.withLock { Array($0.prices.keys) }).union(["BTCUSDT"]).sorted()
            return fake.json([
                "symbols": symbols.map { symbol in
                    [
                        "symbol": symbol,
                        "filters": [
                            ["filterType": "PRICE_FILTER", "tickSize": "0.10"],
                            ["filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"],
                            ["filterType": "MIN_NOTIONAL", "notional": "5"],
                        ],
                    ] as [String: Any]
                }
            ])
        }
        router.get("fapi/v1/ticker/price") { request, _ in
            let symbol = request.uri.queryParameters.get("symbol") ?? ""
            guard let price = fake.state.withLock({ $0.prices[symbol] }) else {
                return fake.error(400, -1121, "Invalid symbol.")
            }
            return fake.json(["symbol": symbol, "price": "\(price)"])
        }
        router.get("fapi/v2/account") { request, _ in
            try fake.signed(request) { _ in
                // 10,000 USDT to start, plus realised PnL less commissions, plus the open positions' PnL at the mark.
                let (total, margin) = fake.state.withLock { state in
                    let wallet = state.trades.reduce(Decimal(10_000)) {
                        $0 + $1.realized - $1.price * $1.qty * Decimal(string: "0.0005")!
                    }
                    var unrealised: Decimal = 0
                    var margin: Decimal = 0
                    for (symbol, amount) in state.positions {
                        let entry = state.entry[symbol] ?? 0
                        let mark = state.prices[symbol] ?? entry
                        unrealised += (mark - entry) * amount
                        margin += entry * amount.magnitude / Decimal(state.leverage[symbol] ?? 1)
                    }
                    return (wallet + unrealised, margin)
                }
                // Binance answers balances to 8 places; a margin divided by the leverage (by 3) would
                // otherwise run to 38 digits, which no real answer carries.
                return fake.json([
                    "totalMarginBalance": "\(total.rounded(8))", "availableBalance": "\((total - margin).rounded(8))",
                ])
            }
        }
        router.post("fapi/v1/leverage") { request, _ in
            try fake.signed(request) { q in
                fake.state.withLock { $0.leverage[q["symbol"] ?? ""] = Int(q["leverage"] ?? "1") }
                return fake.json(["leverage": Int(q["leverage"] ?? "1") ?? 1, "symbol": q["symbol"] ?? ""])
            }
        }
        router.post("fapi/v1/marginType") { request, _ in
            try fake.signed(request) { q in
                let symbol = q["symbol"] ?? ""
                let wanted = q["marginType"] ?? ""
                let before = fake.state.withLock { state in
                    defer { state.marginType[symbol] = wanted }
                    return state.marginType[symbol] ?? "CROSSED"
                }
                return before == wanted
                    ? fake.error(400, -4046, "No need to change margin type.")
                    : fake.json(["code": 200, "msg": "success"])
            }
        }
        router.post("fapi/v1/order") { request, _ in
            var delay: Duration?
            let response = try fake.signed(request) { q in
                let (response, slow) = fake.place(q)
                delay = slow
                return response
            }
            if let delay { try await Task.sleep(for: delay) }
            return response
        }
        router.post("fapi/v1/algoOrder") { request, _ in try fake.signed(request) { q in fake.placeAlgo(q) } }
        router.delete("fapi/v1/algoOrder") { request, _ in
            try fake.signed(request) { q in
                let found: Algo? = fake.state.withLock { state in
                    guard let index = state.algos.firstIndex(where: { fake.matches($0, q) && $0.status == "NEW" })
                    else { return nil }
                    state.algos[index].status = "CANCELED"
                    Self.emitAlgo(&state, state.algos[index])
                    return state.algos[index]
                }
                guard let found else { return fake.error(400, -2011, "Unknown order sent.") }
                return fake.json(["algoId": found.id, "clientAlgoId": found.clientID, "code": "200", "msg": "success"])
            }
        }
        router.get("fapi/v1/algoOrder") { request, _ in
            try fake.signed(request) { q in
                guard let found = fake.state.withLock({ $0.algos.first { fake.matches($0, q) } }) else {
                    return fake.error(400, -2013, "Order does not exist.")
                }
                return fake.json(fake.algoAnswer(found))
            }
        }
        router.get("fapi/v1/allAlgoOrders") { request, _ in
            try fake.signed(request) { q in
                fake.json(fake.state.withLock { $0.algos.filter { $0.symbol == q["symbol"] } }.map(fake.algoAnswer))
            }
        }
        router.get("fapi/v1/openAlgoOrders") { request, _ in
            try fake.signed(request) { q in
                fake.json(
                    fake.state.withLock {
                        $0.algos.filter { $0.status == "NEW" && (q["symbol"] == nil || $0.symbol == q["symbol"]) }
                    }.map(fake.algoAnswer)
                )
            }
        }
        router.get("fapi/v1/openOrders") { request, _ in
            try fake.signed(request) { q in
                let rows = fake.state.withLock { state in
                    state.orders.filter { $0.status == "NEW" && (q["symbol"] == nil || $0.symbol == q["symbol"]) }.map(
                        fake.answer
                    )
                }
                return fake.json(rows)
            }
        }
        router.get("fapi/v1/order") { request, _ in
            try fake.signed(request) { q in
                let found = fake.state.withLock { state in
                    state.orders.first { order in
                        order.symbol == q["symbol"]
                            && (q["origClientOrderId"].map { order.clientID == $0 }
                                ?? (q["orderId"].flatMap { Int64($0) } == order.id))
                    }
                }
                guard let order = found else {
                    return fake.error(400, -2013, "Order does not exist.")
                }
                return fake.json(fake.answer(order))
            }
        }
        router.delete("fapi/v1/allOpenOrders") { request, _ in
            try fake.signed(request) { q in
                fake.state.withLock { state in
                    for index in state.orders.indices
                    where state.orders[index].symbol == q["symbol"] && state.orders[index].status == "NEW" {
                        state.orders[index].status = "CANCELED"
                    }
                }
                return fake.json(["code": 200, "msg": "The operation of cancel all open order is done."])
            }
        }
        router.get("fapi/v1/leverageBracket") { request, _ in
            try fake.signed(request) { q in
                let symbols = q["symbol"].map { [$0] } ?? fake.state.withLock { Array($0.prices.keys) }
                let rows: [[String: Any]] = fake.state.withLock { state in
                    symbols.map { symbol in
                        let brackets = state.brackets[symbol] ?? Self.defaultBrackets
                        var floor: Decimal = 0
                        return [
                            "symbol": symbol,
                            "brackets": brackets.enumerated().map { index, bracket -> [String: Any] in
                                defer { floor = bracket.cap }
                                return [
                                    "bracket": index + 1, "initialLeverage": max(1, 125 >> index),
                                    "notionalCap": NSDecimalNumber(decimal: bracket.cap),
                                    "notionalFloor": NSDecimalNumber(decimal: floor),
                                    "maintMarginRatio": NSDecimalNumber(decimal: bracket.rate),
                                    "cum": NSDecimalNumber(decimal: bracket.cum),
                                ]
                            },
                        ]
                    }
                }
                return fake.json(rows)
            }
        }
        router.get("fapi/v2/positionRisk") { request, _ in
            try fake.signed(request) { _ in
                let rows = fake.state.withLock { state in
                    state.positions.map { symbol, amount in
                        [
                            "symbol": symbol, "positionAmt": "\(amount)", "entryPrice": "\(state.entry[symbol] ?? 0)",
                            "leverage": "\(state.leverage[symbol] ?? 1)", "updateTime": 0,
                        ] as [String: Any]
                    }
                }
                return fake.json(rows)
            }
        }
        router.get("fapi/v1/userTrades") { request, _ in
            try fake.signed(request) { q in
                // Without fromId: the most recent trades of the last seven days (limit, default 500).
                let now = fake.serverTime
                let limit = Int(q["limit"] ?? "500") ?? 500
                let rows = fake.state.withLock { state -> [[String: Any]] in
                    var trades = state.trades.filter { $0.symbol == q["symbol"] }
                    if let from = q["fromId"].flatMap({ Int64($0) }) {
                        trades = Array(trades.filter { $0.id >= from }.prefix(limit))
                    } else if let start = q["startTime"].flatMap({ Int64($0) }) {
                        trades = Array(trades.filter { (state.tradeTimes[$0.id] ?? now) >= start }.prefix(limit))
                    } else {
                        trades = Array(
                            trades.filter { now - (state.tradeTimes[$0.id] ?? now) <= 7 * 86_400_000 }.suffix(limit)
                        )
                    }
                    if state.duplicatedAndReordered { trades = (trades + trades).reversed() }
                    return trades.map {
                        let (fee, asset) =
                            state.tradeFees[$0.id] ?? Self.commission(state, price: $0.price, quantity: $0.qty)
                        return [
                            "id": $0.id, "orderId": $0.orderID, "symbol": $0.symbol, "side": $0.side,
                            "price": "\($0.price)", "qty": "\($0.qty)",
                            "commission": "\(fee)", "commissionAsset": asset, "realizedPnl": "\($0.realized)",
                            "time": state.tradeTimes[$0.id] ?? now,
                        ] as [String: Any]
                    }
                }
                return fake.json(rows)
            }
        }
        fake.server.set(
            try await LocalServer.start(
                router,
                server: .http1WebSocketUpgrade(webSocketRouter: router),
                label: "fake-binance"
            )
        )
        return fake
    }

    public func stop() async {
        await server.stop()
    }

    public var baseURL: String { "http://127.0.0.1:\(server.port)" }
    /// The symbol's price (and mark) from now, or from `time` in its price history (its klines).
    public func setPrice(_ symbol: String, _ price: Decimal, at time: Date? = nil) {
        state.withLock { state in
            state.prices[symbol] = price
            state.priceHistory[symbol, default: []].append(
                (Int64((time ?? Date()).timeIntervalSince1970 * 1000) + state.skewMillis, price)
            )
        }
    }

    /// The mark moves to `price`: a conditional order it crosses triggers, as a market order that
    /// closes (reduce-only, for its quantity; or the whole position) at that price.
    public func moveMarket(_ symbol: String, to price: Decimal) {
        state.withLock { state in
            state.prices[symbol] = price
            state.priceHistory[symbol, default: []].append(
                (Int64(Date().timeIntervalSince1970 * 1000) + state.skewMillis, price)
            )
            for index in state.algos.indices
            where state.algos[index].symbol == symbol && state.algos[index].status == "NEW" {
                let algo = state.algos[index]
                guard let amount = state.positions[symbol], amount != 0, (algo.side == "SELL") == (amount > 0) else {
                    continue
                }
                let long = amount > 0
                let crossed =
                    switch algo.type {
                    case "STOP_MARKET": long ? price <= algo.trigger : price >= algo.trigger
                    default: long ? price >= algo.trigger : price <= algo.trigger
                    }
                guard crossed else { continue }
                let size = amount.magnitude
                let quantity = algo.closePosition ? size : min(algo.quantity ?? size, size)
                let id = state.nextOrderID
                state.nextOrderID += 1
                state.orders.append(
                    Order(
                        id: id,
                        clientID: "autoalgo-\(algo.id)",
                        symbol: symbol,
                        side: algo.side,
                        type: "MARKET",
                        quantity: quantity,
                        stopPrice: nil,
                        status: "FILLED",
                        price: price
                    )
                )
                state.algos[index].status = "TRIGGERED"
                state.algos[index].actualOrderID = id
                Self.emitAlgo(&state, state.algos[index])
                Self.trade(
                    &state,
                    orderID: id,
                    symbol: symbol,
                    side: algo.side,
                    price: price,
                    quantity: quantity,
                    clientID: "autoalgo-\(algo.id)",
                    reduceOnly: true
                )
                state.algos[index].status = "FINISHED"
                Self.emitAlgo(&state, state.algos[index])
            }
            // Conditional orders left with nothing to close expire.
            if state.positions[symbol] == nil {
                for index in state.algos.indices
                where state.algos[index].symbol == symbol && state.algos[index].status == "NEW" {
                    state.algos[index].status = "EXPIRED"
                    Self.emitAlgo(&state, state.algos[index])
                }
            }
        }
    }

    /// Books a trade and moves the position (entry price on opening, realised PnL on reducing).
    static func trade(
        _ state: inout State,
        orderID: Int64,
        symbol: String,
        side: String,
        price: Decimal,
        quantity: Decimal,
        time: Int64? = nil,
        clientID: String = "",
        reduceOnly: Bool = false
    ) {
        let signed = side == "BUY" ? quantity : -quantity
        let before = state.positions[symbol] ?? 0
        var realized: Decimal = 0
        if before != 0, (before > 0) != (signed > 0) {
            let entry = state.entry[symbol] ?? price
            realized = (before > 0 ? price - entry : entry - price) * min(quantity, before.magnitude)
        }
        let after = before + signed
        if before == 0 || (before > 0) != (after > 0) { state.entry[symbol] = price }
        state.positions[symbol] = after == 0 ? nil : after
        let id = state.nextTradeID
        state.nextTradeID += 1
        state.trades.append((id, orderID, symbol, side, price, quantity, realized))
        let at = time ?? (Int64(Date().timeIntervalSince1970 * 1000) + state.skewMillis)
        state.tradeTimes[id] = at
        let (fee, asset) = commission(state, price: price, quantity: quantity)
        state.tradeFees[id] = (fee, asset)
        let client = clientID.isEmpty ? state.orders.first { $0.id == orderID }?.clientID ?? "" : clientID
        emit(
            &state,
            """
            {"e":"ORDER_TRADE_UPDATE","E":\(at),"T":\(at),"o":{"s":"\(symbol)","c":"\(client)","S":"\(side)","o":"MARKET","f":"GTC","q":"\(quantity)",\
            "p":"0","ap":"\(price)","sp":"0","x":"TRADE","X":"FILLED","i":\(orderID),"l":"\(quantity)","z":"\(quantity)","L":"\(price)","N":"\(asset)",\
            "n":"\(fee)","T":\(at),"t":\(id),"b":"0","a":"0","m":false,"R":\(reduceOnly),"wt":"CONTRACT_PRICE","ot":"MARKET","ps":"BOTH","cp":false,\
            "rp":"\(realized)","pP":false,"si":0,"ss":0,"V":"EXPIRE_TAKER","pm":"NONE","gtd":0}}
            """
        )
        emit(
            &state,
            """
            {"e":"ACCOUNT_UPDATE","E":\(at),"T":\(at),"a":{"m":"ORDER","B":[{"a":"USDT","wb":"0","cw":"0","bc":"0"}],"P":[{"s":"\(symbol)",\
            "pa":"\(after)","ep":"\(state.entry[symbol] ?? 0)","bep":"0","cr":"0","up":"0","mt":"isolated","iw":"0","ps":"BOTH"}]}}
            """
        )
    }

    /// A fill's commission and its asset: 0.05 % taker, in USDT, or in BNB at `bnbFeePrice`.
    static func commission(_ state: State, price: Decimal, quantity: Decimal) -> (Decimal, String) {
        let usdt = price * quantity * Decimal(string: "0.0005")!
        guard state.bnbFeePrice != nil, let bnb = state.prices["BNBUSDT"] else { return (usdt, "USDT") }
        return ((usdt / bnb).rounded(8), "BNB")
    }

    /// Pushes a user-data event to every open stream (or drops it, or sends it twice, by the faults).
    static func emit(_ state: inout State, _ text: String) {
        guard !state.streams.isEmpty else { return }
        if state.dropStreamEvents > 0 {
            state.dropStreamEvents -= 1
            return
        }
        state.streamEventsSent.append(text)
        for stream in state.streams.values {
            stream.out.yield(text)
            if state.duplicateStreamEvents { stream.out.yield(text) }
        }
    }

    /// An `ALGO_UPDATE` for a conditional order's new status.
    static func emitAlgo(_ state: inout State, _ algo: Algo) {
        let now = Int64(Date().timeIntervalSince1970 * 1000) + state.skewMillis
        emit(
            &state,
            """
            {"e":"ALGO_UPDATE","T":\(now),"E":\(now),"o":{"caid":"\(algo.clientID)","aid":\(algo.id),"at":"CONDITIONAL","o":"\(algo.type)",\
            "s":"\(algo.symbol)","S":"\(algo.side)","ps":"BOTH","f":"GTC","q":"\(algo.quantity ?? 0)","X":"\(algo.status)",\
            "ai":"\(algo.actualOrderID.map { String($0) } ?? "")","ap":"0","aq":"0","act":"MARKET","tp":"\(algo.trigger)","p":"0","V":"EXPIRE_MAKER",\
            "wt":"\(algo.workingType)","pm":"NONE","cp":\(algo.closePosition),"pP":false,"R":\(!algo.closePosition),"tt":0,"gtd":0}}
            """
        )
    }

    /// Someone cancels the symbol's open orders (the protective stop among them) behind our back.
    public func cancelOpenOrders(_ symbol: String) {
        state.withLock { state in
            for index in state.orders.indices
            where state.orders[index].symbol == symbol && state.orders[index].status == "NEW" {
                state.orders[index].status = "CANCELED"
            }
            for index in state.algos.indices
            where state.algos[index].symbol == symbol && state.algos[index].status == "NEW" {
                state.algos[index].status = "CANCELED"
                Self.emitAlgo(&state, state.algos[index])
            }
        }
    }

    /// A trader's own trades on `symbol` from `daysAgo` days back (orders this system never placed):
    /// what `userTrades` without `fromId` shows after a restart. They leave the account flat.
    public func seedHistory(_ symbol: String, roundTrips: Int, daysAgo: Double) {
        state.withLock { state in
            let start = Int64((Date().timeIntervalSince1970 - daysAgo * 86_400) * 1000)
            for trip in 0..<roundTrips {
                for side in ["BUY", "SELL"] {
                    let id = state.nextOrderID
                    state.nextOrderID += 1
                    let price = state.prices[symbol] ?? 100
                    state.orders.append(
                        Order(
                            id: id,
                            clientID: "web_\(id)",
                            symbol: symbol,
                            side: side,
                            type: "MARKET",
                            quantity: 1,
                            stopPrice: nil,
                            status: "FILLED",
                            price: price
                        )
                    )
                    Self.trade(
                        &state,
                        orderID: id,
                        symbol: symbol,
                        side: side,
                        price: price,
                        quantity: 1,
                        time: start + Int64(trip) * 3_600_000
                    )
                }
            }
        }
    }

    /// Opens a position by hand at the exchange (not through the API under test).
    public func openByHand(_ symbol: String, side: String, quantity: Decimal) {
        state.withLock { state in
            let id = state.nextOrderID
            state.nextOrderID += 1
            let price = state.prices[symbol] ?? 100
            state.orders.append(
                Order(
                    id: id,
                    clientID: "web_\(id)",
                    symbol: symbol,
                    side: side,
                    type: "MARKET",
                    quantity: quantity,
                    stopPrice: nil,
                    status: "FILLED",
                    price: price
                )
            )
            Self.trade(&state, orderID: id, symbol: symbol, side: side, price: price, quantity: quantity)
        }
    }

    // MARK: User-data stream

    func userDataRoutes(_ router: Router<BasicWebSocketRequestContext>) {
        // USER_STREAM endpoints: the API key, no signature. POST returns the active key (extended) or a new one.
        router.post("fapi/v1/listenKey") { request, _ in
            guard request.headers[.init("X-MBX-APIKEY")!] == self.apiKey else {
                return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            }
            let key = self.state.withLock { state -> String in
                state.listenKeyRequests.append("POST")
                let now = Date()
                let key =
                    state.listenKeys.first { $0.value > now }?.key
                    ?? (0..<64).map { _ in
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".randomElement()!
                    }.map(String.init).joined()
                state.listenKeys[key] = now.addingTimeInterval(state.listenKeyValidity)
                return key
            }
            return self.json(["listenKey": key])
        }
        router.put("fapi/v1/listenKey") { request, _ in
            guard request.headers[.init("X-MBX-APIKEY")!] == self.apiKey else {
                return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            }
            let key = self.state.withLock { state -> String? in
                state.listenKeyRequests.append("PUT")
                let now = Date()
                guard let key = state.listenKeys.first(where: { $0.value > now })?.key else { return nil }
                state.listenKeys[key] = now.addingTimeInterval(state.listenKeyValidity)
                return key
            }
            guard let key else { return self.error(400, -1125, "This listenKey does not exist.") }
            return self.json(["listenKey": key])
        }
        router.delete("fapi/v1/listenKey") { request, _ in
            guard request.headers[.init("X-MBX-APIKEY")!] == self.apiKey else {
                return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            }
            self.state.withLock { state in
                state.listenKeyRequests.append("DELETE")
                state.listenKeys.removeAll()
                for stream in state.streams.values { stream.out.finish() }
            }
            return self.json([String: String]())
        }
        router.ws("private/ws/:listenKey") { inbound, outbound, context in
            let key = String(context.request.uri.path.split(separator: "/").last ?? "")
            try await self.serveUserData(key: key, inbound: inbound, outbound: outbound)
        }
        router.get("fapi/v1/klines") { request, _ in
            // Public: 1m candles from the prices set, enough to price a fee asset at a fill's time.
            let q = request.uri.queryParameters
            let symbol = q.get("symbol") ?? ""
            let start = q.get("startTime").flatMap { Int64($0) } ?? 0
            let minute = start / 60_000 * 60_000
            let rows: [[Any]] = self.state.withLock { state in
                let history = state.priceHistory[symbol] ?? []
                let inside = history.filter { $0.time >= minute && $0.time < minute + 60_000 }.map(\.price)
                guard let last = inside.last ?? history.last(where: { $0.time < minute })?.price else { return [] }
                let open = inside.first ?? last
                return [
                    [
                        minute, "\(open)", "\((inside + [open]).max()!)", "\((inside + [open]).min()!)", "\(last)", "0",
                        minute + 59_999, "0", 0, "0", "0", "0",
                    ]
                ]
            }
            return self.json(rows)
        }
    }

    /// One user-data connection: refused for an unknown or expired key; pushes the events; says
    /// `listenKeyExpired` and closes once its key expires.
    func serveUserData(key: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (events, continuation) = AsyncStream<String>.makeStream()
        let id: Int? = state.withLock { state in
            guard let expiry = state.listenKeys[key], expiry > Date() else { return nil }
            let id = state.nextStream
            state.nextStream += 1
            state.streamsOpened += 1
            state.streams[id] = (key, continuation)
            return id
        }
        guard let id else { return }
        defer { _ = state.withLock { $0.streams.removeValue(forKey: id) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                for try await _ in inbound.messages(maxSize: 1 << 16) {}
            }
            group.addTask {
                // The key's expiry, checked as Binance does: the stream says so, then closes.
                while true {
                    try await Task.sleep(for: .milliseconds(100))
                    let expired = self.state.withLock { ($0.listenKeys[key] ?? .distantPast) <= Date() }
                    if expired {
                        continuation.yield(#"{"e":"listenKeyExpired","E":\#(self.serverTime),"listenKey":"\#(key)"}"#)
                        continuation.finish()
                        return
                    }
                }
            }
            for await text in events { try await outbound.write(.text(text)) }
            group.cancelAll()
        }
    }

    /// Binance's documented ETHUSDT example's first brackets, continued: 0.65 % to 10,000, 1 % to
    /// 100,000 (cum 35), 2 % beyond (cum 1,035).
    static let defaultBrackets: [(cap: Decimal, rate: Decimal, cum: Decimal)] = [
        (10_000, Decimal(string: "0.0065")!, 0), (100_000, Decimal(string: "0.01")!, 35),
        (10_000_000, Decimal(string: "0.02")!, 1_035),
    ]
    /// The symbol's leverage brackets from now on: cap, maintenance rate, cum.
    public func setBrackets(_ symbol: String, _ brackets: [(cap: Decimal, rate: Decimal, cum: Decimal)]) {
        state.withLock { $0.brackets[symbol] = brackets }
    }

    /// Listen keys expire this long after their last `POST` or `PUT` (Binance: 60 minutes).
    public func setListenKeyValidity(_ seconds: TimeInterval) { state.withLock { $0.listenKeyValidity = seconds } }
    /// Every listen key expires now: open streams get `listenKeyExpired` and close.
    public func expireListenKeys() {
        state.withLock { state in for key in state.listenKeys.keys { state.listenKeys[key] = .distantPast } }
    }
    /// The next `count` user-data events are lost (never sent).
    public func dropNextStreamEvents(_ count: Int) { state.withLock { $0.dropStreamEvents += count } }
    /// From now on every user-data event is sent twice.
    public func duplicateStreamEvents() { state.withLock { $0.duplicateStreamEvents = true } }
    /// Every user-data connection is cut (as a network drop or Binance's 24-hour limit does).
    public func dropStreamConnections() {
        state.withLock { state in for stream in state.streams.values { stream.out.finish() } }
    }
    /// User-data connections open now, and opened in all.
    public var streamsOpen: Int { state.withLock { $0.streams.count } }
    public var streamsOpened: Int { state.withLock { $0.streamsOpened } }
    /// User-data events sent so far, and the listen-key calls (POST, PUT, DELETE).
    public var streamEventsSent: [String] { state.withLock { $0.streamEventsSent } }
    public var listenKeyRequests: [String] { state.withLock { $0.listenKeyRequests } }
    /// Commissions are paid in BNB from now on, at this BNB price (its price in USDT is set too).
    public func payFeesInBNB(price: Decimal) {
        setPrice("BNBUSDT", price)
        state.withLock { $0.bnbFeePrice = price }
    }

    public func failNextAlgoOrders(_ faults: [AlgoFault]) { state.withLock { $0.algoFaults += faults } }
    /// From now on `userTrades` lists every trade twice and newest first: duplicated, reordered fills.
    public func duplicateAndReorderTrades() { state.withLock { $0.duplicatedAndReordered = true } }
    /// The account's position in `symbol` (signed).
    public func position(_ symbol: String) -> Decimal { state.withLock { $0.positions[symbol] ?? 0 } }
    /// Open conditional orders: type, side, quantity (nil for closePosition), trigger, client id, symbol.
    public var openAlgoOrders:
        [(type: String, side: String, quantity: Decimal?, trigger: Decimal, clientID: String, symbol: String)]
    {
        state.withLock {
            $0.algos.filter { $0.status == "NEW" }.map {
                ($0.type, $0.side, $0.quantity, $0.trigger, $0.clientID, $0.symbol)
            }
        }
    }

    /// Each conditional order's `workingType` (the price it triggers on), by client id.
    public var algoWorkingTypes: [String: String] {
        state.withLock { Dictionary($0.algos.map { ($0.clientID, $0.workingType) }) { $1 } }
    }

    /// The server's clock runs this far ahead of ours.
    public func setClockSkew(millis: Int64) { state.withLock { $0.skewMillis = millis } }
    public func failNextOrders(_ faults: [OrderFault]) { state.withLock { $0.orderFaults += faults } }
    /// How many signed requests came with this `recvWindow` (tells two clients of one account apart).
    public func signedRequests(recvWindow: Int) -> Int {
        state.withLock { $0.windows.filter { $0 == String(recvWindow) }.count }
    }
    /// Paths of the requests so far.
    public var requests: [String] { state.withLock { $0.requests } }
    /// Orders as placed, conditional ones included: type, side, stop (trigger) price, status, client id.
    public var orders: [(type: String, side: String, stopPrice: Decimal?, status: String, clientID: String)] {
        state.withLock { state in
            state.orders.map { ($0.type, $0.side, $0.stopPrice, $0.status, $0.clientID) }
                + state.algos.map { ($0.type, $0.side, $0.trigger, $0.status, $0.clientID) }
        }
    }

    var serverTime: Int64 { Int64(Date().timeIntervalSince1970 * 1000) + state.withLock { $0.skewMillis } }

    /// Checks key, signature and timestamp as Binance does, then answers.
    func signed(_ request: Request, _ body: ([String: String]) -> Response) throws -> Response {
        let query = request.uri.query ?? ""
        let now = Date()
        let refusal = state.withLock { state -> Response? in
            state.requests.append(request.uri.path)
            state.requestTimes.append(now)
            if now < state.blockedUntil {
                state.violations += 1
                return error(
                    429,
                    -1003,
                    "Too many requests; current limit is 2400 request weight per 1 MINUTE.",
                    retryAfter: Int(state.blockedUntil.timeIntervalSince(now).rounded(.up))
                )
            }
            guard !state.rateFaults.isEmpty else { return nil }
            switch state.rateFaults.removeFirst() {
            case .tooManyRequests(let seconds):
                state.blockedUntil = now.addingTimeInterval(Double(seconds))
                return error(
                    429,
                    -1003,
                    "Too many requests; current limit is 2400 request weight per 1 MINUTE. Please use the websocket for live updates to avoid polling the API.",
                    retryAfter: seconds
                )
            case .banned(let seconds):
                state.blockedUntil = now.addingTimeInterval(Double(seconds))
                let until = Int64(state.blockedUntil.timeIntervalSince1970 * 1000)
                return error(
                    418,
                    -1003,
                    "Way too many requests; IP banned until \(until). Please use the websocket for live updates to avoid bans.",
                    retryAfter: seconds
                )
            }
        }
        if let refusal { return refusal }
        guard request.headers[.init("X-MBX-APIKEY")!] == apiKey else {
            return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        }
        guard let range = query.range(of: "&signature=") else {
            return error(400, -1102, "Mandatory parameter 'signature' was not sent.")
        }
        let payload = String(query[..<range.lowerBound])
        let signature = String(query[range.upperBound...])
        guard HMACSigning.sha256Hex(payload.utf8, secret: secret) == signature else {
            return error(400, -1022, "Signature for this request is not valid.")
        }
        var parameters: [String: String] = [:]
        for pair in payload.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { parameters[parts[0]] = parts[1].removingPercentEncoding ?? parts[1] }
        }
        state.withLock { $0.windows.append(parameters["recvWindow"] ?? "") }
        guard let timestamp = Int64(parameters["timestamp"] ?? ""),
            let window = Int64(parameters["recvWindow"] ?? "5000"),
            timestamp < serverTime + 1_000, serverTime - timestamp <= window
        else {
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        }
        var response = body(parameters)
        let used = state.withLock { state -> Int in
            let minute = Int(now.timeIntervalSince1970 / 60)
            if minute != state.minute {
                state.minute = minute
                state.usedWeight = 0
            }
            state.usedWeight += Self.weight(
                request.method.rawValue,
                request.uri.path,
                bySymbol: parameters["symbol"] != nil
            )
            return state.usedWeight
        }
        response.headers[.init("X-MBX-USED-WEIGHT-1M")!] = "\(used)"
        return response
    }

    /// A request's weight as Binance's USDⓈ-M documentation lists it.
    static func weight(_ method: String, _ path: String, bySymbol: Bool) -> Int {
        switch (method, path) {
        case ("GET", "/fapi/v2/account"), ("GET", "/fapi/v2/positionRisk"), ("GET", "/fapi/v1/userTrades"),
            ("GET", "/fapi/v1/allAlgoOrders"):
            5
        case ("GET", "/fapi/v1/openAlgoOrders"), ("GET", "/fapi/v1/openOrders"): bySymbol ? 1 : 40
        case ("POST", "/fapi/v1/order"): 0  // orders count against the order-rate limits, not the weight
        default: 1
        }
    }

    /// The next signed requests get these rate-limit refusals, in order.
    public func failNextRequests(_ faults: [RateFault]) { state.withLock { $0.rateFaults += faults } }
    /// When each signed request arrived.
    public var requestTimes: [Date] { state.withLock { $0.requestTimes } }
    /// Requests that came while a 429 or 418 said to wait.
    public var violations: Int { state.withLock { $0.violations } }

    static let conditionalTypes: Set<String> = [
        "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET",
    ]

    /// Places the order (or not, by the next fault); the answer, and how long to hold it back.
    func place(_ q: [String: String]) -> (Response, Duration?) {
        if Self.conditionalTypes.contains(q["type"] ?? "") {
            return (
                error(
                    400,
                    -4120,
                    "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
                ), nil
            )
        }
        let fault = state.withLock { $0.orderFaults.isEmpty ? OrderFault.none : $0.orderFaults.removeFirst() }
        if case .unavailable = fault {
            return (error(503, -1001, "Internal error; unable to process your request. Please try again."), nil)
        }
        let symbol = q["symbol"] ?? ""
        let side = q["side"] ?? "BUY"
        let reduceOnly = q["reduceOnly"] == "true"
        let placed = state.withLock { state -> Order? in
            let held = state.positions[symbol] ?? 0
            if reduceOnly && (held == 0 || (held > 0) == (side == "BUY")) { return nil }
            let id = state.nextOrderID
            state.nextOrderID += 1
            let price = state.prices[symbol] ?? 0
            var quantity = Decimal(string: q["quantity"] ?? "0") ?? 0
            var order = Order(
                id: id,
                clientID: q["newClientOrderId"] ?? "auto-\(id)",
                symbol: symbol,
                side: side,
                type: q["type"] ?? "MARKET",
                quantity: quantity,
                stopPrice: nil,
                status: "NEW",
                price: price
            )
            if order.type == "MARKET" {
                if reduceOnly { quantity = min(quantity, held.magnitude) }
                if case .partialThenExpire(let fraction) = fault { quantity *= fraction }
                order.status = quantity < order.quantity ? "EXPIRED" : "FILLED"
                order.executed = quantity
                let parts = if case .fillsInParts(let count) = fault { max(1, count) } else { 1 }
                var left = quantity
                for part in 1...parts {
                    let piece = part == parts ? left : (quantity / Decimal(parts)).rounded(3)
                    left -= piece
                    Self.trade(
                        &state,
                        orderID: id,
                        symbol: symbol,
                        side: side,
                        price: price,
                        quantity: piece,
                        clientID: order.clientID,
                        reduceOnly: reduceOnly
                    )
                }
            }
            state.orders.append(order)
            return order
        }
        guard let order = placed else { return (error(400, -2022, "ReduceOnly Order is rejected."), nil) }
        switch fault {
        case .unknownAfterCreate:
            return (
                error(
                    503,
                    -1007,
                    "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
                ), nil
            )
        case .slowAfterCreate(let delay): return (json(answer(order)), delay)
        default: return (json(answer(order)), nil)
        }
    }

    /// A conditional order on the algo-order API, checked as Binance checks it.
    func placeAlgo(_ q: [String: String]) -> Response {
        guard q["algoType"] == "CONDITIONAL" else { return error(400, -1116, "Invalid orderType.") }
        guard let type = q["type"], Self.conditionalTypes.contains(type) else {
            return error(400, -1116, "Invalid orderType.")
        }
        guard let trigger = q["triggerPrice"].flatMap({ Decimal(string: $0) }) else {
            return error(400, -1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.")
        }
        let closePosition = q["closePosition"] == "true"
        let quantity = q["quantity"].flatMap { Decimal(string: $0) }
        if closePosition && quantity != nil { return error(400, -1106, "Parameter 'quantity' sent when not required.") }
        if !closePosition && quantity == nil {
            return error(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        }
        let fault = state.withLock { $0.algoFaults.isEmpty ? nil : $0.algoFaults.removeFirst() }
        switch fault {
        case .refuse(let code, let message): return error(400, code, message)
        case .unavailable: return error(503, -1001, "Internal error; unable to process your request. Please try again.")
        default: break
        }
        let symbol = q["symbol"] ?? ""
        let side = q["side"] ?? "SELL"
        let result = state.withLock { state -> Algo? in
            // Judged on the price it triggers on: the mark price here (the ticker stands for both).
            let mark = state.prices[symbol] ?? 0
            let closesLong = side == "SELL"
            let immediate =
                type.hasPrefix("STOP") || type == "TRAILING_STOP_MARKET"
                ? (closesLong ? mark <= trigger : mark >= trigger) : (closesLong ? mark >= trigger : mark <= trigger)
            guard !immediate else { return nil }
            let id = state.nextOrderID + 1_000_000
            state.nextOrderID += 1
            let algo = Algo(
                id: id,
                clientID: q["clientAlgoId"] ?? "algo-\(id)",
                symbol: symbol,
                side: side,
                type: type,
                quantity: quantity,
                closePosition: closePosition,
                trigger: trigger,
                workingType: q["workingType"] ?? "CONTRACT_PRICE",
                status: "NEW",
                actualOrderID: nil
            )
            state.algos.append(algo)
            Self.emitAlgo(&state, algo)
            return algo
        }
        guard let algo = result else { return error(400, -2021, "Order would immediately trigger.") }
        if case .lostAfterCreate = fault {
            return error(
                503,
                -1007,
                "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
            )
        }
        return json(algoAnswer(algo))
    }

    func matches(_ algo: Algo, _ q: [String: String]) -> Bool {
        if let id = (q["algoId"] ?? q["algoid"]).flatMap({ Int64($0) }) { return algo.id == id }
        if let client = q["clientAlgoId"] ?? q["clientalgoid"] { return algo.clientID == client }
        return false
    }

    func algoAnswer(_ algo: Algo) -> [String: Any] {
        [
            "algoId": algo.id, "clientAlgoId": algo.clientID, "algoType": "CONDITIONAL", "orderType": algo.type,
            "symbol": algo.symbol, "side": algo.side,
            "positionSide": "BOTH", "timeInForce": "GTC", "quantity": algo.quantity.map { "\($0)" } ?? "0",
            "algoStatus": algo.status,
            "triggerPrice": "\(algo.trigger)", "price": "0", "workingType": algo.workingType,
            "closePosition": algo.closePosition,
            "reduceOnly": !algo.closePosition, "actualOrderId": algo.actualOrderID.map { String($0) } ?? "",
            "createTime": serverTime, "updateTime": serverTime,
        ]
    }

    func answer(_ order: Order) -> [String: Any] {
        [
            "orderId": order.id, "clientOrderId": order.clientID, "symbol": order.symbol, "side": order.side,
            "type": order.type, "status": order.status,
            "origQty": "\(order.quantity)", "executedQty": "\(order.executed)",
            "avgPrice": "\(order.executed > 0 ? order.price : 0)",
            "reduceOnly": false, "stopPrice": "\(order.stopPrice ?? 0)",
        ]
    }

    func json(_ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    func error(_ status: Int, _ code: Int, _ message: String, retryAfter: Int? = nil) -> Response {
        var response = Response(
            status: .init(code: status),
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: #"{"code":\#(code),"msg":"\#(message)"}"#))
        )
        if let retryAfter { response.headers[.init("Retry-After")!] = "\(retryAfter)" }
        return response
    }
}
