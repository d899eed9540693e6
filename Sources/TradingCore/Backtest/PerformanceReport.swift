import Foundation

/// How a run went, from its closed trades and its equity curve: what `tradebus backtest --json`,
/// `tradebus run` and `tradebus report` print. Pure arithmetic, no I/O.
public struct PerformanceReport: Sendable, Codable, Equatable {
    public var candles: Int
    public var trades: Int
    public var wins: Int
    public var losses: Int
    /// Wins over trades (0 with no trades).
    public var winRate: Double
    /// Realised PnL after fees and funding, USD.
    public var totalPnL: Double
    /// Final equity over the initial, in percent.
    public var returnPercent: Double
    /// Largest fall from a peak of the equity curve, in percent of that peak.
    public var maxDrawdownPercent: Double
    /// Annualised mean over standard deviation of the per-candle equity returns.
    public var sharpe: Double
    /// As Sharpe, with the deviation of the losing returns only.
    public var sortino: Double
    /// Gross profit over gross loss (infinity written as 0 when there is no loss: see `profitFactorIsInfinite`).
    public var profitFactor: Double
    public var profitFactorIsInfinite: Bool
    /// Mean of |target − entry| / |entry − stop| over the trades that had both.
    public var averageRewardRisk: Double
    public var fees: Double
    /// Funding paid over the trades, USD (negative: received).
    public var funding: Double
    public var finalEquity: Double

    enum CodingKeys: String, CodingKey {
        case candles, trades, wins, losses
        case winRate = "win_rate"
        case totalPnL = "total_pnl"
        case returnPercent = "return_pct"
        case maxDrawdownPercent = "max_drawdown_pct"
        case sharpe, sortino
        case profitFactor = "profit_factor"
        case profitFactorIsInfinite = "profit_factor_infinite"
        case averageRewardRisk = "avg_reward_risk"
        case fees, funding
        case finalEquity = "final_equity"
    }

