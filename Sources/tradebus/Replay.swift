import ArgumentParser
import Cockpit
import Foundation
import Hyperliquid
import Logging
import SQLTradeStore
import SQLiteStore
import ServiceLifecycle
import Synchronization
import TradingCore
import UnixSignals
import WorkerRuntime

/// A candle file read for a replay: its candles, symbol and interval.
struct ReplayData {
    var path: String
    var candles: [Candle]
    var symbol: String
    var interval: String
    /// When the first candle closes: the earliest moment a model is asked about.
    var firstClose: Date {
        Date(
            timeIntervalSince1970: Double((candles.first?.openTime ?? 0) + (CandleInterval.milliseconds(interval) ?? 0))
                / 1000
        )
    }
    /// The funding settlements charged to open positions (`--funding`), if any.
    var funding: FundingSchedule?
    /// The funding file, for the summary.
    var fundingPath: String?
    /// Lower-timeframe candles of the same period (`--detail`), and their file and interval.
    var detail: [Candle]?
    var detailPath: String?
    var detailInterval: String?
    /// The mark's candle over each candle, by open time (`--mark`), and its file.
    var marks: [Int64: Candle]?
    var markPath: String?

    /// `symbol`: given, or the file name up to the first `-` (`XRPUSDT-PERP-5m.csv` → `XRPUSDT`).
    /// `funding`: a `funding_time,funding_rate` CSV, or Binance's funding-rate archive CSV.
    /// `detail`: a lower-timeframe candle file of the same period (1m for a 5m run).
    /// `mark`: mark-price candles; stops, targets and liquidation trigger on them, and settlements they
    /// cover are charged at the mark.
    init(
        path: String,
        symbol: String?,
        interval: String?,
        funding: String? = nil,
        detail: String? = nil,
        mark: String? = nil
    ) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the candle file '\(path)'")
        }
        do { candles = try CandleFile.parse(text) } catch { throw ValidationError("\(path): \(error)") }
        guard candles.count > 1 else {
            throw ValidationError("\(path) has \(candles.count) candles; a replay needs at least two")
        }
        self.path = path
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        self.symbol = (symbol ?? String(name.split(separator: "-").first ?? "SYMBOL")).uppercased()
        guard let interval = interval ?? CandleInterval.detect(candles) else {
            throw ValidationError("cannot tell the interval of \(path): give --interval (1m, 5m, 15m, 1h, 4h, 1d)")
        }
        guard CandleInterval.milliseconds(interval) != nil else {
            throw ValidationError("--interval '\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        self.interval = interval
        if let funding {
            guard let text = try? String(contentsOfFile: funding, encoding: .utf8) else {
                throw ValidationError("cannot read the funding file '\(funding)'")
            }
            do { self.funding = try FundingSchedule.parse(text) } catch {
                throw ValidationError("\(funding): \(error)")
            }
            fundingPath = funding
        }
        if let mark {
            guard let text = try? String(contentsOfFile: mark, encoding: .utf8) else {
                throw ValidationError("cannot read the mark-price file '\(mark)'")
            }
            let prices: MarkPrices
            do { prices = try MarkPrices.parse(text) } catch { throw ValidationError("\(mark): \(error)") }
            self.funding = self.funding?.marked(by: prices)
            let marks = prices.candles(for: candles, length: CandleInterval.milliseconds(interval)!)
            guard !marks.isEmpty else {
                throw ValidationError("--mark \(mark) covers none of the candles of \(path)")
            }
            self.marks = marks
            markPath = mark
        }
        if let detail {
            guard let text = try? String(contentsOfFile: detail, encoding: .utf8) else {
                throw ValidationError("cannot read the detail file '\(detail)'")
            }
            let parts: [Candle]
            do { parts = try CandleFile.parse(text) } catch { throw ValidationError("\(detail): \(error)") }
            guard let partInterval = CandleInterval.detect(parts),
                let partLength = CandleInterval.milliseconds(partInterval),
                let length = CandleInterval.milliseconds(interval), partLength < length, length % partLength == 0
            else {
                throw ValidationError(
                    "--detail \(detail): its candles must be of a shorter interval that divides \(interval) (1m for 5m)"
                )
            }
            self.detail = parts
            detailPath = detail
            detailInterval = partInterval
        }
    }

    /// Candles a live run's record kept (`market_candles`), with the funding settlements it kept.
    init(recorded candles: [Candle], symbol: String, interval: String, funding: [FundingEvent], record: String) {
        self.path = "the record at \(record)"
        self.candles = candles
        self.symbol = symbol
        self.interval = interval
        if !funding.isEmpty {
            self.funding = FundingSchedule(funding)
            fundingPath = "the record at \(record)"
        }
    }

    /// Where the funding came from and at what price, for the summary.
    var fundingNote: String {
        guard let fundingPath, let funding else { return "no --funding file: none charged" }
        let priced =
            markPath.map {
                "at the mark of \($0) for \(funding.markedCount) of \(funding.events.count) settlements, else "
            }
            ?? "at "
        return "from \(fundingPath), \(priced)the candle's open standing in for the mark"
    }

    /// Which price stops, targets and liquidation triggered on, for the summary.
    var markNote: String {
        guard let markPath, let marks else {
            return "mark: no --mark file: stops, targets and liquidation trigger on the candle's own prices"
        }
        return "mark: stops, targets and liquidation trigger on the mark of \(markPath) "
            + "(\(marks.count) of \(candles.count) candles; the rest on their own prices)"
    }

    /// Candles in a year, for annualised ratios.
    var periodsPerYear: Double { 365 * 86_400_000 / Double(CandleInterval.milliseconds(interval)!) }

    /// The file `tradebus run` replays with no arguments, shipped with the package.
    static var bundled: String? {
        Bundle.module.path(forResource: "XRPUSDT-PERP-5m", ofType: "csv", inDirectory: "Data")
    }
}

/// The files that make a replay more like the venue: funding, mark prices, lower-timeframe candles.
/// Shared by `run --data`, `backtest` and `diff`.
struct MarketFileOptions: ParsableArguments {
    @Option(
        help: "Funding settlements to charge: funding_time,funding_rate CSV, or Binance's funding-rate archive CSV."
    )
    var funding: String?
    @Option(help: "Lower-timeframe candles of the same period (1m for a 5m run): stops and targets in their order.")
    var detail: String?
    @Option(
        help:
            "Mark-price candles (open_time,open,high,low,close): stops, targets and liquidation trigger on them, funding is charged at them."
    )
    var mark: String?

    /// The candle file at `path` with these files.
    func replay(path: String, symbol: String?, interval: String?) throws -> ReplayData {
        try ReplayData(path: path, symbol: symbol, interval: interval, funding: funding, detail: detail, mark: mark)
    }
}

/// One replay on the embedded system, start to end; with a dashboard, served during the replay and
/// after it until Ctrl-C.
struct ReplayRun {
    /// `tradebus run --dashboard`: where the cockpit listens, its tokens, and the replay's pace.
    struct Dashboard {
        var host: String
        var port: Int
        var tokens: CockpitTokens
        /// Candles a second (nil: as fast as it goes).
        var pace: Double?
    }

