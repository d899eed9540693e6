import Foundation
import Hummingbird
import HummingbirdWebSocket
import Hyperliquid
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TradingCore

/// A local stand-in for Binance USDⓈ-M futures or Bybit v5 market data, speaking their documented wire
/// formats: the kline WebSocket (Binance's combined streams on `/market/stream`, where klines and mark
/// prices have come since 2026-04-23, the old `/stream` route connecting but sending nothing; Bybit's
/// subscribe, ping and pushes), mark prices and funding (Binance `markPriceUpdate`, Bybit's ticker
/// snapshot then deltas), and REST klines, funding history and funding intervals (Binance
/// `fundingRate`, `fundingInfo` listing only adjusted symbols; Bybit `funding/history` newest first,
/// `instruments-info`; Hyperliquid's `candle` and `activeAssetCtx` subscriptions, and `POST /info`
/// `candleSnapshot` and `fundingHistory`, 500 a page), including their errors (Binance's `{"code","msg"}` with 400, 429 with
/// `Retry-After`, Bybit's `retCode`). The test pushes candles and marks, drops connections and scripts
/// failures.
public final class FakeExchange: Sendable {
    public enum Venue: Sendable { case binance, bybit, hyperliquid }

    /// A scripted REST answer, used instead of the real one.
    public struct Failure: Sendable {
        public var status: Int
        public var body: String
        public var retryAfter: Int?
        public init(status: Int, body: String, retryAfter: Int? = nil) {
            self.status = status
            self.body = body
            self.retryAfter = retryAfter
        }
    }

    struct Connection: Sendable {
        var outgoing: AsyncStream<String>.Continuation
        /// Binance stream names or Bybit topics this connection gets.
        var subscriptions: Set<String>
    }

    struct State {
        var history: [CandleStreamID: [Candle]] = [:]
        var connections: [Int: Connection] = [:]
        var nextConnection = 0
        var connectionsOpened = 0
        var restPaths: [String] = []
        var restTimes: [Date] = []
        var failures: [Failure] = []
        var usedWeight = 0
        var received: [String] = []
        var funding: [String: [FundingEvent]] = [:]
        /// Binance: the symbols `fundingInfo` lists (adjusted ones); Bybit: every symbol's interval.
        var fundingIntervalHours: [String: Int] = [:]
        /// Bybit: the tickers a connection has had its snapshot of.
        var tickerSnapshots: Set<String> = []
        /// Hyperliquid: followed accounts (lowercased): equity, open orders, and fills, newest first.
        var leaders: [String: Leader] = [:]
    }

    /// A Hyperliquid account others follow: what `clearinghouseState`, `frontendOpenOrders` and
    /// `userFills` show of it.
    struct Leader {
        var equity: Money = 0
        var openOrders: [String] = []
        var fills: [String] = []
    }

    public let venue: Venue
    private let state = Mutex(State())
    private let server = ServerSlot()

    init(venue: Venue) { self.venue = venue }

    /// Starts a server on a free loopback port.
    public static func start(_ venue: Venue) async throws -> FakeExchange {
        let exchange = FakeExchange(venue: venue)
        let router = Router(context: BasicWebSocketRequestContext.self)
        exchange.routes(router)
        exchange.server.set(
            try await LocalServer.start(
                router,
                server: .http1WebSocketUpgrade(webSocketRouter: router),
                label: "fake-exchange"
            )
        )
        return exchange
    }

    /// Stops the server and closes every connection.
    public func stop() async {
        await server.stop()
    }

    public var webSocketURL: String { "ws://127.0.0.1:\(server.port)" }
    public var restURL: String { "http://127.0.0.1:\(server.port)" }

    // MARK: What the test scripts

    /// The candles REST serves for a stream.
    public func setHistory(_ candles: [Candle], for stream: CandleStreamID) {
        state.withLock { $0.history[stream] = candles.sorted { $0.openTime < $1.openTime } }
    }

