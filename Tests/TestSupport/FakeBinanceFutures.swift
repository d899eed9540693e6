import Foundation
import HTTPSupport
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local Binance USDⓈ-M futures server implementing the documented subset the venue uses, that
/// checks every signature (`X-MBX-APIKEY`, HMAC-SHA256 of the query, timestamp within `recvWindow`)
/// and answers Binance's error format. Market orders fill at once at the ticker price.
public final class FakeBinanceFutures: Sendable {
    public enum OrderFault: Sendable {
        case none
        /// The order is created, then Binance answers -1007 "execution status unknown".
        case unknownAfterCreate
        /// The order is created, and the answer comes only after `delay`: the caller times out first.
        case slowAfterCreate(Duration)
        /// Nothing happens: the connection is refused as if the exchange were down (HTTP 503, no order).
        case unavailable
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
    }

    struct State {
        var orders: [Order] = []
        var positions: [String: Decimal] = [:]
        var entry: [String: Decimal] = [:]
        var trades: [(id: Int64, orderID: Int64, symbol: String, side: String, price: Decimal, qty: Decimal, realized: Decimal)] = []
        var prices: [String: Decimal] = [:]
        var leverage: [String: Int] = [:]
        var marginType: [String: String] = [:]
        var skewMillis: Int64 = 0
        var orderFaults: [OrderFault] = []
        var requests: [String] = []
    }

    public let apiKey: String
    public let secret: String
    private let state = Mutex(State())
    private let server = ServerSlot()

    init(apiKey: String, secret: String) {
        self.apiKey = apiKey
        self.secret = secret
    }

