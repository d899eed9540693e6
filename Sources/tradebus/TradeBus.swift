import ArgumentParser
import Benchmarks
import Foundation
import RabbitMQBus
import RedisCache
import WorkerRuntime

/// `tradebus`: the all-in-one command. This build has `migrate` and `bench`; `run`, `backtest`,
/// `indicators`, `analyze` and `report` arrive with their issues.
@main
struct TradeBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradebus",
        abstract: "TradeBus: an autonomous crypto perpetual-futures trading system.",
        subcommands: [Migrate.self, Bench.self])
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the store's schema migrations (DATABASE_URL).")

    func run() async throws {
        let store = try Infrastructure.store(try ConfigReader())
        try await store.migrate()
        print("migrations applied: \(try await store.appliedMigrations().map(String.init).joined(separator: ", "))")
        await store.close()
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput and latency against the real servers (AMQP_URL, REDIS_URL, DATABASE_URL).",
        subcommands: [BusBench.self, CacheBench.self, StoreBench.self])
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the report as JSON.") var json = false

    func print(_ report: BenchReport) {
        Swift.print(json ? report.json() : report.text())
    }
}

struct BusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bus", abstract: "RabbitMQ publish/consume with and without confirms.")
    @Option(help: "Messages per windowed run.") var messages = 100_000
    @Option(help: "Messages for the one-confirm-at-a-time run.") var single = 3_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try AMQPURL(try ConfigReader().required("AMQP_URL"))
        output.print(try await BusBenchmark.run(url: url, messages: messages, oneAtATime: single))
    }
}

struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache", abstract: "Redis GET/SET next to redis-benchmark; LRU hit cost.")
    @Option(help: "Requests per run.") var requests = 50_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try RedisURL(try ConfigReader().required("REDIS_URL"))
        output.print(try await CacheBenchmark.run(url: url, requests: requests))
    }
}

struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Single-row inserts against the batch path, with psql \\copy as the peer.")
    @Option(help: "Rows written one by one.") var single = 2_000
    @Option(help: "Rows written through the batch path.") var batch = 100_000
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let url = try ConfigReader().required("DATABASE_URL")
        output.print(try await StoreBenchmark.run(databaseURL: url, singleRows: single, batchRows: batch))
    }
}