    /// Adds candles to what REST serves.
    public func addHistory(_ candles: [Candle], for stream: CandleStreamID) {
        state.withLock {
            $0.history[stream, default: []] = ($0.history[stream, default: []] + candles).sorted {
                $0.openTime < $1.openTime
            }
        }
    }

    /// Pushes a kline update to every connection subscribed to its stream, in the venue's format.
    public func push(_ candle: Candle, for stream: CandleStreamID, closed: Bool) {
        let (name, text) = message(candle, for: stream, closed: closed)
        state.withLock { state in
            for connection in state.connections.values where connection.subscriptions.contains(name) {
                connection.outgoing.yield(text)
            }
        }
    }

    /// The settlements REST's funding history serves for `symbol`.
    public func setFunding(_ events: [FundingEvent], for symbol: String) {
        state.withLock { $0.funding[symbol] = events.sorted { $0.time < $1.time } }
    }

    /// A symbol's funding interval at the venue (Binance lists it in `fundingInfo` as adjusted).
    public func setFundingInterval(hours: Int, for symbol: String) {
        state.withLock { $0.fundingIntervalHours[symbol] = hours }
    }

    /// Pushes a premium-index update to the connections subscribed to the symbol's mark stream: Binance's
    /// `markPriceUpdate`; Bybit's ticker, a full snapshot the first time, then a delta of these fields.
    public func pushMark(symbol: String, price: Money, rate: Money, nextFunding: Date, at time: Date) {
        func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        state.withLock { state in
            switch venue {
            case .binance:
                let name = BinanceMessages.markPriceStreamName(symbol: symbol)
                let text =
                    #"{"stream":"\#(name)","data":{"e":"markPriceUpdate","E":\#(millis(time)),"s":"\#(symbol)","p":"\#(price)","ap":"\#(price)","i":"\#(price)","P":"\#(price)","r":"\#(rate)","T":\#(millis(nextFunding))}}"#
                for connection in state.connections.values where connection.subscriptions.contains(name) {
                    connection.outgoing.yield(text)
                }
            case .bybit:
                let topic = BybitMessages.tickerTopic(symbol: symbol)
                for (id, connection) in state.connections where connection.subscriptions.contains(topic) {
                    let first = state.tickerSnapshots.insert("\(id):\(topic)").inserted
                    let data =
                        first
                        ? #"{"symbol":"\#(symbol)","tickDirection":"PlusTick","price24hPcnt":"0.01","lastPrice":"\#(price)","prevPrice24h":"\#(price)","highPrice24h":"\#(price)","lowPrice24h":"\#(price)","prevPrice1h":"\#(price)","markPrice":"\#(price)","indexPrice":"\#(price)","openInterest":"1000","openInterestValue":"1000","turnover24h":"1","volume24h":"1","nextFundingTime":"\#(millis(nextFunding))","fundingRate":"\#(rate)","bid1Price":"\#(price)","bid1Size":"1","ask1Price":"\#(price)","ask1Size":"1"}"#
                        : #"{"symbol":"\#(symbol)","markPrice":"\#(price)","nextFundingTime":"\#(millis(nextFunding))","fundingRate":"\#(rate)"}"#
                    connection.outgoing.yield(
                        #"{"topic":"\#(topic)","type":"\#(first ? "snapshot" : "delta")","data":\#(data),"cs":1,"ts":\#(millis(time))}"#
                    )
                }
            case .hyperliquid:
                let coin = HyperliquidCoins.coin(symbol)
                let text =
                    #"{"channel":"activeAssetCtx","data":{"coin":"\#(coin)","ctx":{"funding":"\#(rate)","openInterest":"1000.5","prevDayPx":"\#(price)","dayNtlVlm":"1.0","premium":"0.0","oraclePx":"\#(price)","markPx":"\#(price)","midPx":"\#(price)","impactPxs":["\#(price)","\#(price)"],"dayBaseVlm":"1.0"}}}"#
                for connection in state.connections.values where connection.subscriptions.contains("ctx:\(coin)") {
                    connection.outgoing.yield(text)
                }
            }
        }
    }