    /// What a run did: the outcome, its report, and one line per reason the risk gateway refused.
    struct Result: Sendable {
        var outcome: ReplayOutcome
        var report: PerformanceReport
        var refusals: [String]
    }

    var data: ReplayData
    var analyst: EmbeddedSystem.Analyst
    var notify: Bool
    /// The SQLite file the run records into (nil: a temporary one, removed after).
    var database: String?
    var environment: [String: String] = ProcessInfo.processInfo.environment
    /// No log at all (`--json`: the output is one object).
    var quiet = false
    /// Where every log line at info and above goes (the terminal shows notices and worse).
    var logFile: String?
    var dashboard: Dashboard?
    /// Why the models may know this data's future (the run was allowed to go on anyway).
    var lookAhead: String?

    /// Replays the file; `finished` gets the result as soon as the replay ends (with a dashboard, the
    /// cockpit goes on serving until SIGINT or SIGTERM, and this returns after).
    func execute(
        progress: (@Sendable (ReplayProgress) -> Void)? = nil,
        finished: @escaping @Sendable (Result) -> Void = { _ in }
    ) async throws -> Result {
        let file = try logFile.map { try LogFile(path: $0) }
        let terminal: Logger.Level = notify ? .notice : .error
        let logger =
            quiet
            ? Logger(label: "tradebus", factory: { _ in SwiftLogNoOpLogHandler() })
            : Logger(label: "tradebus") { label in
                var stderr = StreamLogHandler.standardError(label: label)
                stderr.logLevel = terminal
                guard let file else { return stderr }
                let logged = TradeBusLogHandler(
                    label: label,
                    level: .info,
                    format: .text,
                    processCorrelationID: "tradebus-run",
                    file: file
                )
                return MultiplexLogHandler([stderr, logged])
            }
        let temporary = database == nil
        let path =
            database
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "tradebus-backtest-\(UUID().uuidString).sqlite"
            ).path
        if let database {
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: database).deletingLastPathComponent().path,
                withIntermediateDirectories: true
            )
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        }
        defer {
            if temporary {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        }
        let store = SQLTradeStore.sqlite(path: path)
        let config = try SettingsReader(environment: environment)
        // ANALYST_SHADOW: the candidate's decisions and paper trades go to a record of their own.
        let shadowPath = Self.shadowDatabase(path)
        var shadowStore: SQLTradeStore?
        if case .configured = analyst, try AnalystConfiguration.read(config).shadow != nil {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: shadowPath + suffix) }
            shadowStore = SQLTradeStore.sqlite(path: shadowPath)
        }
        defer {
            if temporary {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: shadowPath + suffix) }
            }
        }
        let system = try EmbeddedSystem(
            config: config,
            store: store,
            analyst: analyst,
            notify: notify,
            logger: logger,
            lookAhead: lookAhead,
            shadowStore: shadowStore
        )
        do {
            try await system.start()
            // The record names its files, so that `tradebus diff --run` can backtest the same candles.
            for (kind, file) in [
                ("data", data.path), ("funding", data.fundingPath), ("mark", data.markPath),
                ("detail", data.detailPath),
            ] {
                guard let file else { continue }
                try await store.recordRunSource(kind: kind, path: URL(fileURLWithPath: file).path, at: Date())
            }
            let replay = { @Sendable (pace: Double?) async throws -> Result in
                let outcome = try await system.replay(
                    data.candles,
                    symbol: data.symbol,
                    interval: data.interval,
                    funding: data.funding,
                    marks: data.marks,
                    detail: data.detail,
                    pace: pace,
                    progress: progress
                )
                let result = Result(
                    outcome: outcome,
                    report: data.report(outcome, initialCapital: system.initialCapital),
                    refusals: try await Self.refusals(store)
                )
                finished(result)
                return result
            }
            let result: Result
            if let dashboard {
                // The trade pages draw the candles around each trade from the run's record.
                try await store.recordCandles(
                    venue: "replay",
                    symbol: data.symbol,
                    interval: data.interval,
                    data.candles
                )
                result = try await serve(dashboard, system: system, logger: logger) { try await replay(dashboard.pace) }
            } else {
                result = try await replay(nil)
            }
            await system.stop()
            await store.close()
            await shadowStore?.close()
            return result
        } catch {
            await system.stop()
            await store.close()
            await shadowStore?.close()
            throw error
        }
    }

    /// The shadow candidate's record beside a run's: `run.sqlite` → `run-shadow.sqlite`.
    static func shadowDatabase(_ path: String) -> String {
        path.hasSuffix(".sqlite") ? String(path.dropLast(".sqlite".count)) + "-shadow.sqlite" : path + "-shadow"
    }

    /// Runs `replay` with the cockpit serving beside it, then keeps serving until SIGINT or SIGTERM. A
    /// signal during the replay stops both.
    func serve(
        _ dashboard: Dashboard,
        system: EmbeddedSystem,
        logger: Logger,
        replay: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let cockpit = try await system.cockpit(
            host: dashboard.host,
            port: dashboard.port,
            tokens: dashboard.tokens,
            logger: logger
        ) { [host = dashboard.host] port in
            FileHandle.standardError.write(Data("dashboard: http://\(host):\(port)/\n".utf8))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: cockpit)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        enum Ended: Sendable {
            case served
            case replayed(Result)
            case interrupted
        }
        return try await withThrowingTaskGroup(of: Ended.self) { tasks in
            tasks.addTask {
                try await group.run()
                return .served
            }
            tasks.addTask {
                do { return .replayed(try await replay()) } catch is CancellationError { return .interrupted }
            }
            var result: Result?
            while let ended = try await tasks.next() {
                switch ended {
                case .replayed(let done):
                    result = done
                    FileHandle.standardError.write(
                        Data("the replay is done; the dashboard keeps serving until Ctrl-C\n".utf8)
                    )
                case .served:
                    // A signal: the server stopped; so does a replay still going.
                    tasks.cancelAll()
                case .interrupted:
                    continue
                }
            }
            guard let result else { throw Interrupted() }
            return result
        }
    }

    /// SIGINT or SIGTERM stopped the run before its replay ended.
    struct Interrupted: Error {}

    /// One line per reason the risk gateway refused decisions in `store`, the most frequent first, each
    /// with its count and one example.
    static func refusals(_ store: any TradeStore) async throws -> [String] {
        var byCode: [String: (count: Int, example: String)] = [:]
        for decision in try await store.recentDecisions(limit: 1_000_000) {
            guard let outcome = decision.outcome, outcome.status == .refused else { continue }
            let code = outcome.code ?? "unknown"
            byCode[code, default: (0, outcome.reason ?? "")].count += 1
        }
        return byCode.sorted { ($0.value.count, $1.key) > ($1.value.count, $0.key) }.map {
            "\($0.key) \($0.value.count)× (e.g. \($0.value.example))"
        }
    }
}

/// One backtest on the ``Backtester``: the same core code as the services, called directly.
struct BacktestJob {
    var data: ReplayData
    var analyst: Backtester.Analyst
    var environment: [String: String] = ProcessInfo.processInfo.environment

