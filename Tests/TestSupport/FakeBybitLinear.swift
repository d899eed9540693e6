import Foundation
import HTTPSupport
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local Bybit v5 linear server implementing the documented subset the venue uses, that checks every
/// signature (`X-BAPI-API-KEY`, `X-BAPI-SIGN` = HMAC-SHA256 of timestamp + key + window + the query
/// string or the JSON body, `X-BAPI-TIMESTAMP` within `X-BAPI-RECV-WINDOW`) and answers Bybit's
/// envelope (`retCode`, `retMsg`, `result`, `time`, always HTTP 200 unless a fault says otherwise).
/// Market orders fill at once at the set price. Conditional orders (`order/create` with
/// `triggerPrice`, `triggerDirection`, `triggerBy`) rest `Untriggered`; one whose trigger the mark
/// price has already passed is refused with 110092 (expected to rise) or 110093 (expected to fall),
/// as Bybit refuses them. Conditional orders and a position's stop-loss and take-profit
/// (`trading-stop`) trigger when ``moveMarket(_:to:)`` crosses them, as executions with their
/// `orderLinkId` and `stopOrderType`; reduce-only conditional orders left when the position is flat are
/// `Deactivated`. `order/cancel` cancels by `orderLinkId` (110001 when there is no such open order).
public final class FakeBybitLinear: Sendable {
    /// What happens to the next order create: it is created, then the answer is retCode 10016
    /// (`unknownAfterCreate`) or HTTP 502 (`gatewayErrorAfterCreate`).
    public enum OrderFault: Sendable {
        case unknownAfterCreate, gatewayErrorAfterCreate
        /// A market order fills in `parts` executions (walking the book).
        case fillsInParts(Int)
        /// A market order fills `fraction` of its quantity and the rest is cancelled (`PartiallyFilledCanceled`).
        case partialThenCancel(Decimal)
    }
    /// What happens to the next signed request instead of an answer: retCode 10006, or HTTP 403.
    public enum RequestFault: Sendable { case tooManyVisits, ipRateLimited }

    /// Bybit's taker fee on linear contracts.
    public static let takerFee = Decimal(string: "0.00055")!

    struct Order: Sendable {
        var id: String
        var linkID: String
        var symbol: String
        var side: String
        var quantity: Decimal
        var status: String
        var price: Decimal
        var reduceOnly: Bool
        var stopOrderType: String
        /// A conditional order's trigger and direction (1: the price rises to it, 2: falls to it).
        var trigger: Decimal? = nil
        var direction = 0
        /// What it executed (its quantity once filled).
        var filled: Decimal? = nil
    }

    struct Position: Sendable {
        var side: String
        var size: Decimal
        var entry: Decimal
        var stopLoss: Decimal?
        var takeProfit: Decimal?
        var createdTime: Int64
    }

    struct Execution: Sendable {
        var id: String
        var orderID: String
        var linkID: String
        var symbol: String
        var side: String
        var price: Decimal
        var quantity: Decimal
        var time: Int64
        var type: String
        var stopOrderType: String
    }

