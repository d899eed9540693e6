import Foundation

/// A market order for a venue; the client order id makes it idempotent there.
public struct VenueOrderRequest: Sendable, Hashable, Codable {
    public var clientOrderID: String
    public var symbol: String
    public var side: OrderSide
    public var quantity: Money
    public var leverage: Int
    public var reduceOnly: Bool

    /// A `VenueOrderRequest` with the fields given.
    public init(
        clientOrderID: String,
        symbol: String,
        side: OrderSide,
        quantity: Money,
        leverage: Int,
        reduceOnly: Bool
    ) {
        self.clientOrderID = clientOrderID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.leverage = leverage
        self.reduceOnly = reduceOnly
    }
}

/// An order as the venue knows it.
public struct VenueOrder: Sendable, Hashable, Codable {
    public var clientOrderID: String
    public var venueOrderID: String
    public var symbol: String
    public var side: OrderSide
    public var quantity: Money
    public var filledQuantity: Money
    public var averagePrice: Money?
    public var status: OrderStatus
    public var reduceOnly: Bool

    /// A `VenueOrder` with the fields given.
    public init(
        clientOrderID: String,
        venueOrderID: String,
        symbol: String,
        side: OrderSide,
        quantity: Money,
        filledQuantity: Money,
        averagePrice: Money?,
        status: OrderStatus,
        reduceOnly: Bool
    ) {
        self.clientOrderID = clientOrderID
        self.venueOrderID = venueOrderID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.filledQuantity = filledQuantity
        self.averagePrice = averagePrice
        self.status = status
        self.reduceOnly = reduceOnly
    }
}

/// One execution at the venue, with its unique trade id.
public struct VenueFill: Sendable, Hashable, Codable {
    public var tradeID: String
    public var clientOrderID: String
    public var symbol: String
    public var side: OrderSide
    public var price: Money
    public var quantity: Money
    public var fee: Money
    public var time: Date

    /// A `VenueFill` with the fields given.
    public init(
        tradeID: String,
        clientOrderID: String,
        symbol: String,
        side: OrderSide,
        price: Money,
        quantity: Money,
        fee: Money,
        time: Date
    ) {
        self.tradeID = tradeID
        self.clientOrderID = clientOrderID
        self.symbol = symbol
        self.side = side
        self.price = price
        self.quantity = quantity
        self.fee = fee
        self.time = time
    }
}

extension VenueFill {
    /// A fill as the store recorded it.
    public init(_ record: FillRecord) {
        self.init(
            tradeID: record.tradeID,
            clientOrderID: record.clientOrderID,
            symbol: record.symbol,
            side: record.side,
            price: record.price,
            quantity: record.quantity,
            fee: record.fee,
            time: record.time
        )
    }
}

/// A position as the venue knows it, with the protective orders it holds.
public struct VenuePosition: Sendable, Hashable, Codable {
    public var symbol: String
    public var side: PositionSide
    public var quantity: Money
    public var entryPrice: Money
    public var leverage: Int
    public var stopLoss: Money?
    public var takeProfit: Money?
    public var openedAt: Date
    /// Fees paid so far on the position (its entry's), where known; its close adds its own.
    public var fees: Money

    /// A `VenuePosition` with the fields given.
    public init(
        symbol: String,
        side: PositionSide,
        quantity: Money,
        entryPrice: Money,
        leverage: Int,
        stopLoss: Money?,
        takeProfit: Money?,
        openedAt: Date,
        fees: Money = 0
    ) {
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.openedAt = openedAt
        self.fees = fees
    }
}

/// A position the venue closed (stop, take-profit, trailing stop, liquidation, or an exit order).
public struct VenueClose: Sendable, Hashable, Codable {
    public var symbol: String
    public var side: PositionSide
    public var quantity: Money
    public var entryPrice: Money
    public var exitPrice: Money
    public var openedAt: Date
    public var closedAt: Date
    /// `stop_loss`, `take_profit`, `trailing_stop`, `liquidation`, `exit`.
    public var reason: String
    /// Realised PnL after fees and funding.
    public var pnl: Money
    public var fees: Money
    public var funding: Money
    public var leverage: Int
    public var stopLoss: Money?
    public var takeProfit: Money?