    func execute(progress: ((ReplayProgress) -> Void)? = nil) throws -> (ReplayOutcome, PerformanceReport) {
        let settings = try Backtester.Settings.read(try SettingsReader(environment: environment))
        let outcome = try Backtester(settings: settings, analyst: analyst).run(
            data.candles,
            symbol: data.symbol,
            interval: data.interval,
            funding: data.funding,
            marks: data.marks,
            detail: data.detail,
            progress: progress
        )
        return (outcome, data.report(outcome, initialCapital: settings.initialCapital))
    }
}

extension ReplayData {
    func report(_ outcome: ReplayOutcome, initialCapital: Money) -> PerformanceReport {
        PerformanceReport(
            trades: outcome.trades,
            equity: outcome.equity,
            initialCapital: initialCapital.doubleValue,
            candles: outcome.candles,
            periodsPerYear: periodsPerYear
        )
    }

    /// The decisions `store` recorded for this file's symbol over its candles, for `--analyst recorded`.
    func recordedDecisions(_ store: any TradeStore) async throws -> [DecisionRecord] {
        let length = Double(CandleInterval.milliseconds(interval) ?? 0)
        let first = Date(timeIntervalSince1970: (Double(candles.first!.openTime) + length) / 1000)
        let last = Date(timeIntervalSince1970: (Double(candles.last!.openTime) + length) / 1000)
        return try await store.decisions(symbol: symbol, candleTimes: first...last)
    }
}

extension PerformanceReport {
    /// The report's JSON keys as an object, to add a command's own keys to.
    func jsonObject() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
    }
}

/// The look-ahead guard of LLM replays: a model asked about candles from before its training cutoff is
/// refused, naming the cutoff, unless the run allows it; then every report says so.
enum LookAheadGuard {
    /// The note to carry when `findings` is allowed; throws when it is not; nil when there is nothing.
    static func check(_ findings: [String], allowed: Bool) throws -> String? {
        guard !findings.isEmpty else { return nil }
        let note = findings.joined(separator: "; ")
        guard allowed else {
            throw ValidationError(
                "look-ahead: \(note). Its answers would measure the model's memory, not its skill. Set the model's cutoff in LLM_TRAINING_CUTOFFS (model=YYYY-MM-DD), use data from after it, or pass --allow-lookahead to run anyway (every report will say so)."
            )
        }
        FileHandle.standardError.write(Data("tradebus: LOOK-AHEAD allowed: \(note)\n".utf8))
        return note
    }

    /// The recorded LLM decisions made on candles from before their model's cutoff, one line per model.
    static func recorded(_ records: [DecisionRecord], cutoffs: TrainingCutoffs, today: Date = Date()) -> [String] {
        var earliest: [String: Date] = [:]
        for record in records where record.provider != RulesAnalyst.name {
            // A consensus names its members as provider:model,...
            for member in record.model.split(separator: ",") {
                let model = String(member.split(separator: ":").last ?? member)
                earliest[model] = min(earliest[model] ?? record.candleTime, record.candleTime)
            }
            if let note = record.usage?.lookAhead {
                earliest["(recorded with --allow-lookahead) " + note] = .distantPast
            }
        }
        return earliest.sorted { $0.key < $1.key }.flatMap { model, first in
            model.hasPrefix("(recorded")
                ? [model] : cutoffs.lookAhead(models: [model], firstCandle: first, today: today)
        }
    }
}