    struct State {
        var orders: [Order] = []
        var positions: [String: Position] = [:]
        var executions: [Execution] = []
        var prices: [String: Decimal] = [:]
        var leverage: [String: Int] = [:]
        var isolated: Set<String> = []
        var skewMillis: Int64 = 0
        var orderFaults: [OrderFault] = []
        var requestFaults: [RequestFault] = []
        var requests: [String] = []
        var pageSize = 100
        var realtimeKeepsClosed = true
        /// Where the mark jumps right after the next market order fills (a gap before its stop can be placed).
        var gapAfterFill: Decimal?
        /// `execution/list` lists every execution twice, oldest first (a replayed, reordered feed).
        var duplicatedAndReordered = false
        /// The private stream: authenticated connections, by id, with their topics; faults.
        var streams: [Int: (topics: Set<String>, out: AsyncStream<String>.Continuation)] = [:]
        var nextStream = 0
        var streamsOpened = 0
        var dropStreamMessages = 0
        var duplicateStreamMessages = false
        var privateRequests: [String] = []
        /// Orders whose last change the stream has told.
        var announced: Set<String> = []
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
    ) async throws -> FakeBybitLinear {
        let fake = FakeBybitLinear(apiKey: apiKey, secret: secret)
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("v5/private") { inbound, outbound, _ in
            try await fake.servePrivate(inbound: inbound, outbound: outbound)
        }
        router.get("v5/market/time") { _, _ in
            let time = fake.serverTime
            return fake.ok(["timeSecond": "\(time / 1000)", "timeNano": "\(time)000000"])
        }
        router.get("v5/market/instruments-info") { request, _ in
            // BTCUSDT, and any symbol given a price, with BTCUSDT's filters.
            let symbol = request.uri.queryParameters.get("symbol") ?? ""
            guard symbol == "BTCUSDT" || fake.state.withLock({ $0.prices[symbol] != nil }) else {
                return fake.ok(["category": "linear", "list": [Any]()])
            }
            return fake.ok([
                "category": "linear",
                "list": [
                    [
                        "symbol": symbol, "status": "Trading",
                        "priceFilter": ["minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"],
                        "lotSizeFilter": [
                            "maxOrderQty": "1190.000", "maxMktOrderQty": "119.000", "minOrderQty": "0.001",
                            "qtyStep": "0.001", "minNotionalValue": "5",
                        ],
                    ]
                ],
            ])
        }
        router.get("v5/market/risk-limit") { request, _ in
            // Public. Bybit's BTCUSDT tiers in shape: 0.5 % to 2,000,000 of position value, then up by 0.5 %
            // a tier; `mmDeduction` left empty, as Bybit lists it for many symbols.
            guard let symbol = request.uri.queryParameters.get("symbol"),
                request.uri.queryParameters.get("category") == "linear"
            else {
                return fake.failure(10001, "params error")
            }
            let rows: [[String: Any]] = (0..<4).map { index in
                [
                    "id": index + 1, "symbol": symbol, "riskLimitValue": "\(2_000_000 * (index + 1))",
                    "maintenanceMargin": "\(Decimal(5 + 5 * index) / 1_000)",
                    "initialMargin": "\(Decimal(10 + 5 * index) / 1_000)", "isLowestRisk": index == 0 ? 1 : 0,
                    "maxLeverage": "\(100 / (index + 1))", "mmDeduction": "",
                ]
            }
            return fake.ok(["category": "linear", "list": rows])
        }
        router.get("v5/market/tickers") { request, _ in
            let symbol = request.uri.queryParameters.get("symbol") ?? ""
            guard let price = fake.state.withLock({ $0.prices[symbol] }) else {
                return fake.failure(10001, "params error: symbol invalid")
            }
            return fake.ok([
                "category": "linear", "list": [["symbol": symbol, "lastPrice": "\(price)", "markPrice": "\(price)"]],
            ])
        }
        router.get("v5/account/wallet-balance") { request, _ in
            try await fake.signed(request) { _ in
                fake.ok([
                    "list": [
                        [
                            "accountType": "UNIFIED", "totalEquity": "10000.00", "totalAvailableBalance": "9000.00",
                            "totalWalletBalance": "10000.00",
                        ]
                    ]
                ])
            }
        }
        router.post("v5/position/switch-mode") { request, _ in
            try await fake.signed(request) { p in
                p["mode"] as? Int == 0
                    ? fake.failure(110025, "Position mode is not modified")
                    : fake.failure(10001, "only one-way mode here")
            }
        }
        router.post("v5/position/switch-isolated") { request, _ in
            try await fake.signed(request) { p in
                let symbol = p["symbol"] as? String ?? ""
                guard p["tradeMode"] as? Int == 1 else { return fake.failure(10001, "only isolated margin here") }
                let already = fake.state.withLock { !$0.isolated.insert(symbol).inserted }
                return already ? fake.failure(110026, "Cross/isolated margin mode is not modified") : fake.ok([:])
            }
        }
        router.post("v5/position/set-leverage") { request, _ in
            try await fake.signed(request) { p in
                let symbol = p["symbol"] as? String ?? ""
                guard let buy = (p["buyLeverage"] as? String).flatMap({ Int($0) }),
                    p["sellLeverage"] as? String == "\(buy)"
                else {
                    return fake.failure(10001, "buyLeverage and sellLeverage must be the same in one-way mode")
                }
                let unchanged = fake.state.withLock { state in
                    defer { state.leverage[symbol] = buy }
                    return state.leverage[symbol] == buy
                }
                return unchanged ? fake.failure(110043, "Set leverage not modified") : fake.ok([:])
            }
        }
        router.post("v5/order/create") { request, _ in try await fake.signed(request) { p in fake.create(p) } }
        router.post("v5/order/cancel") { request, _ in try await fake.signed(request) { p in fake.cancel(p) } }
        router.get("v5/order/realtime") { request, _ in
            try await fake.signed(request) { q in fake.orders(q, realtime: true) }
        }
        router.get("v5/order/history") { request, _ in
            try await fake.signed(request) { q in fake.orders(q, realtime: false) }
        }
        router.get("v5/position/list") { request, _ in
            try await fake.signed(request) { _ in
                let rows = fake.state.withLock { state in
                    state.positions.sorted { $0.key < $1.key }.map { symbol, position in
                        [
                            "symbol": symbol, "side": position.side, "size": "\(position.size)",
                            "avgPrice": "\(position.entry)", "positionIdx": 0,
                            "leverage": "\(state.leverage[symbol] ?? 10)",
                            "stopLoss": position.stopLoss.map { "\($0)" } ?? "",
                            "takeProfit": position.takeProfit.map { "\($0)" } ?? "",
                            "tpslMode": "Full", "tradeMode": state.isolated.contains(symbol) ? 1 : 0,
                            "createdTime": "\(position.createdTime)",
                        ] as [String: Any]
                    }
                }
                return fake.ok(["category": "linear", "list": rows, "nextPageCursor": ""])
            }
        }
        router.post("v5/position/trading-stop") { request, _ in
            try await fake.signed(request) { p in fake.tradingStop(p) }
        }
        router.get("v5/execution/list") { request, _ in try await fake.signed(request) { q in fake.executions(q) } }
        fake.server.set(
            try await LocalServer.start(
                router,
                server: .http1WebSocketUpgrade(webSocketRouter: router),
                label: "fake-bybit"
            )
        )
        return fake
    }

