import Foundation

/// One fill of a followed trader, as Hyperliquid's `userFills` lists it (`coin`, `px`, `sz`, `side`
/// B or A, `dir`, `startPosition`, `time` in ms, `tid`).
public struct LeaderFill: Sendable, Hashable, Codable {
    public var coin: String
    public var price: Money
    public var size: Money
    public var isBuy: Bool
    public var direction: String?
    /// The leader's signed position in the coin before this fill.
    public var startPosition: Money
    public var time: Int64
    public var tid: Int64
    /// The PnL this fill realised, and its fee, as Hyperliquid reports them (`closedPnl`, `fee`).
    public var closedPnl: Money?
    public var fee: Money?

    /// A `LeaderFill` with the fields given.
    public init(
        coin: String,
        price: Money,
        size: Money,
        isBuy: Bool,
        direction: String? = nil,
        startPosition: Money,
        time: Int64,
        tid: Int64,
        closedPnl: Money? = nil,
        fee: Money? = nil
    ) {
        self.closedPnl = closedPnl
        self.fee = fee
        self.coin = coin
        self.price = price
        self.size = size
        self.isBuy = isBuy
        self.direction = direction
        self.startPosition = startPosition
        self.time = time
        self.tid = tid
    }

    enum CodingKeys: String, CodingKey {
        case coin, px, sz, side, dir, startPosition, time, tid, closedPnl, fee
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func money(_ key: CodingKeys) throws -> Money {
            let text = try c.decode(String.self, forKey: key)
            guard let value = Money(string: text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not a decimal: \(text)")
            }
            return value
        }
        coin = try c.decode(String.self, forKey: .coin)
        price = try money(.px)
        size = try money(.sz)
        let side = try c.decode(String.self, forKey: .side)
        guard side == "B" || side == "A" else {
            throw DecodingError.dataCorruptedError(
                forKey: .side,
                in: c,
                debugDescription: "side is B or A, not \(side)"
            )
        }
        isBuy = side == "B"
        direction = try c.decodeIfPresent(String.self, forKey: .dir)
        startPosition = try money(.startPosition)
        time = try c.decode(Int64.self, forKey: .time)
        tid = try c.decode(Int64.self, forKey: .tid)
        closedPnl = try c.contains(.closedPnl) ? money(.closedPnl) : nil
        fee = try c.contains(.fee) ? money(.fee) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(coin, forKey: .coin)
        try c.encode("\(price)", forKey: .px)
        try c.encode("\(size)", forKey: .sz)
        try c.encode(isBuy ? "B" : "A", forKey: .side)
        try c.encodeIfPresent(direction, forKey: .dir)
        try c.encode("\(startPosition)", forKey: .startPosition)
        try c.encode(time, forKey: .time)
        try c.encode(tid, forKey: .tid)
        try c.encodeIfPresent(closedPnl.map { "\($0)" }, forKey: .closedPnl)
        try c.encodeIfPresent(fee.map { "\($0)" }, forKey: .fee)
    }

    /// The leader's signed position after this fill.
    public var endPosition: Money { startPosition + (isBuy ? size : -size) }

    /// A `userFills` file: a JSON array, newest first as Hyperliquid returns it; oldest first here, each
    /// `tid` once.
    public static func read(_ data: Data) throws -> [LeaderFill] {
        let fills = try JSONDecoder().decode([LeaderFill].self, from: data)
        var seen = Set<Int64>()
        return fills.sorted { ($0.time, $0.tid) < ($1.time, $1.tid) }.filter { seen.insert($0.tid).inserted }
    }
}

/// A followed trader and how much of our account follows them.
public struct Leader: Sendable, Hashable, Codable {
    public var address: String
    public var weight: Money

    /// A `Leader` with the fields given.
    public init(address: String, weight: Money) {
        self.address = address.lowercased()
        self.weight = weight
    }

