import AsyncHTTPClient
import Foundation
import HTTPSupport
import Hyperliquid
import Logging
import TradingCore

/// Hyperliquid perpetuals over its HTTP API: `POST /info` to read, `POST /exchange` to act, each
/// action signed by an agent (API) wallet that can trade for the account but never withdraw
/// (``HyperliquidSigning``: EIP-712 over the action's MessagePack).
///
/// - Symbols are the system's (`BTCUSDT`); the coin is the symbol without its quote (`BTC`). Hyperliquid
///   settles in USDC; the quote is only the name.
/// - Market entries and exits are IOC limit orders bounded by `slippage` from the mid price; the
///   answer says what filled (`filled.totalSz`, `avgPx`) or that nothing could (`IocCancel`: expired).
/// - Stops are reduce-only trigger orders (`tpsl: sl`, market when triggered, by the mark price),
///   their limit 10 % past the trigger, as Hyperliquid requires of a market trigger. A stop whose
///   trigger the mark has already passed would fire at once: we refuse it ourselves as
///   `wouldTrigger`, so the kernel flattens at market and says so.
/// - The target is the position's own take-profit (`positionTpsl`): it closes whatever is held.
/// - The client order id (`cloid`) is our order id's 32 hex digits, so one decision is one order and
///   a fill names its order back; after a restart an unknown `oid` is asked for its `cloid`.
/// - Fills come from `userFillsByTime`, read again with some overlap and kept once by `tid`; a fill
///   that closes the position books Hyperliquid's own `closedPnl`.
/// - Positions and equity from `clearinghouseState`; isolated margin and leverage per asset
///   (`updateLeverage`) before an entry.
/// - Every request goes through the account's ``RateGovernor``: 1,200 weight a minute per IP (an
///   action 1, `clearinghouseState`, `orderStatus` and `allMids` 2, other reads 20; the extra weight
///   of long fill lists is not counted), orders before polling; a 429 stops every request for
///   `Retry-After` (5 s when Hyperliquid gives none).
/// - No private stream yet: fills are polled (`userFillsByTime`, one read for every coin).
public actor HyperliquidPerpsVenue: Venue {
    public nonisolated let name = "hyperliquid"
    public nonisolated let isLive = true
    public static let mainnet = "https://api.hyperliquid.xyz"
    public static let testnet = "https://api.hyperliquid-testnet.xyz"

    let baseURL: String
    /// The account traded (lower-case), whose positions and fills these are.
    let account: String
    let key: AgentKey
    let isMainnet: Bool
    let slippage: Money
    let quote: String
    let caller: HTTPCaller
    let timeout: Duration
    let logger: Logger
    let clock: @Sendable () -> Date
    var governor: RateGovernor
    var lastNonce: UInt64 = 0
    /// Each coin's asset index and size decimals, from `meta`.
    var assets: [String: (index: Int, szDecimals: Int)] = [:]
    var leverageSet: [String: Int] = [:]
    /// Our orders' venue ids, for their fills.
    var clientIDs: [Int64: String] = [:]
    var tradedSymbols: Set<String> = []
    var cursor = FillCursor(from: 0)
    var pending: [VenueEvent] = []
    var book = PositionBook()
    var held: (at: Date, state: ClearinghouseState)?
    var openOrders: (at: Date, rows: [OpenOrder])?
    /// The WebSocket of the account's `userFills` and `orderUpdates` (nil: REST polling only).
    let streamURL: String?
    /// Whether fills come with the stream now; when REST last read them.
    var streamLive = false
    var verifiedAt: Date?
    /// Since when the venue's positions have differed from the fills' (a fill the stream may have lost).
    var differsSince: Date?

    /// Hyperliquid for `account`, signed by the agent `key`.
    public init(
        baseURL: String = HyperliquidPerpsVenue.mainnet,
        account: String,
        key: AgentKey,
        mainnet: Bool? = nil,
        slippage: Money = Money(string: "0.02")!,
        quote: String = "USDT",
        http: HTTPClient = .shared,
        timeout: Duration = .seconds(10),
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() },
        rateLimitShare: Double = 0.8,
        streamURL: String? = nil
    ) {
        self.streamURL = streamURL
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.account = account.lowercased()
        self.key = key
        self.isMainnet = mainnet ?? (baseURL == Self.mainnet)
        self.slippage = slippage
        self.quote = quote
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
        self.logger = logger
        self.clock = clock
        self.governor = RateGovernor(
            venue: "hyperliquid",
            budget: RequestBudget(limit: Int(1_200 * rateLimitShare), window: 60, pollShare: 0.5)
        )
    }

    // MARK: Calls

    /// The coin of a symbol: `BTCUSDT` → `BTC`.
    public nonisolated func coin(_ symbol: String) -> String { HyperliquidCoins.coin(symbol) }
    func symbol(_ coin: String) -> String { coin + quote }

    var millis: Int64 { Int64((clock().timeIntervalSince1970 * 1000).rounded()) }

    /// One POST; `weight` against the budget. A lost answer is `lost`.
    func post(
        _ path: String,
        _ body: String,
        weight: Int,
        priority: RequestBudget.Priority,
        lost: VenueError.Code
    ) async throws(VenueError) -> HTTPAnswer {
        try governor.admit(weight: weight, priority: priority, what: "Hyperliquid \(path)", now: clock())
        let answer: HTTPAnswer
        do {
            answer = try await caller.send(
                "POST",
                baseURL + path,
                headers: [("Content-Type", "application/json")],
                body: Array(body.utf8),
                timeout: timeout
            )
        } catch {
            throw VenueError(lost, "Hyperliquid \(path): \(error)")
        }
        governor.observeHyperliquid(answer, now: clock())
        if answer.status == 429 {
            throw VenueError(
                .unreachable,
                "Hyperliquid rate limit (HTTP 429): requests wait \(answer.header("Retry-After") ?? "5") s",
                retryAfter: answer.header("Retry-After").flatMap(Double.init) ?? 5
            )
        }
        if answer.status >= 500 {
            throw VenueError(lost, "Hyperliquid \(path) answered HTTP \(answer.status): \(answer.text.prefix(200))")
        }
        guard (200..<300).contains(answer.status) else {
            throw VenueError(
                .rejected,
                "Hyperliquid \(path) refused the request (HTTP \(answer.status)): \(answer.text.prefix(200))"
            )
        }
        return answer
    }

    /// A read of `/info`, decoded as `T`.
    func info<T: Decodable>(_ request: MessagePack, as type: T.Type, weight: Int = 20) async throws(VenueError) -> T {
        let priority: RequestBudget.Priority = weight <= 2 ? .order : .poll
        let answer = try await post("/info", request.json, weight: weight, priority: priority, lost: .unreachable)
        do {
            return try JSONDecoder().decode(T.self, from: Data(answer.body))
        } catch {
            throw VenueError(
                .unreachable,
                "Hyperliquid /info answer is not what its documentation says: \(answer.text.prefix(200))"
            )
        }
    }

    /// One status of an `/exchange` answer: `resting`, `filled`, `success` or `error`.
    struct ActionStatus: Sendable {
        var oid: Int64?
        var filledSize: Money?
        var averagePrice: Money?
        var error: String?
    }

    /// Signs and sends an action; returns the answer's statuses (one per order or cancel). A lost
    /// answer is `outcomeUnknown` when `unknownOnFailure`.
    func act(_ action: MessagePack, unknownOnFailure: Bool) async throws(VenueError) -> [ActionStatus] {
        let nonce = max(UInt64(max(millis, 0)), lastNonce + 1)
        lastNonce = nonce
        let signature = HyperliquidSigning.sign(action, nonce: nonce, key: key, mainnet: isMainnet)
        let body =
            "{\"action\":\(action.json),\"nonce\":\(nonce),\"signature\":{\"r\":\"\(signature.r)\",\"s\":\"\(signature.s)\",\"v\":\(signature.v)},\"vaultAddress\":null,\"expiresAfter\":null}"
        let lost: VenueError.Code = unknownOnFailure ? .outcomeUnknown : .unreachable
        let answer = try await post("/exchange", body, weight: 1, priority: .order, lost: lost)
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
            let status = object["status"] as? String
        else {
            throw VenueError(
                lost,
                "Hyperliquid /exchange answered something other than its envelope: \(answer.text.prefix(200))"
            )
        }
        guard status == "ok" else {
            throw VenueError(.rejected, "Hyperliquid refused the action: \(object["response"] ?? "no reason given")")
        }
        let response = object["response"] as? [String: Any]
        let data = response?["data"] as? [String: Any]
        let statuses = data?["statuses"] as? [Any] ?? []
        return statuses.map { item in
            if let text = item as? String { return ActionStatus(error: text == "success" ? nil : text) }
            let entry = item as? [String: Any] ?? [:]
            if let error = entry["error"] as? String { return ActionStatus(error: error) }
            if let resting = entry["resting"] as? [String: Any] {
                return ActionStatus(oid: (resting["oid"] as? NSNumber)?.int64Value)
            }
            if let filled = entry["filled"] as? [String: Any] {
                return ActionStatus(
                    oid: (filled["oid"] as? NSNumber)?.int64Value,
                    filledSize: (filled["totalSz"] as? String).flatMap { Money(string: $0) },
                    averagePrice: (filled["avgPx"] as? String).flatMap { Money(string: $0) }
                )
            }
            return ActionStatus(error: "an order status Hyperliquid does not document: \(entry)")
        }
    }

    public func rateLimit() async -> RateLimitStatus? { governor.status(now: clock()) }

    // MARK: Market and account

    struct Meta: Decodable {
        struct Asset: Decodable {
            var name: String
            var szDecimals: Int
            var maxLeverage: Int?
            var isDelisted: Bool?
        }
        var universe: [Asset]
    }

    /// The coin's asset index and size decimals, from `meta` (read once).
    func asset(_ symbol: String) async throws(VenueError) -> (index: Int, szDecimals: Int) {
        let coin = coin(symbol)
        if let known = assets[coin] { return known }
        let meta = try await info(.map([("type", .string("meta"))]), as: Meta.self)
        for (index, asset) in meta.universe.enumerated() { assets[asset.name] = (index, asset.szDecimals) }
        guard let found = assets[coin] else { throw VenueError(.rejected, "Hyperliquid does not list \(coin)") }
        return found
    }

    /// Hyperliquid's rules: sizes in `szDecimals` decimals, prices at most 5 significant figures and
    /// 6 - `szDecimals` decimals (whole prices always), orders of at least 10 USDC.
    public func filters(symbol: String) async throws(VenueError) -> ExchangeFilters {
        let asset = try await asset(symbol)
        return HyperliquidCoins.filters(szDecimals: asset.szDecimals)
    }

    typealias ClearinghouseState = HyperliquidClearinghouseState

    /// The account's state, read at most once a second (an order of ours reads it again).
    func state() async throws(VenueError) -> ClearinghouseState {
        if let held, clock().timeIntervalSince(held.at) < 1 { return held.state }
        let state = try await info(
            .map([("type", .string("clearinghouseState")), ("user", .string(account))]),
            as: ClearinghouseState.self,
            weight: 2
        )
        held = (clock(), state)
        return state
    }

    /// Equity is the account value; what is free, `withdrawable`.
    public func account() async throws(VenueError) -> (equity: Money, availableMargin: Money) {
        let state = try await state()
        guard let equity = Money(string: state.marginSummary.accountValue),
            let free = Money(string: state.withdrawable)
        else { throw VenueError(.unreachable, "Hyperliquid clearinghouseState is not what its documentation says") }
        return (equity, free)
    }

    /// Every open position (`szi` not zero; negative is short).
    public func positions() async throws(VenueError) -> [VenuePosition] {
        try await state().assetPositions.compactMap { row in
            guard let size = Money(string: row.position.szi), size != 0,
                let entry = row.position.entryPx.flatMap({ Money(string: $0) })
            else { return nil }
            return VenuePosition(
                symbol: symbol(row.position.coin),
                side: size > 0 ? .long : .short,
                quantity: size.magnitude,
                entryPrice: entry,
                leverage: row.position.leverage.value,
                stopLoss: nil,
                takeProfit: nil,
                openedAt: clock()
            )
        }
    }

    /// The mid price (`allMids`).
    public func price(symbol: String) async throws(VenueError) -> Money? {
        let mids = try await info(.map([("type", .string("allMids"))]), as: [String: String].self, weight: 2)
        return mids[coin(symbol)].flatMap { Money(string: $0) }
    }

    /// The mark price, which triggers stops (`metaAndAssetCtxs`).
    func mark(_ symbol: String) async throws(VenueError) -> Money? {
        let index = try await asset(symbol).index
        let answer = try await post(
            "/info",
            MessagePack.map([("type", .string("metaAndAssetCtxs"))]).json,
            weight: 20,
            priority: .order,
            lost: .unreachable
        )
        guard let pair = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [Any], pair.count == 2,
            let contexts = pair[1] as? [[String: Any]], index < contexts.count
        else { throw VenueError(.unreachable, "Hyperliquid metaAndAssetCtxs is not what its documentation says") }
        return (contexts[index]["markPx"] as? String).flatMap { Money(string: $0) }
    }

    // MARK: Orders

    /// An IOC limit order `slippage` past the mid: Hyperliquid's market order. An entry first sets
    /// isolated margin and the leverage. The answer says what filled; nothing filling is `expired`.
    public func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder {
        watch(request.symbol)
        let asset = try await asset(request.symbol)
        if !request.reduceOnly, leverageSet[request.symbol] != request.leverage {
            let answer = try await act(
                HyperliquidAction.updateLeverage(asset: asset.index, isCross: false, leverage: request.leverage),
                unknownOnFailure: false
            )
            if let error = answer.first?.error { throw VenueError(.rejected, "Hyperliquid leverage: \(error)") }
            leverageSet[request.symbol] = request.leverage
            book.leverages[request.symbol] = request.leverage
        }
        guard let mid = try await price(symbol: request.symbol) else {
            throw VenueError(.unreachable, "Hyperliquid gives no mid price for \(coin(request.symbol))")
        }
        let filters = HyperliquidCoins.filters(szDecimals: asset.szDecimals)
        let buy = request.side == .buy
        let bound = buy ? filters.floorPrice(mid * (1 + slippage)) : filters.ceilPrice(mid * (1 - slippage))
        let cloid = HyperliquidAction.cloid(request.clientOrderID)
        let action = HyperliquidAction.order([
            .init(
                asset: asset.index,
                isBuy: buy,
                price: "\(bound)",
                size: "\(request.quantity)",
                reduceOnly: request.reduceOnly,
                kind: .limit(tif: "Ioc"),
                cloid: cloid
            )
        ])
        held = nil
        guard let status = try await act(action, unknownOnFailure: true).first else {
            throw VenueError(.outcomeUnknown, "Hyperliquid answered the order \(cloid) with no status")
        }
        if let oid = status.oid { clientIDs[oid] = request.clientOrderID }
        var order = VenueOrder(
            clientOrderID: request.clientOrderID,
            venueOrderID: status.oid.map(String.init) ?? cloid,
            symbol: request.symbol,
            side: request.side,
            quantity: request.quantity,
            filledQuantity: status.filledSize ?? 0,
            averagePrice: status.averagePrice,
            status: .accepted,
            reduceOnly: request.reduceOnly
        )
        if let error = status.error {
            // IocCancel: nothing at the bound. The order is done and nothing filled.
            guard error.hasPrefix("Order could not immediately match") else {
                throw VenueError(.rejected, "Hyperliquid refused order \(cloid): \(error)")
            }
            order.status = .expired
            return order
        }
        if let filled = status.filledSize {
            // IOC: what did not fill at once never will.
            order.status = filled >= request.quantity ? .filled : .expired
        }
        return order
    }

    struct OrderStatusAnswer: Decodable {
        struct Wrapped: Decodable {
            var order: OpenOrder
            var status: String
        }
        var status: String
        var order: Wrapped?
    }

    typealias OpenOrder = HyperliquidOpenOrder

    /// The order with our client id (`orderStatus` by `cloid`); `unknownOid` is an order the venue
    /// never saw.
    public func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder? {
        let answer = try await info(
            .map([
                ("type", .string("orderStatus")), ("user", .string(account)),
                ("oid", .string(HyperliquidAction.cloid(clientOrderID))),
            ]),
            as: OrderStatusAnswer.self,
            weight: 2
        )
        guard answer.status == "order", let found = answer.order else { return nil }
        clientIDs[found.order.oid] = clientOrderID
        let original = found.order.origSz.flatMap { Money(string: $0) } ?? Money(string: found.order.sz) ?? 0
        let left = Money(string: found.order.sz) ?? 0
        let status: OrderStatus =
            switch found.status {
            case "open", "triggered": .accepted
            case "filled": .filled
            case "rejected": .rejected
            default: original - left > 0 ? .expired : .canceled  // canceled, marginCanceled, ...
            }
        return VenueOrder(
            clientOrderID: clientOrderID,
            venueOrderID: String(found.order.oid),
            symbol: symbol,
            side: found.order.side == "B" ? .buy : .sell,
            quantity: original,
            filledQuantity: original - left,
            averagePrice: nil,
            status: status,
            reduceOnly: found.order.reduceOnly ?? false
        )
    }

    // MARK: Protection

    /// A reduce-only market trigger (`tpsl: sl`) at the stop, refused here as `wouldTrigger` when the
    /// mark has already passed it.
    public func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError) {
        let asset = try await asset(symbol)
        if let mark = try await mark(symbol), stop.side == .sell ? mark <= stop.trigger : mark >= stop.trigger {
            throw VenueError(
                .wouldTrigger,
                "Hyperliquid: the mark \(mark) is already past the stop \(stop.trigger); it would trigger at once"
            )
        }
        try await trigger(
            symbol,
            asset: asset,
            side: stop.side,
            size: stop.quantity,
            at: stop.trigger,
            tpsl: "sl",
            clientID: stop.clientID,
            grouping: "na"
        )
    }

    /// A trigger order; its limit 10 % past the trigger (Hyperliquid refuses a sell stop whose limit is
    /// above its trigger, and a buy stop's below).
    func trigger(
        _ symbol: String,
        asset: (index: Int, szDecimals: Int),
        side: OrderSide,
        size: Money,
        at trigger: Money,
        tpsl: String,
        clientID: String,
        grouping: String
    ) async throws(VenueError) {
        let filters = HyperliquidCoins.filters(szDecimals: asset.szDecimals)
        let limit =
            side == .sell
            ? filters.ceilPrice(trigger * Money(string: "0.9")!) : filters.floorPrice(trigger * Money(string: "1.1")!)
        let action = HyperliquidAction.order(
            [
                .init(
                    asset: asset.index,
                    isBuy: side == .buy,
                    price: "\(limit)",
                    size: "\(size)",
                    reduceOnly: true,
                    kind: .trigger(triggerPrice: "\(trigger)", isMarket: true, tpsl: tpsl),
                    cloid: HyperliquidAction.cloid(clientID)
                )
            ],
            grouping: grouping
        )
        openOrders = nil
        guard let status = try await act(action, unknownOnFailure: true).first else {
            throw VenueError(.outcomeUnknown, "Hyperliquid answered the trigger \(clientID) with no status")
        }
        if let error = status.error { throw VenueError(.rejected, "Hyperliquid refused trigger \(clientID): \(error)") }
        if let oid = status.oid { clientIDs[oid] = clientID }
    }

    /// Cancels by `cloid`; an order already gone (triggered, cancelled, filled) is done.
    public func cancelStop(symbol: String, clientID: String) async throws(VenueError) {
        let asset = try await asset(symbol)
        openOrders = nil
        let status = try await act(
            HyperliquidAction.cancelByCloid(asset: asset.index, cloid: HyperliquidAction.cloid(clientID)),
            unknownOnFailure: false
        ).first
        if let error = status?.error, !error.hasPrefix("Order was never placed, already canceled, or filled") {
            throw VenueError(.rejected, "Hyperliquid refused to cancel \(clientID): \(error)")
        }
    }

    /// Every open order (`frontendOpenOrders`), at most every two seconds.
    func openOrderRows() async throws(VenueError) -> [OpenOrder] {
        if let openOrders, clock().timeIntervalSince(openOrders.at) < 2 { return openOrders.rows }
        let rows = try await info(
            .map([("type", .string("frontendOpenOrders")), ("user", .string(account))]),
            as: [OpenOrder].self
        )
        openOrders = (clock(), rows)
        return rows
    }

    /// The symbol's reduce-only stop triggers (not the position's take-profit).
    public func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder] {
        let coin = coin(symbol)
        return try await openOrderRows().filter {
            $0.coin == coin && $0.isTrigger == true && $0.reduceOnly == true && $0.isPositionTpsl != true
                && ($0.orderType ?? "").hasPrefix("Stop")
        }.compactMap { row in
            guard let size = Money(string: row.sz), let trigger = row.triggerPx.flatMap({ Money(string: $0) }) else {
                return nil
            }
            return ExecutionKernel.StopOrder(
                clientID: clientID(cloid: row.cloid, oid: row.oid),
                side: row.side == "B" ? .buy : .sell,
                quantity: size,
                trigger: trigger
            )
        }
    }

    /// Our id for a venue order: its `cloid`'s, else the one we sent it with, else its `oid`.
    func clientID(cloid: String?, oid: Int64) -> String {
        if let known = clientIDs[oid] { return known }
        if let cloid, let ours = ClientOrderID.fromDigits(String(cloid.dropFirst(2))) { return ours }
        return cloid ?? "hyperliquid-order-\(oid)"
    }

    /// The position's take-profit (`positionTpsl`): it closes whatever the position holds.
    public func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError) {
        let asset = try await asset(symbol)
        held = nil
        let size = try await positions().first { $0.symbol == symbol }?.quantity ?? 0
        guard size > 0 else { return }
        try await trigger(
            symbol,
            asset: asset,
            side: side,
            size: size,
            at: price,
            tpsl: "tp",
            clientID: clientID,
            grouping: "positionTpsl"
        )
    }

    /// Hyperliquid has its own prices: a candle changes nothing here.
    public func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError) {}

    // MARK: Fills

    /// Where fills are read from (`tid`s are not ordered across coins).
    typealias FillCursor = OverlapCursor<Int64>

    struct Fill: Decodable {
        struct Liquidation: Decodable {}
        var coin: String
        var px: String
        var sz: String
        var side: String
        var time: Int64
        var oid: Int64
        var tid: Int64
        var fee: String?
        var closedPnl: String?
        var dir: String?
        var liquidation: Liquidation?
    }

    func watch(_ symbol: String) {
        if tradedSymbols.isEmpty, cursor.from == 0 { cursor.from = millis }
        tradedSymbols.insert(symbol)
    }

    public func follow(_ position: VenuePosition) async throws(VenueError) {
        if tradedSymbols.isEmpty { cursor = FillCursor(from: millis, floor: millis) }
        watch(position.symbol)
        book.resume(position)
    }

    /// New fills of the symbols traded (`userFillsByTime` from the cursor), with the closes they make.
    /// With the stream live, fills come with it, and REST reads them only every `verifyEvery` (a fill
    /// the stream lost is found then; one it brought first is not reported twice: the cursor has its id).
    public func events() async throws(VenueError) -> [VenueEvent] {
        guard !tradedSymbols.isEmpty else { return pending }
        if streamLive, let verifiedAt, clock().timeIntervalSince(verifiedAt) < StreamTiming.verifyEvery,
            try await !fillsMissing()
        {
            return pending
        }
        verifiedAt = clock()
        differsSince = nil
        let until = millis
        let start = cursor.readFrom
        let fills = try await info(
            .map([
                ("type", .string("userFillsByTime")), ("user", .string(account)), ("startTime", .int(start)),
                ("aggregateByTime", .bool(false)),
            ]),
            as: [Fill].self
        )
        for fill in fills.sorted(by: { ($0.time, $0.tid) < ($1.time, $1.tid) }) { try await record(fill) }
        cursor.advance(to: until)
        return pending
    }

    /// Whether the venue's positions have differed from what the fills built for longer than the
    /// stream's grace: a fill the stream lost, for REST to read now.
    func fillsMissing() async throws(VenueError) -> Bool {
        let rows = try await state().assetPositions
        let differs = tradedSymbols.contains { symbol in
            let venue = rows.first { $0.position.coin == coin(symbol) }.flatMap { Money(string: $0.position.szi) } ?? 0
            return venue != book.signedQuantity(symbol)
        }
        guard differs else {
            differsSince = nil
            return false
        }
        let since = differsSince ?? clock()
        differsSince = since
        return clock().timeIntervalSince(since) >= StreamTiming.grace
    }

    public func acknowledgeEvents(_ count: Int) async throws(VenueError) {
        pending.removeFirst(min(count, pending.count))
    }

    func record(_ fill: Fill) async throws(VenueError) {
        let symbol = symbol(fill.coin)
        guard tradedSymbols.contains(symbol), cursor.admits(fill.tid, at: fill.time) else { return }
        guard let price = Money(string: fill.px), let quantity = Money(string: fill.sz) else {
            throw VenueError(.unreachable, "Hyperliquid fill \(fill.tid) is not what its documentation says")
        }
        var clientOrderID = clientIDs[fill.oid]
        if clientOrderID == nil {
            // An order from before a restart: ask for its cloid.
            let answer = try await info(
                .map([("type", .string("orderStatus")), ("user", .string(account)), ("oid", .int(fill.oid))]),
                as: OrderStatusAnswer.self,
                weight: 2
            )
            clientOrderID = clientID(cloid: answer.order?.order.cloid, oid: fill.oid)
            clientIDs[fill.oid] = clientOrderID
        }
        let id = clientOrderID ?? "hyperliquid-order-\(fill.oid)"
        let venueFill = VenueFill(
            tradeID: "hyperliquid-\(fill.tid)",
            clientOrderID: id,
            symbol: symbol,
            side: fill.side == "B" ? .buy : .sell,
            price: price,
            quantity: quantity,
            fee: fill.fee.flatMap { Money(string: $0) } ?? 0,
            time: Date(timeIntervalSince1970: Double(fill.time) / 1000)
        )
        cursor.take(fill.tid, at: fill.time)
        held = nil
        pending.append(.fill(venueFill))
        let reason: String =
            if fill.liquidation != nil { "liquidation" } else if id.hasPrefix("tsl-") {
                "stop_loss"
            } else if id.hasPrefix("ttp-") {
                "take_profit"
            } else {
                ClientOrderID.isOurs(id) ? "exit" : "closed_at_venue"
            }
        if let close = book.record(venueFill, realizedPnl: fill.closedPnl.flatMap { Money(string: $0) }, reason: reason)
        {
            pending.append(.closed(close))
        }
    }

    /// After a restart: fills already committed are not reported again; the cursor starts at the newest
    /// committed fill, else the oldest order still open, else now.
    public func resume(_ state: VenueResume) async throws(VenueError) {
        tradedSymbols.formUnion(state.symbols)
        let now = millis
        func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        let committed = state.committedFills.values.flatMap { $0 }.filter { $0.tradeID.hasPrefix("hyperliquid-") }
        // One read covers every coin, so it starts where the furthest-behind symbol does: its newest
        // committed fill, else its oldest order still open, else now.
        let starts = state.symbols.map { symbol in
            let newest = (state.committedFills[symbol] ?? []).filter { $0.tradeID.hasPrefix("hyperliquid-") }
                .map { ms($0.time) }.max()
            return newest ?? state.pendingSince[symbol].map(ms) ?? now
        }
        cursor = FillCursor(from: starts.min() ?? now)
        for fill in committed {
            if let tid = Int64(fill.tradeID.dropFirst("hyperliquid-".count)) {
                cursor.take(tid, at: ms(fill.time))
            }
        }
        for position in state.openPositions { book.resume(position) }
    }
}