    /// A trade on Hyperliquid, pushed to the connections subscribed to the coin's `trades`.
    public func pushTrade(symbol: String, price: Money, at time: Date) {
        let coin = HyperliquidCoins.coin(symbol)
        let millis = Int64((time.timeIntervalSince1970 * 1000).rounded())
        let text =
            #"{"channel":"trades","data":[{"coin":"\#(coin)","side":"B","px":"\#(price)","sz":"0.01","time":\#(millis),"hash":"0x00","tid":\#(millis),"users":["0x0000000000000000000000000000000000000001","0x0000000000000000000000000000000000000002"]}]}"#
        state.withLock { state in
            for connection in state.connections.values where connection.subscriptions.contains("trades:\(coin)") {
                connection.outgoing.yield(text)
            }
        }
    }

    /// Sends raw text to every connection.
    public func pushRaw(_ text: String) {
        state.withLock { state in
            for connection in state.connections.values { connection.outgoing.yield(text) }
        }
    }

    /// Closes every WebSocket connection from the server side.
    public func dropConnections() {
        state.withLock { state in
            for connection in state.connections.values { connection.outgoing.finish() }
            state.connections.removeAll()
        }
    }

    /// The next REST requests get these answers, in order.
    public func failNextRequests(_ failures: [Failure]) {
        state.withLock { $0.failures += failures }
    }

    /// Paths (with queries) of the REST requests so far, and when they came.
    public var restPaths: [String] { state.withLock { $0.restPaths } }
    public var restTimes: [Date] { state.withLock { $0.restTimes } }
    /// WebSocket connections now open, and opened in all.
    public var openConnections: Int { state.withLock { $0.connections.count } }
    public var connectionsOpened: Int { state.withLock { $0.connectionsOpened } }
    /// Text messages clients sent (subscriptions, heartbeats).
    public var received: [String] { state.withLock { $0.received } }

    // MARK: Wire formats

    func message(_ candle: Candle, for stream: CandleStreamID, closed: Bool) -> (subscription: String, text: String) {
        let length = CandleInterval.milliseconds(stream.interval) ?? 60_000
        func text(_ value: Double) -> String { "\"\(value)\"" }
        switch venue {
        case .binance:
            let name = BinanceMessages.streamName(symbol: stream.symbol, interval: stream.interval)
            let kline = """
                {"t":\(candle.openTime),"T":\(candle.openTime + length - 1),"s":"\(stream.symbol)","i":"\(stream.interval)","f":100,"L":200,\
                "o":\(text(candle.open)),"c":\(text(candle.close)),"h":\(text(candle.high)),"l":\(text(candle.low)),"v":\(text(candle.volume)),\
                "n":100,"x":\(closed),"q":"1.0","V":"0.5","Q":"0.5","B":"0"}
                """
            return (
                name,
                #"{"stream":"\#(name)","data":{"e":"kline","E":\#(candle.openTime + length),"s":"\#(stream.symbol)","k":\#(kline)}}"#
            )
        case .bybit:
            let topic =
                BybitMessages.topic(symbol: stream.symbol, interval: stream.interval) ?? "kline.?.\(stream.symbol)"
            let interval = BybitMessages.bybitInterval(stream.interval) ?? "?"
            let data = """
                {"start":\(candle.openTime),"end":\(candle.openTime + length - 1),"interval":"\(interval)","open":\(text(candle.open)),\
                "close":\(text(candle.close)),"high":\(text(candle.high)),"low":\(text(candle.low)),"volume":\(text(candle.volume)),\
                "turnover":"1.0","confirm":\(closed),"timestamp":\(candle.openTime + length)}
                """
            return (
                topic, #"{"topic":"\#(topic)","data":[\#(data)],"ts":\#(candle.openTime + length),"type":"snapshot"}"#
            )
        case .hyperliquid:
            // No "closed" flag: the stream sends the candle as it stands; the next one's start closes it.
            let coin = HyperliquidCoins.coin(stream.symbol)
            return (
                "candle:\(coin):\(stream.interval)",
                #"{"channel":"candle","data":\#(hyperliquidCandle(candle, coin: coin, interval: stream.interval))}"#
            )
        }
    }