    /// `COPY_LEADERS`: `0xabc…:0.5,0xdef…:1` (a weight of 1 when none is given). Throws naming the
    /// entry that is not an address or whose weight is outside (0, 1].
    public static func parse(_ text: String) throws(CopyError) -> [Leader] {
        try text.split(separator: ",").map { entry throws(CopyError) in
            let parts = entry.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            let address = parts[0]
            guard address.count == 42, address.hasPrefix("0x"), address.dropFirst(2).allSatisfy(\.isHexDigit) else {
                throw CopyError("COPY_LEADERS: \(address) is not an address (0x and 40 hex digits)")
            }
            let weight = parts.count > 1 ? Money(string: parts[1]) : 1
            guard let weight, weight > 0, weight <= 1, parts.count <= 2 else {
                throw CopyError("COPY_LEADERS: the weight of \(address) must be in (0, 1]: \(entry)")
            }
            return Leader(address: address, weight: weight)
        }
    }
}

/// A copy-trading error: what is wrong and what to do.
public struct CopyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How a copied position is sized.
public struct CopySizing: Sendable, Hashable {
    /// `proportional`: the leader's position as a share of their equity, of ours, times the weight;
    /// `fixed_notional`: `notional` × weight per position; `fixed_risk`: `riskFraction` of our equity ×
    /// weight lost at the stop.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case proportional
        case fixedNotional = "fixed_notional"
        case fixedRisk = "fixed_risk"
    }
    public var mode: Mode
    public var notional: Money
    public var riskFraction: Money
    /// The stop when the leader has none: this far from the price (`MAX_STOP_LOSS_PERCENT`).
    public var maxStopFraction: Money

    /// A `CopySizing` with the fields given.
    public init(mode: Mode, notional: Money = 1_000, riskFraction: Money = 0.01, maxStopFraction: Money = 0.07) {
        self.mode = mode
        self.notional = notional
        self.riskFraction = riskFraction
        self.maxStopFraction = maxStopFraction
    }
}

/// What a leader's fill did to their position.
public enum CopyMove: String, Sendable, Hashable, Codable {
    case open, add, reduce, close, flip
}

/// A copied decision: the leader's move, and the position we should hold after it.
public struct CopyDecision: Sendable, Hashable {
    public var leader: Leader
    public var fill: LeaderFill
    public var move: CopyMove
    /// Our signed position in the coin for this leader, before and after.
    public var ourFrom: Money
    public var ourTo: Money
    /// The stop for what we hold after (nil when flat): the leader's own, else `maxStopFraction` away.
    public var stopLoss: Money?
    /// The decision's id: one per leader fill, so a fill seen twice is one decision.
    public var id: String { "copy:\(leader.address):\(fill.tid)" }
}

/// Turns leaders' fills into decisions: pure, time and fills in, decisions out.
///
/// - A fill seen before (its `tid`) makes nothing.
/// - A fill older than the newest taken for that leader and coin makes nothing: the newer fill's
///   `startPosition` already holds it (fills out of order never make two decisions for one move).
/// - The move is read from the fill alone (`startPosition` to after), so a missed fill does not
///   leave us misaligned: the next one says where the leader is.
public struct CopyBook: Sendable {
    struct Key: Hashable, Sendable {
        var leader: String
        var coin: String
    }
    var newest: [Key: (time: Int64, tid: Int64)] = [:]
    var seen: Set<String> = []
    /// Our position per leader and coin.
    public private(set) var ours: [String: Money] = [:]

    public init() {}

    /// Marks a fill as seen without deciding on it (history from before we followed).
    public mutating func remember(_ fill: LeaderFill, leader: Leader) {
        seen.insert("\(leader.address)|\(fill.tid)")
        let key = Key(leader: leader.address, coin: fill.coin)
        if let last = newest[key], (fill.time, fill.tid) < (last.time, last.tid) { return }
        newest[key] = (fill.time, fill.tid)
    }