    public func stop() async {
        await server.stop()
    }

    public var baseURL: String { "http://127.0.0.1:\(server.port)" }
    public func setPrice(_ symbol: String, _ price: Decimal) { state.withLock { $0.prices[symbol] = price } }

    /// The mark moves to `price`: a conditional order it crosses triggers and fills at that price (its
    /// own `orderLinkId`, `stopOrderType` Stop); a position's stop-loss or take-profit it crosses closes
    /// the position at that price, as an execution of a new order with that `stopOrderType` (and no
    /// `orderLinkId`).
    public func moveMarket(_ symbol: String, to price: Decimal) {
        let time = serverTime
        state.withLock { state in
            state.prices[symbol] = price
            for index in state.orders.indices
            where state.orders[index].symbol == symbol && state.orders[index].status == "Untriggered" {
                let order = state.orders[index]
                guard let trigger = order.trigger, order.direction == 1 ? price >= trigger : price <= trigger else {
                    continue
                }
                state.orders[index].status = "Filled"
                state.orders[index].price = price
                Self.emit(&state, topic: "order", [Self.orderRow(state.orders[index])], time: time)
                guard let position = state.positions[symbol], position.side != order.side || !order.reduceOnly else {
                    continue
                }
                Self.fill(
                    &state,
                    order: state.orders[index],
                    quantity: order.reduceOnly ? min(order.quantity, position.size) : order.quantity,
                    time: time,
                    execType: "Trade"
                )
            }
            guard let position = state.positions[symbol] else { return }
            let long = position.side == "Buy"
            let type: String
            if let stop = position.stopLoss, long ? price <= stop : price >= stop {
                type = "StopLoss"
            } else if let target = position.takeProfit, long ? price >= target : price <= target {
                type = "TakeProfit"
            } else {
                return
            }
            Self.close(&state, symbol: symbol, price: price, time: time, execType: "Trade", stopOrderType: type)
        }
    }

    /// The position is taken over by the liquidation engine at `price` (a `BustTrade` execution).
    public func liquidate(_ symbol: String, at price: Decimal) {
        let time = serverTime
        state.withLock { state in
            state.prices[symbol] = price
            Self.close(&state, symbol: symbol, price: price, time: time, execType: "BustTrade", stopOrderType: "")
        }
    }

    /// The server's clock runs this far ahead of ours.
    public func setClockSkew(millis: Int64) { state.withLock { $0.skewMillis = millis } }
    public func failNextOrders(_ faults: [OrderFault]) { state.withLock { $0.orderFaults += faults } }
    /// From now on `execution/list` lists every execution twice and oldest first: duplicated, reordered fills.
    public func duplicateAndReorderExecutions() { state.withLock { $0.duplicatedAndReordered = true } }
    /// A trader's own trades on `symbol` from `daysAgo` days back (orders this system never placed, no
    /// `orderLinkId`): what a restart reading the last seven days would meet. They leave the account flat.
    public func seedHistory(_ symbol: String, roundTrips: Int, daysAgo: Double) {
        state.withLock { state in
            let start = Int64((Date().timeIntervalSince1970 - daysAgo * 86_400) * 1000)
            let price = state.prices[symbol] ?? 100
            for trip in 0..<roundTrips {
                for side in ["Buy", "Sell"] {
                    let order = Order(
                        id: UUID().uuidString.lowercased(),
                        linkID: "",
                        symbol: symbol,
                        side: side,
                        quantity: 1,
                        status: "Filled",
                        price: price,
                        reduceOnly: side == "Sell",
                        stopOrderType: ""
                    )
                    state.orders.append(order)
                    Self.fill(
                        &state,
                        order: order,
                        quantity: 1,
                        time: start + Int64(trip) * 3_600_000,
                        execType: "Trade"
                    )
                }
            }
        }
    }
    /// The account's position in `symbol` (signed).
    public func position(_ symbol: String) -> Decimal {
        state.withLock { state in state.positions[symbol].map { $0.side == "Buy" ? $0.size : -$0.size } ?? 0 }
    }
    /// A market order placed by hand in Bybit's web page (no `orderLinkId`), filled at the mark.
    public func tradeByHand(_ symbol: String, buy: Bool, quantity: Decimal) {
        let time = serverTime
        state.withLock { state in
            let order = Order(
                id: UUID().uuidString.lowercased(),
                linkID: "",
                symbol: symbol,
                side: buy ? "Buy" : "Sell",
                quantity: quantity,
                status: "Filled",
                price: state.prices[symbol] ?? 100,
                reduceOnly: false,
                stopOrderType: ""
            )
            state.orders.append(order)
            Self.fill(&state, order: order, quantity: quantity, time: time, execType: "Trade")
        }
    }
    /// Right after the next market order fills, the mark jumps to `price` (before anything else can be placed).
    public func gapAfterNextFill(to price: Decimal) { state.withLock { $0.gapAfterFill = price } }
    /// Someone cancels the symbol's conditional orders by hand, in Bybit's web page.
    public func cancelConditionalOrdersByHand(_ symbol: String) {
        state.withLock { state in
            for index in state.orders.indices
            where state.orders[index].symbol == symbol && state.orders[index].status == "Untriggered" {
                state.orders[index].status = "Cancelled"
                Self.emit(
                    &state,
                    topic: "order",
                    [Self.orderRow(state.orders[index])],
                    time: Int64(Date().timeIntervalSince1970 * 1000) + state.skewMillis
                )
            }
        }
    }
    /// Working conditional orders: `orderLinkId`, side, quantity, trigger.
    public var conditionalOrders: [(linkID: String, side: String, quantity: Decimal, trigger: Decimal)] {
        state.withLock {
            $0.orders.filter { $0.status == "Untriggered" }.map { ($0.linkID, $0.side, $0.quantity, $0.trigger ?? 0) }
        }
    }
    public func failNextRequests(_ faults: [RequestFault]) { state.withLock { $0.requestFaults += faults } }
    /// At most this many executions per page of `execution/list`, whatever the `limit` asked.
    public func setExecutionPageSize(_ size: Int) { state.withLock { $0.pageSize = size } }
    /// `order/realtime` shows only open orders from now on, as Bybit's does for closed orders some
    /// time after they closed; `order/history` still has them.
    public func forgetClosedOrders() { state.withLock { $0.realtimeKeepsClosed = false } }
    /// Method and path of the signed requests so far, e.g. `POST /v5/order/create`.
    public var requests: [String] { state.withLock { $0.requests } }
    /// Orders as placed: side, quantity, status, `orderLinkId`, `stopOrderType`.
    public var orders: [(side: String, quantity: Decimal, status: String, linkID: String, stopOrderType: String)] {
        state.withLock { $0.orders.map { ($0.side, $0.quantity, $0.status, $0.linkID, $0.stopOrderType) } }
    }
    /// Each open position's side, size, stop-loss and take-profit.
    public var positions: [String: (side: String, size: Decimal, stopLoss: Decimal?, takeProfit: Decimal?)] {
        state.withLock { $0.positions.mapValues { ($0.side, $0.size, $0.stopLoss, $0.takeProfit) } }
    }
    /// Whether the symbol was switched to isolated margin; its leverage.
    public func margin(_ symbol: String) -> (isolated: Bool, leverage: Int?) {
        state.withLock { ($0.isolated.contains(symbol), $0.leverage[symbol]) }
    }

