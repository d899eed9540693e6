import ArgumentParser
import Benchmarks
import Foundation
import SQLTradeStore
import TradingCore
import WorkerRuntime

/// `tradebus compare --shadow`: the live panel and the shadow candidate side by side, over the
/// decisions both made on the same signals.
struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the live analysts with the ANALYST_SHADOW candidate: decisions, agreement, paper PnL, "
            + "drawdown, cost and latency.",
        discussion:
            "Reads the live record from --database or DATABASE_URL and the shadow record from --shadow-database or SHADOW_DATABASE_URL."
    )

    @Flag(help: "Compare with the shadow candidate's record (the only comparison there is today).") var shadow = false
    @Option(help: "The live record, a SQLite file (default: DATABASE_URL).") var database: String?
    @Option(help: "The shadow record, a SQLite file (default: SHADOW_DATABASE_URL).") var shadowDatabase: String?
    @Option(help: "Starting equity of each account, for drawdown (default: INITIAL_CAPITAL or 10000).") var capital:
        Double?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard shadow else { throw ValidationError("say what to compare with: --shadow") }
    }

    /// One side's figures.
    struct Side: Encodable {
        var models: [String]
        var decisions: Int
        var long: Int
        var short: Int
        var hold: Int
        var trades: Int
        var winRate: Double
        var pnl: Double
        var maxDrawdownPercent: Double
        var llmCost: Double
        var netPnL: Double
        var latencyP50Ms: Double?
        var latencyP99Ms: Double?

        enum CodingKeys: String, CodingKey {
            case models, decisions, long, short, hold, trades
            case winRate = "win_rate"
            case pnl = "paper_pnl"
            case maxDrawdownPercent = "max_drawdown_pct"
            case llmCost = "llm_cost"
            case netPnL = "net_pnl"
            case latencyP50Ms = "latency_p50_ms"
            case latencyP99Ms = "latency_p99_ms"
        }

        init(decisions records: [DecisionRecord], trades: [TradeRecord], capital: Double) {
            models = Array(Set(records.map { "\($0.provider):\($0.model) (\($0.promptVersion))" })).sorted()
            decisions = records.count
            long = records.filter { $0.action == .long }.count
            short = records.filter { $0.action == .short }.count
            hold = records.filter { $0.action == .hold }.count
            let report = PerformanceReport(
                trades: trades,
                equity: PerformanceReport.realisedEquity(trades, initialCapital: capital),
                initialCapital: capital,
                candles: 0,
                periodsPerYear: 1
            )
            self.trades = report.trades
            winRate = report.winRate
            pnl = report.totalPnL
            maxDrawdownPercent = report.maxDrawdownPercent
            llmCost = records.map(\.llmCost).reduce(0, +)
            netPnL = pnl - llmCost
            let latencies = records.compactMap { $0.usage.map { Double($0.latencyMs) } }.sorted()
            latencyP50Ms = latencies.isEmpty ? nil : percentile(latencies, 50)
            latencyP99Ms = latencies.isEmpty ? nil : percentile(latencies, 99)
        }
    }

    struct Comparison: Encodable {
        var live: Side
        var shadow: Side
        /// Requests both decided.
        var common: Int
        /// Of those, the share with the same action.
        var agreement: Double
        var disagreements: [String: Int]
    }

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        if let database { environment["DATABASE_URL"] = try Self.sqlite(database) }
        if let shadowDatabase { environment["SHADOW_DATABASE_URL"] = try Self.sqlite(shadowDatabase) }
        let config = try SettingsReader(environment: environment)
        let capital =
            try self.capital
            ?? config.double("INITIAL_CAPITAL", default: 10_000, range: 1...1_000_000_000, help: "starting equity")
        var sides: [Side] = []
        var decisions: [[DecisionRecord]] = []
        for key in ["DATABASE_URL", "SHADOW_DATABASE_URL"] {
            let store = try Infrastructure.store(config, key: key)
            do {
                let records = try await store.recentDecisions(limit: 10_000_000)
                let trades = try await store.trades(since: nil)
                decisions.append(records)
                sides.append(Side(decisions: records, trades: trades, capital: capital))
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
        let shadowActions = Dictionary(decisions[1].map { ($0.id, $0.action) }) { first, _ in first }
        var common = 0
        var same = 0
        var disagreements: [String: Int] = [:]
        for record in decisions[0] {
            guard let other = shadowActions[record.id] else { continue }
            common += 1
            if other == record.action {
                same += 1
            } else {
                disagreements["\(record.action.rawValue) → \(other.rawValue)", default: 0] += 1
            }
        }
        let comparison = Comparison(
            live: sides[0],
            shadow: sides[1],
            common: common,
            agreement: common > 0 ? Double(same) / Double(common) : 0,
            disagreements: disagreements
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(comparison), as: UTF8.self))
            return
        }
        print(Self.table(comparison))
    }

    static func table(_ c: Comparison) -> String {
        func counts(_ s: Side) -> String { "\(s.decisions) (LONG \(s.long), SHORT \(s.short), HOLD \(s.hold))" }
        func money(_ value: Double) -> String { String(format: "%.2f", value) }
        func latency(_ s: Side) -> String {
            guard let p50 = s.latencyP50Ms, let p99 = s.latencyP99Ms else { return "- (no model asked)" }
            return String(format: "p50 %.0f ms, p99 %.0f ms", p50, p99)
        }
        let rows: [(String, String, String)] = [
            ("", "live", "shadow"),
            ("analysts", c.live.models.joined(separator: ", "), c.shadow.models.joined(separator: ", ")),
            ("decisions", counts(c.live), counts(c.shadow)),
            (
                "agreement",
                String(format: "%.1f %% of the %d signals both decided", c.agreement * 100, c.common),
                c.disagreements.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            ),
            (
                "trades",
                "\(c.live.trades) (win rate \(String(format: "%.1f", c.live.winRate * 100)) %)",
                "\(c.shadow.trades) (win rate \(String(format: "%.1f", c.shadow.winRate * 100)) %)"
            ),
            ("paper PnL", money(c.live.pnl), money(c.shadow.pnl)),
            (
                "max drawdown",
                String(format: "%.2f %%", c.live.maxDrawdownPercent),
                String(format: "%.2f %%", c.shadow.maxDrawdownPercent)
            ),
            ("LLM cost", String(format: "%.4f", c.live.llmCost), String(format: "%.4f", c.shadow.llmCost)),
            ("net PnL", money(c.live.netPnL), money(c.shadow.netPnL)),
            ("latency", latency(c.live), latency(c.shadow)),
        ]
        let width = (rows.map(\.1.count).max() ?? 0) + 3
        var lines = rows.map { name, live, shadow in
            name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + live.padding(toLength: width, withPad: " ", startingAt: 0) + shadow
        }
        if c.common == 0 { lines.append("no signal was decided by both: is this the shadow record of this run?") }
        return lines.joined(separator: "\n")
    }

    static func sqlite(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no record at \(path)") }
        return "sqlite://" + URL(fileURLWithPath: path).path
    }
}