/// Output shared by `run` and `backtest`.
enum ReplayOutput {
    static func writeTrades(_ trades: [TradeRecord], to path: String) throws {
        try PerformanceReport.tradesCSV(trades).write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func json(_ report: PerformanceReport, _ outcome: ReplayOutcome) throws -> String {
        var object = try report.jsonObject()
        object["elapsed_seconds"] = outcome.elapsedSeconds
        object["candles_per_second"] = outcome.elapsedSeconds > 0 ? Double(outcome.candles) / outcome.elapsedSeconds : 0
        object["decisions"] = outcome.decisions
        object["signals"] = outcome.signals
        NetPnL(report: report, llmCost: outcome.llmCost, decisions: outcome.decisions).merge(into: &object)
        if let lookAhead = outcome.lookAhead { object["lookahead"] = lookAhead }
        return String(
            decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            as: UTF8.self
        )
    }

    static func summary(_ report: PerformanceReport, _ outcome: ReplayOutcome, data: ReplayData) -> String {
        func money(_ value: Double) -> String { String(format: "%.2f", value) }
        return """
            \(data.symbol) \(data.interval), \(report.candles) candles from \(data.path)
              signals \(outcome.signals), decisions \(outcome.decisions), trades \(report.trades) (\(report.wins) won, \(report.losses) lost, win rate \(String(format: "%.1f", report.winRate * 100)) %)
              PnL \(money(report.totalPnL)) USD after \(money(report.fees)) fees and \(money(report.funding)) funding (\(data.fundingNote)); return \(String(format: "%.2f", report.returnPercent)) %; final equity \(money(report.finalEquity))
              \(NetPnL(report: report, llmCost: outcome.llmCost, decisions: outcome.decisions).line)\(outcome.lookAhead.map { "\n  LOOK-AHEAD: the models may know this data's future (--allow-lookahead): \($0)" } ?? "")
              max drawdown \(String(format: "%.2f", report.maxDrawdownPercent)) %; Sharpe \(String(format: "%.2f", report.sharpe)); Sortino \(String(format: "%.2f", report.sortino)); profit factor \(report.profitFactorIsInfinite ? "∞" : String(format: "%.2f", report.profitFactor)); average reward/risk \(String(format: "%.2f", report.averageRewardRisk))
              \(fills())
              \(data.markNote)
              \(data.detailPath.map { "intrabar: liquidation, stops, targets and stop moves in the order of the \(data.detailInterval ?? "") candles of \($0)" } ?? "intrabar: no --detail file: when a candle holds both, the stop is taken first")
              \(String(format: "%.0f", Double(report.candles) / max(outcome.elapsedSeconds, 1e-9))) candles/s (\(String(format: "%.2f", outcome.elapsedSeconds)) s)
            """
    }

    /// How the paper venue priced taker fills in this run (the same keys as the executor's).
    static func fills() -> String {
        guard let paper = try? Backtester.Settings.read(try SettingsReader()).paper else { return "" }
        func percent(_ value: Money) -> String { String(format: "%.3f", value.doubleValue * 100) + " %" }
        let spread =
            "spread \(percent(paper.spreadFraction)), taker fee \(percent(paper.takerFeeRate)), "
            + "liquidation fee \(percent(paper.liquidationFeeRate))"
        switch paper.slippageModel {
        case .fixed:
            return "paper fills: fixed slippage \(percent(paper.slippageFraction)), \(spread)"
        case .volume:
            return
                "paper fills: volume slippage (\(percent(paper.slippageFraction)) + \(paper.volumeImpact) × notional / "
                + "quote volume, at most \(percent(paper.slippageCap))), \(spread)"
        }
    }

    /// A progress line on a terminal (stderr), redrawn in place.
    static func progressBar(_ progress: ReplayProgress) {
        guard isatty(STDERR_FILENO) == 1, progress.candles % 50 == 0 || progress.candles == progress.total else {
            return
        }
        let width = 30
        let done = width * progress.candles / max(progress.total, 1)
        let bar = String(repeating: "█", count: done) + String(repeating: "·", count: width - done)
        let line =
            "\r\(bar) \(progress.candles)/\(progress.total) candles · \(progress.signals) signals · \(progress.decisions) decisions · \(progress.refusals) refused · open \(progress.openPositions) · equity \(String(format: "%.2f", progress.equity.doubleValue))"
        FileHandle.standardError.write(Data(line.utf8))
        if progress.candles == progress.total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// The equity curve and its drawdown as SVG at `path`, and the same lines as a PNG beside it
    /// (`equity.svg` → `equity.png`).
    static func plot(equity: [Double], title: String, to path: String) throws {
        guard let chart = EquityChart(equity: equity) else {
            try "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        try chart.svg(title: title).write(toFile: path, atomically: true, encoding: .utf8)
        let png = URL(fileURLWithPath: path).deletingPathExtension().appendingPathExtension("png")
        try Data(chart.png()).write(to: png, options: .atomic)
    }
}

struct Backtest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Replay a candle file through the live code (indicators, analyst, risk gateway, paper venue); deterministic.",
        discussion: """
            The services' core code (indicators, signals, the rules analyst, the risk gateway, the circuit breakers, the paper venue) called \
            directly, candle by candle, with no bus and no store: the same trades as `tradebus run --data` on the same file, much faster. \
            Risk limits and the analyst come from the same environment variables as the workers (MAX_LEVERAGE, MIN_STOP_LOSS_PERCENT, ...).
            """
    )

    enum AnalystChoice: String, ExpressibleByArgument, CaseIterable { case rules, recorded, copy }

    @Option(help: "Candle file: 6-column CSV, Binance 12-column kline CSV, or freqtrade JSON.") var data: String
    @Option(help: "Symbol (default: the file name up to its first '-').") var symbol: String?
    @Option(help: "Interval (default: detected from the candles).") var interval: String?
    @Option(
        help:
            "rules: the deterministic rules analyst; recorded: the decisions stored in DATABASE_URL, point in time; copy: a leader's fills (--leader-fills)."
    ) var analyst: AnalystChoice = .rules
    @Option(
        help:
            "With --analyst copy: the JSON array Hyperliquid's userFills returns (newest first: coin, px, sz, side, dir, startPosition, time, tid)."
    ) var leaderFills: String?
    @Option(help: "With --analyst copy and COPY_SIZING=proportional: the leader's equity, USD.") var leaderEquity:
        Double?
    @Option(
        help:
            "With --analyst copy: the leader's historicalOrders JSON array; their stop triggers become the copies' stops."
    ) var leaderOrders: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Write the trades as CSV.") var tradesOut: String?
    @Option(help: "Draw the equity curve and drawdown as SVG, and as a PNG beside it.") var plot: String?
    @Option(help: "KEY=from:to:step, repeatable: run the grid on all cores and rank it.") var sweep: [String] = []
    @Option(
        help:
            "train=LENGTH,test=LENGTH (such as train=30d,test=7d): optimise the --sweep grid on each training window and trade the next test window with the winner."
    ) var walkForward: String?
    @Flag(help: "Keep the result in DATABASE_URL (postgres://… or sqlite://PATH), for the cockpit's Backtests page.")
    var save = false
    @Flag(help: "Walk-forward: every training window starts at the data's start.") var anchored = false
    @Option(help: "Sweep: backtests at once (default: one per core).") var jobs: Int?
    @Option(help: "Walk-forward: shuffles of the out-of-sample trades' order, for the maximum drawdown's spread.")
    var monteCarlo = 0
    @Flag(
        help:
            "With --analyst recorded: replay LLM decisions made on candles from before the model's training cutoff; the report says so."
    ) var allowLookahead = false
    @OptionGroup var market: MarketFileOptions

    func run() async throws {
        let replay = try market.replay(path: data, symbol: symbol, interval: interval)
        if let walkForward { return try runWalkForward(replay, plan: walkForward) }
        if !sweep.isEmpty { return try runSweep(replay) }
        let choice: Backtester.Analyst
        var lookAhead: String?
        switch analyst {
        case .rules: choice = .rules
        case .copy: choice = .copy(try copyReplay())
        case .recorded:
            let store = try Infrastructure.store(try SettingsReader())
            let records: [DecisionRecord]
            do { records = try await replay.recordedDecisions(store) } catch {
                await store.close()
                throw error
            }
            await store.close()
            choice = .recorded(records)
            lookAhead = try LookAheadGuard.check(
                LookAheadGuard.recorded(records, cutoffs: try AnalystConfiguration.read(try SettingsReader()).cutoffs),
                allowed: allowLookahead
            )
        }
        let progress: ((ReplayProgress) -> Void)? = json ? nil : { ReplayOutput.progressBar($0) }
        var (outcome, report) = try BacktestJob(data: replay, analyst: choice).execute(progress: progress)
        outcome.lookAhead = lookAhead
        if let tradesOut { try ReplayOutput.writeTrades(outcome.trades, to: tradesOut) }
        if let plot {
            try ReplayOutput.plot(
                equity: outcome.equity,
                title: "\(replay.symbol) \(replay.interval) equity and drawdown",
                to: plot
            )
        }
        print(json ? try ReplayOutput.json(report, outcome) : ReplayOutput.summary(report, outcome, data: replay))
        if save {
            let config = try SettingsReader()
            guard try config.string("DATABASE_URL", help: "where --save keeps the result") != nil else {
                throw ValidationError("--save needs DATABASE_URL (postgres://… or sqlite://PATH)")
            }
            let store = try Infrastructure.store(config)
            let record = BacktestRecord(
                id: "backtest-\(UUID().uuidString.lowercased())",
                time: Date(),
                symbol: replay.symbol,
                interval: replay.interval,
                source: URL(fileURLWithPath: data).path,
                report: report,
                equity: outcome.equity
            )
            do {
                try await store.migrate()
                try await store.recordBacktest(record)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
            if !json { print("  saved as \(record.id)") }
        }
    }

    /// `--analyst copy`: the leader's fills and the copy settings (COPY_SIZING, COPY_LEVERAGE, …).
    func copyReplay() throws -> Backtester.CopyReplay {
        guard let leaderFills else {
            throw ValidationError("--analyst copy needs --leader-fills FILE (the JSON array userFills returns)")
        }
        let fills: [LeaderFill]
        do { fills = try LeaderFill.read(try Data(contentsOf: URL(fileURLWithPath: leaderFills))) } catch {
            throw ValidationError("--leader-fills \(leaderFills) is not a userFills JSON array: \(error)")
        }
        var environment = ProcessInfo.processInfo.environment
        // The leader is whoever the file belongs to; COPY_LEADERS is not needed to replay it.
        environment["COPY_LEADERS"] = environment["COPY_LEADERS"] ?? "0x" + String(repeating: "0", count: 40)
        let config = try SettingsReader(environment: environment)
        let copy = try CopyConfiguration.read(config, framework: try TradingFramework.read(config))
        if copy.settings.sizing.mode == .proportional && leaderEquity == nil {
            throw ValidationError(
                "COPY_SIZING=proportional needs --leader-equity USD (the leader's account value); or COPY_SIZING=fixed_notional|fixed_risk"
            )
        }
        guard leaderEquity.map({ $0 > 0 && $0.isFinite }) ?? true else {
            throw ValidationError("--leader-equity must be a positive number of USD")
        }
        return Backtester.CopyReplay(
            fills: fills,
            leader: copy.settings.leaders.first ?? Leader(address: "0x" + String(repeating: "0", count: 40), weight: 1),
            sizing: copy.settings.sizing,
            capital: environment["COPY_CAPITAL"] == nil ? nil : copy.settings.capital,
            leaderEquity: leaderEquity.flatMap(Money.init(finite:)),
            leverage: copy.settings.leverage,
            targetR: copy.settings.targetR,
            triggers: try leaderOrders.map { path in
                do {
                    return try HyperliquidLeaderMessages.triggers(
                        historicalOrders: Array(Data(contentsOf: URL(fileURLWithPath: path)))
                    )
                } catch {
                    throw ValidationError("--leader-orders \(path) is not a historicalOrders JSON array: \(error)")
                }
            }
        )
    }

    /// The sweep's axes and every combination of their values.
    func grid() throws -> (axes: [(key: String, values: [String])], grid: [[(String, String)]]) {
        var axes: [(key: String, values: [String])] = []
        for item in sweep {
            let parts = item.split(separator: "=", maxSplits: 1)
            let range = parts.count == 2 ? parts[1].split(separator: ":").compactMap { Double($0) } : []
            guard parts.count == 2, range.count == 3, range[2] > 0, range[0] <= range[1] else {
                throw ValidationError("--sweep '\(item)' is not KEY=from:to:step with step > 0")
            }
            var values: [String] = []
            var value = range[0]
            while value <= range[1] + range[2] * 1e-9 {
                values.append(String(format: "%g", value))
                value += range[2]
            }
            axes.append((String(parts[0]), values))
        }
        var grid: [[(String, String)]] = [[]]
        for axis in axes { grid = grid.flatMap { combination in axis.values.map { combination + [(axis.key, $0)] } } }
        guard grid.count <= 10_000 else { throw ValidationError("--sweep makes \(grid.count) runs; at most 10,000") }
        return (axes, grid)
    }

    /// The backtester's settings for each combination of the grid: the workers' environment with the
    /// combination's keys over it, each checked as a worker checks its configuration.
    func configurations(_ grid: [[(String, String)]]) throws -> [Backtester.Settings] {
        try grid.map { combination in
            var environment = ProcessInfo.processInfo.environment
            for (key, value) in combination { environment[key] = value }
            return try Backtester.Settings.read(try SettingsReader(environment: environment))
        }
    }

    /// Every combination of the sweep's values, each a backtest of its own, as many at once as there are cores.
    func runSweep(_ replay: ReplayData) throws {
        let (axes, grid) = try grid()
        let settings = try configurations(grid)
        let cores = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)
        let started = ContinuousClock.now
        let reports = try Backtester.sweep(
            settings,
            candles: replay.candles,
            symbol: replay.symbol,
            interval: replay.interval,
            funding: replay.funding,
            marks: replay.marks,
            detail: replay.detail,
            jobs: cores
        ) { settings, outcome in replay.report(outcome, initialCapital: settings.initialCapital) }
        var results = zip(grid, reports).map { (settings: $0, report: $1) }
        results.sort { $0.report.totalPnL > $1.report.totalPnL }
        let elapsed = (ContinuousClock.now - started).timeInterval
        if json {
            let rows = try results.map { result -> [String: Any] in
                var object = try result.report.jsonObject()
                object["settings"] = Dictionary(uniqueKeysWithValues: result.settings)
                return object
            }
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]),
                    as: UTF8.self
                )
            )
            return
        }
        print("rank  " + axes.map(\.key).joined(separator: "  ") + "  trades  win%  pnl  return%  maxDD%  sharpe")
        for (rank, result) in results.enumerated() {
            let r = result.report
            print(
                String(format: "%4d  ", rank + 1) + result.settings.map(\.1).joined(separator: "  ")
                    + String(
                        format: "  %6d  %5.1f  %.2f  %.2f  %.2f  %.2f",
                        r.trades,
                        r.winRate * 100,
                        r.totalPnL,
                        r.returnPercent,
                        r.maxDrawdownPercent,
                        r.sharpe
                    )
            )
        }
        // To stderr, so that the table stays one table: the sweep's pace, for the scaling figures.
        FileHandle.standardError.write(
            Data(
                String(
                    format: "%d backtests of %d candles in %.2f s, %d at once (%.0f candles/s)\n",
                    grid.count,
                    replay.candles.count,
                    elapsed,
                    cores,
                    Double(grid.count * replay.candles.count) / elapsed
                ).utf8
            )
        )
    }
}

