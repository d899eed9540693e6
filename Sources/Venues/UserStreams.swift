import Foundation
import HTTPSupport
import Logging
import TradingCore
import WSClient

/// Where a venue's user-data stream stands: `down` (REST polling only), `catchingUp` (connected; the
/// next poll reads REST from the cursors, while what the stream brings waits in `backlog`), or `live`
/// (fills come with the stream; REST checks what it may have missed).
struct UserStreamState<Fill: Sendable>: Sendable {
    enum Phase: Sendable { case down, catchingUp, live }
    var phase = Phase.down
    /// Each connection's number: a catch-up only makes the connection it started under live.
    var generation = 0
    /// Fills that came while catching up, in the stream's order.
    var backlog: [Fill] = []
    /// Trade ids the stream brought that REST has not listed yet, by symbol.
    var seen: [String: Set<Int64>] = [:]
    /// When REST last read each symbol's fills (`*`: all of them, where one call reads every symbol).
    var verifiedAt: [String: Date] = [:]
    /// Since when each symbol's position has differed from what the fills built.
    var differsSince: [String: Date] = [:]

    /// Position rows the stream keeps current are read again by REST at most this often.
    static var positionsMaxAge: TimeInterval { 10 }
    /// How long a fill may take to come with the stream before REST reads it.
    static var grace: TimeInterval { 3 }
    /// How often REST checks the fills the stream brought.
    static var verifyEvery: TimeInterval { 30 }
}

/// The stream's timing, for both venues.
typealias StreamTiming = UserStreamState<Never>

/// Binance's user-data stream: a listen key (`POST /fapi/v1/listenKey`, kept alive with `PUT` every
/// 30 minutes; it lapses after 60) and a WebSocket at `<streamURL>/<listenKey>` that pushes
/// `ORDER_TRADE_UPDATE` (fills), `ACCOUNT_UPDATE` (positions) and `ALGO_UPDATE` (conditional orders).
///
/// - On connecting, the next poll reads every traded symbol's fills by REST from the cursors; fills
///   the stream brings meanwhile wait, then follow in order. From then on fills come with the stream.
/// - Nothing is recorded twice: REST moves the trade-id cursor, and a fill the stream brought first is
///   remembered until REST lists it (every `verifyEvery`, or sooner when the position and the
///   fills disagree for `grace`).
/// - A lost event is found by that check; `listenKeyExpired`, a failed keepalive (-1125) or a dropped
///   connection ends the stream, and the caller connects again with a new key.
extension BinanceFuturesVenue {
    public nonisolated var hasUserStream: Bool { streamURL != nil }

    /// Whether fills come with the stream now (for `tradebus status` and the tests).
    public var userStreamLive: Bool { stream.phase == .live }

    /// A listen-key call: `USER_STREAM` security, the API key and no signature.
    func listenKeyCall(_ method: String) async throws(VenueError) -> String {
        try governor.admit(weight: 1, priority: .order, what: "Binance \(method) /fapi/v1/listenKey", now: clock())
        let answer: HTTPAnswer
        do {
            answer = try await caller.send(
                method,
                baseURL + "/fapi/v1/listenKey",
                headers: [("X-MBX-APIKEY", apiKey)],
                timeout: timeout
            )
        } catch {
            throw VenueError(.unreachable, "Binance \(method) /fapi/v1/listenKey: \(error)")
        }
        governor.observeBinance(answer, now: clock())
        struct Key: Decodable { var listenKey: String }
        guard (200..<300).contains(answer.status),
            let key = try? JSONDecoder().decode(Key.self, from: Data(answer.body))
        else {
            // -1125 "This listenKey does not exist.": the stream ends and starts again with a new key.
            throw VenueError(
                .unreachable,
                "Binance \(method) /fapi/v1/listenKey answered \(answer.status): \(answer.text.prefix(200))"
            )
        }
        return key.listenKey
    }