    /// - Parameters:
    ///   - equity: the account's equity after each candle, oldest first (the initial capital first).
    ///   - periodsPerYear: candles in a year, to annualise Sharpe and Sortino (105,120 for 5m).
    public init(trades: [TradeRecord], equity: [Double], initialCapital: Double, candles: Int, periodsPerYear: Double) {
        self.candles = candles
        self.trades = trades.count
        let pnls = trades.map(\.pnl.doubleValue)
        wins = pnls.filter { $0 > 0 }.count
        losses = pnls.filter { $0 <= 0 }.count
        winRate = trades.isEmpty ? 0 : Double(wins) / Double(trades.count)
        totalPnL = pnls.reduce(0, +)
        fees = trades.map(\.fees.doubleValue).reduce(0, +)
        funding = trades.map(\.funding.doubleValue).reduce(0, +)
        finalEquity = equity.last ?? initialCapital
        returnPercent = initialCapital > 0 ? (finalEquity / initialCapital - 1) * 100 : 0
        var peak = equity.first ?? initialCapital
        var deepest = 0.0
        for value in equity {
            peak = max(peak, value)
            if peak > 0 { deepest = max(deepest, (peak - value) / peak) }
        }
        maxDrawdownPercent = deepest * 100
        var returns: [Double] = []
        returns.reserveCapacity(max(0, equity.count - 1))
        for index in equity.indices.dropFirst() where equity[index - 1] > 0 {
            returns.append(equity[index] / equity[index - 1] - 1)
        }
        let mean = returns.isEmpty ? 0 : returns.reduce(0, +) / Double(returns.count)
        func deviation(_ values: [Double], around center: Double) -> Double {
            values.count < 2
                ? 0
                : (values.map { ($0 - center) * ($0 - center) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
        }
        let spread = deviation(returns, around: mean)
        let downside = (returns.map { min(0, $0) * min(0, $0) }.reduce(0, +) / Double(max(1, returns.count)))
            .squareRoot()
        let annual = periodsPerYear.squareRoot()
        sharpe = spread > 0 ? mean / spread * annual : 0
        sortino = downside > 0 ? mean / downside * annual : 0
        let grossProfit = pnls.filter { $0 > 0 }.reduce(0, +)
        let grossLoss = -pnls.filter { $0 < 0 }.reduce(0, +)
        profitFactorIsInfinite = grossLoss == 0 && grossProfit > 0
        profitFactor = grossLoss > 0 ? grossProfit / grossLoss : 0
        let ratios = trades.compactMap { trade -> Double? in
            guard let stop = trade.stopLoss, let target = trade.takeProfit, stop != trade.entryPrice else { return nil }
            return ((target - trade.entryPrice).magnitude / (trade.entryPrice - stop).magnitude).doubleValue
        }
        averageRewardRisk = ratios.isEmpty ? 0 : ratios.reduce(0, +) / Double(ratios.count)
    }

    /// The trades as CSV: `id,symbol,side,entry_time,entry_price,exit_time,exit_price,quantity,leverage,stop_loss,take_profit,pnl,fees,funding,exit_reason`
    /// (times in ISO 8601 UTC, prices and sizes as exact decimals).
    public static func tradesCSV(_ trades: [TradeRecord]) -> String {
        let formatter = ISO8601DateFormatter()
        var lines = [
            "id,symbol,side,entry_time,entry_price,exit_time,exit_price,quantity,leverage,stop_loss,take_profit,pnl,fees,funding,exit_reason"
        ]
        for t in trades {
            lines.append(
                [
                    t.id, t.symbol, t.side.rawValue, formatter.string(from: t.entryTime), "\(t.entryPrice)",
                    formatter.string(from: t.exitTime), "\(t.exitPrice)",
                    "\(t.quantity)", "\(t.leverage)", t.stopLoss.map { "\($0)" } ?? "",
                    t.takeProfit.map { "\($0)" } ?? "", "\(t.pnl)", "\(t.fees)", "\(t.funding)", t.exitReason,
                ].map(csvField).joined(separator: ",")
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvField(_ value: String) -> String {
        value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
    }

    /// Equity after each closed trade, by exit time, the initial capital first: the curve of a record
    /// that has trades but no candles (`tradebus report`, a live run).
    public static func realisedEquity(_ trades: [TradeRecord], initialCapital: Double) -> [Double] {
        var curve = [initialCapital]
        for trade in trades.sorted(by: { $0.exitTime < $1.exitTime }) {
            curve.append(curve.last! + trade.pnl.doubleValue)
        }
        return curve
    }

    /// Realised PnL per UTC day, oldest first.
    public static func pnlByDay(_ trades: [TradeRecord]) -> [(day: String, pnl: Double, trades: Int)] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var days: [String: (Double, Int)] = [:]
        for trade in trades {
            let parts = calendar.dateComponents([.year, .month, .day], from: trade.exitTime)
            let day = String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
            let current = days[day] ?? (0, 0)
            days[day] = (current.0 + trade.pnl.doubleValue, current.1 + 1)
        }
        return days.keys.sorted().map { ($0, days[$0]!.0, days[$0]!.1) }
    }
}

/// PnL after everything it cost: the venue's fees and funding, and the models' calls.
public struct NetPnL: Sendable, Hashable, Codable {
    /// Before fees and funding.
    public var grossPnL: Double
    public var fees: Double
    /// Paid (negative: received).
    public var funding: Double
    public var llmCost: Double
    /// After fees, funding and the models' cost.
    public var netPnL: Double
    public var llmCostPerTrade: Double
    public var llmCostPerDecision: Double

    /// The breakdown of `report`'s trades with `llmCost` spent on `decisions`.
    public init(report: PerformanceReport, llmCost: Double, decisions: Int) {
        fees = report.fees
        funding = report.funding
        grossPnL = report.totalPnL + report.fees + report.funding
        self.llmCost = llmCost
        netPnL = report.totalPnL - llmCost
        llmCostPerTrade = report.trades > 0 ? llmCost / Double(report.trades) : 0
        llmCostPerDecision = decisions > 0 ? llmCost / Double(decisions) : 0
    }

    enum CodingKeys: String, CodingKey {
        case fees, funding
        case grossPnL = "gross_pnl"
        case llmCost = "llm_cost"
        case netPnL = "net_pnl"
        case llmCostPerTrade = "llm_cost_per_trade"
        case llmCostPerDecision = "llm_cost_per_decision"
    }

    /// Its keys added to a report's JSON object.
    public func merge(into object: inout [String: Any]) {
        object["gross_pnl"] = grossPnL
        object["llm_cost"] = llmCost
        object["net_pnl"] = netPnL
        object["llm_cost_per_trade"] = llmCostPerTrade
        object["llm_cost_per_decision"] = llmCostPerDecision
    }

    /// One line: gross, fees, funding, LLM cost, net, and the cost per trade and per decision.
    public var line: String {
        String(
            format: "gross PnL %.2f, fees %.2f, funding %.2f, LLM cost %.4f, net PnL %.2f USD "
                + "(LLM %.4f per trade, %.5f per decision)",
            grossPnL,
            fees,
            funding,
            llmCost,
            netPnL,
            llmCostPerTrade,
            llmCostPerDecision
        )
    }
}
