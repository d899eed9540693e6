import Foundation

extension LeaderFill {
    /// A leader's round trips, rebuilt from their fills (oldest first): in each coin, a trip runs from
    /// the fill that leaves flat to the one that comes back to flat (a flip ends one trip and starts the
    /// next). Each is a ``TradeRecord`` (`exitReason` `leader`) so that ``PerformanceReport`` judges a
    /// leader as it judges us. A fill's PnL is Hyperliquid's `closedPnl` where given, else worked out
    /// from the trip's average entry; a trip already open when the fills begin counts only when every
    /// closing fill says its `closedPnl` (its entry is not in the fills). Trips still open are left out.
    public static func roundTrips(_ fills: [LeaderFill], leader: String) -> [TradeRecord] {
        struct Trip {
            var side: PositionSide
            var firstTid: Int64
            var entryTime: Int64
            var quantity: Money = 0
            var peak: Money = 0
            var average: Money = 0
            var realised: Money = 0
            var fees: Money = 0
            var exitValue: Money = 0
            var exited: Money = 0
            /// Open when the fills began: its entry is unknown.
            var knownEntry: Bool
            /// A closing fill of it had no `closedPnl` and its entry is unknown: its PnL cannot be known.
            var unknownPnL = false
        }
        var open: [String: Trip] = [:]
        var trips: [TradeRecord] = []
        func millis(_ value: Int64) -> Date { Date(timeIntervalSince1970: Double(value) / 1000) }
        for fill in fills.sorted(by: { ($0.time, $0.tid) < ($1.time, $1.tid) }) {
            var rest = fill.size
            var fee = fill.fee ?? 0
            var closedPnl = fill.closedPnl
            if open[fill.coin] == nil, fill.startPosition != 0 {
                // Already open when the fills begin.
                open[fill.coin] = Trip(
                    side: fill.startPosition > 0 ? .long : .short,
                    firstTid: fill.tid,
                    entryTime: fill.time,
                    quantity: fill.startPosition.magnitude,
                    peak: fill.startPosition.magnitude,
                    knownEntry: false
                )
            }
            while rest > 0 {
                guard var trip = open[fill.coin] else {
                    let side: PositionSide = fill.isBuy ? .long : .short
                    open[fill.coin] = Trip(side: side, firstTid: fill.tid, entryTime: fill.time, knownEntry: true)
                    continue
                }
                if (trip.side == .long) == fill.isBuy {
                    // Grows the trip.
                    trip.average = (trip.average * trip.quantity + fill.price * rest) / (trip.quantity + rest)
                    trip.quantity += rest
                    trip.peak = max(trip.peak, trip.quantity)
                    trip.fees += fee
                    open[fill.coin] = trip
                    break
                }
                // Reduces it; what is beyond flat starts the next trip.
                let closing = min(rest, trip.quantity)
                let share = closing / rest
                // Hyperliquid's closedPnl is all the closing part's (a flip's new side has none yet).
                let pnl =
                    closedPnl
                    ?? (trip.knownEntry
                        ? (fill.price - trip.average) * closing * (trip.side == .long ? 1 : -1) : Money(0))
                trip.realised += pnl
                trip.fees += fee * share
                trip.exitValue += fill.price * closing
                trip.exited += closing
                trip.quantity -= closing
                if closedPnl == nil && !trip.knownEntry { trip.unknownPnL = true }
                rest -= closing
                fee -= fee * share
                closedPnl = closedPnl.map { _ in 0 }
                guard trip.quantity == 0 else {
                    open[fill.coin] = trip
                    continue
                }
                open[fill.coin] = nil
                guard !trip.unknownPnL else { continue }
                trips.append(
                    TradeRecord(
                        id: "leader:\(leader):\(trip.firstTid)",
                        positionID: "leader:\(leader):\(trip.firstTid)",
                        symbol: fill.coin,
                        side: trip.side,
                        entryTime: millis(trip.entryTime),
                        entryPrice: trip.average,
                        exitTime: millis(fill.time),
                        exitPrice: trip.exitValue / trip.exited,
                        quantity: trip.peak,
                        leverage: 1,
                        stopLoss: nil,
                        takeProfit: nil,
                        pnl: trip.realised - trip.fees,
                        fees: trip.fees,
                        funding: 0,
                        exitReason: "leader"
                    )
                )
            }
        }
        return trips
    }
}