extension Backtest {
    /// `--walk-forward`: the grid optimised on each training window, the winner traded on the next test
    /// window; the stitched out-of-sample record, the chosen settings per window, the full-sample
    /// sweep's deflated Sharpe and probability of overfitting, and a Monte Carlo of trade order.
    func runWalkForward(_ replay: ReplayData, plan text: String) throws {
        let plan: WalkForward.Plan
        do { plan = try WalkForward.Plan.parse(text, anchored: anchored) } catch {
            throw ValidationError(error.description)
        }
        guard !sweep.isEmpty else { throw ValidationError("--walk-forward optimises a --sweep grid: give --sweep") }
        let (_, grid) = try grid()
        let configurations = try configurations(grid)
        let capital = configurations[0].initialCapital.doubleValue
        let report = try WalkForward.run(
            replay.candles,
            symbol: replay.symbol,
            interval: replay.interval,
            plan: plan,
            configurations: configurations,
            funding: replay.funding,
            marks: replay.marks,
            detail: replay.detail
        )
        let annual = replay.periodsPerYear.squareRoot()
        let trades = report.steps.flatMap(\.trades)
        let equity = report.outOfSampleEquity(capital: capital)
        let drawdowns =
            monteCarlo > 0
            ? WalkForward.monteCarloDrawdowns(
                capital: capital,
                pnls: trades.map { $0.pnl.doubleValue },
                runs: monteCarlo,
                seed: 42
            ) : []
        func percentile(_ p: Double) -> Double {
            drawdowns.isEmpty ? 0 : drawdowns[min(drawdowns.count - 1, Int(p * Double(drawdowns.count)))]
        }
        func day(_ millis: Int64) -> String {
            ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
        }
        func settings(_ index: Int) -> [String: String] { Dictionary(uniqueKeysWithValues: grid[index]) }
        if let plot {
            try ReplayOutput.plot(
                equity: equity,
                title: "\(replay.symbol) \(replay.interval) walk-forward, out of sample",
                to: plot
            )
        }
        if json {
            let object: [String: Any] = [
                "windows": report.steps.map { step -> [String: Any] in
                    [
                        "train_start": day(step.window.trainStart), "train_end": day(step.window.trainEnd),
                        "test_start": day(step.window.testStart), "test_end": day(step.window.testEnd),
                        "settings": settings(step.chosen),
                        "training_sharpe": step.trainingSharpes[step.chosen] * annual,
                        "trades": step.trades.count,
                        "pnl": step.trades.reduce(0) { $0 + $1.pnl.doubleValue },
                    ]
                },
                "out_of_sample_trades": trades.count,
                "out_of_sample_pnl": trades.reduce(0) { $0 + $1.pnl.doubleValue },
                "out_of_sample_return_pct": (equity.last! / capital - 1) * 100,
                "out_of_sample_sharpe": WalkForward.sharpe(report.outOfSampleReturns) * annual,
                "out_of_sample_equity": equity,
                "configurations": grid.count,
                "full_sample_best": settings(report.best),
                "full_sample_best_sharpe": report.fullSampleSharpes[report.best] * annual,
                "deflated_sharpe": report.deflatedSharpe,
                "probability_of_overfitting": report.probabilityOfOverfitting ?? NSNull(),
                "monte_carlo_runs": drawdowns.count,
                "monte_carlo_max_drawdown_pct": [
                    "p5": percentile(0.05) * 100, "p50": percentile(0.5) * 100, "p95": percentile(0.95) * 100,
                    "worst": (drawdowns.last ?? 0) * 100,
                ],
            ]
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                    as: UTF8.self
                )
            )
            return
        }
        var lines = [
            "walk-forward \(text)\(anchored ? ", anchored" : ", rolling") over \(replay.candles.count) \(replay.interval) candles of \(replay.path); \(grid.count) configurations, best training Sharpe wins"
        ]
        for step in report.steps {
            let chosen = grid[step.chosen].map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            lines.append(
                "  train \(day(step.window.trainStart)) .. \(day(step.window.trainEnd))  test .. \(day(step.window.testEnd))  "
                    + String(
                        format: "%@  training Sharpe %.2f  %d trades  PnL %.2f",
                        chosen,
                        step.trainingSharpes[step.chosen] * annual,
                        step.trades.count,
                        step.trades.reduce(0) { $0 + $1.pnl.doubleValue }
                    )
            )
        }
        lines.append(
            String(
                format: "out of sample: %d trades, return %.2f %%, Sharpe %.2f (the test windows stitched)",
                trades.count,
                (equity.last! / capital - 1) * 100,
                WalkForward.sharpe(report.outOfSampleReturns) * annual
            )
        )
        lines.append(
            String(
                format:
                    "full-sample sweep: best %@ (Sharpe %.2f); deflated Sharpe %.3f over %d configurations; probability of backtest overfitting %@",
                grid[report.best].map { "\($0.0)=\($0.1)" }.joined(separator: " "),
                report.fullSampleSharpes[report.best] * annual,
                report.deflatedSharpe,
                grid.count,
                report.probabilityOfOverfitting.map { String(format: "%.2f", $0) }
                    ?? "n/a (too few configurations or candles)"
            )
        )
        if !drawdowns.isEmpty {
            lines.append(
                String(
                    format:
                        "Monte Carlo of trade order (%d shuffles): max drawdown p5 %.2f %%, median %.2f %%, p95 %.2f %%, worst %.2f %%",
                    drawdowns.count,
                    percentile(0.05) * 100,
                    percentile(0.5) * 100,
                    percentile(0.95) * 100,
                    (drawdowns.last ?? 0) * 100
                )
            )
        }
        print(lines.joined(separator: "\n"))
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "All five services in one process (in-process bus, LRU cache, SQLite) trading on paper.",
        discussion:
            "With no arguments it replays the XRPUSDT 5m file shipped with TradeBus. Configuration: the workers' environment variables."
    )

    @Option(help: "Replay this candle file instead of the bundled one.") var data: String?
    @Option(help: "Symbol of --data (default: from the file name).") var symbol: String?
    @Option(help: "Interval of --data (default: detected).") var interval: String?
    @Option(help: "Where the run's record goes (SQLite; started afresh).") var database = ".tradebus/run.sqlite"
    @Option(help: "Write the trades as CSV.") var tradesOut: String?
    @Flag(
        help:
            "Live market data instead of a file (see --venue, --symbols, --interval; default 1m), paper venue, until Ctrl-C."
    ) var live = false
    @Option(help: "With --live: binance, bybit or hyperliquid.") var venue = "binance"
    @Option(help: "With --live: comma-separated symbols.") var symbols: String?
    @Option(
        help: ArgumentHelp(
            "Serve the cockpit at HOST:PORT during the replay and after it, until Ctrl-C.",
            discussion:
                "Tokens: COCKPIT_VIEWER_TOKEN and COCKPIT_OPERATOR_TOKEN (or their _FILE forms); with neither, a one-time viewer token is printed."
        )
    ) var dashboard: String?
    @Option(help: "With --dashboard: replay this many candles a second (default: as fast as it goes).") var pace:
        Double?
    @Option(help: "Every log line at info and above, each refusal included (default: beside --database).")
    var log: String?
    @Flag(
        help:
            "Let the LLMs decide on candles from before their training cutoff (LLM_TRAINING_CUTOFFS); the summary and each decision's record say so."
    ) var allowLookahead = false
    @Flag(help: "Show the LLMs each context anonymised: no symbol, dates moved, prices rescaled (LLM_ANONYMISE).")
    var anonymise = false
    @OptionGroup var market: MarketFileOptions

    /// `--dashboard HOST:PORT` with the configured tokens, or a one-time viewer token printed on stderr.
    func dashboardOptions() throws -> ReplayRun.Dashboard? {
        guard let dashboard else {
            if pace != nil { throw ValidationError("--pace needs --dashboard") }
            return nil
        }
        guard let colon = dashboard.lastIndex(of: ":"), let port = Int(dashboard[dashboard.index(after: colon)...]),
            (0...65_535).contains(port), colon != dashboard.startIndex
        else {
            throw ValidationError("--dashboard must be HOST:PORT, e.g. 127.0.0.1:8090, not '\(dashboard)'")
        }
        if let pace, !(pace > 0 && pace <= 100_000) {
            throw ValidationError("--pace must be a number of candles a second in (0, 100000], not \(pace)")
        }
        let config = try SettingsReader()
        var viewer = try config.string("COCKPIT_VIEWER_TOKEN", secret: true, help: "the viewer's token")
        let operatorToken = try config.string("COCKPIT_OPERATOR_TOKEN", secret: true, help: "the operator's token")
        if viewer == nil && operatorToken == nil {
            let oneTime = CockpitSessions.randomToken()
            viewer = oneTime
            FileHandle.standardError.write(
                Data("dashboard: one-time viewer token for this run: \(oneTime)\n".utf8)
            )
        }
        do {
            return ReplayRun.Dashboard(
                host: String(dashboard[..<colon]),
                port: port,
                tokens: try CockpitTokens(viewer: viewer, operator: operatorToken),
                pace: pace
            )
        } catch {
            throw ValidationError("\(error.key): \(error.message)")
        }
    }

    func run() async throws {
        if live { return try await runLive() }
        guard let path = data ?? ReplayData.bundled else {
            throw ValidationError("the bundled data file is missing from this build; give --data FILE")
        }
        let replay = try market.replay(path: path, symbol: symbol, interval: interval)
        let lookAhead = try LookAheadGuard.check(
            try AnalystConfiguration.read(try SettingsReader()).lookAhead(firstCandle: replay.firstClose),
            allowed: allowLookahead
        )
        FileHandle.standardError.write(
            Data(
                "tradebus run: \(replay.symbol) \(replay.interval), \(replay.candles.count) candles, paper venue, record in \(database)\n"
                    .utf8
            )
        )
        let lines = isatty(STDERR_FILENO) != 1
        let logFile =
            log ?? URL(fileURLWithPath: database).deletingLastPathComponent().appendingPathComponent("run.log").path
        let (tradesOut, database) = (self.tradesOut, self.database)
        // The summary is written as soon as the replay ends (a dashboard goes on serving after it); a
        // --trades-out that cannot be written fails the run once it stops.
        let failed = Mutex<(any Error)?>(nil)
        do {
            _ = try await ReplayRun(
                data: replay,
                analyst: .configured,
                notify: true,
                database: database,
                environment: ProcessInfo.processInfo.environment.merging(anonymise ? ["LLM_ANONYMISE": "true"] : [:]) {
                    $1
                },
                logFile: logFile,
                dashboard: try dashboardOptions(),
                lookAhead: lookAhead
            ).execute(
                progress: { progress in
                    if lines {
                        if progress.candles % 250 == 0 || progress.candles == progress.total {
                            FileHandle.standardError.write(
                                Data(
                                    "progress: \(progress.candles)/\(progress.total) candles, \(progress.signals) signals, \(progress.decisions) decisions, \(progress.refusals) refused, \(progress.openPositions) open, equity \(String(format: "%.2f", progress.equity.doubleValue))\n"
                                        .utf8
                                )
                            )
                        }
                    } else {
                        ReplayOutput.progressBar(progress)
                    }
                },
                finished: { result in
                    if let tradesOut {
                        do { try ReplayOutput.writeTrades(result.outcome.trades, to: tradesOut) } catch {
                            FileHandle.standardError.write(
                                Data("tradebus run: --trades-out \(tradesOut): \(error)\n".utf8)
                            )
                            failed.withLock { $0 = error }
                        }
                    }
                    var lines = [ReplayOutput.summary(result.report, result.outcome, data: replay)]
                    if result.refusals.isEmpty {
                        lines.append("  refused by the risk gateway: none")
                    } else {
                        lines.append(
                            "  refused by the risk gateway, by reason (each in \(logFile) and on the dashboard):"
                        )
                        lines += result.refusals.map { "    \($0)" }
                    }
                    lines.append("  the record: tradebus report --database \(database)")
                    if FileManager.default.fileExists(atPath: ReplayRun.shadowDatabase(database)) {
                        lines.append(
                            "  the shadow candidate's record: tradebus compare --shadow --database \(database) --shadow-database \(ReplayRun.shadowDatabase(database))"
                        )
                    }
                    // Written at once, unbuffered: with a dashboard the process goes on serving after it.
                    FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
                }
            )
        } catch is ReplayRun.Interrupted {
            FileHandle.standardError.write(
                Data("tradebus run: stopped by a signal before the replay ended; what it did is in \(database)\n".utf8)
            )
            return
        }
        if let error = failed.withLock({ $0 }) { throw error }
    }

    /// Live market data through the same five services until Ctrl-C (SIGINT or SIGTERM), on the paper
    /// venue unless `USE_PAPER_TRADING=false`; then a summary of what was traded.
    func runLive() async throws {
        guard LiveMarketSources.venues.contains(venue) else {
            throw ValidationError("--venue must be binance, bybit or hyperliquid, not '\(venue)'")
        }
        guard
            let list = symbols?.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).uppercased() })
                .filter({ !$0.isEmpty }), !list.isEmpty
        else {
            throw ValidationError("--live needs --symbols, e.g. --symbols BTCUSDT,ETHUSDT")
        }
        let interval = self.interval ?? "1m"
        // Trapped before anything starts: a Ctrl-C or SIGTERM during start-up still stops cleanly, after it.
        let stopSignals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let config = try SettingsReader()
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: database).deletingLastPathComponent().path,
            withIntermediateDirectories: true
        )
        let store = SQLTradeStore.sqlite(path: database)
        let system = try EmbeddedSystem(
            config: config,
            store: store,
            analyst: .configured,
            notify: true,
            logger: Logger(label: "tradebus"),
            allowLiveVenue: true
        )
        try await system.start()
        let orders = system.venue.isLive ? "LIVE ORDERS on \(system.venue.name) with real money" : "paper venue"
        FileHandle.standardError.write(
            Data(
                "tradebus run --live: \(venue) \(list.joined(separator: ",")) \(interval), \(orders), record in \(database); Ctrl-C stops\n"
                    .utf8
            )
        )
        // The feed, the Ctrl-C watcher and the status line are children of this call: a signal or the
        // feed's end stops the others, and all three are awaited.
        enum Ended: Sendable {
            case feed(Result<Void, any Error>)
            case signal
            case status
        }
        let ended: Result<Void, any Error> = await withTaskGroup(of: Ended.self) { tasks in
            tasks.addTask {
                do {
                    try await system.runLive(venue: venue, symbols: list, interval: interval, config: config)
                    return .feed(.success(()))
                } catch {
                    return .feed(.failure(error))
                }
            }
            tasks.addTask {
                for await _ in stopSignals { return .signal }
                return .signal
            }
            tasks.addTask {
                do {
                    while true {
                        try await Task.sleep(for: .seconds(5))
                        let account = try await system.venue.account()
                        let open = try await system.venue.positions().count
                        FileHandle.standardError.write(
                            Data(
                                "live: \(await system.liveCandles) candles, \(open) open, equity \(String(format: "%.2f", account.equity.doubleValue))\n"
                                    .utf8
                            )
                        )
                    }
                } catch {
                    return .status
                }
            }
            var result: Result<Void, any Error> = .failure(CancellationError())
            for await end in tasks {
                switch end {
                case .feed(let outcome):
                    result = outcome
                    tasks.cancelAll()
                case .signal:
                    tasks.cancelAll()
                case .status:
                    continue
                }
            }
            return result
        }
        await system.stop()
        let trades = try await store.trades(since: nil)
        let account = try await system.venue.account()
        await store.close()
        if case .failure(let error) = ended, !(error is CancellationError) { throw error }
        let equity = PerformanceReport.realisedEquity(trades, initialCapital: system.initialCapital.doubleValue)
        let report = PerformanceReport(
            trades: trades,
            equity: equity,
            initialCapital: system.initialCapital.doubleValue,
            candles: await system.liveCandles,
            periodsPerYear: Double(max(trades.count, 1))
        )
        print(
            """
            live run stopped: \(report.candles) candles, \(report.trades) trades (\(report.wins) won), PnL \(String(format: "%.2f", report.totalPnL)) USD, equity \(String(format: "%.2f", account.equity.doubleValue))
              the record: tradebus report --database \(database)
            """
        )
    }
}