    /// Runs the user-data stream until it ends (an expired key, a dropped connection) or fails; calls
    /// `delivered` after each event that changes something. REST polling covers the time between.
    public func streamUserData(delivered: @escaping @Sendable () async -> Void) async throws {
        guard let streamURL else { return }
        let key = try await listenKeyCall("POST")
        let keepalive = listenKeyKeepalive
        let client = WebSocketClient(
            url: "\(streamURL)/\(key)",
            configuration: WebSocketClientConfiguration(
                maxFrameSize: 1 << 22,
                autoPing: .enabled(timePeriod: .seconds(30))
            ),
            logger: logger
        ) { inbound, _, _ in
            await self.streamOpened()
            await delivered()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: keepalive)
                        _ = try await self.listenKeyCall("PUT")
                    }
                }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    guard case .text(let text) = message else { continue }
                    if try await self.receiveUserEvent(Array(text.utf8)) { await delivered() }
                }
                group.cancelAll()
            }
        }
        do {
            _ = try await client.run()
        } catch {
            streamClosed()
            throw error
        }
        streamClosed()
    }

    func streamOpened() {
        stream.generation += 1
        stream.phase = .catchingUp
        stream.backlog = []
        logger.info("Binance user-data stream connected; catching up by REST")
    }

    func streamClosed() {
        if stream.phase != .down { logger.warning("Binance user-data stream closed; polling by REST until it is back") }
        stream.phase = .down
        stream.backlog = []
    }

    /// One stream event; whether it changed anything. `listenKeyExpired` ends the stream.
    func receiveUserEvent(_ bytes: [UInt8]) async throws -> Bool {
        struct Kind: Decodable { var e: String }
        struct OrderUpdate: Decodable {
            struct Order: Decodable {
                var s: String
                var c: String
                var S: String
                var x: String
                var i: Int64
                var l: String
                var L: String
                var N: String?
                var n: String?
                var T: Int64
                var t: Int64
                var rp: String?
            }
            var o: Order
        }
        struct AccountUpdate: Decodable {
            struct Account: Decodable {
                struct Position: Decodable {
                    var s: String
                    var pa: String
                    var ep: String
                }
                var P: [Position]?
            }
            var a: Account
        }
        struct AlgoUpdate: Decodable {
            struct Algo: Decodable {
                var caid: String
                var aid: Int64
                var o: String
                var s: String
                var S: String
                var q: String?
                var X: String
                var ai: String?
                var tp: String?
            }
            var o: Algo
        }
        let data = Data(bytes)
        guard let kind = try? JSONDecoder().decode(Kind.self, from: data) else {
            logger.warning(
                "unreadable Binance user-data message skipped",
                metadata: ["message": "\(String(decoding: bytes.prefix(200), as: UTF8.self))"]
            )
            return false
        }
        switch kind.e {
        case "ORDER_TRADE_UPDATE":
            guard let update = try? JSONDecoder().decode(OrderUpdate.self, from: data) else { return false }
            let o = update.o
            guard o.x == "TRADE" else { return false }
            let trade = Trade(
                id: o.t,
                orderId: o.i,
                symbol: o.s,
                side: o.S,
                price: o.L,
                qty: o.l,
                commission: o.n.map { $0.hasPrefix("-") ? String($0.dropFirst()) : $0 } ?? "0",
                commissionAsset: o.N,
                realizedPnl: o.rp,
                time: o.T,
                clientOrderId: o.c
            )
            switch stream.phase {
            case .live:
                do { try await record(trade, streamed: true) } catch {
                    logger.warning("a streamed fill waits for REST", metadata: ["error": "\(error)"])
                }
            case .catchingUp: stream.backlog.append(trade)
            case .down: return false
            }
            return true
        case "ACCOUNT_UPDATE":
            guard let update = try? JSONDecoder().decode(AccountUpdate.self, from: data), var rows = risks?.rows else {
                return false
            }
            for position in update.a.P ?? [] {
                let leverage = rows.first { $0.symbol == position.s }?.leverage ?? "1"
                rows.removeAll { $0.symbol == position.s }
                rows.append(
                    Risk(
                        symbol: position.s,
                        positionAmt: position.pa,
                        entryPrice: position.ep,
                        leverage: leverage,
                        updateTime: nil
                    )
                )
            }
            risks?.rows = rows
            return true
        case "ALGO_UPDATE":
            guard let update = try? JSONDecoder().decode(AlgoUpdate.self, from: data) else { return false }
            let algo = update.o
            // The order a conditional order became: its fills are that stop's or target's.
            if let actual = algo.ai.flatMap({ Int64($0) }) {
                clientIDs[actual] = algo.caid
                protective[actual] = algo.o.hasPrefix("TAKE_PROFIT") ? "take_profit" : "stop_loss"
            }
            if algo.X == "NEW" {
                if algos?.rows.contains(where: { $0.clientAlgoId == algo.caid }) == false {
                    algos?.rows.append(
                        AlgoOrder(
                            algoId: algo.aid,
                            clientAlgoId: algo.caid,
                            symbol: algo.s,
                            orderType: algo.o,
                            algoStatus: algo.X,
                            triggerPrice: algo.tp,
                            actualOrderId: nil,
                            side: algo.S,
                            quantity: algo.q
                        )
                    )
                }
            } else {
                algos?.rows.removeAll { $0.clientAlgoId == algo.caid }
            }
            return true
        case "listenKeyExpired":
            throw VenueError(.unreachable, "Binance says the listen key expired; connecting again with a new one")
        default:
            return false
        }
    }
}

