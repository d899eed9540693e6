import Foundation
import RabbitMQBus
import SQLTradeStore
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The five workers as separate processes over a RabbitMQ node and a Redis server of the test's own
/// and a Postgres schema of its own, replaying a shared file in lockstep (`REPLAY_LOCKSTEP=true`): the
/// feed-ingester, one indicator worker, one analyst (rules), one executor (paper) and the notifier.
final class DistributedPipeline: Sendable {
    static let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path
    let broker: PrivateRabbitMQ
    let redis: PrivateRedis
    let databaseURL: String
    let environment: [String: String]
    let workers = Workers()

    /// The running processes by worker, replaced when one is killed and started again.
    final class Workers: Sendable {
        private let processes = Mutex<[String: SpawnedProcess]>([:])
        subscript(_ worker: String) -> SpawnedProcess? {
            get { processes.withLock { $0[worker] } }
            set { processes.withLock { $0[worker] = newValue } }
        }
        var all: [String: SpawnedProcess] { processes.withLock { $0 } }
    }

    init(
        broker: PrivateRabbitMQ,
        redis: PrivateRedis,
        file: String,
        symbol: String,
        extra: [String: String] = [:]
    ) async throws {
        self.broker = broker
        self.redis = redis
        // A schema of its own in the real Postgres: this run's record, and only it.
        let schema = "dist_" + UUID().uuidString.prefix(8).lowercased()
        let shared = try Infrastructure.store(
            try SettingsReader(environment: ["DATABASE_URL": TestServices.databaseURL])
        )
        _ = try await shared.database.withSession { try $0.execute("CREATE SCHEMA \(schema)") }
        await shared.close()
        databaseURL =
            TestServices.databaseURL + (TestServices.databaseURL.contains("?") ? "&" : "?")
            + "options=-csearch_path%3D\(schema)"
        let account = "dist\(UUID().uuidString.prefix(6).lowercased())"
        environment = [
            "AMQP_URL": broker.url, "REDIS_URL": redis.url, "DATABASE_URL": databaseURL, "HTTP_PORT": "0",
            "REPLAY_LOCKSTEP": "true", "LOCKSTEP_STALL_SECONDS": "15", "LOG_LEVEL": "info",
            // The feed.
            "FEED_SOURCE": "replay", "FEED_FILE": file, "FEED_SYMBOL": symbol, "FEED_INTERVAL": "5m",
            // The executor: paper, its account resumed from a file across restarts.
            "EXECUTOR_ACCOUNT": account, "EXECUTOR_LEASE_SECONDS": "3",
            "PAPER_STATE_FILE": NSTemporaryDirectory() + "tradebus-paper-\(account).json",
            // The notifier: the log sink only.
            "NOTIFY_LOG": "true",
            // The backtest's defaults, whatever this machine's environment says.
            "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "ANALYST_PROVIDERS": "",
            "INITIAL_CAPITAL": "",
        ].merging(extra) { $1 }
    }

    /// Starts `worker` and waits for its health endpoint.
    func start(_ worker: String) async throws {
        let process = try SpawnedProcess(executable: "\(Self.build)/\(worker)", environment: environment)
        workers[worker] = process
        let up = await eventually(timeout: .seconds(60)) { process.output.contains("health endpoint listening") }
        guard up else { throw CommandFailed(command: worker, status: -1, output: process.output) }
    }

    /// SIGKILLs `worker` and starts it again.
    func kill(_ worker: String) async throws {
        guard let process = workers[worker] else { return }
        process.signal(SIGKILL)
        _ = try await process.waitForExit(timeout: .seconds(10))
        try await start(worker)
    }

    /// The consumers first, so nothing the feed publishes waits for a queue; then the feed.
    func startAll() async throws {
        for worker in ["indicator-worker", "ai-analyst", "executor", "notifier"] { try await start(worker) }
        // The executor consumes once it holds the account's lease and has reconciled.
        let executor = workers["executor"]!
        guard await eventually(timeout: .seconds(60), { executor.output.contains("reconciled with the venue") })
        else { throw CommandFailed(command: "executor", status: -1, output: executor.output) }
        try await start("feed-ingester")
    }

    /// Whether the feed has published the whole file.
    var finished: Bool { workers["feed-ingester"]?.output.contains("replay finished") ?? false }

    /// Stops every worker (SIGTERM, then waits).
    func stopAll() async {
        for process in workers.all.values {
            process.signal(SIGTERM)
            _ = try? await process.waitForExit(timeout: .seconds(20))
        }
    }

    /// What each worker printed, for a failure's message.
    var logs: String {
        workers.all.sorted { $0.key < $1.key }.map { "== \($0.key)\n\($0.value.output.suffix(3_000))" }.joined(
            separator: "\n"
        )
    }