    func hyperliquidCandle(_ c: Candle, coin: String, interval: String) -> String {
        let length = CandleInterval.milliseconds(interval) ?? 60_000
        return
            #"{"t":\#(c.openTime),"T":\#(c.openTime + length - 1),"s":"\#(coin)","i":"\#(interval)","o":"\#(c.open)","c":"\#(c.close)","h":"\#(c.high)","l":"\#(c.low)","v":"\#(c.volume)","n":12}"#
    }

    func routes(_ router: Router<BasicWebSocketRequestContext>) {
        switch venue {
        case .binance:
            router.ws("market/stream") { inbound, outbound, context in
                let streams =
                    context.request.uri.queryParameters.get("streams").map { $0.split(separator: "/").map(String.init) }
                    ?? []
                try await self.serve(inbound: inbound, outbound: outbound, subscriptions: Set(streams))
            }
            // The route klines came on until 2026-04-23: it still connects, and sends nothing.
            router.ws("stream") { inbound, outbound, _ in
                try await self.serve(inbound: inbound, outbound: outbound, subscriptions: [])
            }
            router.get("fapi/v1/klines") { request, _ in try self.binanceKlines(request) }
            router.get("fapi/v1/fundingRate") { request, _ in try self.binanceFundingRate(request) }
            router.get("fapi/v1/fundingInfo") { request, _ in
                if let failure = self.record(request) { return self.respond(failure) }
                let rows = self.state.withLock { $0.fundingIntervalHours }.sorted { $0.key < $1.key }.map {
                    #"{"symbol":"\#($0.key)","adjustedFundingRateCap":"0.02000000","adjustedFundingRateFloor":"-0.02000000","fundingIntervalHours":\#($0.value),"disclaimer":false}"#
                }
                return self.json("[" + rows.joined(separator: ",") + "]")
            }
        case .hyperliquid:
            router.ws("ws") { inbound, outbound, _ in
                try await self.serve(inbound: inbound, outbound: outbound, subscriptions: [])
            }
            router.post("info") { request, _ in try await self.hyperliquidInfo(request) }
        case .bybit:
            router.ws("v5/public/linear") { inbound, outbound, _ in
                try await self.serve(inbound: inbound, outbound: outbound, subscriptions: [])
            }
            router.get("v5/market/kline") { request, _ in try self.bybitKlines(request) }
            router.get("v5/market/funding/history") { request, _ in try self.bybitFundingHistory(request) }
            router.get("v5/market/instruments-info") { request, _ in
                if let failure = self.record(request) { return self.respond(failure) }
                let symbol = request.uri.queryParameters.get("symbol") ?? ""
                let hours = self.state.withLock { $0.fundingIntervalHours[symbol] } ?? 8
                return self.json(
                    #"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"\#(symbol)","contractType":"LinearPerpetual","status":"Trading","fundingInterval":\#(hours * 60)}],"nextPageCursor":""},"retExtInfo":{},"time":0}"#
                )
            }
        }
    }