/// Bybit's private stream: `wss://stream.bybit.com/v5/private`, authenticated with
/// `{"op":"auth","args":[key, expires, signature]}` (the HMAC-SHA256 of `GET/realtime<expires>`),
/// subscribed to `execution`, `order` and `position`, with `{"op":"ping"}` every 20 seconds.
///
/// - Executions are fills, once each by execution id (the REST cursor's ids), with no REST read;
///   REST reads every symbol's executions at once every `verifyEvery`, or when an order's fills are
///   `grace` late, and after every connection (the catch-up).
/// - `order` keeps the working conditional orders current (a stop cancelled by hand is gone at once).
/// - A refused authentication ends the stream with the venue's message; so does a dropped connection.
extension BybitLinearVenue {
    public nonisolated var hasUserStream: Bool { streamURL != nil }

    /// Whether fills come with the stream now.
    public var userStreamLive: Bool { stream.phase == .live }

    /// Runs the private stream until it ends or fails; calls `delivered` after each message that
    /// changes something.
    public func streamUserData(delivered: @escaping @Sendable () async -> Void) async throws {
        guard let streamURL else { return }
        let expires = now + 10_000
        let signature = HMACSigning.sha256Hex("GET/realtime\(expires)".utf8, secret: secret)
        let auth = #"{"req_id":"auth","op":"auth","args":["\#(apiKey)",\#(expires),"\#(signature)"]}"#
        let client = WebSocketClient(
            url: streamURL,
            configuration: WebSocketClientConfiguration(
                maxFrameSize: 1 << 22,
                autoPing: .enabled(timePeriod: .seconds(30))
            ),
            logger: logger
        ) { inbound, outbound, _ in
            try await outbound.write(.text(auth))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: .seconds(20))
                        try await outbound.write(.text(#"{"req_id":"ping","op":"ping"}"#))
                    }
                }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    guard case .text(let text) = message else { continue }
                    switch try await self.receivePrivate(Array(text.utf8)) {
                    case .authenticated:
                        try await outbound.write(
                            .text(#"{"req_id":"subscribe","op":"subscribe","args":["execution","order","position"]}"#)
                        )
                    case .subscribed:
                        await self.bybitStreamOpened()
                        await delivered()
                    case .changed: await delivered()
                    case .nothing: break
                    }
                }
                group.cancelAll()
            }
        }
        do {
            _ = try await client.run()
        } catch {
            bybitStreamClosed()
            throw error
        }
        bybitStreamClosed()
    }

    func bybitStreamOpened() {
        stream.generation += 1
        stream.phase = .catchingUp
        stream.backlog = []
        logger.info("Bybit private stream connected; catching up by REST")
    }

    func bybitStreamClosed() {
        if stream.phase != .down { logger.warning("Bybit private stream closed; polling by REST until it is back") }
        stream.phase = .down
        stream.backlog = []
    }

    enum PrivateMessage { case authenticated, subscribed, changed, nothing }

    /// One message of the private stream. A refused `auth` or `subscribe` ends the stream.
    func receivePrivate(_ bytes: [UInt8]) throws -> PrivateMessage {
        struct Message: Decodable {
            var op: String?
            var success: Bool?
            var ret_msg: String?
            var topic: String?
        }
        struct Executions: Decodable { var data: [Execution] }
        struct Orders: Decodable { var data: [StopRow] }
        let data = Data(bytes)
        guard let message = try? JSONDecoder().decode(Message.self, from: data) else {
            logger.warning(
                "unreadable Bybit private message skipped",
                metadata: ["message": "\(String(decoding: bytes.prefix(200), as: UTF8.self))"]
            )
            return .nothing
        }
        if let op = message.op, op == "auth" || op == "subscribe" {
            guard message.success == true else {
                throw VenueError(
                    .rejected,
                    "Bybit refused the private stream's \(op): \(message.ret_msg ?? "no reason given"); check BYBIT_API_KEY and its permissions"
                )
            }
            return op == "auth" ? .authenticated : .subscribed
        }
        switch message.topic {
        case "execution"?:
            guard let executions = try? JSONDecoder().decode(Executions.self, from: data) else { return .nothing }
            for execution in executions.data {
                switch stream.phase {
                case .live:
                    do { try record(execution) } catch {
                        logger.warning("a streamed execution waits for REST", metadata: ["error": "\(error)"])
                    }
                case .catchingUp: stream.backlog.append(execution)
                case .down: return .nothing
                }
            }
            return .changed
        case "order"?:
            guard let orders = try? JSONDecoder().decode(Orders.self, from: data) else { return .nothing }
            for order in orders.data where !(order.triggerPrice ?? "").isEmpty && order.triggerPrice != "0" {
                stops?.rows.removeAll { $0.orderLinkId == order.orderLinkId && $0.symbol == order.symbol }
                if order.orderStatus == "Untriggered" { stops?.rows.append(order) }
            }
            return .changed
        case "position"?:
            held = nil
            return .changed
        default:
            return .nothing
        }
    }
}