    /// The pipeline's dead-letter queues and the messages in each.
    func deadLetters() async throws -> [String: Int] {
        let bus = RabbitMQBus(configuration: .init(url: try AMQPURL(broker.url), connectionName: "dlq-check"))
        try await bus.connect()
        let queues =
            CockpitBusFeed.pipelineQueues(
                account: environment["EXECUTOR_ACCOUNT"]!,
                candles: [WorkerQueues.indicatorCandles(shards: 1).shard(0)]
            ).filter { $0.hasSuffix(".dlq") } + [
                TradeExecutor.candleQueue(account: environment["EXECUTOR_ACCOUNT"]!).deadLetterQueue
            ]
        var counts: [String: Int] = [:]
        for queue in queues { counts[queue] = try? await bus.messageCount(queue) }
        await bus.shutdown()
        return counts
    }

    func store() throws -> SQLTradeStore {
        try Infrastructure.store(try SettingsReader(environment: ["DATABASE_URL": databaseURL]))
    }
}

/// A Redis server of the test's own (append-only, so a restart keeps its data), to stop and start.
struct PrivateRedis: Sendable {
    let port: Int
    let directory: String
    var url: String { "redis://127.0.0.1:\(port)/0" }

    init(port: Int) {
        self.port = port
        directory = NSTemporaryDirectory() + "tradebus-redis-\(port)"
    }

    func start() async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await Command.run(
            "/usr/bin/redis-server",
            [
                "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--appendonly", "yes",
                "--save", "", "--daemonize", "yes", "--pidfile", "\(directory)/redis.pid",
                "--logfile", "\(directory)/redis.log",
            ]
        )
        _ = await eventually(timeout: .seconds(10)) {
            (try? await Command.run("/usr/bin/redis-cli", ["-p", "\(port)", "ping"]))?.contains("PONG") == true
        }
    }

    /// Shuts it down (its data saved to the append-only file, for the next start); not running is fine.
    func stop() async throws {
        _ = try? await Command.run("/usr/bin/redis-cli", ["-p", "\(port)", "shutdown"])
        _ = await eventually(timeout: .seconds(10)) {
            (try? await Command.run("/usr/bin/redis-cli", ["-p", "\(port)", "ping"]))?.contains("PONG") != true
        }
    }

    static func with(port: Int, _ body: (PrivateRedis) async throws -> Void) async throws {
        let redis = PrivateRedis(port: port)
        try await redis.stop()
        try? FileManager.default.removeItem(atPath: redis.directory)
        try await redis.start()
        do {
            try await body(redis)
        } catch {
            try? await redis.stop()
            throw error
        }
        try await redis.stop()
        try? FileManager.default.removeItem(atPath: redis.directory)
    }
}

extension MarketDataSystemTests {
    @Suite("Five processes in lockstep against the backtest")
    struct DistributedReplayTests {
        let file = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/XRPUSDT-PERP-5m.csv")
            .path

        /// The trades `tradebus backtest` makes on `file` for `symbol`, as CSV, and its decisions.
        func backtest(symbol: String) async throws -> (trades: String, decisions: Int) {
            let out = NSTemporaryDirectory() + "tradebus-backtest-\(UUID().uuidString).csv"
            let json = try await Command.run(
                "\(DistributedPipeline.build)/tradebus",
                ["backtest", "--data", file, "--symbol", symbol, "--trades-out", out, "--json"],
                environment: [
                    "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "ANALYST_PROVIDERS": "",
                    "INITIAL_CAPITAL": "",
                ]
            )
            let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            return (try String(contentsOfFile: out, encoding: .utf8), report?["decisions"] as? Int ?? -1)
        }

        @Test(
            "feed-ingester, indicator-worker, ai-analyst, executor and notifier over RabbitMQ, Redis and Postgres make the backtest's trades: ids, times, prices, PnL"
        )
        func sameTradesAsBacktest() async throws {
            let symbol = "XRPUSDT"
            let expected = try await backtest(symbol: symbol).trades
            #expect(expected.split(separator: "\n").count > 5, "the backtest makes trades to compare: \(expected)")
            try await PrivateRabbitMQ.with(port: 5793) { broker in
                try await PrivateRedis.with(port: 6393) { redis in
                    let pipeline = try await DistributedPipeline(
                        broker: broker,
                        redis: redis,
                        file: file,
                        symbol: symbol
                    )
                    let started = ContinuousClock.now
                    try await pipeline.startAll()
                    let done = await eventually(timeout: .seconds(600), interval: .milliseconds(200)) {
                        pipeline.finished
                    }
                    let elapsed = ContinuousClock.now - started
                    await pipeline.stopAll()
                    #expect(done, "the replay did not finish: \(pipeline.logs)")
                    let store = try pipeline.store()
                    let trades = try await store.trades(since: nil).sorted {
                        ($0.entryTime, $0.id) < ($1.entryTime, $1.id)
                    }
                    let decisions = try await store.decisions(
                        symbol: symbol,
                        candleTimes: Date(timeIntervalSince1970: 0)...Date.distantFuture
                    )
                    await store.close()
                    print(
                        "distributed: 1999 candles in lockstep in \(elapsed), \(decisions.count) decisions, \(trades.count) trades"
                    )
                    #expect(PerformanceReport.tradesCSV(trades) == expected, "\(pipeline.logs)")
                }
            }
        }