    /// Whether a fill of `leader` has been seen: after that, their snapshot's fills are not history.
    public func follows(_ leader: String) -> Bool { newest.keys.contains { $0.leader == leader.lowercased() } }

    /// Our position copied from `leader` in `coin`.
    public func position(leader: String, coin: String) -> Money { ours["\(leader.lowercased())|\(coin)"] ?? 0 }

    /// The decision a fill makes, or nil (seen before, or older than one taken). `ourEquity`: our
    /// account's; `leaderEquity`: theirs (`clearinghouseState`'s account value; needed for
    /// proportional sizing); `leaderStop`: the leader's own stop trigger in the coin, if any.
    public mutating func take(
        _ fill: LeaderFill,
        leader: Leader,
        sizing: CopySizing,
        ourEquity: Money,
        leaderEquity: Money?,
        leaderStop: Money? = nil
    ) throws(CopyError) -> CopyDecision? {
        guard seen.insert("\(leader.address)|\(fill.tid)").inserted else { return nil }
        let key = Key(leader: leader.address, coin: fill.coin)
        if let last = newest[key], (fill.time, fill.tid) < (last.time, last.tid) { return nil }
        newest[key] = (fill.time, fill.tid)
        let from = fill.startPosition
        let to = fill.endPosition
        let move: CopyMove =
            from == 0
            ? .open
            : to == 0
                ? .close
                : (from > 0) != (to > 0)
                    ? .flip
                    : to.magnitude > from.magnitude ? .add : .reduce
        let ourKey = "\(leader.address)|\(fill.coin)"
        let ourFrom = ours[ourKey] ?? 0
        let stop: Money? =
            to == 0
            ? nil
            : leaderStop.flatMap { to > 0 ? ($0 < fill.price ? $0 : nil) : ($0 > fill.price ? $0 : nil) }
                ?? (to > 0 ? fill.price * (1 - sizing.maxStopFraction) : fill.price * (1 + sizing.maxStopFraction))
        var ourTo: Money
        switch sizing.mode {
        case .proportional:
            guard let leaderEquity, leaderEquity > 0 else {
                throw CopyError("proportional sizing needs the leader's equity; it is not known")
            }
            ourTo = to * ourEquity * leader.weight / leaderEquity
        case .fixedNotional, .fixedRisk:
            if move == .open || move == .flip || ourFrom == 0 && to != 0 {
                let size: Money
                if sizing.mode == .fixedNotional {
                    size = sizing.notional * leader.weight / fill.price
                } else {
                    let distance = (fill.price - (stop ?? fill.price)).magnitude
                    guard distance > 0 else { throw CopyError("fixed_risk sizing needs a stop away from the price") }
                    size = ourEquity * sizing.riskFraction * leader.weight / distance
                }
                ourTo = to > 0 ? size : -size
            } else {
                // Add and reduce keep our position in the leader's proportion.
                ourTo = from == 0 ? 0 : ourFrom * to / from
            }
        }
        // A reduce never opens: with nothing of ours, there is nothing to reduce.
        if move == .reduce, ourFrom == 0 { ourTo = 0 }
        ours[ourKey] = ourTo == 0 ? nil : ourTo
        return CopyDecision(leader: leader, fill: fill, move: move, ourFrom: ourFrom, ourTo: ourTo, stopLoss: stop)
    }
}

/// One decision for the executor made from a copied move: its id and what it asks.
public struct CopyOrder: Sendable, Hashable {
    /// `copy:<leader>:<tid>`, and `…:close` for the closing half of a flip.
    public var id: String
    public var payload: DecisionPayload

    /// A `CopyOrder` with the fields given.
    public init(id: String, payload: DecisionPayload) {
        self.id = id
        self.payload = payload
    }
}

extension CopyDecision {
    /// The version recorded with every copied decision.
    public static let version = "copy-v1"