    /// A `VenueClose` with the fields given.
    public init(
        symbol: String,
        side: PositionSide,
        quantity: Money,
        entryPrice: Money,
        exitPrice: Money,
        openedAt: Date,
        closedAt: Date,
        reason: String,
        pnl: Money,
        fees: Money,
        funding: Money,
        leverage: Int,
        stopLoss: Money?,
        takeProfit: Money?
    ) {
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.exitPrice = exitPrice
        self.openedAt = openedAt
        self.closedAt = closedAt
        self.reason = reason
        self.pnl = pnl
        self.fees = fees
        self.funding = funding
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
    }
}

extension TradeRecord {
    /// The trade a venue's close makes of the position `positionID`, opened at `entryTime`.
    public init(_ close: VenueClose, positionID: String, entryTime: Date) {
        self.init(
            id: "trade:\(positionID)",
            positionID: positionID,
            symbol: close.symbol,
            side: close.side,
            entryTime: entryTime,
            entryPrice: close.entryPrice,
            exitTime: close.closedAt,
            exitPrice: close.exitPrice,
            quantity: close.quantity,
            leverage: close.leverage,
            stopLoss: close.stopLoss,
            takeProfit: close.takeProfit,
            pnl: close.pnl,
            fees: close.fees,
            funding: close.funding,
            exitReason: close.reason
        )
    }
}

/// How a position is protected at the venue beyond its stop and take-profit.
public struct StopPolicy: Sendable, Hashable, Codable {
    /// A trailing stop: once the price has moved `activationR` risk units in favour, the stop follows
    /// the best price at `callbackFraction` behind it.
    public var trailingActivationR: Money?
    public var trailingCallbackFraction: Money?
    /// Move the stop to entry once the price has gone +1R.
    public var breakEvenAfterOneR = false
    /// An ATR-adaptive stop: never further than `atrMultiple` ATRs from the close (it only tightens).
    public var atrMultiple: Money?

    /// A `StopPolicy` with the fields given.
    public init(
        trailingActivationR: Money? = nil,
        trailingCallbackFraction: Money? = nil,
        breakEvenAfterOneR: Bool = false,
        atrMultiple: Money? = nil
    ) {
        self.trailingActivationR = trailingActivationR
        self.trailingCallbackFraction = trailingCallbackFraction
        self.breakEvenAfterOneR = breakEvenAfterOneR
        self.atrMultiple = atrMultiple
    }
}

extension StopPolicy {
    /// Whether the policy ever moves a stop.
    public var isActive: Bool { breakEvenAfterOneR || trailingCallbackFraction != nil || atrMultiple != nil }

    /// The stop for the next candle, the same rule on every venue: break-even once the best price is
    /// +1R, the trailing stop `callback` behind the best price once it is `activationR` in favour, and
    /// `atrMultiple` ATRs from the close. R is the distance from the entry to the initial stop. A stop
    /// only tightens, is rounded to the tick toward the close, and never passes the close (that would
    /// be an exit, not a stop). nil: the stop stays.
    public func tightened(
        stop: Money,
        side: PositionSide,
        entry: Money,
        initialStop: Money,
        bestPrice: Money,
        close: Money,
        atr: Money?,
        filters: ExchangeFilters
    ) -> Money? {
        let long = side == .long
        let r = (entry - initialStop).magnitude
        var candidates: [Money] = []
        if breakEvenAfterOneR, r > 0, long ? bestPrice >= entry + r : bestPrice <= entry - r {
            candidates.append(entry)
        }
        if let activation = trailingActivationR, let callback = trailingCallbackFraction, r > 0,
            long ? bestPrice >= entry + activation * r : bestPrice <= entry - activation * r
        {
            candidates.append(long ? bestPrice * (1 - callback) : bestPrice * (1 + callback))
        }
        if let atrMultiple, let atr { candidates.append(long ? close - atrMultiple * atr : close + atrMultiple * atr) }
        var tightened = stop
        for candidate in candidates {
            let rounded = filters.price(candidate, toward: close)
            tightened = long ? max(tightened, rounded) : min(tightened, rounded)
        }
        guard long ? tightened < close : tightened > close, tightened != stop else { return nil }
        return tightened
    }
}