    public static func start(apiKey: String = "test-key", secret: String = "test-secret") async throws -> FakeBinanceFutures {
        let fake = FakeBinanceFutures(apiKey: apiKey, secret: secret)
        let router = Router()
        router.get("fapi/v1/time") { _, _ in fake.json(["serverTime": fake.serverTime]) }
        router.get("fapi/v1/exchangeInfo") { _, _ in
            // BTCUSDT, and every symbol that has a price.
            let symbols = Set(fake.state.withLock { Array($0.prices.keys) }).union(["BTCUSDT"]).sorted()
            return fake.json(["symbols": symbols.map { symbol in
                ["symbol": symbol, "filters": [
                    ["filterType": "PRICE_FILTER", "tickSize": "0.10"], ["filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"],
                    ["filterType": "MIN_NOTIONAL", "notional": "5"],
                ]] as [String: Any]
            }])
        }
        router.get("fapi/v1/ticker/price") { request, _ in
            let symbol = request.uri.queryParameters.get("symbol") ?? ""
            guard let price = fake.state.withLock({ $0.prices[symbol] }) else { return fake.error(400, -1121, "Invalid symbol.") }
            return fake.json(["symbol": symbol, "price": "\(price)"])
        }
        router.get("fapi/v2/account") { request, _ in try fake.signed(request) { _ in fake.json(["totalMarginBalance": "10000.00", "availableBalance": "9000.00"]) } }
        router.post("fapi/v1/leverage") { request, _ in
            try fake.signed(request) { q in
                fake.state.withLock { $0.leverage[q["symbol"] ?? ""] = Int(q["leverage"] ?? "1") }
                return fake.json(["leverage": Int(q["leverage"] ?? "1") ?? 1, "symbol": q["symbol"] ?? ""])
            }
        }
        router.post("fapi/v1/marginType") { request, _ in
            try fake.signed(request) { q in
                let symbol = q["symbol"] ?? "", wanted = q["marginType"] ?? ""
                let before = fake.state.withLock { state in
                    defer { state.marginType[symbol] = wanted }
                    return state.marginType[symbol] ?? "CROSSED"
                }
                return before == wanted ? fake.error(400, -4046, "No need to change margin type.") : fake.json(["code": 200, "msg": "success"])
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
        router.get("fapi/v1/openOrders") { request, _ in
            try fake.signed(request) { q in
                let rows = fake.state.withLock { state in
                    state.orders.filter { $0.status == "NEW" && (q["symbol"] == nil || $0.symbol == q["symbol"]) }.map(fake.answer)
                }
                return fake.json(rows)
            }
        }
        router.get("fapi/v1/order") { request, _ in
            try fake.signed(request) { q in
                let found = fake.state.withLock { state in
                    state.orders.first { order in
                        order.symbol == q["symbol"] && (q["origClientOrderId"].map { order.clientID == $0 } ?? (q["orderId"].flatMap { Int64($0) } == order.id))
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
                    for index in state.orders.indices where state.orders[index].symbol == q["symbol"] && state.orders[index].status == "NEW" { state.orders[index].status = "CANCELED" }
                }
                return fake.json(["code": 200, "msg": "The operation of cancel all open order is done."])
            }
        }
        router.get("fapi/v2/positionRisk") { request, _ in
            try fake.signed(request) { _ in
                let rows = fake.state.withLock { state in
                    state.positions.map { symbol, amount in
                        ["symbol": symbol, "positionAmt": "\(amount)", "entryPrice": "\(state.entry[symbol] ?? 0)", "leverage": "\(state.leverage[symbol] ?? 1)", "updateTime": 0] as [String: Any]
                    }
                }
                return fake.json(rows)
            }
        }
        router.get("fapi/v1/userTrades") { request, _ in
            try fake.signed(request) { q in
                let from = Int64(q["fromId"] ?? "0") ?? 0
                let time = fake.serverTime
                let rows = fake.state.withLock { state in
                    state.trades.filter { $0.symbol == q["symbol"] && $0.id >= from }.map {
                        ["id": $0.id, "orderId": $0.orderID, "symbol": $0.symbol, "side": $0.side, "price": "\($0.price)", "qty": "\($0.qty)",
                         "commission": "\($0.price * $0.qty * Decimal(string: "0.0005")!)", "realizedPnl": "\($0.realized)", "time": time] as [String: Any]
                    }
                }
                return fake.json(rows)
            }
        }
        fake.server.set(try await LocalServer.start(router, label: "fake-binance"))
        return fake
    }

    public func stop() async {
        await server.stop()
    }

    public var baseURL: String { "http://127.0.0.1:\(server.port)" }
    public func setPrice(_ symbol: String, _ price: Decimal) { state.withLock { $0.prices[symbol] = price } }

    /// The mark moves to `price`: a protective order it crosses closes the position at that price.
    public func moveMarket(_ symbol: String, to price: Decimal) {
        state.withLock { state in
            state.prices[symbol] = price
            guard let amount = state.positions[symbol], amount != 0 else { return }
            let long = amount > 0
            guard let index = state.orders.firstIndex(where: { order in
                guard order.symbol == symbol, order.status == "NEW", let stop = order.stopPrice else { return false }
                switch order.type {
                case "STOP_MARKET": return long ? price <= stop : price >= stop
                case "TAKE_PROFIT_MARKET": return long ? price >= stop : price <= stop
                default: return false
                }
            }) else { return }
            state.orders[index].status = "FILLED"
            let quantity = amount < 0 ? -amount : amount, entry = state.entry[symbol] ?? price
            let realized = (long ? price - entry : entry - price) * quantity
            state.trades.append((Int64(state.trades.count + 1), state.orders[index].id, symbol, long ? "SELL" : "BUY", price, quantity, realized))
            state.positions[symbol] = nil
            // closePosition orders left over have nothing to close: Binance expires them.
            for other in state.orders.indices where state.orders[other].symbol == symbol && state.orders[other].status == "NEW" {
                state.orders[other].status = "EXPIRED"
            }
        }
    }
    /// Someone cancels the symbol's open orders (the protective stop among them) behind our back.
    public func cancelOpenOrders(_ symbol: String) {
        state.withLock { state in
            for index in state.orders.indices where state.orders[index].symbol == symbol && state.orders[index].status == "NEW" { state.orders[index].status = "CANCELED" }
        }
    }
    /// The server's clock runs this far ahead of ours.
    public func setClockSkew(millis: Int64) { state.withLock { $0.skewMillis = millis } }
    public func failNextOrders(_ faults: [OrderFault]) { state.withLock { $0.orderFaults += faults } }
    /// Paths of the requests so far.
    public var requests: [String] { state.withLock { $0.requests } }
    /// Orders as placed: type, side, stop price, status, client id.
    public var orders: [(type: String, side: String, stopPrice: Decimal?, status: String, clientID: String)] {
        state.withLock { $0.orders.map { ($0.type, $0.side, $0.stopPrice, $0.status, $0.clientID) } }
    }

    var serverTime: Int64 { Int64(Date().timeIntervalSince1970 * 1000) + state.withLock { $0.skewMillis } }

    /// Checks key, signature and timestamp as Binance does, then answers.
    func signed(_ request: Request, _ body: ([String: String]) -> Response) throws -> Response {
        let query = request.uri.query ?? ""
        state.withLock { $0.requests.append(request.uri.path) }
        guard request.headers[.init("X-MBX-APIKEY")!] == apiKey else { return error(401, -2015, "Invalid API-key, IP, or permissions for action.") }
        guard let range = query.range(of: "&signature=") else { return error(400, -1102, "Mandatory parameter 'signature' was not sent.") }
        let payload = String(query[..<range.lowerBound]), signature = String(query[range.upperBound...])
        guard HMACSigning.sha256Hex(payload.utf8, secret: secret) == signature else { return error(400, -1022, "Signature for this request is not valid.") }
        var parameters: [String: String] = [:]
        for pair in payload.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { parameters[parts[0]] = parts[1].removingPercentEncoding ?? parts[1] }
        }
        guard let timestamp = Int64(parameters["timestamp"] ?? ""), let window = Int64(parameters["recvWindow"] ?? "5000"),
              timestamp < serverTime + 1_000, serverTime - timestamp <= window else {
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        }
        return body(parameters)
    }

    /// Places the order (or not, by the next fault); the answer, and how long to hold it back.
    func place(_ q: [String: String]) -> (Response, Duration?) {
        let fault = state.withLock { $0.orderFaults.isEmpty ? OrderFault.none : $0.orderFaults.removeFirst() }
        if case .unavailable = fault { return (error(503, -1001, "Internal error; unable to process your request. Please try again."), nil) }
        let order = state.withLock { state -> Order in
            let id = Int64(state.orders.count + 1)
            let symbol = q["symbol"] ?? "", side = q["side"] ?? "BUY", type = q["type"] ?? "MARKET"
            let price = state.prices[symbol] ?? 0
            var order = Order(
                id: id, clientID: q["newClientOrderId"] ?? "auto-\(id)", symbol: symbol, side: side, type: type,
                quantity: Decimal(string: q["quantity"] ?? "0") ?? 0, stopPrice: q["stopPrice"].flatMap { Decimal(string: $0) }, status: "NEW", price: price)
            if type == "MARKET" {
                order.status = "FILLED"
                let signed = side == "BUY" ? order.quantity : -order.quantity
                let before = state.positions[symbol] ?? 0
                state.positions[symbol] = before + signed
                if before == 0 { state.entry[symbol] = price }
                if state.positions[symbol] == 0 { state.positions[symbol] = nil }
                state.trades.append((Int64(state.trades.count + 1), id, symbol, side, price, order.quantity, 0))
            }
            state.orders.append(order)
            return order
        }
        switch fault {
        case .unknownAfterCreate: return (error(503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."), nil)
        case .slowAfterCreate(let delay): return (json(answer(order)), delay)
        default: return (json(answer(order)), nil)
        }
    }

    func answer(_ order: Order) -> [String: Any] {
        [
            "orderId": order.id, "clientOrderId": order.clientID, "symbol": order.symbol, "side": order.side, "type": order.type, "status": order.status,
            "origQty": "\(order.quantity)", "executedQty": order.status == "FILLED" ? "\(order.quantity)" : "0", "avgPrice": "\(order.status == "FILLED" ? order.price : 0)",
            "reduceOnly": false, "stopPrice": "\(order.stopPrice ?? 0)",
        ]
    }

    func json(_ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func error(_ status: Int, _ code: Int, _ message: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"code":\#(code),"msg":"\#(message)"}"#)))
    }
}
