import Foundation
import Hummingbird
import HummingbirdWebSocket
import Hyperliquid
import NIOCore
import Synchronization
import TradingCore

/// A local Hyperliquid server speaking the documented `POST /info` and `POST /exchange` wire:
/// - every action's signature is recovered (EIP-712 over the MessagePack of the action as sent, in its
///   key order) and must name the account's agent, else `User or API Wallet 0x… does not exist.`;
///   a nonce already used, or more than two days old, is refused;
/// - orders are checked as Hyperliquid checks them: price at most 5 significant figures and
///   6 - `szDecimals` decimals (`Price must be divisible by tick size.`), size in `szDecimals`
///   (`Order has invalid size.`), at least 10 USDC (`Order must have minimum value of $10.`), a
///   reduce-only order that would grow the position (`Reduce only order would increase position.`), a
///   sell trigger whose limit is above its trigger or a buy's below (`Invalid TP/SL price.`), a reused
///   `cloid`;
/// - IOC orders fill at the mark when their limit allows it, else `Order could not immediately match
///   against any resting orders.`; triggers rest until ``moveMarket(_:to:)`` crosses them (or the
///   mark is already past them: they fire at once);
/// - faults: lost answers (the order is made, the answer is HTTP 502 or never comes), 429 answers,
///   partial IOC fills, an order refused with a given error, fills listed twice and out of order,
///   trades by hand, liquidation, history of another's trades.
public final class FakeHyperliquid: Sendable {
    public enum OrderFault: Sendable {
        /// The order is made and its answer is HTTP 502.
        case lostAfterCreate
        /// The IOC fills only this fraction; the rest is cancelled.
        case partial(Money)
        /// Refused with this error in its status.
        case refuse(String)
        /// The IOC fills, then the mark jumps here (before any stop can be placed).
        case gapAfterFill(Money)
    }

    struct Order: Sendable {
        var oid: Int64
        var cloid: String?
        var coin: String
        var isBuy: Bool
        var limit: Money
        var size: Money
        var original: Money
        var reduceOnly: Bool
        var trigger: Money?
        var tpsl: String?
        var positionTpsl: Bool
        var status: String
        var time: Int64
    }

    struct Fill: Sendable {
        var coin: String
        var price: Money
        var size: Money
        var isBuy: Bool
        var time: Int64
        var oid: Int64
        var tid: Int64
        var fee: Money
        var closedPnl: Money
        var startPosition: Money
        var liquidation: Bool
    }

    struct State {
        var marks: [String: Money] = [:]
        var positions: [String: (size: Money, entry: Money, leverage: Int)] = [:]
        var leverage: [String: Int] = [:]
        var orders: [Order] = []
        var fills: [Fill] = []
        var nextOID: Int64 = 1_000
        var nextTID: Int64 = 500_000
        var nonces: Set<UInt64> = []
        var orderFaults: [OrderFault] = []
        var tooManyRequests = 0
        var duplicatedAndReordered = false
        var requests: [String] = []
        var actions: [String] = []
        var equity: Money = 10_000
        /// The account stream: subscriptions received, fills it is to drop, whether it closes now.
        var streamed: [String] = []
        var dropStreamedFills = 0
        var streamGeneration = 0
    }

    /// Hyperliquid's taker fee (base tier).
    public static let takerFee = Money(string: "0.00045")!
    /// The listed coins: name, `szDecimals`, max leverage.
    public static let universe: [(String, Int, Int)] = [("BTC", 5, 40), ("ETH", 4, 25), ("SOL", 2, 20), ("XRP", 0, 20)]

    public let account: String
    public let agent: String
    public let mainnet: Bool
    private let state = Mutex(State())
    private let server = ServerSlot()

    init(account: String, agent: String, mainnet: Bool) {
        self.account = account.lowercased()
        self.agent = agent.lowercased()
        self.mainnet = mainnet
    }

