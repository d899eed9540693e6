import ArgumentParser
import Foundation
import SQLTradeStore
import TradingCore
import WorkerRuntime

/// `--database FILE.sqlite`: a record to read instead of DATABASE_URL's.
struct RecordOption: ParsableArguments {
    @Option(help: "A SQLite file to read instead of DATABASE_URL (e.g. .tradebus/run.sqlite).") var database: String?

    /// The process's environment, DATABASE_URL pointing at `--database` when it is given.
    func environment() throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if let database {
            guard FileManager.default.fileExists(atPath: database) else {
                throw ValidationError("no record at \(database)")
            }
            environment["DATABASE_URL"] = "sqlite://" + URL(fileURLWithPath: database).path
        }
        return environment
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What the record says: PnL by day, win rate, reward to risk, Sharpe, drawdown, open positions.",
        discussion: "Reads DATABASE_URL (Postgres or sqlite:///path), or --database FILE.sqlite."
    )

    @OptionGroup var record: RecordOption
    @Option(help: "Starting equity for returns and drawdown (default: INITIAL_CAPITAL or 10000).") var capital: Double?
    @Flag(help: "Print one JSON object.") var json = false

    func run() async throws {
        let config = try SettingsReader(environment: try record.environment())
        let store = try Infrastructure.store(config)
        let trades = try await store.trades(since: nil).sorted { $0.exitTime < $1.exitTime }
        let open = try await store.openPositions()
        let spend = try await store.llmSpend(since: nil)
        await store.close()
        let initial =
            try capital
            ?? config.double("INITIAL_CAPITAL", default: 10_000, range: 1...1_000_000_000, help: "starting equity")
        // Equity after each trade: daily figures need no candles.
        let equity = PerformanceReport.realisedEquity(trades, initialCapital: initial)
        let report = PerformanceReport(
            trades: trades,
            equity: equity,
            initialCapital: initial,
            candles: 0,
            periodsPerYear: Double(max(trades.count, 1))
        )
        let days = PerformanceReport.pnlByDay(trades)
        let net = NetPnL(report: report, llmCost: spend.cost, decisions: spend.decisions)
        if json {
            var object = try report.jsonObject()
            object["pnl_by_day"] = days.map { ["day": $0.day, "pnl": $0.pnl, "trades": $0.trades] as [String: Any] }
            object["open_positions"] = open.map {
                [
                    "symbol": $0.symbol, "side": $0.side.rawValue, "quantity": "\($0.quantity)",
                    "entry_price": "\($0.entryPrice)", "stop_loss": $0.stopLoss.map { "\($0)" } ?? "",
                    "take_profit": $0.takeProfit.map { "\($0)" } ?? "", "venue": $0.venue,
                ] as [String: Any]
            }
            object["sharpe_basis"] = "per trade"
            object["decisions"] = spend.decisions
            object["lookahead_decisions"] = spend.lookAheadDecisions
            net.merge(into: &object)
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                    as: UTF8.self
                )
            )
            return
        }
        print("PnL by day (UTC, realised after fees and funding)")
        for day in days { print(String(format: "  %@  %10.2f  %3d trades", day.day, day.pnl, day.trades)) }
        if days.isEmpty { print("  no closed trades") }
        print(
            String(
                format:
                    "trades %d, win rate %.1f %%, average reward/risk %.2f, total PnL %.2f, fees %.2f, funding %.2f",
                report.trades,
                report.winRate * 100,
                report.averageRewardRisk,
                report.totalPnL,
                report.fees,
                report.funding
            )
        )
        print("\(spend.decisions) decisions (\(spend.modelDecisions) asked of a model): \(net.line)")
        if spend.lookAheadDecisions > 0 {
            print(
                "LOOK-AHEAD: \(spend.lookAheadDecisions) decisions were made by models asked about their own past (--allow-lookahead); their PnL measures memory, not skill"
            )
        }
        print(
            String(
                format: "Sharpe (per trade) %.2f, max drawdown %.2f %% (of equity %.0f plus realised PnL)",
                report.sharpe,
                report.maxDrawdownPercent,
                initial
            )
        )
        print("open positions: \(open.count)")
        for p in open {
            print(
                "  \(p.venue) \(p.symbol) \(p.side.rawValue) \(p.quantity) @ \(p.entryPrice), stop \(p.stopLoss.map { "\($0)" } ?? "-"), target \(p.takeProfit.map { "\($0)" } ?? "-")"
            )
        }
    }
}