/// A live position's stop as its policy moves it, candle by candle (``StopPolicy/tightened``).
public struct ManagedStop: Sendable, Hashable, Codable {
    public var side: PositionSide
    public var entry: Money
    public var initialStop: Money
    public private(set) var stop: Money
    public private(set) var bestPrice: Money
    public var policy: StopPolicy

    /// A `ManagedStop` with the fields given.
    public init(
        side: PositionSide,
        entry: Money,
        initialStop: Money,
        stop: Money,
        bestPrice: Money,
        policy: StopPolicy
    ) {
        self.side = side
        self.entry = entry
        self.initialStop = initialStop
        self.stop = stop
        self.bestPrice = bestPrice
        self.policy = policy
    }

    /// A close of the position this stop managed: the trade records the stop as placed after the fill
    /// (before any move), and a stop that trailed and was hit is a `trailing_stop`.
    public func settle(_ close: inout VenueClose) {
        if close.reason == "stop_loss", stop != initialStop, policy.trailingCallbackFraction != nil {
            close.reason = "trailing_stop"
        }
        close.stopLoss = initialStop
    }

    /// Takes in a closed candle; returns the new stop when it tightened.
    public mutating func tighten(
        high: Money,
        low: Money,
        close: Money,
        atr: Money?,
        filters: ExchangeFilters
    ) -> Money? {
        bestPrice = side == .long ? max(bestPrice, high) : min(bestPrice, low)
        guard
            let tightened = policy.tightened(
                stop: stop,
                side: side,
                entry: entry,
                initialStop: initialStop,
                bestPrice: bestPrice,
                close: close,
                atr: atr,
                filters: filters
            )
        else { return nil }
        stop = tightened
        return tightened
    }
}

/// What a venue reports between calls: fills and closed positions.
public enum VenueEvent: Sendable, Hashable, Codable {
    case fill(VenueFill)
    case closed(VenueClose)
}