/// A followed leader judged, and our copy of them judged beside them (`tradebus leaders`, the
/// cockpit's leader page).
public struct LeaderReport: Sendable, Codable, Equatable {
    /// Trades, wins, PnL, drawdown of one side, from ``PerformanceReport``.
    public struct Side: Sendable, Codable, Equatable {
        public var trades: Int
        public var wins: Int
        /// Wins over trades (0 with none).
        public var winRate: Double
        /// Realised PnL after fees, USD.
        public var pnl: Double
        public var fees: Double
        /// PnL over the equity it started from, in percent.
        public var returnPercent: Double
        /// Largest fall of the realised equity from a peak, in percent of that peak.
        public var maxDrawdownPercent: Double

        enum CodingKeys: String, CodingKey {
            case trades, wins, pnl, fees
            case winRate = "win_rate"
            case returnPercent = "return_pct"
            case maxDrawdownPercent = "max_drawdown_pct"
        }

        /// `trades` judged from `startingEquity`.
        public init(_ trades: [TradeRecord], startingEquity: Double) {
            let report = PerformanceReport(
                trades: trades,
                equity: PerformanceReport.realisedEquity(trades, initialCapital: startingEquity),
                initialCapital: startingEquity,
                candles: 0,
                periodsPerYear: 1
            )
            self.trades = report.trades
            wins = report.wins
            winRate = report.winRate
            pnl = report.totalPnL
            fees = report.fees
            returnPercent = report.returnPercent
            maxDrawdownPercent = report.maxDrawdownPercent
        }
    }

    public var leader: String
    public var weight: Double
    /// Their account value now, USD (nil when it could not be read).
    public var equity: Double?
    /// Their round trips over the fills read.
    public var theirs: Side
    /// Their round trips since the fill our first copied trade came from: what we could have copied.
    public var theirsWhileFollowed: Side
    /// Our trades copied from them.
    public var ours: Side
    /// The time of the leader's fill our first copied trade came from (our entry when that fill is not
    /// among `fills`); nil: no copied trade yet.
    public var followedSince: Date?

    enum CodingKeys: String, CodingKey {
        case leader, weight, equity, theirs, ours
        case theirsWhileFollowed = "theirs_while_followed"
        case followedSince = "followed_since"
    }

    /// The report of `leader` from their fills, their equity now, and our closed trades (those opened
    /// by a decision copied from them are picked out: ``CopyDecision/id``). Their starting equity is
    /// today's less what their trips made; ours is `ourCapital`.
    public init(
        leader: Leader,
        fills: [LeaderFill],
        equity: Money?,
        ourTrades: [TradeRecord],
        ourCapital: Money
    ) {
        self.leader = leader.address
        weight = leader.weight.doubleValue
        self.equity = equity?.doubleValue
        let trips = LeaderFill.roundTrips(fills, leader: leader.address)
        let prefix = "position:copy:\(leader.address):"
        let copied = ourTrades.filter { $0.positionID.hasPrefix(prefix) }
            .sorted { $0.exitTime < $1.exitTime }
        // Since the leader's fill our first copy came from (our entry is always a little later than theirs).
        let fillTimes = Dictionary(fills.map { ($0.tid, $0.time) }, uniquingKeysWith: min)
        followedSince = copied.map { trade in
            Int64(trade.positionID.dropFirst(prefix.count).prefix { $0.isNumber }).flatMap { fillTimes[$0] }
                .map { Date(timeIntervalSince1970: Double($0) / 1000) } ?? trade.entryTime
        }.min()
        let made = trips.map(\.pnl.doubleValue).reduce(0, +)
        let theirStart = max((equity?.doubleValue ?? 0) - made, 0)
        theirs = Side(trips, startingEquity: theirStart)
        let followed = followedSince.map { since in trips.filter { $0.entryTime >= since } } ?? []
        let madeBefore = made - followed.map(\.pnl.doubleValue).reduce(0, +)
        theirsWhileFollowed = Side(followed, startingEquity: theirStart + madeBefore)
        ours = Side(copied, startingEquity: ourCapital.doubleValue)
    }

    /// The report as a table row set: one line per side.
    public var lines: [String] {
        func line(_ name: String, _ side: Side) -> String {
            let rate = side.trades == 0 ? "   -" : String(format: "%3.0f%%", side.winRate * 100)
            return "  \(name.padding(toLength: 18, withPad: " ", startingAt: 0))"
                + String(format: "%6d trades  win ", side.trades) + rate
                + String(
                    format: "  PnL %12.2f USD  return %8.2f%%  max drawdown %6.2f%%",
                    side.pnl,
                    side.returnPercent,
                    side.maxDrawdownPercent
                )
        }
        return [
            "\(leader) (weight \(weight)\(equity.map { String(format: ", equity %.2f USD", $0) } ?? ""))",
            line("theirs", theirs),
            line("theirs, followed", theirsWhileFollowed),
            line("ours, copied", ours),
        ]
    }
}