/// Hyperliquid's stream of the account: `{"method":"subscribe","subscription":{"type":"userFills",
/// "user":…}}` and `orderUpdates` on the public WebSocket (an account's fills are public: no key), with
/// `{"method":"ping"}` every 30 seconds.
///
/// - Fills come with the stream (its snapshot, history, is left to REST); REST reads them every
///   `verifyEvery`, and at once after each connection (the catch-up). A fill is recorded once whichever
///   brings it first: the cursor keeps its `tid`.
/// - An order update (a stop cancelled by hand, triggered, filled) drops the cached open orders, so the
///   next protection check reads them.
/// - A dropped connection ends the stream; REST polling covers the time until it is back.
extension HyperliquidPerpsVenue {
    public nonisolated var hasUserStream: Bool { streamURL != nil }

    /// Whether fills come with the stream now.
    public var userStreamLive: Bool { streamLive }

    /// Runs the stream until it ends or fails; calls `delivered` after each message that changes something.
    public func streamUserData(delivered: @escaping @Sendable () async -> Void) async throws {
        guard let streamURL else { return }
        let subscriptions = ["userFills", "orderUpdates"].map {
            #"{"method":"subscribe","subscription":{"type":"\#($0)","user":"\#(account)"}}"#
        }
        let client = WebSocketClient(
            url: streamURL,
            configuration: WebSocketClientConfiguration(maxFrameSize: 1 << 22),
            logger: logger
        ) { inbound, outbound, _ in
            for subscription in subscriptions { try await outbound.write(.text(subscription)) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: .seconds(30))
                        try await outbound.write(.text(#"{"method":"ping"}"#))
                    }
                }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    guard case .text(let text) = message else { continue }
                    if try await self.receiveStreamed(Array(text.utf8)) { await delivered() }
                }
                group.cancelAll()
            }
        }
        do {
            _ = try await client.run()
        } catch {
            hyperliquidStreamClosed()
            throw error
        }
        hyperliquidStreamClosed()
    }

    func hyperliquidStreamClosed() {
        if streamLive { logger.warning("Hyperliquid account stream closed; polling by REST until it is back") }
        streamLive = false
    }

    /// One message of the stream; whether it changed anything. An `error` channel ends the stream.
    func receiveStreamed(_ bytes: [UInt8]) async throws -> Bool {
        struct Channel: Decodable { var channel: String }
        struct Fills: Decodable {
            struct Payload: Decodable {
                var isSnapshot: Bool?
                var user: String
                var fills: [Fill]
            }
            var data: Payload
        }
        struct Problem: Decodable { var data: String }
        let data = Data(bytes)
        guard let head = try? JSONDecoder().decode(Channel.self, from: data) else {
            logger.warning(
                "unreadable Hyperliquid stream message skipped",
                metadata: ["message": "\(String(decoding: bytes.prefix(200), as: UTF8.self))"]
            )
            return false
        }
        switch head.channel {
        case "userFills":
            guard let push = try? JSONDecoder().decode(Fills.self, from: data), push.data.user.lowercased() == account
            else { return false }
            if push.data.isSnapshot == true {
                // Subscribed: from here fills come with the stream; REST catches up on the next poll.
                streamLive = true
                verifiedAt = nil
                logger.info("Hyperliquid account stream connected; catching up by REST")
                return true
            }
            guard streamLive else { return false }
            for fill in push.data.fills.sorted(by: { ($0.time, $0.tid) < ($1.time, $1.tid) }) {
                do { try await record(fill) } catch {
                    // REST reads it on the next verification.
                    verifiedAt = nil
                    logger.warning("a streamed fill waits for REST", metadata: ["error": "\(error)"])
                }
            }
            return true
        case "orderUpdates":
            openOrders = nil
            return true
        case "error":
            let problem = (try? JSONDecoder().decode(Problem.self, from: data))?.data ?? "no reason given"
            throw VenueError(.unreachable, "Hyperliquid refused the account stream: \(problem)")
        default:
            return false
        }
    }
}