/// Why a venue call failed. `outcomeUnknown` means the order may or may not exist: query it by client
/// id, never send it again blindly.
public struct VenueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure. `wouldTrigger`: a conditional order refused because it would trigger at
    /// once (Binance -2021, Bybit 110092/110093).
    public enum Code: String, Sendable, Hashable {
        case rejected
        case outcomeUnknown = "outcome_unknown"
        case unreachable
        case clockSkew = "clock_skew"
        case wouldTrigger = "would_trigger"
    }
    public var code: Code
    /// What the venue said, and what to do.
    public var message: String
    /// When the venue accepts requests again (a rate limit or a ban), in seconds from the error.
    public var retryAfter: Double?
    /// A `VenueError` with the fields given.
    public init(_ code: Code, _ message: String, retryAfter: Double? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// What the store already holds when an executor starts again, so that a live venue, whose own
/// bookkeeping died with the last process, reports only what is new and reads it right.
public struct VenueResume: Sendable, Hashable {
    /// Positions open in the store, with their stop and target.
    public var openPositions: [VenuePosition]
    /// Per symbol, the newest fills committed (newest first): the venue reports only later ones.
    public var committedFills: [String: [VenueFill]]
    /// Symbols of orders whose outcome is still open: their fills may come.
    public var pendingSymbols: Set<String>
    /// Per symbol, when its oldest order whose outcome is open was made: a symbol with no committed
    /// fill reads its trade history from then, so those orders' fills are not skipped.
    public var pendingSince: [String: Date]

    /// A `VenueResume` with the fields given.
    public init(
        openPositions: [VenuePosition],
        committedFills: [String: [VenueFill]],
        pendingSymbols: Set<String>,
        pendingSince: [String: Date] = [:]
    ) {
        self.openPositions = openPositions
        self.committedFills = committedFills
        self.pendingSymbols = pendingSymbols
        self.pendingSince = pendingSince
    }

    /// Every symbol whose fills the venue should watch.
    public var symbols: Set<String> { pendingSymbols.union(openPositions.map(\.symbol)).union(committedFills.keys) }
}

/// Port: where orders go. Paper, Binance USDⓈ-M futures or Bybit v5 linear. Every venue's stops are
/// placed, replaced and cancelled by the execution kernel (``placeStop(symbol:_:)``,
/// ``cancelStop(symbol:clientID:)``, checked against ``workingStops(symbol:)``).
public protocol Venue: Sendable {
    var name: String { get }
    /// Whether this venue sends real orders with real money.
    var isLive: Bool { get }
    func filters(symbol: String) async throws(VenueError) -> ExchangeFilters
    /// Equity and margin available.
    func account() async throws(VenueError) -> (equity: Money, availableMargin: Money)
    /// Sends a market order; sending the same client id again returns the existing order.
    func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder
    /// The order with that client id, or nil if the venue never saw it.
    func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder?
    func positions() async throws(VenueError) -> [VenuePosition]
    /// Fills, closes and stop moves not yet acknowledged, oldest first.
    func events() async throws(VenueError) -> [VenueEvent]
    /// The first `count` events are committed to the store: the venue may forget them.
    func acknowledgeEvents(_ count: Int) async throws(VenueError)
    /// A closed candle of `symbol` (with its ATR, the funding settlement inside it and the mark's candle
    /// over it, where known): the paper venue fills what waits at its open, and takes liquidation and
    /// the stops and targets that were working over the mark's range; a live venue has its own prices.
    func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError)
    /// The rest of the last candle observed, after the fills at its open: the paper venue takes the
    /// stops and targets placed since over it (``PaperExchange/finishCandle(symbol:)``).
    func finishCandle(symbol: String) async throws(VenueError)
    /// The latest price the venue knows.
    func price(symbol: String) async throws(VenueError) -> Money?
    /// Called once at start, before anything else: where the store stands (see ``VenueResume``).
    func resume(_ state: VenueResume) async throws(VenueError)
    /// The account's request budget at the venue, or `nil` where there is none (the paper venue).
    func rateLimit() async -> RateLimitStatus?
    /// A position at the venue that the executor did not open, adopted from now on: its fills from
    /// here on are followed, and the fill that closes it is a ``VenueClose``.
    func follow(_ position: VenuePosition) async throws(VenueError)

    /// Places a reduce-only stop-market order triggered by the mark price. Throws `wouldTrigger`
    /// when the venue refuses it because it would trigger at once, `outcomeUnknown` when the answer is lost.
    func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError)
    /// Cancels a stop; one already gone is not an error.
    func cancelStop(symbol: String, clientID: String) async throws(VenueError)
    /// The symbol's working stops, as the venue lists them.
    func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder]
    /// Places the position's take-profit, closing whatever the position holds when it triggers.
    func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError)
    /// Whether the venue has a private stream of fills and order updates.
    var hasUserStream: Bool { get }
    /// The symbol's maintenance-margin tiers as the venue sets them (nil: not known; the flat rate).
    func marginTiers(symbol: String) async throws(VenueError) -> MarginTiers?
    /// Runs the venue's private stream of fills and order updates until it ends or fails.
    func streamUserData(delivered: @escaping @Sendable () async -> Void) async throws
}

