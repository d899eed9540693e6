import Foundation

/// What the chat bot answers, as plain text: short enough for a phone, and nothing a chat's markup
/// could misread.
public enum ChatReplies {
    static func usd(_ value: Money) -> String {
        (value >= 0 ? "+" : "") + value.doubleValue.formatted(.number.precision(.fractionLength(2)).grouping(.never))
    }

    static func time(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false))
    }

    /// `/positions`: each open position with its stop and distance to liquidation.
    public static func positions(_ reply: ControlReply) -> String {
        guard let status = reply.status else { return "No status: \(reply.message)" }
        guard !status.positions.isEmpty else { return "No open positions." }
        return status.positions.map { p in
            let stop = p.stopLoss.map { "stop \($0)" } ?? "NO STOP"
            let liquidation = p.liquidationDistance.map {
                ", liquidation \(($0.doubleValue * 100).formatted(.number.precision(.fractionLength(1)))) % away"
            }
            let now = p.price.map { ", now \($0) (\(usd(p.unrealizedPnL ?? 0)) USD)" } ?? ""
            return "\(p.symbol) \(p.side.rawValue) \(p.quantity) @ \(p.entryPrice) x\(p.leverage)\(now), "
                + "\(stop)\(liquidation ?? "")"
        }.joined(separator: "\n")
    }

    /// `/halts`: the mode, who halted it, and each breaker.
    public static func halts(_ reply: ControlReply) -> String {
        guard let status = reply.status else { return "No status: \(reply.message)" }
        var lines = ["Mode \(status.mode.rawValue.uppercased())"]
        if let halt = status.control.operatorHalt { lines.append("Halted by \(halt.by) since \(time(halt.since))") }
        if let reducing = status.control.reducing {
            lines.append("REDUCING by \(reducing.by) since \(time(reducing.since)): \(reducing.reason)")
        }
        for kind in TradingHalts.Halt.Kind.allCases {
            let tripped = status.control.breakers?.tripped.first { $0.kind == kind }
            lines.append(
                "\(kind.rawValue): " + (tripped.map { "TRIPPED since \(time($0.since)): \($0.reason)" } ?? "ok")
            )
        }
        return lines.joined(separator: "\n")
    }

    /// `/trades n`: the newest first, each with the id `/why` takes.
    public static func trades(_ trades: [TradeRecord], count: Int) -> String {
        let newest = trades.sorted { ($0.exitTime, $0.id) > ($1.exitTime, $1.id) }.prefix(count)
        guard !newest.isEmpty else { return "No trades yet." }
        return newest.map {
            "\(time($0.exitTime)) \($0.symbol) \($0.side.rawValue) \(usd($0.pnl)) USD (\($0.exitReason))\n  /why \($0.id)"
        }.joined(separator: "\n")
    }

    /// `/pnl period`: realised PnL over the period ending `now`, with fees and funding.
    public static func pnl(_ trades: [TradeRecord], period: ChatCommand.Period, now: Date) -> String {
        let since = now.addingTimeInterval(-period.seconds)
        let inPeriod = trades.filter { $0.exitTime > since && $0.exitTime <= now }
        let pnl = inPeriod.reduce(Money.zero) { $0 + $1.pnl }
        let fees = inPeriod.reduce(Money.zero) { $0 + $1.fees }
        let funding = inPeriod.reduce(Money.zero) { $0 + $1.funding }
        let won = inPeriod.filter { $0.pnl > 0 }.count
        return "PnL over the last \(period.rawValue): \(usd(pnl)) USD from \(inPeriod.count) trade(s), \(won) won; "
            + "fees \(usd(-fees)), funding \(usd(-funding)) (in the PnL)"
    }

    /// `/why`: the trade's explanation as on its page, in a few lines.
    public static func why(_ e: TradeExplanation) -> String {
        let t = e.trade
        var lines = [
            "\(t.symbol) \(t.side.rawValue) \(t.quantity) @ \(t.entryPrice) → \(t.exitPrice): \(usd(t.pnl)) USD (\(t.exitReason))",
            "Open \(time(t.entryTime)), closed \(time(t.exitTime)); fees \(usd(-t.fees)), funding \(usd(-t.funding))",
        ]
        guard let d = e.decision else {
            lines.append("The decision behind it is not in the record.")
            return lines.joined(separator: "\n")
        }
        lines.append(
            "Decision: \(d.action.rawValue) by \(d.provider) \(d.model) (prompt \(d.promptVersion)) at confidence "
                + String(format: "%.2f", d.confidence) + ", \(d.leverage)x, on the candle of \(time(d.candleTime))"
        )
        lines.append("Why: \(d.reasoning)")
        if let outcome = d.outcome, !outcome.checks.isEmpty {
            lines.append("Risk checks:")
            for check in outcome.checks {
                lines.append("  \(check.passed ? "✓" : "✗") \(check.check): \(check.value) (\(check.limit))")
            }
        } else {
            lines.append("Risk checks: none recorded for this decision.")
        }
        for fill in e.fills {
            lines.append(
                "Fill \(fill.side.rawValue) \(fill.quantity) @ \(fill.price), fee \(fill.fee) \(fill.feeAsset)"
            )
        }
        return lines.joined(separator: "\n")
    }
}