    /// Starts a server for `account`, trading through the agent with address `agent`.
    public static func start(account: String, agent: String, mainnet: Bool = false) async throws -> FakeHyperliquid {
        let fake = FakeHyperliquid(account: account, agent: agent, mainnet: mainnet)
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("ws") { inbound, outbound, _ in try await fake.stream(inbound: inbound, outbound: outbound) }
        router.post("info") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return fake.info(Data(buffer: body))
        }
        router.post("exchange") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await fake.exchange(String(buffer: body))
        }
        fake.server.set(
            try await LocalServer.start(
                router,
                server: .http1WebSocketUpgrade(webSocketRouter: router),
                label: "fake-hyperliquid"
            )
        )
        return fake
    }

    public func stop() async { await server.stop() }
    public var baseURL: String { "http://127.0.0.1:\(server.port)" }
    /// The WebSocket (`/ws`) where the account's `userFills` and `orderUpdates` are pushed.
    public var streamURL: String { "ws://127.0.0.1:\(server.port)/ws" }
    /// The messages clients sent on the WebSocket.
    public var streamed: [String] { state.withLock { $0.streamed } }
    /// The next `count` fills are not pushed on the stream (REST still lists them).
    public func dropStreamedFills(_ count: Int) { state.withLock { $0.dropStreamedFills += count } }
    /// Closes every stream connection from the server side.
    public func closeStreams() { state.withLock { $0.streamGeneration += 1 } }

    /// What one stream connection has been sent: fills up to this count, each order's last status.
    final class Subscribed: Sendable {
        let seen = Mutex<(fills: Int?, statuses: [Int64: String]?)>((nil, nil))
    }

    /// One WebSocket connection: answers `subscribe` and `ping`; pushes the account's fills (a
    /// snapshot first; each twice, newest first, when fills are duplicated and reordered) and the
    /// updates of its orders, as they happen (looked for every 10 ms).
    func stream(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (outgoing, out) = AsyncStream<String>.makeStream()
        let generation = state.withLock { $0.streamGeneration }
        let subscribed = Subscribed()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { out.finish() }
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    for answer in self.answer(streamed: text, subscribed: subscribed) { out.yield(answer) }
                }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .milliseconds(10))
                    guard let pushes = self.changes(subscribed, generation: generation) else {
                        out.finish()  // closed by the test
                        return
                    }
                    for push in pushes { out.yield(push) }
                }
            }
            for await text in outgoing { try await outbound.write(.text(text)) }
            group.cancelAll()
        }
    }

    /// The answers to one message on the stream.
    func answer(streamed text: String, subscribed: Subscribed) -> [String] {
        state.withLock { $0.streamed.append(text) }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            return [#"{"channel":"error","data":"Invalid JSON \#(text)"}"#]
        }
        if object["method"] as? String == "ping" { return [#"{"channel":"pong"}"#] }
        guard object["method"] as? String == "subscribe", let subscription = object["subscription"] as? [String: Any],
            let type = subscription["type"] as? String, let user = subscription["user"] as? String,
            let body = try? JSONSerialization.data(withJSONObject: subscription)
        else { return [#"{"channel":"error","data":"Invalid subscription \#(text)"}"#] }
        var answers = [
            #"{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":\#(String(decoding: body, as: UTF8.self))}}"#
        ]
        guard user.lowercased() == account else { return answers }
        state.withLock { state in
            if type == "userFills" {
                subscribed.seen.withLock { $0.fills = state.fills.count }
                answers.append(Self.fillsPush(state.fills.map(Self.row), snapshot: true, user: account))
            } else if type == "orderUpdates" {
                subscribed.seen.withLock { $0.statuses = Dictionary(state.orders.map { ($0.oid, $0.status) }) { $1 } }
            }
        }
        return answers
    }

    /// What to push since the last look; nil when the test closed the streams.
    func changes(_ subscribed: Subscribed, generation: Int) -> [String]? {
        state.withLock { state -> [String]? in
            guard state.streamGeneration == generation else { return nil }
            return subscribed.seen.withLock { seen in
                var pushes: [String] = []
                if let count = seen.fills, state.fills.count > count {
                    var rows: [[String: Any]] = []
                    for fill in state.fills[count...] {
                        if state.dropStreamedFills > 0 {
                            state.dropStreamedFills -= 1
                        } else {
                            rows.append(Self.row(fill))
                        }
                    }
                    seen.fills = state.fills.count
                    if state.duplicatedAndReordered { rows = (rows + rows).reversed() }
                    if !rows.isEmpty { pushes.append(Self.fillsPush(rows, snapshot: false, user: account)) }
                }
                if var statuses = seen.statuses {
                    var updates: [[String: Any]] = []
                    for order in state.orders where statuses[order.oid] != order.status {
                        updates.append(["order": Self.row(order), "status": order.status, "statusTimestamp": Self.now])
                        statuses[order.oid] = order.status
                    }
                    seen.statuses = statuses
                    if !updates.isEmpty,
                        let data = try? JSONSerialization.data(withJSONObject: [
                            "channel": "orderUpdates", "data": updates,
                        ])
                    {
                        pushes.append(String(decoding: data, as: UTF8.self))
                    }
                }
                return pushes
            }
        }
    }

    static func fillsPush(_ rows: [[String: Any]], snapshot: Bool, user: String) -> String {
        var payload: [String: Any] = ["user": user, "fills": rows]
        if snapshot { payload["isSnapshot"] = true }
        let data = (try? JSONSerialization.data(withJSONObject: ["channel": "userFills", "data": payload])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Test controls

    /// Sets the mark (and mid) of a coin, named as a coin (`BTC`) or a symbol (`BTCUSDT`).
    public func setMark(_ coin: String, _ price: Money) {
        state.withLock { $0.marks[HyperliquidCoins.coin(coin)] = price }
    }
    public func failNextOrders(_ faults: [OrderFault]) { state.withLock { $0.orderFaults += faults } }
    /// The next `count` requests are answered HTTP 429.
    public func tooManyRequests(_ count: Int) { state.withLock { $0.tooManyRequests += count } }
    /// From now on fill lists carry every fill twice, newest first.
    public func duplicateAndReorderFills() { state.withLock { $0.duplicatedAndReordered = true } }
    /// The signed position in `coin`.
    public func position(_ coin: String) -> Money {
        state.withLock { $0.positions[HyperliquidCoins.coin(coin)]?.size ?? 0 }
    }
    /// Open trigger orders: reduce-only, their size and trigger, and whether they are stops.
    public var triggers: [(cloid: String?, size: Money, trigger: Money, tpsl: String, positionTpsl: Bool)] {
        state.withLock { state in
            state.orders.filter { $0.status == "open" && $0.trigger != nil }.map {
                ($0.cloid, $0.size, $0.trigger!, $0.tpsl ?? "", $0.positionTpsl)
            }
        }
    }
    /// `info:<type>` and `exchange:<action type>` for every request, in order.
    public var requests: [String] { state.withLock { $0.requests } }
    /// The entry orders sent (IOC, not reduce-only), by cloid.
    public var entryCloids: [String] {
        state.withLock { $0.orders.filter { !$0.reduceOnly && $0.trigger == nil }.compactMap(\.cloid) }
    }

    /// The coin's stop triggers cancelled by hand, in the app.
    public func cancelTriggersByHand(_ symbol: String) {
        let coin = HyperliquidCoins.coin(symbol)
        state.withLock { state in
            for index in state.orders.indices
            where state.orders[index].coin == coin && state.orders[index].status == "open"
                && state.orders[index].tpsl == "sl"
            {
                state.orders[index].status = "canceled"
            }
        }
    }

    /// A market order placed by hand (no cloid), filled at the mark.
    public func tradeByHand(_ symbol: String, buy: Bool, size: Money) {
        let coin = HyperliquidCoins.coin(symbol)
        state.withLock { state in
            let oid = state.nextOID
            state.nextOID += 1
            let mark = state.marks[coin] ?? 100
            state.orders.append(
                Order(
                    oid: oid,
                    cloid: nil,
                    coin: coin,
                    isBuy: buy,
                    limit: mark,
                    size: 0,
                    original: size,
                    reduceOnly: false,
                    trigger: nil,
                    tpsl: nil,
                    positionTpsl: false,
                    status: "filled",
                    time: Self.now
                )
            )
            Self.fill(&state, coin: coin, buy: buy, size: size, price: mark, oid: oid, liquidation: false)
        }
    }

    /// Another's round trips on `coin`, `daysAgo` back: fills of orders this system never placed.
    public func seedHistory(_ symbol: String, roundTrips: Int, daysAgo: Double) {
        let coin = HyperliquidCoins.coin(symbol)
        state.withLock { state in
            let start = Self.now - Int64(daysAgo * 86_400_000)
            for trip in 0..<roundTrips {
                for buy in [true, false] {
                    state.nextTID += 1
                    state.fills.append(
                        Fill(
                            coin: coin,
                            price: state.marks[coin] ?? 100,
                            size: 1,
                            isBuy: buy,
                            time: start + Int64(trip * 60_000) + (buy ? 0 : 30_000),
                            oid: 9,
                            tid: state.nextTID,
                            fee: 0,
                            closedPnl: 0,
                            startPosition: buy ? 0 : 1,
                            liquidation: false
                        )
                    )
                }
            }
        }
    }

    /// The mark moves: triggers it crosses fire (reduce-only, at the mark).
    public func moveMarket(_ symbol: String, to price: Money) {
        let coin = HyperliquidCoins.coin(symbol)
        state.withLock { state in
            state.marks[coin] = price
            Self.fireTriggers(&state, coin: coin)
        }
    }

    /// The liquidation engine takes the position at `price`.
    public func liquidate(_ symbol: String, at price: Money) {
        let coin = HyperliquidCoins.coin(symbol)
        state.withLock { state in
            state.marks[coin] = price
            guard let held = state.positions[coin], held.size != 0 else { return }
            Self.fill(
                &state,
                coin: coin,
                buy: held.size < 0,
                size: held.size.magnitude,
                price: price,
                oid: 1,
                liquidation: true
            )
        }
    }

    // MARK: Matching

    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func fireTriggers(_ state: inout State, coin: String) {
        guard let mark = state.marks[coin] else { return }
        for index in state.orders.indices where state.orders[index].coin == coin && state.orders[index].status == "open"
        {
            let order = state.orders[index]
            guard let trigger = order.trigger else { continue }
            // A stop sells when the mark falls to it (buys when it rises); a target the other way.
            let fires =
                order.tpsl == "sl"
                ? (order.isBuy ? mark >= trigger : mark <= trigger) : (order.isBuy ? mark <= trigger : mark >= trigger)
            guard fires else { continue }
            state.orders[index].status = "triggered"
            let held = state.positions[coin]?.size ?? 0
            let reducible = order.isBuy ? max(0, -held) : max(0, held)
            let size = order.positionTpsl ? reducible : min(order.size, reducible)
            guard size > 0 else {
                state.orders[index].status = "canceled"
                continue
            }
            fill(&state, coin: coin, buy: order.isBuy, size: size, price: mark, oid: order.oid, liquidation: false)
            state.orders[index].status = "filled"
            state.orders[index].size = 0
        }
    }

    /// A fill: the position moves, PnL and fee are booked; reduce-only orders left with nothing to
    /// reduce are cancelled, as Hyperliquid cancels them.
    static func fill(
        _ state: inout State,
        coin: String,
        buy: Bool,
        size: Money,
        price: Money,
        oid: Int64,
        liquidation: Bool
    ) {
        let before = state.positions[coin]?.size ?? 0
        let signed = buy ? size : -size
        let after = before + signed
        var entry = state.positions[coin]?.entry ?? price
        var closedPnl: Money = 0
        if before == 0 || (before > 0) == buy {
            entry = before == 0 ? price : (entry * before.magnitude + price * size) / (before.magnitude + size)
        } else {
            let closing = min(size, before.magnitude)
            closedPnl = (price - entry) * closing * (before > 0 ? 1 : -1)
            if after != 0, (after > 0) != (before > 0) { entry = price }
        }
        let fee = (price * size * takerFee).rounded(toMultipleOf: Money(string: "0.000001")!, .up)
        state.equity += closedPnl - fee
        let leverage = state.leverage[coin] ?? 20
        state.positions[coin] = after == 0 ? nil : (after, entry, leverage)
        state.nextTID += 1
        state.fills.append(
            Fill(
                coin: coin,
                price: price,
                size: size,
                isBuy: buy,
                time: now,
                oid: oid,
                tid: state.nextTID,
                fee: fee,
                closedPnl: closedPnl,
                startPosition: before,
                liquidation: liquidation
            )
        )
        if after == 0 {
            for index in state.orders.indices
            where state.orders[index].coin == coin && state.orders[index].status == "open"
                && state.orders[index].reduceOnly
            {
                state.orders[index].status = "reduceOnlyCanceled"
            }
        }
    }

    // MARK: /info

    func json(_ value: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])) ?? Data()
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: Array(data)))
        )
    }

    func throttled(_ what: String) -> Response? {
        state.withLock { state in
            state.requests.append(what)
            guard state.tooManyRequests > 0 else { return nil }
            state.tooManyRequests -= 1
            return Response(status: .tooManyRequests, body: .init(byteBuffer: ByteBuffer(string: "null")))
        }
    }

    func info(_ body: Data) -> Response {
        guard let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let type = request["type"] as? String
        else {
            return Response(
                status: .unprocessableContent,
                body: .init(byteBuffer: ByteBuffer(string: "Failed to deserialize the JSON body into the target type"))
            )
        }
        if let refused = throttled("info:\(type)") { return refused }
        let user = (request["user"] as? String)?.lowercased()
        return state.withLock { state -> Response in
            switch type {
            case "meta":
                return json([
                    "universe": Self.universe.map { ["name": $0.0, "szDecimals": $0.1, "maxLeverage": $0.2] }
                ])
            case "allMids":
                return json(Dictionary(uniqueKeysWithValues: state.marks.map { ($0.key, "\($0.value)") }))
            case "metaAndAssetCtxs":
                return json([
                    ["universe": Self.universe.map { ["name": $0.0, "szDecimals": $0.1, "maxLeverage": $0.2] }],
                    Self.universe.map { coin in
                        let mark = state.marks[coin.0].map { "\($0)" } ?? "0"
                        return [
                            "markPx": mark, "midPx": mark, "oraclePx": mark, "funding": "0.0000125",
                            "openInterest": "1000.0", "premium": "0.0", "dayNtlVlm": "0.0", "prevDayPx": mark,
                            "impactPxs": [mark, mark],
                        ]
                    },
                ])
            case "clearinghouseState":
                guard user == account else { return json(Self.emptyState) }
                let positions = state.positions.sorted { $0.key < $1.key }.map { coin, held in
                    [
                        "type": "oneWay",
                        "position": [
                            "coin": coin, "szi": "\(held.size)", "entryPx": "\(held.entry)",
                            "leverage": ["type": "isolated", "value": held.leverage, "rawUsd": "0.0"],
                            "liquidationPx": NSNull(), "marginUsed": "0.0", "maxLeverage": 40,
                            "positionValue": "\(held.size.magnitude * (state.marks[coin] ?? held.entry))",
                            "returnOnEquity": "0.0", "unrealizedPnl": "0.0",
                            "cumFunding": ["allTime": "0.0", "sinceChange": "0.0", "sinceOpen": "0.0"],
                        ] as [String: Any],
                    ] as [String: Any]
                }
                let value = "\(state.equity)"
                return json([
                    "assetPositions": positions,
                    "marginSummary": [
                        "accountValue": value, "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": value,
                    ],
                    "crossMarginSummary": [
                        "accountValue": value, "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": value,
                    ],
                    "crossMaintenanceMarginUsed": "0.0", "withdrawable": value, "time": Self.now,
                ])
            case "orderStatus":
                let wanted = request["oid"]
                let found = state.orders.last { order in
                    if let cloid = wanted as? String { return order.cloid == cloid.lowercased() }
                    return (wanted as? NSNumber)?.int64Value == order.oid
                }
                guard user == account, let found else { return json(["status": "unknownOid"]) }
                return json([
                    "status": "order",
                    "order": ["order": Self.row(found), "status": found.status, "statusTimestamp": found.time],
                ])
            case "frontendOpenOrders", "openOrders":
                guard user == account else { return json([Any]()) }
                return json(state.orders.filter { $0.status == "open" }.map(Self.row))
            case "userFills", "userFillsByTime":
                guard user == account else { return json([Any]()) }
                let start = (request["startTime"] as? NSNumber)?.int64Value ?? 0
                var rows = state.fills.filter { $0.time >= start }.map(Self.row)
                if type == "userFills" || state.duplicatedAndReordered { rows.reverse() }
                if state.duplicatedAndReordered { rows += rows.reversed() }
                return json(rows)
            default:
                return Response(
                    status: .unprocessableContent,
                    body: .init(
                        byteBuffer: ByteBuffer(string: "Failed to deserialize the JSON body into the target type")
                    )
                )
            }
        }
    }

    static var emptyState: [String: Any] {
        [
            "assetPositions": [Any](), "withdrawable": "0.0", "crossMaintenanceMarginUsed": "0.0", "time": 0,
            "marginSummary": [
                "accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0",
            ],
            "crossMarginSummary": [
                "accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0",
            ],
        ]
    }

    static func row(_ order: Order) -> [String: Any] {
        [
            "coin": order.coin, "side": order.isBuy ? "B" : "A", "limitPx": "\(order.limit)", "sz": "\(order.size)",
            "origSz": "\(order.original)", "oid": order.oid, "timestamp": order.time,
            "isTrigger": order.trigger != nil, "triggerPx": order.trigger.map { "\($0)" } ?? "0.0",
            "triggerCondition": order.trigger.map {
                "Price \(order.isBuy == (order.tpsl == "sl") ? "above" : "below") \($0)"
            } ?? "N/A",
            "reduceOnly": order.reduceOnly, "isPositionTpsl": order.positionTpsl, "children": [Any](),
            "orderType": order.trigger == nil ? "Limit" : (order.tpsl == "sl" ? "Stop Market" : "Take Profit Market"),
            "tif": order.trigger == nil ? "Ioc" : NSNull(), "cloid": order.cloid ?? NSNull(),
        ]
    }

    static func row(_ fill: Fill) -> [String: Any] {
        var row: [String: Any] = [
            "coin": fill.coin, "px": "\(fill.price)", "sz": "\(fill.size)", "side": fill.isBuy ? "B" : "A",
            "time": fill.time, "startPosition": "\(fill.startPosition)",
            "dir": fill.startPosition == 0 || (fill.startPosition > 0) == fill.isBuy
                ? (fill.isBuy ? "Open Long" : "Open Short") : (fill.isBuy ? "Close Short" : "Close Long"),
            "closedPnl": "\(fill.closedPnl)", "hash": "0x" + String(repeating: "0", count: 64), "oid": fill.oid,
            "crossed": true, "fee": "\(fill.fee)", "tid": fill.tid, "feeToken": "USDC",
        ]
        if fill.liquidation {
            row["liquidation"] = ["liquidatedUser": "0x0", "markPx": "\(fill.price)", "method": "market"]
        }
        return row
    }

    // MARK: /exchange

    func exchange(_ body: String) async throws -> Response {
        guard let parsed = try? OrderedJSON.parse(body), case .map(let fields) = parsed,
            let action = fields.first(where: { $0.0 == "action" })?.1,
            case .int(let nonce)? = fields.first(where: { $0.0 == "nonce" })?.1,
            case .map(let signatureFields)? = fields.first(where: { $0.0 == "signature" })?.1
        else {
            return Response(
                status: .unprocessableContent,
                body: .init(byteBuffer: ByteBuffer(string: "Failed to deserialize the JSON body into the target type"))
            )
        }
        func string(_ pairs: [(String, MessagePack)], _ key: String) -> String? {
            if case .string(let value)? = pairs.first(where: { $0.0 == key })?.1 { value } else { nil }
        }
        func int(_ pairs: [(String, MessagePack)], _ key: String) -> Int64? {
            if case .int(let value)? = pairs.first(where: { $0.0 == key })?.1 { value } else { nil }
        }
        guard case .map(let actionFields) = action, let type = string(actionFields, "type") else {
            return json(["status": "err", "response": "Invalid action"])
        }
        if let refused = throttled("exchange:\(type)") { return refused }
        let signature = HyperliquidSignature(
            r: string(signatureFields, "r") ?? "",
            s: string(signatureFields, "s") ?? "",
            v: Int(int(signatureFields, "v") ?? 0)
        )
        let signer = HyperliquidSigning.signer(of: action, nonce: UInt64(nonce), signature: signature, mainnet: mainnet)
        guard signer == agent else {
            // What Hyperliquid says to a signature that recovers to an address it does not know.
            return json(["status": "err", "response": "User or API Wallet \(signer ?? "0x0") does not exist."])
        }
        let fresh = state.withLock { state -> Bool in
            guard abs(Int64(nonce) - Self.now) < 2 * 86_400_000 else { return false }
            return state.nonces.insert(UInt64(nonce)).inserted
        }
        guard fresh else { return json(["status": "err", "response": "Invalid nonce: duplicate nonce \(nonce)"]) }
        state.withLock { $0.actions.append(action.json) }
        switch type {
        case "updateLeverage":
            guard let asset = int(actionFields, "asset"), Int(asset) < Self.universe.count,
                let leverage = int(actionFields, "leverage")
            else { return json(["status": "err", "response": "Invalid asset"]) }
            let coin = Self.universe[Int(asset)]
            guard leverage >= 1, Int(leverage) <= coin.2 else {
                return json(["status": "err", "response": "Invalid leverage value"])
            }
            state.withLock { $0.leverage[coin.0] = Int(leverage) }
            return json(["status": "ok", "response": ["type": "default"]])
        case "order":
            guard case .array(let orders)? = actionFields.first(where: { $0.0 == "orders" })?.1 else {
                return json(["status": "err", "response": "Invalid action"])
            }
            let grouping = string(actionFields, "grouping") ?? "na"
            var statuses: [Any] = []
            var lost = false
            for order in orders {
                let (status, lose) = place(order, grouping: grouping)
                statuses.append(status)
                lost = lost || lose
            }
            if lost { return Response(status: .badGateway, body: .init(byteBuffer: ByteBuffer(string: "Bad Gateway"))) }
            return json(["status": "ok", "response": ["type": "order", "data": ["statuses": statuses]]])
        case "cancelByCloid", "cancel":
            guard case .array(let cancels)? = actionFields.first(where: { $0.0 == "cancels" })?.1 else {
                return json(["status": "err", "response": "Invalid action"])
            }
            let statuses: [Any] = cancels.map { cancel in
                guard case .map(let pairs) = cancel else { return ["error": "Invalid cancel"] }
                let cloid = string(pairs, "cloid")?.lowercased()
                let oid = int(pairs, "o")
                return state.withLock { state -> Any in
                    guard
                        let index = state.orders.firstIndex(where: {
                            $0.status == "open" && (cloid != nil ? $0.cloid == cloid : $0.oid == oid)
                        })
                    else {
                        return [
                            "error":
                                "Order was never placed, already canceled, or filled. asset=\(int(pairs, "asset") ?? int(pairs, "a") ?? 0)"
                        ]
                    }
                    state.orders[index].status = "canceled"
                    return "success"
                }
            }
            return json(["status": "ok", "response": ["type": "cancel", "data": ["statuses": statuses]]])
        default:
            return json(["status": "err", "response": "Unsupported action \(type)"])
        }
    }

    /// One order of an `order` action: its status, and whether its answer is lost.
    func place(_ order: MessagePack, grouping: String) -> (Any, Bool) {
        guard case .map(let pairs) = order else { return (["error": "Invalid order"], false) }
        func value(_ key: String) -> MessagePack? { pairs.first { $0.0 == key }?.1 }
        guard case .int(let asset)? = value("a"), Int(asset) < Self.universe.count, case .bool(let isBuy)? = value("b"),
            case .string(let priceText)? = value("p"), case .string(let sizeText)? = value("s"),
            case .bool(let reduceOnly)? = value("r"), case .map(let type)? = value("t"),
            let price = Money(string: priceText), let size = Money(string: sizeText)
        else { return (["error": "Invalid order"], false) }
        let cloid: String? = if case .string(let c)? = value("c") { c.lowercased() } else { nil }
        let (coin, szDecimals, _) = Self.universe[Int(asset)]
        let filters = HyperliquidCoins.filters(szDecimals: szDecimals)
        guard filters.isOnTick(price), price > 0 else {
            return (["error": "Price must be divisible by tick size. asset=\(asset)"], false)
        }
        guard filters.quantity(size) == size, size > 0 else { return (["error": "Order has invalid size."], false) }
        var trigger: (price: Money, tpsl: String)?
        if case .map(let triggerFields)? = type.first(where: { $0.0 == "trigger" })?.1 {
            guard case .string(let t)? = triggerFields.first(where: { $0.0 == "triggerPx" })?.1,
                let px = Money(string: t),
                case .string(let tpsl)? = triggerFields.first(where: { $0.0 == "tpsl" })?.1
            else { return (["error": "Invalid trigger"], false) }
            trigger = (px, tpsl)
        }
        return state.withLock { state -> (Any, Bool) in
            let fault = state.orderFaults.isEmpty ? nil : state.orderFaults.removeFirst()
            if case .refuse(let error)? = fault { return (["error": error], false) }
            if let cloid, state.orders.contains(where: { $0.cloid == cloid }) {
                return (["error": "Duplicate cloid. asset=\(asset)"], false)
            }
            let mark = state.marks[coin] ?? 0
            let held = state.positions[coin]?.size ?? 0
            let positionTpsl = grouping == "positionTpsl"
            if reduceOnly, !positionTpsl, trigger == nil, isBuy ? held >= 0 : held <= 0 {
                return (["error": "Reduce only order would increase position. asset=\(asset)"], false)
            }
            if trigger == nil, !reduceOnly, price * size < 10 {
                return (["error": "Order must have minimum value of $10. asset=\(asset)"], false)
            }
            let oid = state.nextOID
            state.nextOID += 1
            var record = Order(
                oid: oid,
                cloid: cloid,
                coin: coin,
                isBuy: isBuy,
                limit: price,
                size: size,
                original: size,
                reduceOnly: reduceOnly,
                trigger: trigger?.price,
                tpsl: trigger?.tpsl,
                positionTpsl: positionTpsl,
                status: "open",
                time: Self.now
            )
            if let trigger {
                let stop = trigger.tpsl == "sl"
                // A market trigger's limit bounds its fill: a sell may not ask above the trigger (a buy below).
                if stop, isBuy ? price < trigger.price : price > trigger.price {
                    return (["error": "Invalid TP/SL price. asset=\(asset)"], false)
                }
                state.orders.append(record)
                Self.fireTriggers(&state, coin: coin)
                return (
                    ["resting": ["oid": oid]],
                    fault.map { if case .lostAfterCreate = $0 { true } else { false } } ?? false
                )
            }
            // IOC at the mark, if the limit allows.
            guard mark > 0, isBuy ? price >= mark : price <= mark else {
                record.status = "canceled"
                state.orders.append(record)
                return (
                    ["error": "Order could not immediately match against any resting orders. asset=\(asset)"], false
                )
            }
            var filled = reduceOnly ? min(size, held.magnitude) : size
            if case .partial(let fraction)? = fault { filled = filters.quantity(size * fraction) }
            record.size = size - filled
            record.status = filled >= size ? "filled" : "canceled"
            state.orders.append(record)
            if filled > 0 {
                Self.fill(&state, coin: coin, buy: isBuy, size: filled, price: mark, oid: oid, liquidation: false)
            }
            if case .gapAfterFill(let gap)? = fault { state.marks[coin] = gap }
            let lost: Bool = if case .lostAfterCreate? = fault { true } else { false }
            guard filled > 0 else {
                return (["error": "Order could not immediately match against any resting orders. asset=\(asset)"], lost)
            }
            return (["filled": ["totalSz": "\(filled)", "avgPx": "\(mark)", "oid": oid]], lost)
        }
    }
}