extension Venue {
    /// Whether the venue has a private stream of fills and order updates (``streamUserData(delivered:)``).
    public var hasUserStream: Bool { false }
    public func marginTiers(symbol: String) async throws(VenueError) -> MarginTiers? { nil }
    /// Runs the venue's private stream until it ends or fails, calling `delivered` after each event
    /// that changes something; ``events()`` then reports what it brought. Venues without one return.
    public func streamUserData(delivered: @escaping @Sendable () async -> Void) async throws {}
    /// A venue with its own prices has no candle to finish.
    public func finishCandle(symbol: String) async throws(VenueError) {}
    /// A venue whose every position is its own account's (the paper venue) follows them all already.
    public func follow(_ position: VenuePosition) async throws(VenueError) {}
    /// A venue with no request limit.
    public func rateLimit() async -> RateLimitStatus? { nil }
}

/// A venue account's request budget: what is spent in the current window, our caps (orders may spend
/// all of `limit`, polling `pollLimit`), and whether the exchange stopped us (429) or banned us (418).
public struct RateLimitStatus: Sendable, Hashable, Codable {
    public var venue: String
    public var used: Int
    public var limit: Int
    public var pollLimit: Int
    public var windowSeconds: Double
    public var blockedUntil: Date?
    public var banned: Bool

    /// A `RateLimitStatus` with the fields given.
    public init(
        venue: String,
        used: Int,
        limit: Int,
        pollLimit: Int,
        windowSeconds: Double,
        blockedUntil: Date?,
        banned: Bool
    ) {
        self.venue = venue
        self.used = used
        self.limit = limit
        self.pollLimit = pollLimit
        self.windowSeconds = windowSeconds
        self.blockedUntil = blockedUntil
        self.banned = banned
    }
}

/// Client order ids, derived from the decision id so a repeated decision maps to the same order.
public enum ClientOrderID {
    /// `t<purpose>-<32 hex>`: 36 characters of `[A-Za-z0-9-]`, within Binance's and Bybit's limits.
    public static func make(decisionID: String, purpose: OrderPurpose) -> String {
        let first = StableHash.fnv1a(decisionID.utf8)
        let second = StableHash.fnv1a(decisionID.utf8, seed: first ^ 0x9E37_79B9_7F4A_7C15)
        // The first hex digit is the purpose's (1-4), so the 32 digits alone name the order: Hyperliquid's
        // `cloid` is those digits, and its fills map back to the whole id (``init(cloidDigits:)``).
        let digits = String(purposeDigit(purpose)) + String((hex(first) + hex(second)).dropFirst())
        return "t\(tag(purpose))-" + digits
    }

    /// The id whose 32 hex digits these are, when they are one of ours made by ``make(decisionID:purpose:)``
    /// (their first digit names the purpose); nil otherwise.
    public static func fromDigits(_ digits: String) -> String? {
        let purposes: [Character: OrderPurpose] = ["1": .entry, "2": .stopLoss, "3": .takeProfit, "4": .exit]
        guard digits.count == 32, let first = digits.first, let purpose = purposes[first] else { return nil }
        let id = "t\(tag(purpose))-" + digits
        return isOurs(id) ? id : nil
    }

    static func tag(_ purpose: OrderPurpose) -> String {
        switch purpose {
        case .entry: "en"
        case .stopLoss: "sl"
        case .takeProfit: "tp"
        case .exit: "ex"
        }
    }

    static func purposeDigit(_ purpose: OrderPurpose) -> Int {
        switch purpose {
        case .entry: 1
        case .stopLoss: 2
        case .takeProfit: 3
        case .exit: 4
        }
    }

    /// Whether `id` is one this system makes (an entry, exit, stop or target of ours); an order with
    /// any other id was placed by someone else, by hand or by another program.
    public static func isOurs(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 36, bytes[0] == UInt8(ascii: "t"), bytes[3] == UInt8(ascii: "-") else { return false }
        let tag = String(decoding: bytes[1..<3], as: UTF8.self)
        return ["en", "sl", "tp", "ex"].contains(tag)
            && bytes[4...].allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// 16 hex digits, zero-padded.
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
