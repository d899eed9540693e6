import Foundation

/// Where a live or paper run and the backtest of the same candles and decisions part ways, trade by
/// trade, each difference with a cause, and the PnL difference split by cause. Pure: the caller reads
/// the run's record and runs the backtest.
public struct Divergence: Sendable {
    /// Why a trade differs.
    public enum Cause: String, Sendable, Hashable, Codable, CaseIterable {
        /// The decision reached the executor a candle or more after its candle closed.
        case signalLatency = "signal_latency"
        /// Same times, another price: slippage, spread or the book at the venue.
        case fillPrice = "fill_price"
        /// Other fees.
        case fee
        /// Other funding.
        case funding
        /// Another quantity: the order filled in part.
        case partialFill = "partial_fill"
        /// The stop could not be placed and the position was flattened instead.
        case stopRefused = "stop_refused"
        /// An operator flattened or halted.
        case operatorAction = "operator_action"
        /// Reconciliation with the venue closed, adopted or changed the position.
        case reconciliation
        /// Candles are missing around the trade.
        case dataGap = "data_gap"
    }

    /// One trade of either side, matched by id.
    public struct Row: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable { case matched, missing, extra }
        public var id: String
        /// `matched`: in both; `missing`: only in the backtest; `extra`: only in the run.
        public var kind: Kind
        /// What differs: `field → (run, backtest)`, for matched trades.
        public var differences: [String: (run: String, backtest: String)]
        /// The run's PnL minus the backtest's (a missing trade: minus its backtest PnL).
        public var pnlDifference: Money
        /// The PnL difference by cause; the parts sum to `pnlDifference`.
        public var causes: [Cause: Money]

        public static func == (a: Row, b: Row) -> Bool {
            a.id == b.id && a.kind == b.kind && a.pnlDifference == b.pnlDifference && a.causes == b.causes
                && a.differences.keys.sorted() == b.differences.keys.sorted()
        }

        public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    }

    /// The trades that differ (identical ones are left out).
    public var rows: [Row]
    /// Trades in both and equal in every column.
    public var identical: Int
    /// Every row's PnL difference, by cause.
    public var byCause: [Cause: Money]
    /// The run's PnL minus the backtest's.
    public var pnlDifference: Money

    /// Compares `run` with `backtest`. `decisions` (by id) give each decision's candle time and the time
    /// the run made it; `candleLength` (ms) and `openTimes` (the candles there were) find latency and gaps.
    public init(
        run: [TradeRecord],
        backtest: [TradeRecord],
        decisions: [String: DecisionRecord],
        candleLength: Int64,
        openTimes: Set<Int64>
    ) {
        let ours = Dictionary(run.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let theirs = Dictionary(backtest.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var rows: [Row] = []
        var identical = 0

        func decision(of trade: TradeRecord) -> DecisionRecord? {
            // Trade ids end in the decision's: `trade:position:decision:...`.
            guard let range = trade.id.range(of: "decision:") else { return nil }
            return decisions[String(trade.id[range.lowerBound...])]
        }
        func late(_ trade: TradeRecord) -> Bool {
            guard let decision = decision(of: trade) else { return false }
            return decision.createdAt.timeIntervalSince(decision.candleTime) * 1000 >= Double(candleLength)
        }
        func gap(around trade: TradeRecord) -> Bool {
            let entry = Int64((trade.entryTime.timeIntervalSince1970 * 1000).rounded()) - candleLength
            return !openTimes.contains(entry) || !openTimes.contains(entry - candleLength)
        }
        func ms(_ date: Date) -> String { String(Int64((date.timeIntervalSince1970 * 1000).rounded())) }

        for trade in backtest where ours[trade.id] == nil {
            let cause: Cause = late(trade) ? .signalLatency : gap(around: trade) ? .dataGap : .reconciliation
            rows.append(
                Row(
                    id: trade.id,
                    kind: .missing,
                    differences: [:],
                    pnlDifference: -trade.pnl,
                    causes: [cause: -trade.pnl]
                )
            )
        }
        for trade in run where theirs[trade.id] == nil {
            let cause: Cause =
                trade.exitReason.contains("operator")
                ? .operatorAction : late(trade) ? .signalLatency : .reconciliation
            rows.append(
                Row(id: trade.id, kind: .extra, differences: [:], pnlDifference: trade.pnl, causes: [cause: trade.pnl])
            )
        }
        for trade in run {
            guard let other = theirs[trade.id] else { continue }
            var differences: [String: (run: String, backtest: String)] = [:]
            func compare(_ name: String, _ a: String, _ b: String) { if a != b { differences[name] = (a, b) } }
            compare("entry_time", ms(trade.entryTime), ms(other.entryTime))
            compare("entry_price", "\(trade.entryPrice)", "\(other.entryPrice)")
            compare("exit_time", ms(trade.exitTime), ms(other.exitTime))
            compare("exit_price", "\(trade.exitPrice)", "\(other.exitPrice)")
            compare("quantity", "\(trade.quantity)", "\(other.quantity)")
            compare("fees", "\(trade.fees)", "\(other.fees)")
            compare("funding", "\(trade.funding)", "\(other.funding)")
            compare("exit_reason", trade.exitReason, other.exitReason)
            guard !differences.isEmpty else {
                identical += 1
                continue
            }
            let total = trade.pnl - other.pnl
            var causes: [Cause: Money] = [:]
            // Fees and funding are taken from the PnL: their differences are theirs.
            let fees = -(trade.fees - other.fees)
            let funding = -(trade.funding - other.funding)
            if fees != 0 { causes[.fee] = fees }
            if funding != 0 { causes[.funding] = funding }
            let rest = total - fees - funding
            if rest != 0 || causes.isEmpty {
                let cause: Cause =
                    if trade.exitReason.contains("operator") {
                        .operatorAction
                    } else if ["closed_at_venue", "unknown", "adopted", "reconciled"].contains(trade.exitReason) {
                        .reconciliation
                    } else if trade.exitReason.contains("protection") || trade.exitReason.contains("stop_refused") {
                        .stopRefused
                    } else if differences["entry_time"] != nil {
                        late(trade) ? .signalLatency : gap(around: trade) ? .dataGap : .signalLatency
                    } else if differences["quantity"] != nil {
                        .partialFill
                    } else {
                        .fillPrice
                    }
                causes[cause, default: 0] += rest
            }
            rows.append(
                Row(id: trade.id, kind: .matched, differences: differences, pnlDifference: total, causes: causes)
            )
        }
        self.rows = rows.sorted { $0.id < $1.id }
        self.identical = identical
        var byCause: [Cause: Money] = [:]
        for row in rows { for (cause, amount) in row.causes { byCause[cause, default: 0] += amount } }
        self.byCause = byCause
        pnlDifference = run.reduce(0) { $0 + $1.pnl } - backtest.reduce(0) { $0 + $1.pnl }
    }

    /// The rows as CSV: `id,kind,field,run,backtest,pnl_difference,causes` (one line per differing field).
    public func csv() -> String {
        var lines = ["id,kind,field,run,backtest,pnl_difference,causes"]
        for row in rows {
            let causes = row.causes.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                "\($0.key.rawValue)=\($0.value)"
            }
            .joined(separator: ";")
            let fields =
                row.differences.isEmpty
                ? [("", ("", ""))] : row.differences.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            for (field, values) in fields {
                lines.append(
                    [row.id, row.kind.rawValue, field, values.0, values.1, "\(row.pnlDifference)", causes]
                        .map(PerformanceReport.csvField).joined(separator: ",")
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