    /// What the executor is asked, in order, for this move on `symbol` (our name for the coin):
    /// - open: LONG or SHORT of our size, entered at the leader's price (the gateway refuses it when the
    ///   venue's price has moved too far since), with the stop and a target `targetR` times the stop's
    ///   distance away (the leader's exit, copied, normally comes first);
    /// - close: the other side, close-only, so it never opens a position;
    /// - flip: the close, then the open of the new side;
    /// - add and reduce: a resize of the position we hold by the leader's proportion (their position
    ///   after over before, ``DecisionPayload/scale``); the executor sizes it against what it really
    ///   holds. With nothing of ours to resize, an add opens at our size and a reduce is a HOLD.
    /// `candleTime` is the fill's time: the gateway's freshness check runs from the leader's fill.
    public func orders(symbol: String, leverage: Int, targetR: Double, stopFraction: Money) -> [CopyOrder] {
        let price = fill.price.doubleValue
        let leaderFill =
            "\(leader.address) \(fill.isBuy ? "bought" : "sold") \(fill.size) \(fill.coin) at \(fill.price) (tid \(fill.tid), position \(fill.startPosition) → \(fill.endPosition))"
        func payload(
            _ proposal: TradeProposal,
            quantity: Double? = nil,
            closeOnly: Bool = false,
            scale: Double? = nil
        ) -> DecisionPayload {
            DecisionPayload(
                symbol: symbol,
                proposal: proposal,
                provider: "copy",
                model: leader.address,
                promptVersion: Self.version,
                attempts: 0,
                candleTime: fill.time,
                requestID: "hyperliquid-fill:\(leader.address):\(fill.tid)",
                quantity: quantity,
                closeOnly: closeOnly,
                scale: scale
            )
        }
        /// An entry of `size`, or with `scale` a resize of the position held.
        func entry(_ side: TradeAction, size: Money, stop: Money, scale: Money? = nil) -> DecisionPayload {
            let distance = (price - stop.doubleValue).magnitude
            return payload(
                TradeProposal(
                    action: side,
                    confidence: 1,
                    leverage: leverage,
                    entry: price,
                    stopLoss: stop.doubleValue,
                    takeProfit: side == .long
                        ? price + targetR * distance : max(price - targetR * distance, price / 1e6),
                    reasoning: "copy \(move.rawValue): \(leaderFill); ours \(ourFrom) → \(ourTo)"
                ),
                quantity: scale == nil ? size.magnitude.doubleValue : nil,
                scale: scale?.doubleValue
            )
        }
        func close(_ heldLong: Bool) -> DecisionPayload {
            // The other side's shape (stop beyond the price, target inside it); close-only, it only closes.
            let away = price * stopFraction.doubleValue
            return payload(
                TradeProposal(
                    action: heldLong ? .short : .long,
                    confidence: 1,
                    leverage: 1,
                    entry: price,
                    stopLoss: heldLong ? price + away : price - away,
                    takeProfit: heldLong ? price - away : price + away,
                    reasoning: "copy \(move.rawValue): close: \(leaderFill)"
                ),
                closeOnly: true
            )
        }
        let from = fill.startPosition
        switch move {
        case .open:
            guard let stop = stopLoss, ourTo != 0 else { return [] }
            return [CopyOrder(id: id, payload: entry(ourTo > 0 ? .long : .short, size: ourTo, stop: stop))]
        case .close:
            return [CopyOrder(id: id, payload: close(from > 0))]
        case .flip:
            guard let stop = stopLoss, ourTo != 0 else { return [CopyOrder(id: id, payload: close(from > 0))] }
            return [
                CopyOrder(id: id + ":close", payload: close(from > 0)),
                CopyOrder(id: id, payload: entry(ourTo > 0 ? .long : .short, size: ourTo, stop: stop)),
            ]
        case .add, .reduce:
            guard ourFrom != 0, from != 0 else {
                // Nothing of ours to resize (the leader opened before we followed, or our open was
                // refused): an add opens at our size; a reduce has nothing to reduce.
                if move == .add, let stop = stopLoss, ourTo != 0 {
                    return [CopyOrder(id: id, payload: entry(ourTo > 0 ? .long : .short, size: ourTo, stop: stop))]
                }
                return [
                    CopyOrder(
                        id: id,
                        payload: payload(.hold("copy \(move.rawValue): nothing of ours to resize; \(leaderFill)"))
                    )
                ]
            }
            // Our position, whatever it really is (the gateway may have cut it), in the leader's proportion.
            guard let stop = stopLoss else { return [] }
            let scale = fill.endPosition / from
            return [
                CopyOrder(id: id, payload: entry(ourFrom > 0 ? .long : .short, size: ourTo, stop: stop, scale: scale))
            ]
        }
    }
}

