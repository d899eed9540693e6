import Foundation

extension ControlReply {
    /// The reply as an operator reads it: `tradebus control` and `tradebus status` print it, and the
    /// chat bot's `/status` sends it.
    public var text: String {
        var lines = [(ok ? "ok: " : "refused: ") + message]
        guard let status = self.status else { return lines.joined(separator: "\n") }
        lines.append(
            "account \(status.account) on \(status.venue): \(status.mode.rawValue.uppercased())"
                + (status.equity.map { ", equity \($0)" } ?? "")
        )
        if let halt = status.control.operatorHalt { lines.append("  operator halt by \(halt.by) since \(halt.since)") }
        if let reducing = status.control.reducing {
            lines.append("  REDUCING by \(reducing.by) since \(reducing.since): \(reducing.reason)")
        }
        if let breakers = status.control.breakers {
            for kind in TradingHalts.Halt.Kind.allCases {
                let state =
                    breakers.tripped.first { $0.kind == kind }.map { "TRIPPED since \($0.since): \($0.reason)" } ?? "ok"
                lines.append("  breaker \(kind.rawValue): \(state)")
            }
            lines.append(
                "  day's realised PnL \(breakers.dayRealised), losses in a row \(breakers.consecutiveLosses), equity peak \(breakers.peakEquity)"
            )
        } else {
            lines.append("  breakers: no equity reading yet")
        }
        lines.append(status.positions.isEmpty ? "no open positions" : "positions:")
        for p in status.positions {
            let stop = p.stopLoss.map { "stop \($0)" } ?? "NO STOP"
            let liquidation = p.liquidationPrice.map { "liquidation ~\($0)" } ?? ""
            let distance =
                p.liquidationDistance.map {
                    " (\(($0.doubleValue * 100).formatted(.number.precision(.fractionLength(1)))) % away)"
                }
                ?? ""
            lines.append(
                "  \(p.symbol) \(p.side.rawValue) \(p.quantity) @ \(p.entryPrice) x\(p.leverage), \(stop), \(p.workingStops) stop order(s), \(liquidation)\(distance)"
            )
        }
        if let limit = status.rateLimit {
            var line =
                "\(limit.venue) request budget: \(limit.used) of \(limit.limit) per \(Int(limit.windowSeconds)) s (polling up to \(limit.pollLimit))"
            if let until = limit.blockedUntil {
                line += limit.banned ? "; BANNED until \(until)" : "; told to wait until \(until)"
            }
            lines.append(line)
        }
        if let report = status.lastReconciliation {
            lines.append(
                "last reconciliation \(report.time): "
                    + (report.findings.isEmpty ? "store and venue agree" : "\(report.findings.count) finding(s)")
            )
            for finding in report.findings { lines.append("  - \(finding)") }
            for open in report.unresolved { lines.append("  ! unresolved: \(open)") }
        } else {
            lines.append("no reconciliation yet")
        }
        return lines.joined(separator: "\n")
    }
}