    var serverTime: Int64 { Int64(Date().timeIntervalSince1970 * 1000) + state.withLock { $0.skewMillis } }

    // MARK: Signatures

    /// Checks key, signature and timestamp as Bybit does, then answers. The handler gets the query
    /// parameters of a GET (strings) or the JSON body of a POST.
    func signed(_ request: Request, _ handler: ([String: Any]) -> Response) async throws -> Response {
        let post = request.method == .post
        let payload = post ? String(buffer: try await request.body.collect(upTo: 1 << 20)) : (request.uri.query ?? "")
        let time = serverTime
        let fault: RequestFault? = state.withLock { state in
            state.requests.append("\(request.method.rawValue) \(request.uri.path)")
            return state.requestFaults.isEmpty ? nil : state.requestFaults.removeFirst()
        }
        switch fault {
        case .tooManyVisits?:
            return failure(
                10006,
                "Too many visits!",
                headers: [
                    "X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "10", "X-Bapi-Limit-Reset-Timestamp": "\(time + 1_000)",
                ]
            )
        case .ipRateLimited?:
            return Response(status: .forbidden, body: .init(byteBuffer: ByteBuffer(string: "403 Forbidden")))
        case nil: break
        }
        func header(_ name: String) -> String? { request.headers[.init(name)!] }
        guard header("X-BAPI-API-KEY") == apiKey else { return failure(10003, "API key is invalid.") }
        guard let timestamp = header("X-BAPI-TIMESTAMP").flatMap({ Int64($0) }), let sign = header("X-BAPI-SIGN") else {
            return failure(10004, "error sign! missing timestamp or sign")
        }
        let window = header("X-BAPI-RECV-WINDOW") ?? "5000"
        guard HMACSigning.sha256Hex("\(timestamp)\(apiKey)\(window)\(payload)".utf8, secret: secret) == sign else {
            return failure(10004, "error sign!")
        }
        // Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000.
        guard let windowMillis = Int64(window), time - windowMillis <= timestamp, timestamp < time + 1_000 else {
            return failure(
                10002,
                "invalid request, please check your server timestamp or recv_window param. req_timestamp[\(timestamp)],server_timestamp[\(time)],recv_window[\(window)]"
            )
        }
        if post {
            guard let body = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] else {
                return failure(10001, "params error: body is not JSON")
            }
            return handler(body)
        }
        var parameters: [String: Any] = [:]
        for pair in payload.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { parameters[parts[0]] = parts[1].removingPercentEncoding ?? parts[1] }
        }
        return handler(parameters)
    }

    // MARK: Orders, positions, executions

    func create(_ p: [String: Any]) -> Response {
        let time = serverTime
        let symbol = p["symbol"] as? String ?? ""
        let side = p["side"] as? String ?? ""
        let linkID = p["orderLinkId"] as? String ?? ""
        let reduceOnly = p["reduceOnly"] as? Bool ?? false
        guard p["category"] as? String == "linear", p["orderType"] as? String == "Market",
            side == "Buy" || side == "Sell", p["positionIdx"] as? Int ?? 0 == 0,
            let quantity = (p["qty"] as? String).flatMap({ Decimal(string: $0) }), quantity > 0
        else {
            return failure(10001, "params error")
        }
        enum Outcome {
            case created(Order, OrderFault?)
            case duplicate, noPrice, nothingToReduce
            case wouldTrigger(Int, String)
        }
        let trigger = (p["triggerPrice"] as? String).flatMap { Decimal(string: $0) }
        if trigger != nil {
            guard let direction = p["triggerDirection"] as? Int, direction == 1 || direction == 2 else {
                return failure(10001, "params error: triggerDirection is required for a conditional order")
            }
            guard ["LastPrice", "MarkPrice", "IndexPrice"].contains(p["triggerBy"] as? String ?? "LastPrice") else {
                return failure(10001, "params error: triggerBy")
            }
        }
        let outcome = state.withLock { state -> Outcome in
            if !linkID.isEmpty, state.orders.contains(where: { $0.linkID == linkID }) { return .duplicate }
            guard let price = state.prices[symbol] else { return .noPrice }
            if let trigger {
                // A conditional order rests; one whose trigger the mark has passed is refused.
                let direction = p["triggerDirection"] as? Int ?? 0
                if direction == 1, trigger <= price {
                    return .wouldTrigger(
                        110092,
                        "expect Rising, but trigger_price[\(trigger)] <= current[\(price)]??MarkPrice"
                    )
                }
                if direction == 2, trigger >= price {
                    return .wouldTrigger(
                        110093,
                        "expect Falling, but trigger_price[\(trigger)] >= current[\(price)]??MarkPrice"
                    )
                }
                if reduceOnly, state.positions[symbol].map({ $0.side == side }) ?? true { return .nothingToReduce }
                let fault = state.orderFaults.isEmpty ? nil : state.orderFaults.removeFirst()
                let order = Order(
                    id: UUID().uuidString.lowercased(),
                    linkID: linkID,
                    symbol: symbol,
                    side: side,
                    quantity: quantity,
                    status: "Untriggered",
                    price: 0,
                    reduceOnly: reduceOnly,
                    stopOrderType: "Stop",
                    trigger: trigger,
                    direction: direction
                )
                state.orders.append(order)
                Self.emit(&state, topic: "order", [Self.orderRow(order)], time: time)
                return .created(order, fault)
            }
            let position = state.positions[symbol]
            var filled = quantity
            if reduceOnly {
                guard let position, position.side != side else { return .nothingToReduce }
                filled = min(quantity, position.size)
            }
            let fault = state.orderFaults.isEmpty ? nil : state.orderFaults.removeFirst()
            var order = Order(
                id: UUID().uuidString.lowercased(),
                linkID: linkID,
                symbol: symbol,
                side: side,
                quantity: quantity,
                status: "Filled",
                price: price,
                reduceOnly: reduceOnly,
                stopOrderType: ""
            )
            var parts = 1
            switch fault {
            case .fillsInParts(let count)?: parts = max(1, count)
            case .partialThenCancel(let fraction)?:
                filled = (filled * fraction).rounded(3)
                order.status = "PartiallyFilledCanceled"
            default: break
            }
            order.filled = filled
            state.orders.append(order)
            var left = filled
            for part in 1...parts {
                let piece = part == parts ? left : (filled / Decimal(parts)).rounded(3)
                left -= piece
                Self.fill(&state, order: order, quantity: piece, time: time, execType: "Trade")
            }
            if let gap = state.gapAfterFill {
                state.prices[symbol] = gap
                state.gapAfterFill = nil
            }
            return .created(order, fault)
        }
        switch outcome {
        case .wouldTrigger(let code, let message): return failure(code, message)
        case .duplicate: return failure(110072, "OrderLinkedID is duplicate")
        case .noPrice: return failure(10001, "params error: symbol invalid")
        case .nothingToReduce: return failure(110017, "current position is zero, cannot fix reduce-only order qty")
        case .created(_, .unknownAfterCreate?): return failure(10016, "Server error.")
        case .created(_, .gatewayErrorAfterCreate?):
            return Response(
                status: .badGateway,
                body: .init(byteBuffer: ByteBuffer(string: "<html>502 Bad Gateway</html>"))
            )
        case .created(let order, _): return ok(["orderId": order.id, "orderLinkId": order.linkID])
        }
    }

    /// An execution of `order` for `quantity` at its price: the position grows, shrinks, or closes.
    static func fill(_ state: inout State, order: Order, quantity: Decimal, time: Int64, execType: String) {
        let execution = Execution(
            id: UUID().uuidString.lowercased(),
            orderID: order.id,
            linkID: order.linkID,
            symbol: order.symbol,
            side: order.side,
            price: order.price,
            quantity: quantity,
            time: time,
            type: execType,
            stopOrderType: order.stopOrderType
        )
        state.executions.append(execution)
        emit(&state, topic: "execution", [executionRow(execution)], time: time)
        defer {
            let position = state.positions[order.symbol]
            emit(
                &state,
                topic: "position",
                [
                    [
                        "category": "linear", "symbol": order.symbol, "side": position?.side ?? "",
                        "size": "\(position?.size ?? 0)",
                        "entryPrice": "\(position?.entry ?? 0)", "positionIdx": 0, "positionStatus": "Normal",
                        "updatedTime": "\(time)",
                    ]
                ],
                time: time
            )
            // Reduce-only conditional orders left with nothing to reduce, deactivated with the position.
            for deactivated in state.orders
            where deactivated.symbol == order.symbol && deactivated.status == "Deactivated"
                && deactivated.trigger != nil
                && !state.announced.contains(deactivated.id)
            {
                state.announced.insert(deactivated.id)
                emit(&state, topic: "order", [orderRow(deactivated)], time: time)
            }
        }
        guard var position = state.positions[order.symbol] else {
            state.positions[order.symbol] = Position(
                side: order.side,
                size: quantity,
                entry: order.price,
                createdTime: time
            )
            return
        }
        if position.side == order.side {
            position.entry = (position.entry * position.size + order.price * quantity) / (position.size + quantity)
            position.size += quantity
        } else if quantity < position.size {
            position.size -= quantity
        } else if quantity == position.size {
            state.positions[order.symbol] = nil  // flat: Bybit drops the position's stop and target with it
            for index in state.orders.indices
            where state.orders[index].symbol == order.symbol && state.orders[index].status == "Untriggered"
                && state.orders[index].reduceOnly
            {
                // and its reduce-only conditional orders, with nothing to reduce
                state.orders[index].status = "Deactivated"
            }
            return
        } else {
            position = Position(side: order.side, size: quantity - position.size, entry: order.price, createdTime: time)
        }
        state.positions[order.symbol] = position
    }

    static func executionRow(_ e: Execution) -> [String: Any] {
        [
            "category": "linear", "execId": e.id, "orderId": e.orderID, "orderLinkId": e.linkID, "symbol": e.symbol,
            "side": e.side, "execPrice": "\(e.price)",
            "execQty": "\(e.quantity)", "execValue": "\(e.price * e.quantity)",
            "execFee": "\(e.price * e.quantity * takerFee)", "feeRate": "\(takerFee)",
            "execTime": "\(e.time)", "execType": e.type, "stopOrderType": e.stopOrderType, "orderType": "Market",
            "isMaker": false,
        ]
    }

    static func orderRow(_ order: Order) -> [String: Any] {
        [
            "category": "linear", "orderId": order.id, "orderLinkId": order.linkID, "symbol": order.symbol,
            "side": order.side, "orderType": "Market",
            "orderStatus": order.status, "qty": "\(order.quantity)",
            "cumExecQty": "\(order.filled ?? (order.status == "Filled" ? order.quantity : 0))",
            "reduceOnly": order.reduceOnly, "stopOrderType": order.stopOrderType, "positionIdx": 0,
            "triggerPrice": order.trigger.map { "\($0)" } ?? "",
            "triggerDirection": order.direction, "triggerBy": order.trigger == nil ? "" : "MarkPrice",
        ]
    }

    /// Pushes a message of `topic` to every stream subscribed to it (or drops it, or sends it twice, by the faults).
    static func emit(_ state: inout State, topic: String, _ data: [[String: Any]], time: Int64) {
        guard state.streams.values.contains(where: { $0.topics.contains(topic) }) else { return }
        if state.dropStreamMessages > 0 {
            state.dropStreamMessages -= 1
            return
        }
        let object: [String: Any] = [
            "id": UUID().uuidString.lowercased(), "topic": topic, "creationTime": time, "data": data,
        ]
        guard let json = try? JSONSerialization.data(withJSONObject: object) else { return }
        let text = String(decoding: json, as: UTF8.self)
        for stream in state.streams.values where stream.topics.contains(topic) {
            stream.out.yield(text)
            if state.duplicateStreamMessages { stream.out.yield(text) }
        }
    }

    /// One private connection, as Bybit runs it: `auth` first (key, an `expires` in the future, the
    /// HMAC-SHA256 of `GET/realtime<expires>`), then `subscribe` to `execution`, `order`, `position`;
    /// `ping` answered with `pong`. A subscription before authentication, or a bad signature, is refused.
    func servePrivate(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (outgoing, continuation) = AsyncStream<String>.makeStream()
        let id = state.withLock { state in
            let id = state.nextStream
            state.nextStream += 1
            return id
        }
        defer { _ = state.withLock { $0.streams.removeValue(forKey: id) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                var authenticated = false
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard case .text(let text) = message,
                        let request = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
                        let op = request["op"] as? String
                    else { continue }
                    let args = request["args"] as? [Any] ?? []
                    let reqID = request["req_id"] as? String ?? ""
                    self.state.withLock { $0.privateRequests.append(op) }
                    func answer(_ success: Bool, _ message: String) -> String {
                        #"{"success":\#(success),"ret_msg":"\#(message)","op":"\#(op)","conn_id":"fake-\#(id)","req_id":"\#(reqID)"}"#
                    }
                    switch op {
                    case "auth":
                        let key = args.first as? String
                        let expires = (args.count > 1 ? args[1] as? NSNumber : nil)?.int64Value
                        let signature = args.count > 2 ? args[2] as? String : nil
                        guard key == self.apiKey else {
                            continuation.yield(answer(false, "Invalid apikey"))
                            return
                        }
                        guard let expires, expires > self.serverTime else {
                            continuation.yield(answer(false, "Params Error"))
                            return
                        }
                        guard signature == HMACSigning.sha256Hex("GET/realtime\(expires)".utf8, secret: self.secret)
                        else {
                            continuation.yield(answer(false, "Signature verification failed"))
                            return
                        }
                        authenticated = true
                        continuation.yield(answer(true, ""))
                    case "subscribe":
                        guard authenticated else {
                            continuation.yield(answer(false, "Request not authorized"))
                            continue
                        }
                        let topics = Set(args.compactMap { $0 as? String })
                        self.state.withLock { state in
                            if state.streams[id] == nil { state.streamsOpened += 1 }
                            state.streams[id] = (topics.union(state.streams[id]?.topics ?? []), continuation)
                        }
                        continuation.yield(answer(true, ""))
                    case "ping":
                        continuation.yield(
                            #"{"req_id":"\#(reqID)","op":"pong","args":["\#(self.serverTime)"],"conn_id":"fake-\#(id)"}"#
                        )
                    default:
                        continuation.yield(answer(false, "Invalid op"))
                    }
                }
            }
            for await text in outgoing { try await outbound.write(.text(text)) }
            group.cancelAll()
        }
    }

    /// The next `count` private-stream messages are lost.
    public func dropNextStreamMessages(_ count: Int) { state.withLock { $0.dropStreamMessages += count } }
    /// From now on every private-stream message is sent twice.
    public func duplicateStreamMessages() { state.withLock { $0.duplicateStreamMessages = true } }
    /// Every private connection is cut.
    public func dropStreamConnections() {
        state.withLock { state in for stream in state.streams.values { stream.out.finish() } }
    }
    /// Private connections subscribed now, and in all; the ops clients sent.
    public var streamsOpen: Int { state.withLock { $0.streams.count } }
    public var streamsOpened: Int { state.withLock { $0.streamsOpened } }
    public var privateRequests: [String] { state.withLock { $0.privateRequests } }

    /// The whole position closes at `price` by an order the exchange makes.
    static func close(
        _ state: inout State,
        symbol: String,
        price: Decimal,
        time: Int64,
        execType: String,
        stopOrderType: String
    ) {
        guard let position = state.positions[symbol] else { return }
        let order = Order(
            id: UUID().uuidString.lowercased(),
            linkID: "",
            symbol: symbol,
            side: position.side == "Buy" ? "Sell" : "Buy",
            quantity: position.size,
            status: "Filled",
            price: price,
            reduceOnly: true,
            stopOrderType: stopOrderType
        )
        state.orders.append(order)
        fill(&state, order: order, quantity: position.size, time: time, execType: execType)
    }

    func orders(_ q: [String: Any], realtime: Bool) -> Response {
        if realtime, q["symbol"] == nil, q["baseCoin"] == nil, q["settleCoin"] == nil {
            return failure(10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        }
        let settleCoin = q["settleCoin"] as? String
        if let settleCoin, settleCoin != "USDT" {
            return ok(["category": "linear", "list": [Any](), "nextPageCursor": ""])
        }
        let symbol = q["symbol"] as? String
        let linkID = q["orderLinkId"] as? String
        let filter = q["orderFilter"] as? String
        let open: Set<String> = ["New", "PartiallyFilled", "Untriggered"]
        let rows = state.withLock { state in
            state.orders.filter { order in
                (symbol == nil || order.symbol == symbol) && (linkID == nil || order.linkID == linkID)
                    && (!realtime || state.realtimeKeepsClosed || open.contains(order.status))
                    && (filter == nil || (filter == "StopOrder") == (order.trigger != nil))
            }.map { order in
                [
                    "orderId": order.id, "orderLinkId": order.linkID, "symbol": order.symbol, "side": order.side,
                    "orderType": "Market", "orderStatus": order.status,

                    "qty": "\(order.quantity)",
                    "cumExecQty": "\(order.filled ?? (order.status == "Filled" ? order.quantity : 0))",
                    "avgPrice": order.status.hasPrefix("Partially") || order.status == "Filled" ? "\(order.price)" : "",
                    "reduceOnly": order.reduceOnly, "stopOrderType": order.stopOrderType, "positionIdx": 0,
                    "triggerPrice": order.trigger.map { "\($0)" } ?? "", "triggerDirection": order.direction,
                    "triggerBy": order.trigger == nil ? "" : "MarkPrice",
                ] as [String: Any]
            }
        }
        return ok(["category": "linear", "list": rows, "nextPageCursor": ""])
    }

    func cancel(_ p: [String: Any]) -> Response {
        let symbol = p["symbol"] as? String ?? ""
        let linkID = p["orderLinkId"] as? String ?? ""
        guard p["category"] as? String == "linear", !linkID.isEmpty else { return failure(10001, "params error") }
        let cancelled = state.withLock { state -> Order? in
            guard
                let index = state.orders.firstIndex(where: {
                    $0.symbol == symbol && $0.linkID == linkID && ["New", "Untriggered"].contains($0.status)
                })
            else { return nil }
            state.orders[index].status = "Cancelled"
            Self.emit(
                &state,
                topic: "order",
                [Self.orderRow(state.orders[index])],
                time: Int64(Date().timeIntervalSince1970 * 1000) + state.skewMillis
            )
            return state.orders[index]
        }
        guard let cancelled else { return failure(110001, "order not exists or too late to cancel") }
        return ok(["orderId": cancelled.id, "orderLinkId": cancelled.linkID])
    }

    func tradingStop(_ p: [String: Any]) -> Response {
        let symbol = p["symbol"] as? String ?? ""
        guard p["category"] as? String == "linear", p["tpslMode"] as? String == "Full",
            p["positionIdx"] as? Int ?? 0 == 0
        else { return failure(10001, "params error") }
        /// Absent: unchanged; "0": removed.
        func level(_ key: String) -> Decimal?? {
            guard let text = p[key] as? String else { return .none }
            guard let value = Decimal(string: text) else { return .some(nil) }
            return .some(value > 0 ? value : nil)
        }
        let stopLoss = level("stopLoss")
        let takeProfit = level("takeProfit")
        enum Outcome {
            case set, noPosition, unchanged
            case wrongSide(String)
        }
        let outcome = state.withLock { state -> Outcome in
            guard var position = state.positions[symbol] else { return .noPosition }
            let long = position.side == "Buy"
            let mark = state.prices[symbol] ?? position.entry
            let newStop = stopLoss ?? position.stopLoss
            let newTarget = takeProfit ?? position.takeProfit
            if let stop = newStop, long ? stop >= mark : stop <= mark {
                return .wrongSide(
                    "StopLoss:\(stop) set for \(position.side) position should be \(long ? "lower" : "higher") than base_price:\(mark)??LastPrice"
                )
            }
            if let target = newTarget, long ? target <= mark : target >= mark {
                return .wrongSide(
                    "TakeProfit:\(target) set for \(position.side) position should be \(long ? "higher" : "lower") than base_price:\(mark)??LastPrice"
                )
            }
            guard newStop != position.stopLoss || newTarget != position.takeProfit else { return .unchanged }
            position.stopLoss = newStop
            position.takeProfit = newTarget
            state.positions[symbol] = position
            return .set
        }
        switch outcome {
        case .set: return ok([:])
        case .noPosition: return failure(10001, "can not set tp/sl/ts for zero position")
        case .unchanged: return failure(34040, "not modified")
        case .wrongSide(let message): return failure(10001, message)
        }
    }

    /// Bybit's execution list: newest first, `startTime` alone covering seven days from it, none the
    /// last seven days; pages of `limit` (at most the page size set) with `nextPageCursor`.
    func executions(_ q: [String: Any]) -> Response {
        let week: Int64 = 7 * 24 * 3_600_000
        let now = serverTime
        let symbol = q["symbol"] as? String
        let start = (q["startTime"] as? String).flatMap { Int64($0) }
        let end = (q["endTime"] as? String).flatMap { Int64($0) }
        let from = start ?? (end.map { $0 - week } ?? now - week)
        let to = end ?? (start.map { $0 + week } ?? now)
        guard to - from <= week, from <= to else {
            return failure(10001, "params error: the time range must be within 7 days")
        }
        let offset = (q["cursor"] as? String).flatMap { Int($0) } ?? 0
        let (rows, next): ([[String: Any]], String) = state.withLock { state in
            let size = min(Int(q["limit"] as? String ?? "50") ?? 50, state.pageSize)
            var matching = state.executions.enumerated()
                .filter {
                    (symbol == nil || $0.element.symbol == symbol) && $0.element.time >= from && $0.element.time <= to
                }
                .sorted {
                    $0.element.time != $1.element.time ? $0.element.time > $1.element.time : $0.offset > $1.offset
                }
                .map(\.element)
            if state.duplicatedAndReordered { matching = (matching + matching).reversed() }
            let page = matching.dropFirst(offset).prefix(size)
            let rows = page.map { e -> [String: Any] in
                [
                    "execId": e.id, "orderId": e.orderID, "orderLinkId": e.linkID, "symbol": e.symbol, "side": e.side,
                    "execPrice": "\(e.price)",
                    "execQty": "\(e.quantity)", "execValue": "\(e.price * e.quantity)",
                    "execFee": "\(e.price * e.quantity * Self.takerFee)", "feeRate": "\(Self.takerFee)",
                    "execTime": "\(e.time)", "execType": e.type, "stopOrderType": e.stopOrderType,
                    "orderType": "Market", "isMaker": false,
                ]
            }
            return (rows, offset + size < matching.count ? "\(offset + size)" : "")
        }
        return ok(["category": "linear", "list": rows, "nextPageCursor": next])
    }

    // MARK: Answers

    func ok(_ result: [String: Any]) -> Response { envelope(0, "OK", result) }

    func failure(_ code: Int, _ message: String, headers: [String: String] = [:]) -> Response {
        envelope(code, message, [:], headers: headers)
    }

    func envelope(_ code: Int, _ message: String, _ result: [String: Any], headers: [String: String] = [:]) -> Response
    {
        let object: [String: Any] = [
            "retCode": code, "retMsg": message, "result": result, "retExtInfo": [String: Any](), "time": serverTime,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        var fields: HTTPFields = [.contentType: "application/json"]
        for (name, value) in headers { fields[.init(name)!] = value }
        return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