        @Test(
            "the same run while each worker is SIGKILLed once and restarted, RabbitMQ restarts and Redis is away for 10 s: the same trades, one order per decision, nothing lost, no dead letter"
        )
        func sameTradesUnderChaos() async throws {
            let symbol = "XRPUSDT"
            let expected = try await backtest(symbol: symbol)
            try await PrivateRabbitMQ.with(port: 5794) { broker in
                try await PrivateRedis.with(port: 6394) { redis in
                    // Paced (5 minutes of market in 25 ms, about 50 s in all), so that a 10 s Redis outage and a
                    // broker restart fall inside the run; lockstep still waits for each candle's work.
                    let pipeline = try await DistributedPipeline(
                        broker: broker,
                        redis: redis,
                        file: file,
                        symbol: symbol,
                        extra: ["REPLAY_SPEED": "12000"]
                    )
                    let store = try pipeline.store()
                    try await pipeline.startAll()
                    let started = ContinuousClock.now
                    // Each event at a random point of the run, told apart by the decisions made so far.
                    var events = [
                        "indicator-worker", "ai-analyst", "executor", "notifier", "feed-ingester", "rabbitmq", "redis",
                    ].shuffled()
                    let marks = (0..<events.count).map { _ in Int.random(in: 10...(expected.decisions - 40)) }.sorted()
                    for mark in marks {
                        let event = events.removeFirst()
                        let made = Mutex(0)
                        _ = await eventually(timeout: .seconds(120), interval: .milliseconds(50)) {
                            let count =
                                (try? await store.decisions(
                                    symbol: symbol,
                                    candleTimes: Date(timeIntervalSince1970: 0)...Date.distantFuture
                                ).count) ?? 0
                            made.withLock { $0 = count }
                            return count >= mark || pipeline.finished
                        }
                        #expect(!pipeline.finished, "the replay ended before \(event) was disturbed")
                        print(
                            "chaos: \(event) at \(ContinuousClock.now - started), after \(made.withLock { $0 }) of \(expected.decisions) decisions"
                        )
                        switch event {
                        case "rabbitmq":
                            try await broker.stop()
                            try await broker.start()
                        case "redis":
                            try await redis.stop()
                            try await Task.sleep(for: .seconds(10))
                            try await redis.start()
                        default:
                            try await pipeline.kill(event)
                        }
                    }
                    let done = await eventually(timeout: .seconds(900), interval: .milliseconds(200)) {
                        pipeline.finished
                    }
                    print("chaos: the replay ended after \(ContinuousClock.now - started)")
                    #expect(done, "the replay did not finish: \(pipeline.logs)")
                    let deadLetters = try await pipeline.deadLetters()
                    await pipeline.stopAll()

                    let trades = try await store.trades(since: nil).sorted {
                        ($0.entryTime, $0.id) < ($1.entryTime, $1.id)
                    }
                    #expect(PerformanceReport.tradesCSV(trades) == expected.trades, "\(pipeline.logs)")
                    // Nothing lost: every decision the backtest made, each once.
                    let decisions = try await store.decisions(
                        symbol: symbol,
                        candleTimes: Date(timeIntervalSince1970: 0)...Date.distantFuture
                    )
                    #expect(decisions.count == expected.decisions)
                    #expect(Set(decisions.map(\.id)).count == decisions.count)
                    // One order per decision.
                    let orders = try await store.orders(statuses: Set(OrderStatus.allCases))
                    let entries = Dictionary(grouping: orders.filter { $0.purpose == .entry }, by: \.decisionID)
                    #expect(entries.values.allSatisfy { $0.count == 1 }, "\(entries.filter { $0.value.count > 1 })")
                    #expect(entries.count == trades.count + (try await store.openPositions().count))
                    #expect(deadLetters.values.allSatisfy { $0 == 0 }, "dead letters: \(deadLetters)")
                    await store.close()
                }
            }
        }
    }
}