struct BacktestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract:
            "Candles/s of the full strategy trading throughout, on one core, next to backtesting.py on the same data."
    )
    @Option(help: "Candle file (default: the shipped XRPUSDT-PERP-5m file, tiled to --candles).") var data: String?
    @Option(help: "Candles to run: the file tiled to this many (0: the file as it is).") var candles = 1_000_000
    @Flag(help: "A seeded synthetic 5m series instead of a real file.") var synthetic = false
    @Option(help: "Passes of our side; the best is reported.") var passes = 3
    @Option(help: "backtesting.py's side.") var peer = "scripts/backtesting-bench"
    @Flag(help: "Print the report as JSON.") var json = false

    /// The candle file the bench runs on: real candles tiled (each copy scaled to open where the last
    /// one closed), or the synthetic walk.
    func benchFile() throws -> String {
        var series: [Candle]
        let name: String
        if synthetic {
            var market = SyntheticMarket(
                symbols: ["SYNUSDT"],
                seed: 7,
                intervalMilliseconds: 300_000,
                startTime: 1_700_000_000_000,
                startPrice: 100,
                volatility: 0.004
            )
            series = (0..<max(candles, 2)).flatMap { _ in market.next() }
            name = "SYNUSDT-5m-\(candles)"
        } else {
            guard let source = data ?? ReplayData.bundled else {
                throw ValidationError("no candle file: give --data")
            }
            let file = try ReplayData(path: source, symbol: nil, interval: nil)
            if candles == 0 { return source }
            series = CandleInterval.tiled(
                file.candles,
                count: candles,
                length: CandleInterval.milliseconds(file.interval)!
            )
            name = "\(file.symbol)-\(file.interval)-tiled-\(candles)"
        }
        var text = "open_time,open,high,low,close,volume\n"
        text.reserveCapacity(series.count * 64)
        for c in series { text += "\(c.openTime),\(c.open),\(c.high),\(c.low),\(c.close),\(c.volume)\n" }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        series.removeAll()
        return path
    }

    func run() async throws {
        let path = try benchFile()
        let replay = try ReplayData(path: path, symbol: nil, interval: nil)
        // The main figure: the circuit breakers set so that they never stop trading, and a capital large
        // enough that a losing strategy still meets the minimum notional at the end, so the strategy
        // trades from start to end, as backtesting.py's does, every decision through the whole risk
        // gateway. As configured, the drawdown halt stops trading early (shown second, labelled).
        let configured = ProcessInfo.processInfo.environment
        var throughoutEnvironment = configured
        for (key, value) in [
            "MAX_DRAWDOWN_PERCENT": "1", "DAILY_LOSS_LIMIT_PERCENT": "1", "MAX_CONSECUTIVE_LOSSES": "100",
            "INITIAL_CAPITAL": "1000000000",
        ] where throughoutEnvironment[key] == nil {
            throughoutEnvironment[key] = value
        }
        struct Run {
            var outcome: ReplayOutcome
            var report: PerformanceReport
            var candlesPerSecond: Double
            /// Trades entered in the last tenth of the file's time.
            var lastTenth: Int
            var lastTrade: Date?
        }
        let firstTime = Date(timeIntervalSince1970: Double(replay.candles.first!.openTime) / 1000)
        let lastTime = Date(timeIntervalSince1970: Double(replay.candles.last!.openTime) / 1000)
        let tenth = lastTime.addingTimeInterval(-lastTime.timeIntervalSince(firstTime) / 10)
        func fastest(_ environment: [String: String]) throws -> Run {
            var best: (ReplayOutcome, PerformanceReport)?
            for _ in 0..<max(1, passes) {
                let run = try BacktestJob(data: replay, analyst: .rules, environment: environment).execute()
                if best.map({ run.0.elapsedSeconds < $0.0.elapsedSeconds }) ?? true { best = run }
            }
            let (outcome, report) = best!
            return Run(
                outcome: outcome,
                report: report,
                candlesPerSecond: Double(outcome.candles) / outcome.elapsedSeconds,
                lastTenth: outcome.trades.filter { $0.entryTime >= tenth }.count,
                lastTrade: outcome.trades.map(\.entryTime).max()
            )
        }
        let throughout = try fastest(throughoutEnvironment)
        let asConfigured = try fastest(configured)
        struct Peer: Decodable {
            var candles: Int
            var trades: Int
            var seconds: Double
            var candles_per_second: Double
        }
        let peerOutput = try await Command.run("python3", [peer, "--data", path])
        let peerLine = peerOutput.split(separator: "\n").last.map(String.init) ?? ""
        guard let theirs = try? JSONDecoder().decode(Peer.self, from: Data(peerLine.utf8)) else {
            throw ValidationError("backtesting.py's side printed no result: \(peerOutput.suffix(400))")
        }
        let figures: [String: Any] = [
            "candles": throughout.outcome.candles,
            "tradebus_candles_per_second": throughout.candlesPerSecond,
            "tradebus_trades": throughout.report.trades,
            "tradebus_trades_last_tenth": throughout.lastTenth,
            "tradebus_last_trade": throughout.lastTrade.map { ISO8601DateFormatter().string(from: $0) } ?? "",
            "tradebus_decisions": throughout.outcome.decisions,
            "ratio": throughout.candlesPerSecond / theirs.candles_per_second,
            "tradebus_as_configured_candles_per_second": asConfigured.candlesPerSecond,
            "tradebus_as_configured_trades": asConfigured.report.trades,
            "ratio_as_configured": asConfigured.candlesPerSecond / theirs.candles_per_second,
            "backtesting_py_candles_per_second": theirs.candles_per_second,
            "backtesting_py_trades": theirs.trades,
        ]
        if json {
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys]),
                    as: UTF8.self
                )
            )
            return
        }
        func line(_ run: Run) -> String {
            String(
                format:
                    "%.0f candles/s, %.2f× backtesting.py; %d trades (%d in the last tenth of the file, the last entered %@), %d decisions",
                run.candlesPerSecond,
                run.candlesPerSecond / theirs.candles_per_second,
                run.report.trades,
                run.lastTenth,
                run.lastTrade.map { ISO8601DateFormatter().string(from: $0) } ?? "never",
                run.outcome.decisions
            )
        }
        print(
            """
            backtest of \(replay.candles.count) \(replay.interval) candles (\(replay.path)); tradebus on one core, best of \(max(1, passes))
              tradebus backtest trading throughout (breakers that never stop it, INITIAL_CAPITAL \(throughoutEnvironment["INITIAL_CAPITAL"]!); indicators, signals, rules analyst, risk gateway, execution kernel, paper venue): \(line(throughout))
              backtesting.py (MACD/RSI, vectorised indicators): \(String(format: "%.0f", theirs.candles_per_second)) candles/s, \(theirs.trades) trades
              goals: 1,000,000 candles/s and 10× backtesting.py, trading throughout
              as configured (the drawdown halt stops trading early; not the main figure): \(line(asConfigured))
            """
        )
    }
}