    /// One WebSocket connection: forwards what the test pushes; answers Bybit's subscribe and ping.
    func serve(
        inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter,
        subscriptions: Set<String>
    ) async throws {
        let (outgoing, continuation) = AsyncStream<String>.makeStream()
        let id = state.withLock { state in
            let id = state.nextConnection
            state.nextConnection += 1
            state.connectionsOpened += 1
            state.connections[id] = Connection(outgoing: continuation, subscriptions: subscriptions)
            return id
        }
        defer { _ = state.withLock { $0.connections.removeValue(forKey: id) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // However the client goes (a close frame, or a reset that makes the read throw), the
                // writing loop below must end too; otherwise this connection, and the server's
                // graceful shutdown waiting for it, never finish.
                defer { continuation.finish() }
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    self.state.withLock { $0.received.append(text) }
                    if let answer = self.bybitAnswer(text, connection: id)
                        ?? self.hyperliquidAnswer(text, connection: id)
                    {
                        continuation.yield(answer)
                        if let snapshot = self.leaderSnapshot(text) { continuation.yield(snapshot) }
                    }
                }
            }
            for await text in outgoing {
                try await outbound.write(.text(text))
            }
            group.cancelAll()
        }
    }

    func bybitAnswer(_ text: String, connection: Int) -> String? {
        struct Request: Decodable {
            var op: String
            var args: [String]?
            var req_id: String?
        }
        guard venue == .bybit, let request = try? JSONDecoder().decode(Request.self, from: Data(text.utf8)) else {
            return nil
        }
        switch request.op {
        case "ping":
            return #"{"success":true,"ret_msg":"pong","conn_id":"fake-\#(connection)","req_id":"","op":"ping"}"#
        case "subscribe":
            let topics = request.args ?? []
            let valid = topics.allSatisfy {
                let parts = $0.split(separator: ".")
                return (parts.count == 3 && parts[0] == "kline") || (parts.count == 2 && parts[0] == "tickers")
            }
            if valid {
                state.withLock { $0.connections[connection]?.subscriptions.formUnion(topics) }
            }
            return
                #"{"success":\#(valid),"ret_msg":"\#(valid ? "" : "error:handler not found")","conn_id":"fake-\#(connection)","req_id":"\#(request.req_id ?? "")","op":"subscribe"}"#
        default:
            return nil
        }
    }

    /// Hyperliquid's `{"method":"ping"}` → `{"channel":"pong"}`; a subscription is answered with
    /// `subscriptionResponse`, or `error` for a coin or interval Hyperliquid does not have.
    func hyperliquidAnswer(_ text: String, connection: Int) -> String? {
        guard venue == .hyperliquid,
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let method = object["method"] as? String
        else { return nil }
        if method == "ping" { return #"{"channel":"pong"}"# }
        guard method == "subscribe", let subscription = object["subscription"] as? [String: Any],
            let type = subscription["type"] as? String,
            let coin = subscription["coin"] as? String ?? subscription["user"] as? String
        else { return #"{"channel":"error","data":"Error parsing JSON into valid websocket request: \#(text)"}"# }
        let name: String
        switch type {
        case "userFills":
            guard coin.count == 42, coin.hasPrefix("0x") else {
                return #"{"channel":"error","data":"Invalid subscription: \#(text)"}"#
            }
            name = "fills:\(coin.lowercased())"
        case "candle":
            guard let interval = subscription["interval"] as? String, HyperliquidMessages.intervals.contains(interval)
            else { return #"{"channel":"error","data":"Invalid subscription: \#(text)"}"# }
            name = "candle:\(coin):\(interval)"
        case "activeAssetCtx": name = "ctx:\(coin)"
        case "trades": name = "trades:\(coin)"
        default: return #"{"channel":"error","data":"Invalid subscription: \#(text)"}"#
        }
        _ = state.withLock { $0.connections[connection]?.subscriptions.insert(name) }
        let echoed =
            (try? JSONSerialization.data(withJSONObject: subscription, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return #"{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":\#(echoed)}}"#
    }

    /// A `userFills` subscription's first push: the account's recent fills, `isSnapshot: true`.
    func leaderSnapshot(_ text: String) -> String? {
        guard venue == .hyperliquid, text.contains(#""userFills""#),
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let user = (object["subscription"] as? [String: Any])?["user"] as? String
        else { return nil }
        let fills = state.withLock { $0.leaders[user.lowercased()]?.fills ?? [] }
        return
            #"{"channel":"userFills","data":{"isSnapshot":true,"user":"\#(user.lowercased())","fills":[\#(fills.joined(separator: ","))]}}"#
    }

    // MARK: Followed accounts (Hyperliquid)

    /// A followed account's equity and open orders (`frontendOpenOrders` rows, as JSON).
    public func setLeader(_ user: String, equity: Money, openOrders: [String] = []) {
        state.withLock {
            $0.leaders[user.lowercased(), default: Leader()].equity = equity
            $0.leaders[user.lowercased(), default: Leader()].openOrders = openOrders
        }
    }

    /// A fill of a followed account: kept in its history (newest first), and pushed to those who
    /// follow it unless `push` is false (a fill made while nobody listened).
    public func leaderFill(_ user: String, fill: LeaderFill, push: Bool = true) {
        let row = String(decoding: try! JSONEncoder().encode(fill), as: UTF8.self)
        state.withLock { state in
            state.leaders[user.lowercased(), default: Leader()].fills.insert(row, at: 0)
            guard push else { return }
            let text = #"{"channel":"userFills","data":{"user":"\#(user.lowercased())","fills":[\#(row)]}}"#
            for connection in state.connections.values
            where connection.subscriptions.contains("fills:\(user.lowercased())") {
                connection.outgoing.yield(text)
            }
        }
    }

    /// Pushes fills already played again (a duplicate or out-of-order delivery), in the order given.
    public func replayLeaderFills(_ user: String, _ fills: [LeaderFill]) {
        let rows = fills.map { String(decoding: try! JSONEncoder().encode($0), as: UTF8.self) }
        let text =
            #"{"channel":"userFills","data":{"user":"\#(user.lowercased())","fills":[\#(rows.joined(separator: ","))]}}"#
        state.withLock { state in
            for connection in state.connections.values
            where connection.subscriptions.contains("fills:\(user.lowercased())") {
                connection.outgoing.yield(text)
            }
        }
    }

    /// `POST /info`: `candleSnapshot` (at most 5,000, oldest first) and `fundingHistory` (at most 500,
    /// oldest first); a body Hyperliquid cannot read is a 422 with its plain-text message.
    func hyperliquidInfo(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        if let failure = record(request) { return respond(failure) }
        let unreadable = Failure(status: 422, body: "Failed to deserialize the JSON body into the target type")
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let type = object["type"] as? String
        else { return respond(unreadable) }
        state.withLock { $0.received.append(String(buffer: body)) }
        switch type {
        case "candleSnapshot":
            guard let req = object["req"] as? [String: Any], let coin = req["coin"] as? String,
                let interval = req["interval"] as? String, let start = (req["startTime"] as? NSNumber)?.int64Value
            else { return respond(unreadable) }
            let end = (req["endTime"] as? NSNumber)?.int64Value ?? .max
            let symbol = state.withLock { $0.history.keys.first { HyperliquidCoins.coin($0.symbol) == coin }?.symbol }
            let rows = candles(symbol: symbol ?? coin, interval: interval, from: start, through: end, limit: 5000).map {
                hyperliquidCandle($0, coin: coin, interval: interval)
            }
            return json("[" + rows.joined(separator: ",") + "]")
        case "userFills":
            guard let user = (object["user"] as? String)?.lowercased(), user.count == 42 else {
                return respond(unreadable)
            }
            return json("[" + (state.withLock { $0.leaders[user]?.fills } ?? []).joined(separator: ",") + "]")
        case "clearinghouseState", "frontendOpenOrders":
            guard let user = (object["user"] as? String)?.lowercased(), user.count == 42 else {
                return respond(unreadable)
            }
            let leader = state.withLock { $0.leaders[user] } ?? Leader()
            if type == "frontendOpenOrders" { return json("[" + leader.openOrders.joined(separator: ",") + "]") }
            return json(
                #"{"marginSummary":{"accountValue":"\#(leader.equity)","totalNtlPos":"0.0","totalRawUsd":"\#(leader.equity)","totalMarginUsed":"0.0"},"crossMarginSummary":{"accountValue":"\#(leader.equity)","totalNtlPos":"0.0","totalRawUsd":"\#(leader.equity)","totalMarginUsed":"0.0"},"crossMaintenanceMarginUsed":"0.0","withdrawable":"\#(leader.equity)","assetPositions":[],"time":\#(Int64(Date().timeIntervalSince1970 * 1000))}"#
            )
        case "fundingHistory":
            guard let coin = object["coin"] as? String, let start = (object["startTime"] as? NSNumber)?.int64Value
            else { return respond(unreadable) }
            let end = (object["endTime"] as? NSNumber)?.int64Value ?? .max
            let symbol = state.withLock { $0.funding.keys.first { HyperliquidCoins.coin($0) == coin } } ?? coin
            let rows = settlements(symbol, from: start, through: end).prefix(500).map {
                #"{"coin":"\#(coin)","fundingRate":"\#($0.rate)","premium":"0.0","time":\#(Int64(($0.time.timeIntervalSince1970 * 1000).rounded()))}"#
            }
            return json("[" + rows.joined(separator: ",") + "]")
        default:
            return respond(unreadable)
        }
    }

    /// The next scripted failure, if any, after recording the request.
    func record(_ request: Request) -> Failure? {
        state.withLock { state in
            state.restPaths.append(request.uri.description)
            state.restTimes.append(Date())
            return state.failures.isEmpty ? nil : state.failures.removeFirst()
        }
    }

    func respond(_ failure: Failure) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let seconds = failure.retryAfter { headers[.retryAfter] = "\(seconds)" }
        return Response(
            status: .init(code: failure.status),
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: failure.body))
        )
    }

    func candles(symbol: String, interval: String, from: Int64, through: Int64, limit: Int) -> [Candle] {
        let all = state.withLock { $0.history[CandleStreamID(symbol: symbol, interval: interval)] ?? [] }
        return Array(all.filter { $0.openTime >= from && $0.openTime <= through }.prefix(limit))
    }

    func binanceKlines(_ request: Request) throws -> Response {
        if let failure = record(request) { return respond(failure) }
        let query = request.uri.queryParameters
        guard let symbol = query.get("symbol"), let interval = query.get("interval"),
            let length = CandleInterval.milliseconds(interval)
        else {
            return respond(Failure(status: 400, body: #"{"code":-1121,"msg":"Invalid symbol."}"#))
        }
        let limit = min(query.get("limit").flatMap { Int($0) } ?? 500, BinanceMessages.maxKlinesPerRequest)
        let from = query.get("startTime").flatMap { Int64($0) } ?? 0
        let through = query.get("endTime").flatMap { Int64($0) } ?? .max
        let rows = candles(symbol: symbol, interval: interval, from: from, through: through, limit: limit).map { c in
            #"[\#(c.openTime),"\#(c.open)","\#(c.high)","\#(c.low)","\#(c.close)","\#(c.volume)",\#(c.openTime + length - 1),"1.0",100,"0.5","0.5","0"]"#
        }
        let used = state.withLock { state in
            state.usedWeight += BinanceMessages.klinesWeight(limit: limit)
            return state.usedWeight
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.init("X-MBX-USED-WEIGHT-1M")!] = "\(used)"
        return Response(
            status: .ok,
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: "[" + rows.joined(separator: ",") + "]"))
        )
    }

    func bybitKlines(_ request: Request) throws -> Response {
        if let failure = record(request) { return respond(failure) }
        let query = request.uri.queryParameters
        guard query.get("category") == "linear", let symbol = query.get("symbol"), let bybit = query.get("interval"),
            let interval = Optional(BybitMessages.interval(bybit)), BybitMessages.bybitInterval(interval) == bybit
        else {
            return respond(
                Failure(
                    status: 200,
                    body: #"{"retCode":10001,"retMsg":"params error","result":{},"retExtInfo":{},"time":0}"#
                )
            )
        }
        let limit = min(query.get("limit").flatMap { Int($0) } ?? 200, BybitMessages.maxKlinesPerRequest)
        let from = query.get("start").flatMap { Int64($0) } ?? 0
        let through = query.get("end").flatMap { Int64($0) } ?? .max
        let rows = candles(symbol: symbol, interval: interval, from: from, through: through, limit: limit).reversed()
            .map { c in
                #"["\#(c.openTime)","\#(c.open)","\#(c.high)","\#(c.low)","\#(c.close)","\#(c.volume)","1.0"]"#
            }
        let body =
            #"{"retCode":0,"retMsg":"OK","result":{"symbol":"\#(symbol)","category":"linear","list":[\#(rows.joined(separator: ","))]},"retExtInfo":{},"time":0}"#
        return Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body))
        )
    }

    func json(_ body: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body))
        )
    }

    func settlements(_ symbol: String, from: Int64, through: Int64) -> [FundingEvent] {
        state.withLock { $0.funding[symbol] ?? [] }.filter {
            let millis = Int64(($0.time.timeIntervalSince1970 * 1000).rounded())
            return millis >= from && millis <= through
        }
    }

    /// `GET /fapi/v1/fundingRate`: oldest first, at most `limit` (default 100, at most 1000).
    func binanceFundingRate(_ request: Request) throws -> Response {
        if let failure = record(request) { return respond(failure) }
        let query = request.uri.queryParameters
        guard let symbol = query.get("symbol") else {
            return respond(
                Failure(status: 400, body: #"{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent."}"#)
            )
        }
        let limit = min(query.get("limit").flatMap { Int($0) } ?? 100, BinanceMessages.maxFundingRatesPerRequest)
        let from = query.get("startTime").flatMap { Int64($0) } ?? 0
        let through = query.get("endTime").flatMap { Int64($0) } ?? .max
        // Without a start time, Binance answers the most recent `limit`.
        var events = settlements(symbol, from: from, through: through)
        events = query.get("startTime") == nil ? Array(events.suffix(limit)) : Array(events.prefix(limit))
        let rows = events.map {
            #"{"symbol":"\#(symbol)","fundingRate":"\#($0.rate)","fundingTime":\#(Int64(($0.time.timeIntervalSince1970 * 1000).rounded())),"markPrice":"\#($0.markPrice ?? 0)"}"#
        }
        return json("[" + rows.joined(separator: ",") + "]")
    }

    /// `GET /v5/market/funding/history`: newest first, at most `limit` (200); a start time alone is refused.
    func bybitFundingHistory(_ request: Request) throws -> Response {
        if let failure = record(request) { return respond(failure) }
        let query = request.uri.queryParameters
        guard query.get("category") == "linear", let symbol = query.get("symbol"),
            !(query.get("startTime") != nil && query.get("endTime") == nil)
        else {
            return json(#"{"retCode":10001,"retMsg":"params error","result":{},"retExtInfo":{},"time":0}"#)
        }
        let limit = min(query.get("limit").flatMap { Int($0) } ?? 200, BybitMessages.maxFundingRatesPerRequest)
        let from = query.get("startTime").flatMap { Int64($0) } ?? 0
        let through = query.get("endTime").flatMap { Int64($0) } ?? .max
        let rows = settlements(symbol, from: from, through: through).reversed().prefix(limit).map {
            #"{"symbol":"\#(symbol)","fundingRate":"\#($0.rate)","fundingRateTimestamp":"\#(Int64(($0.time.timeIntervalSince1970 * 1000).rounded()))"}"#
        }
        return json(
            #"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[\#(rows.joined(separator: ","))]},"retExtInfo":{},"time":0}"#
        )
    }
}