/// A followed trader's account as the venue shows it: equity, and the stop trigger in each coin where
/// they have one (a reduce-only stop order).
public struct LeaderAccount: Sendable, Hashable {
    public var equity: Money
    public var stops: [String: Money]

    /// A `LeaderAccount` with the fields given.
    public init(equity: Money, stops: [String: Money] = [:]) {
        self.equity = equity
        self.stops = stops
    }
}

/// A leader's stop triggers over time (Hyperliquid's `historicalOrders`: each order with when it was
/// placed and when it stopped working), so a backtest can copy their stop as the live analyst reads it.
public struct LeaderTriggers: Sendable, Hashable {
    /// One reduce-only stop trigger, working from `placed` until `ended` (ms; nil: still working).
    public struct Trigger: Sendable, Hashable {
        public var coin: String
        /// Sells (a long's stop) or buys (a short's).
        public var sells: Bool
        public var price: Money
        public var placed: Int64
        public var ended: Int64?

        /// A `Trigger` with the fields given.
        public init(coin: String, sells: Bool, price: Money, placed: Int64, ended: Int64?) {
            self.coin = coin
            self.sells = sells
            self.price = price
            self.placed = placed
            self.ended = ended
        }
    }

    public var triggers: [Trigger]
    /// How long after a fill a stop placed still counts as that fill's (a trader places the stop just after
    /// the entry; the live analyst reads the leader's orders a moment after the fill).
    public var grace: Int64

    /// `LeaderTriggers` of `triggers`, a stop placed up to `grace` ms after a fill counting as its.
    public init(_ triggers: [Trigger], grace: Int64 = 60_000) {
        self.triggers = triggers
        self.grace = grace
    }

    /// The leader's stop in `coin` for a position on the `long` side at `time`: the nearest working
    /// then (a long's highest, a short's lowest), or nil.
    public func stop(coin: String, long: Bool, at time: Int64) -> Money? {
        let working = triggers.filter {
            $0.coin == coin && $0.sells == long && $0.placed <= time + grace && ($0.ended.map { $0 > time } ?? true)
        }.map(\.price)
        return long ? working.max() : working.min()
    }
}

/// Fills of one leader as a stream delivers them: the first batch is the snapshot of recent history.
public struct LeaderFillBatch: Sendable, Hashable {
    public var leader: String
    public var fills: [LeaderFill]
    public var snapshot: Bool

    /// A `LeaderFillBatch` with the fields given.
    public init(leader: String, fills: [LeaderFill], snapshot: Bool) {
        self.leader = leader.lowercased()
        self.fills = fills
        self.snapshot = snapshot
    }
}

/// Port: a venue where traders' fills and accounts are public (Hyperliquid).
public protocol LeaderSource: Sendable {
    /// The leader's account now.
    func account(_ leader: String) async throws -> LeaderAccount
    /// The leader's most recent fills, oldest first (for their statistics: ``LeaderReport``).
    func recentFills(_ leader: String) async throws -> [LeaderFill]
    /// One connection: the leaders' fills as they happen, each leader's snapshot first. Returns when the
    /// venue closed it; the caller reconnects.
    func fills(_ leaders: [String], receive: @escaping @Sendable (LeaderFillBatch) async throws -> Void) async throws
}