/// JSON read into MessagePack with its keys in the order they came: the exchange hashes the action as
/// the client built it.
enum OrderedJSON {
    struct Failure: Error {}

    static func parse(_ text: String) throws -> MessagePack {
        var scalars = Array(text.unicodeScalars)[...]
        let value = try parseValue(&scalars)
        skipSpace(&scalars)
        guard scalars.isEmpty else { throw Failure() }
        return value
    }

    static func skipSpace(_ s: inout ArraySlice<Unicode.Scalar>) {
        while let first = s.first, first == " " || first == "\n" || first == "\t" || first == "\r" { s.removeFirst() }
    }

    static func parseValue(_ s: inout ArraySlice<Unicode.Scalar>) throws -> MessagePack {
        skipSpace(&s)
        guard let first = s.first else { throw Failure() }
        switch first {
        case "{":
            s.removeFirst()
            var pairs: [(String, MessagePack)] = []
            skipSpace(&s)
            if s.first == "}" {
                s.removeFirst()
                return .map(pairs)
            }
            while true {
                skipSpace(&s)
                guard case .string(let key) = try parseValue(&s) else { throw Failure() }
                skipSpace(&s)
                guard s.popFirst() == ":" else { throw Failure() }
                pairs.append((key, try parseValue(&s)))
                skipSpace(&s)
                let next = s.popFirst()
                if next == "}" { return .map(pairs) }
                guard next == "," else { throw Failure() }
            }
        case "[":
            s.removeFirst()
            var items: [MessagePack] = []
            skipSpace(&s)
            if s.first == "]" {
                s.removeFirst()
                return .array(items)
            }
            while true {
                items.append(try parseValue(&s))
                skipSpace(&s)
                let next = s.popFirst()
                if next == "]" { return .array(items) }
                guard next == "," else { throw Failure() }
            }
        case "\"":
            s.removeFirst()
            var out = String.UnicodeScalarView()
            while let c = s.popFirst() {
                if c == "\"" { return .string(String(out)) }
                if c == "\\" {
                    guard let e = s.popFirst() else { throw Failure() }
                    switch e {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    case "u":
                        let hex = String(String.UnicodeScalarView(s.prefix(4)))
                        s.removeFirst(min(4, s.count))
                        guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
                            throw Failure()
                        }
                        out.append(scalar)
                    default: out.append(e)
                    }
                } else {
                    out.append(c)
                }
            }
            throw Failure()
        case "t", "f", "n":
            for (word, value) in [("true", MessagePack.bool(true)), ("false", .bool(false)), ("null", .null)]
            where String(String.UnicodeScalarView(s.prefix(word.count))) == word {
                s.removeFirst(word.count)
                return value
            }
            throw Failure()
        default:
            var digits = ""
            while let c = s.first, c == "-" || ("0"..."9").contains(c) {
                digits.unicodeScalars.append(c)
                s.removeFirst()
            }
            // Actions carry integers only; a float is not what the SDK sends.
            guard let number = Int64(digits), s.first != ".", s.first != "e", s.first != "E" else { throw Failure() }
            return .int(number)
        }
    }
}
