import ArgumentParser
import Foundation
import SQLTradeStore
import TradingCore
import WorkerRuntime

/// `tradebus diff`: a run's record against the backtest of the same candles with the decisions the run
/// recorded, trade by trade, each difference with its cause.
struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where a live or paper run and the backtest of the same candles part ways, and why.",
        discussion: """
            Reads the run's record (--run: postgres://..., sqlite:///path, or a SQLite file), backtests --data with \
            the decisions the run recorded (--analyst recorded) and the same settings (the workers' environment \
            variables), and matches the trades one to one by id. Each trade that differs is listed with what \
            differs and why: signal_latency, fill_price, fee, funding, partial_fill, stop_refused, \
            operator_action, reconciliation or data_gap; the total PnL difference is split by cause.
            """
    )

    @Option(help: "The run's record: postgres://..., sqlite:///path, or a SQLite file.") var run: String
    @Option(help: "The candles the run traded on (default: the file its record names).") var data: String?
    @Option(help: "Symbol (default: the file name up to its first '-').") var symbol: String?
    @Option(help: "Interval (default: detected from the candles).") var interval: String?
    @OptionGroup var market: MarketFileOptions
    @Option(help: "Only trades entered at or after this time (ISO 8601).") var since: String?
    @Option(help: "Only trades entered before this time (ISO 8601).") var until: String?
    @Option(help: "Write one line per differing field as CSV.") var csv: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Keep the report in the run's record, for the cockpit's Backtests page.") var save = false

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = run.contains("://") ? run : "sqlite://" + URL(fileURLWithPath: run).path
        if !run.contains("://"), !FileManager.default.fileExists(atPath: run) {
            throw ValidationError("no record at \(run)")
        }
        let store = try Infrastructure.store(try SettingsReader(environment: environment))
        let replay: ReplayData
        let decisions: [DecisionRecord]
        let recorded: [TradeRecord]
        do {
            // The files the run named in its record, unless given here; else the candles and funding a
            // live run's feed kept in it.
            let sources = try await store.runSources()
            if let path = data ?? sources["data"] {
                var files = market
                files.funding = files.funding ?? sources["funding"]
                files.mark = files.mark ?? sources["mark"]
                files.detail = files.detail ?? sources["detail"]
                replay = try files.replay(path: path, symbol: symbol, interval: interval)
            } else {
                replay = try await Self.recordedMarket(store, symbol: symbol, interval: interval, record: run)
            }
            decisions = try await replay.recordedDecisions(store)
            recorded = try await store.trades(since: nil).filter { $0.symbol == replay.symbol }
        } catch {
            await store.close()
            throw error
        }
        await store.close()
        let (outcome, _) = try BacktestJob(data: replay, analyst: .recorded(decisions)).execute()
        let window = try Self.window(since: since, until: until)
        let divergence = Divergence(
            run: recorded.filter { window.contains($0.entryTime) },
            backtest: outcome.trades.filter { window.contains($0.entryTime) },
            decisions: Dictionary(decisions.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }),
            candleLength: CandleInterval.milliseconds(replay.interval)!,
            openTimes: Set(replay.candles.map(\.openTime))
        )
        if let csv { try divergence.csv().write(toFile: csv, atomically: true, encoding: .utf8) }
        let runCount = recorded.filter { window.contains($0.entryTime) }.count
        let backtestCount = outcome.trades.filter { window.contains($0.entryTime) }.count
        print(
            json
                ? try Self.json(divergence, run: runCount, backtest: backtestCount)
                : Self.table(divergence, run: runCount, backtest: backtestCount)
        )
        if save {
            let record = DivergenceRecord(
                id: "diff-\(UUID().uuidString.lowercased())",
                time: Date(),
                symbol: replay.symbol,
                interval: replay.interval,
                runTrades: runCount,
                backtestTrades: backtestCount,
                identical: divergence.identical,
                differing: divergence.rows.count,
                pnlDifference: divergence.pnlDifference,
                byCause: Dictionary(uniqueKeysWithValues: divergence.byCause.map { ($0.key.rawValue, $0.value) }),
                report: Self.table(divergence, run: runCount, backtest: backtestCount)
            )
            let store = try Infrastructure.store(try SettingsReader(environment: environment))
            do {
                try await store.migrate()
                try await store.recordDivergence(record)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
            if !json { print("saved as \(record.id)") }
        }
    }

    /// The candles and funding a live run's record kept, for the one stream it kept (or the one named).
    static func recordedMarket(
        _ store: SQLTradeStore,
        symbol: String?,
        interval: String?,
        record: String
    ) async throws -> ReplayData {
        let streams = try await store.recordedStreams().filter {
            (symbol == nil || $0.symbol == symbol!.uppercased()) && (interval == nil || $0.interval == interval)
        }
        guard streams.count == 1, let stream = streams.first else {
            throw ValidationError(
                streams.isEmpty
                    ? "the record at \(record) names no candle file and kept no candles: give --data"
                    : "the record at \(record) kept candles of \(streams.map { "\($0.symbol) \($0.interval)" }.joined(separator: ", ")): give --symbol and --interval"
            )
        }
        let candles = try await store.candles(symbol: stream.symbol, interval: stream.interval, from: 0, through: .max)
        guard candles.count > 1 else {
            throw ValidationError("the record at \(record) kept \(candles.count) candles; a backtest needs two")
        }
        let funding = try await store.funding(
            symbol: stream.symbol,
            from: Date(timeIntervalSince1970: Double(candles[0].openTime) / 1000),
            through: Date(timeIntervalSince1970: Double(candles[candles.count - 1].openTime) / 1000 + 86_400)
        )
        return ReplayData(
            recorded: candles,
            symbol: stream.symbol,
            interval: stream.interval,
            funding: funding,
            record: record
        )
    }

    static func window(since: String?, until: String?) throws -> Range<Date> {
        func date(_ text: String?, _ name: String) throws -> Date? {
            guard let text else { return nil }
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw ValidationError("--\(name) '\(text)' is not an ISO 8601 time (2021-11-18T00:00:00Z)")
            }
            return date
        }
        return (try date(since, "since") ?? .distantPast)..<(try date(until, "until") ?? .distantFuture)
    }

    static func table(_ divergence: Divergence, run: Int, backtest: Int) -> String {
        var lines = [
            "run: \(run) trades; backtest of the same candles and decisions: \(backtest); identical: \(divergence.identical); differing: \(divergence.rows.count)"
        ]
        for row in divergence.rows {
            let causes = row.causes.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { "\($0.key.rawValue) \(money($0.value))" }.joined(separator: ", ")
            let fields = row.differences.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value.run) vs \($0.value.backtest)" }.joined(separator: "; ")
            lines.append("  \(row.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(row.id)")
            lines.append("           PnL \(money(row.pnlDifference)) [\(causes)]\(fields.isEmpty ? "" : " \(fields)")")
        }
        lines.append("PnL difference (run - backtest): \(money(divergence.pnlDifference)) USD")
        for cause in Divergence.Cause.allCases {
            if let amount = divergence.byCause[cause] { lines.append("  \(cause.rawValue): \(money(amount))") }
        }
        return lines.joined(separator: "\n")
    }

    static func money(_ value: Money) -> String { String(format: "%.2f", value.doubleValue) }

    static func json(_ divergence: Divergence, run: Int, backtest: Int) throws -> String {
        let object: [String: Any] = [
            "run_trades": run, "backtest_trades": backtest, "identical": divergence.identical,
            "differing": divergence.rows.count, "pnl_difference": divergence.pnlDifference.doubleValue,
            "by_cause": Dictionary(
                uniqueKeysWithValues: divergence.byCause.map { ($0.key.rawValue, $0.value.doubleValue) }
            ),
            "rows": divergence.rows.map { row -> [String: Any] in
                [
                    "id": row.id, "kind": row.kind.rawValue, "pnl_difference": row.pnlDifference.doubleValue,
                    "causes": Dictionary(
                        uniqueKeysWithValues: row.causes.map { ($0.key.rawValue, $0.value.doubleValue) }
                    ),
                    "differences": row.differences.mapValues { ["run": $0.run, "backtest": $0.backtest] },
                ]
            },
        ]
        return String(
            decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            as: UTF8.self
        )
    }
}
