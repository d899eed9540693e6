import Foundation
import SQLTradeStore
import Synchronization
import TestSupport
import Testing
import TradingCore
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

    init(broker: PrivateRabbitMQ, redis: PrivateRedis, file: String, symbol: String) async throws {
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
        ]
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
        _ = await eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: "\(directory)/redis.pid") }
    }

    func stop() async throws {
        guard let text = try? String(contentsOfFile: "\(directory)/redis.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        Glibc.kill(pid, SIGTERM)
        _ = await eventually(timeout: .seconds(10)) { Glibc.kill(pid, 0) != 0 }
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

        /// The trades `tradebus backtest` makes on `file` for `symbol`, as CSV.
        func backtest(symbol: String) async throws -> String {
            let out = NSTemporaryDirectory() + "tradebus-backtest-\(UUID().uuidString).csv"
            _ = try await Command.run(
                "\(DistributedPipeline.build)/tradebus",
                ["backtest", "--data", file, "--symbol", symbol, "--trades-out", out],
                environment: [
                    "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "ANALYST_PROVIDERS": "",
                    "INITIAL_CAPITAL": "",
                ]
            )
            return try String(contentsOfFile: out, encoding: .utf8)
        }

        @Test(
            "feed-ingester, indicator-worker, ai-analyst, executor and notifier over RabbitMQ, Redis and Postgres make the backtest's trades: ids, times, prices, PnL"
        )
        func sameTradesAsBacktest() async throws {
            let symbol = "XRPUSDT"
            let expected = try await backtest(symbol: symbol)
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
    }
}
