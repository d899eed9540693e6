import ArgumentParser
import Benchmarks
import Foundation
import RabbitMQBus
import RedisCache
import TradingCore
import WorkerRuntime

/// `tradebus`: the all-in-one command: `run` (everything in one process), `backtest`, `report`,
/// `indicators`, `analyze`, `migrate` and `bench`.
@main
struct TradeBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradebus",
        abstract: "TradeBus: an autonomous crypto perpetual-futures trading system.",
        subcommands: [
            Run.self, Backtest.self, Report.self, Indicators.self, Analyze.self, Control.self, Status.self,
            Migrate.self, Bench.self, Config.self, Diff.self, Evaluate.self, Compare.self, Leaders.self,
        ]
    )
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the store's schema migrations (DATABASE_URL).")

    func run() async throws {
        let store = try Infrastructure.store(try SettingsReader())
        try await store.migrate()
        print("migrations applied: \(try await store.appliedMigrations().map(String.init).joined(separator: ", "))")
        await store.close()
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput and latency against the real servers (AMQP_URL, REDIS_URL, DATABASE_URL).",
        subcommands: [
            BusBench.self, CacheBench.self, StoreBench.self, IndicatorsBench.self, BacktestBench.self, E2EBench.self,
        ]
    )
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the report as JSON.") var json = false

    func print(_ report: BenchReport) {
        Swift.print(json ? report.json() : report.text())
    }
}

struct BusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "RabbitMQ publish/consume with and without confirms."
    )
    @Option(help: "Messages per windowed run.") var messages = 100_000
    @Option(help: "Messages for the one-confirm-at-a-time run.") var single = 3_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try AMQPURL(try SettingsReader().required("AMQP_URL"))
        output.print(try await BusBenchmark.run(url: url, messages: messages, oneAtATime: single))
    }
}

struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Redis GET/SET next to redis-benchmark; LRU hit cost."
    )
    @Option(help: "Requests per run.") var requests = 50_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try RedisURL(try SettingsReader().required("REDIS_URL"))
        output.print(try await CacheBenchmark.run(url: url, requests: requests))
    }
}

struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Single-row inserts against the batch path, with psql \\copy as the peer."
    )
    @Option(help: "Rows written one by one.") var single = 2_000
    @Option(help: "Rows written through the batch path.") var batch = 100_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try SettingsReader().required("DATABASE_URL")
        output.print(try await StoreBenchmark.run(databaseURL: url, singleRows: single, batchRows: batch))
    }
}

struct Indicators: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the indicators over a candle file, one row per candle in file order."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, jsonl }

    @Option(help: "A candle file: 6-column CSV, Binance 12-column kline CSV, or freqtrade JSON.") var data: String
    @Option(help: "csv (warm-up values empty) or jsonl (warm-up values null).") var format: Format = .csv

    func run() throws {
        guard let text = try? String(contentsOfFile: data, encoding: .utf8) else {
            throw ValidationError("cannot read --data '\(data)'")
        }
        let candles: [Candle]
        do { candles = try CandleFile.parse(text) } catch { throw ValidationError("\(data): \(error)") }
        let table = IndicatorTable(candles)
        var output = ""
        output.reserveCapacity(min(candles.count, 8_192) * 200)
        if format == .csv { output += IndicatorSnapshot.columns.joined(separator: ",") + "\n" }
        for (index, candle) in candles.enumerated() {
            let values = table.row(index)
            switch format {
            case .csv:
                output += String(candle.openTime)
                for value in values { output += "," + (value.map(Self.number) ?? "") }
                output += "\n"
            case .jsonl:
                output += "{\"open_time\":\(candle.openTime)"
                for (column, value) in zip(IndicatorSnapshot.columns.dropFirst(), values) {
                    output += ",\"\(column)\":" + (value.map(Self.number) ?? "null")
                }
                output += "}\n"
            }
            if output.utf8.count > 1 << 20 {
                FileHandle.standardOutput.write(Data(output.utf8))
                output.removeAll(keepingCapacity: true)
            }
        }
        FileHandle.standardOutput.write(Data(output.utf8))
    }

    /// Full precision: Swift's shortest representation that reads back to the same Double (at most
    /// 17 significant digits).
    static func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }
}

struct IndicatorsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indicators",
        abstract: "Incremental indicators per candle, next to TA-Lib recomputing and in batch."
    )
    @Option(help: "Candle file.") var data = "Tests/Fixtures/market-data/UNITTESTBTC-1m.csv"
    @Option(help: "Times to repeat the file (13,681 candles) for the per-candle runs.") var `repeat` = 74
    @Option(help: "TA-Lib's side.") var talib = "scripts/talib-bench"
    @OptionGroup var output: OutputOptions

    func run() async throws {
        output.print(try await IndicatorBenchmark.run(dataFile: data, repeat: `repeat`, talibScript: talib))
    }
}
