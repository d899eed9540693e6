import Foundation
import Logging
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

    /// `worker`'s `/metrics`, and what `promtool check metrics` says of it (empty: no problem).
    func metrics(_ worker: String) async throws -> (text: String, problems: String) {
        let port = try workers[worker]!.healthPort()
        let text = try await Command.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
        let file = NSTemporaryDirectory() + "metrics-\(worker)-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let problems: String
        do {
            problems = try await Command.run("/bin/bash", ["-c", "promtool check metrics < \"$0\" 2>&1", file])
        } catch let failed as CommandFailed {
            problems = failed.output.isEmpty ? "promtool exited \(failed.status)" : failed.output
        }
        return (text, problems.trimmingCharacters(in: .whitespacesAndNewlines))
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
                    #expect(done, "the replay did not finish: \(pipeline.logs)")
                    // Every worker's metrics pass promtool: every family has help text, none is empty.
                    for worker in ["feed-ingester", "indicator-worker", "ai-analyst", "executor", "notifier"] {
                        let (text, problems) = try await pipeline.metrics(worker)
                        #expect(problems.isEmpty, "\(worker): promtool check metrics: \(problems)")
                        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.count
                        let helped = text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.count
                        #expect(
                            families > 0 && helped == families,
                            "\(worker): \(families) families, \(helped) with help"
                        )
                        #expect(
                            text.contains("tradebus_bus_published_total"),
                            "\(worker): the bus's metrics are exported"
                        )
                        if worker == "feed-ingester" { #expect(text.contains("tradebus_feed_candles_total")) }
                        if worker == "indicator-worker" { #expect(text.contains("tradebus_cache_")) }
                    }
                    await pipeline.stopAll()
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
                    // tradebus report reads the record from Postgres as it does from SQLite.
                    let output = try await Command.run(
                        "\(DistributedPipeline.build)/tradebus",
                        ["report", "--json"],
                        environment: ["DATABASE_URL": pipeline.databaseURL, "INITIAL_CAPITAL": ""]
                    )
                    let report = try #require(
                        try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
                    )
                    #expect(report["trades"] as? Int == trades.count)
                    let total = trades.map(\.pnl.doubleValue).reduce(0, +)
                    #expect(abs((report["total_pnl"] as? Double ?? .nan) - total) < 1e-6, "\(report)")
                    #expect((report["pnl_by_day"] as? [Any])?.isEmpty == false)
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

extension MarketDataSystemTests {
    @Suite("tradebus bench e2e")
    struct EndToEndBenchTests {
        @Test(
            "bench e2e runs the five workers, feeds them at a rate, and reports latency by stage, the backlog and each worker's memory"
        )
        func reports() async throws {
            let output = try await Command.run(
                "\(DistributedPipeline.build)/tradebus",
                ["bench", "e2e", "--symbols", "10", "--rates", "100", "--seconds", "4", "--json"],
                environment: [
                    "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL,
                    "DATABASE_URL": TestServices.databaseURL,
                ]
            )
            // Its log lines (the bus's, on stderr) share the output with the one line of JSON.
            let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") }, "\(output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let run = try #require((report["runs"] as? [[String: Any]])?.first)
            #expect(run["published"] as? Int == 400)
            #expect(run["drained"] as? Bool == true, "\(run)")
            let stages = try #require(run["stages"] as? [String: [String: Double]])
            // Every candle is measured at the indicator; its latency is a real one, under a second here.
            let signal = try #require(stages["signal"])
            #expect((signal["count"] ?? 0) > 0 && (signal["p50"] ?? 99) < 1 && (signal["p50"] ?? 0) > 0, "\(stages)")
            let idle = try #require(run["rss_idle_mb"] as? [String: Double])
            let after = try #require(run["rss_after_mb"] as? [String: Double])
            #expect(["indicator-worker", "ai-analyst", "executor", "notifier"].allSatisfy { (idle[$0] ?? 0) > 5 })
            #expect((after["feed-ingester"] ?? 0) > 5)
        }
    }
}

extension MarketDataSystemTests {
    /// Bad input published from outside our code (Python's pika) to every queue the workers consume.
    @Suite("Bad input on the real bus")
    struct BadInputTests {
        let symbol = "BADUSDT"
        let close = Date(timeIntervalSince1970: 1_767_225_900)

        /// A message for the outside client: its routing key, body and headers.
        struct Outgoing: Encodable {
            var routing_key: String
            var body_b64: String
            var headers: [String: String]
            var label: String
        }

        func candle(_ candle: Candle) throws -> [UInt8] {
            try EnvelopeCodec.encode(
                Envelope(
                    type: MessageType.candleClosed,
                    time: close,
                    source: "outsider",
                    payload: CandlePayload(venue: "replay", symbol: symbol, interval: "5m", candle: candle)
                )
            )
        }

        func decision(_ proposal: TradeProposal) throws -> [UInt8] {
            try EnvelopeCodec.encode(
                Envelope(
                    type: MessageType.decision,
                    time: Date(),
                    source: "outsider",
                    payload: DecisionPayload(
                        symbol: symbol,
                        proposal: proposal,
                        provider: "rules",
                        model: "rules",
                        promptVersion: "v",
                        attempts: 0,
                        candleTime: 0,
                        requestID: "outsider"
                    )
                )
            )
        }

        /// The bad bodies every queue gets, made from a good one: not JSON, the wrong shape, a forged and a
        /// missing envelope version, and the good message padded to 5 MB.
        func spoiled(_ good: [UInt8]) throws -> [(String, [UInt8])] {
            let text = String(decoding: good, as: UTF8.self)
            func envelope(_ change: (inout [String: Any]) -> Void) throws -> [UInt8] {
                var object = try #require(try JSONSerialization.jsonObject(with: Data(good)) as? [String: Any])
                change(&object)
                return Array(try JSONSerialization.data(withJSONObject: object))
            }
            return [
                ("not JSON", Array("\u{1}not json {".utf8) + [0xFF, 0xFE]),
                ("wrong shape", Array(#"{"hello":"world","payload":[1,2,3]}"#.utf8)),
                ("forged version", try envelope { $0["version"] = 99 }),
                ("missing version", try envelope { $0["version"] = nil }),
                (
                    "5 MB",
                    Array(
                        ("{\"padding\":\"" + String(repeating: "x", count: 5_000_000) + "\"," + text.dropFirst()).utf8
                    )
                ),
            ]
        }

        @Test(
            "non-JSON, the wrong shape, NaN and negative candles, 5 MB, leverage 1000 with the stop on the wrong side, a forged or missing version: each dead-lettered with its reason, no crash, no order, the next good message handled"
        )
        func deadLettered() async throws {
            try await PrivateRabbitMQ.with(port: 5795) { broker in
                try await PrivateRedis.with(port: 6395) { redis in
                    let pipeline = try await DistributedPipeline(
                        broker: broker,
                        redis: redis,
                        file: "/dev/null",
                        symbol: symbol,
                        extra: ["REPLAY_LOCKSTEP": "false"]
                    )
                    for worker in ["indicator-worker", "ai-analyst", "executor", "notifier"] {
                        try await pipeline.start(worker)
                    }
                    let executor = pipeline.workers["executor"]!
                    #expect(
                        await eventually(timeout: .seconds(60)) {
                            executor.output.contains("reconciled with the venue")
                        }
                    )
                    let account = pipeline.environment["EXECUTOR_ACCOUNT"]!

                    let goodCandle = Candle(
                        openTime: 1_767_225_600_000,
                        open: 100,
                        high: 102,
                        low: 99,
                        close: 101.5,
                        volume: 10
                    )
                    let candleText = String(decoding: try candle(goodCandle), as: UTF8.self)
                    let long = TradeProposal(
                        action: .long,
                        confidence: 0.8,
                        leverage: 3,
                        entry: 100,
                        stopLoss: 98,
                        takeProfit: 104,
                        reasoning: "outsider"
                    )
                    var wild = long
                    wild.leverage = 1_000
                    wild.stopLoss = 103
                    let signal = try EnvelopeCodec.encode(
                        Envelope(
                            type: MessageType.signal,
                            time: close,
                            source: "outsider",
                            payload: SignalPayload(
                                symbol: symbol,
                                interval: "5m",
                                signal: Signal(
                                    kind: .macdCross,
                                    direction: .bullish,
                                    snapshot: IndicatorSnapshot(openTime: goodCandle.openTime, close: 101.5, volume: 10)
                                )
                            )
                        )
                    )
                    let alert = try EnvelopeCodec.encode(
                        Envelope(
                            type: MessageType.alert,
                            time: Date(),
                            source: "outsider",
                            payload: AlertPayload(severity: .warning, kind: "outsider", title: "t", message: "m")
                        )
                    )
                    let candleKey = RoutingKey.candle(venue: "replay", symbol: symbol, interval: "5m")
                    // What each routing key carries, and the consuming queues that must dead-letter each.
                    var bad: [(key: String, label: String, body: [UInt8])] = []
                    for (label, body) in try spoiled(try candle(goodCandle)) {
                        bad.append((candleKey, "candle " + label, body))
                    }
                    bad.append(
                        (candleKey, "candle NaN", Array(candleText.replacingOccurrences(of: "101.5", with: "NaN").utf8))
                    )
                    bad.append(
                        (
                            candleKey, "candle negative",
                            try candle(
                                Candle(
                                    openTime: goodCandle.openTime,
                                    open: -5,
                                    high: -1,
                                    low: -9,
                                    close: -2,
                                    volume: 10
                                )
                            )
                        )
                    )
                    for (label, body) in try spoiled(signal) {
                        bad.append((RoutingKey.signal(symbol: symbol, interval: "5m"), "signal " + label, body))
                    }
                    for (label, body) in try spoiled(try decision(long)) {
                        bad.append((RoutingKey.decision(symbol: symbol), "decision " + label, body))
                    }
                    bad.append(
                        (
                            RoutingKey.decision(symbol: symbol), "decision leverage 1000, stop wrong side",
                            try decision(wild)
                        )
                    )
                    for (label, body) in try spoiled(alert) {
                        bad.append((RoutingKey.control(account: account), "control " + label, body))
                    }
                    for (label, body) in try spoiled(alert) {
                        bad.append(("alert.warning.outsider", "alert " + label, body))
                    }

                    let python = TestServices.repositoryRoot.appendingPathComponent(".tools/venv/bin/python").path
                    let script = TestServices.repositoryRoot.appendingPathComponent("Tests/BadInput/amqp_outsider.py")
                        .path
                    func send(_ messages: [(key: String, label: String, body: [UInt8])]) async throws {
                        let spec = NSTemporaryDirectory() + "outsider-\(UUID().uuidString).json"
                        let outgoing = messages.map {
                            Outgoing(
                                routing_key: $0.key,
                                body_b64: Data($0.body).base64EncodedString(),
                                headers: ["x-shard-key": symbol],
                                label: $0.label
                            )
                        }
                        try JSONEncoder().encode(outgoing).write(to: URL(fileURLWithPath: spec))
                        _ = try await Command.run(python, [script, "publish", broker.url, spec])
                    }
                    try await send(bad)

                    let queues = [
                        WorkerQueues.indicatorCandles(shards: 1).shard(0),
                        TradeExecutor.candleQueue(account: account).name,
                        SignalAnalyst.signalQueue.name,
                        TradeExecutor.decisionQueue(account: account).name,
                        TradeExecutor.controlQueue(account: account).name,
                        SinkDispatcher.queue(for: "log").name,
                    ]
                    let expected = [7, 7, 5, 6, 5, 5]
                    // Each message dead-lettered where it was consumed, with a reason.
                    let letters = Mutex<[String: [String]]>([:])
                    let allThere = try await eventually(timeout: .seconds(60), interval: .milliseconds(500)) {
                        let output = try await Command.run(
                            python,
                            [script, "drain", broker.url] + queues.map { $0 + ".dlq" }
                        )
                        let found =
                            try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [[String: Any]]]
                            ?? [:]
                        let reasons = found.mapValues { $0.map { $0["reason"] as? String ?? "" } }
                        letters.withLock { all in for (queue, items) in reasons { all[queue, default: []] += items } }
                        return letters.withLock { all in
                            zip(queues, expected).allSatisfy { all[$0 + ".dlq"]?.count == $1 }
                        }
                    }
                    let seen = letters.withLock { $0 }
                    #expect(
                        allThere,
                        "dead letters by queue: \(queues.map { "\($0): \(seen[$0 + ".dlq"] ?? [])" }) \(pipeline.logs)"
                    )
                    for queue in queues {
                        let reasons = seen[queue + ".dlq"] ?? []
                        #expect(reasons.allSatisfy { !$0.isEmpty }, "\(queue): a dead letter without a reason")
                        print("bad input: \(queue).dlq: \(reasons.map { String($0.prefix(90)) })")
                    }
                    let reasons = seen.values.flatMap { $0 }
                    #expect(reasons.contains { $0.contains("MAX_MESSAGE_BYTES") })
                    #expect(reasons.contains { $0.contains("leverage 1000") })
                    #expect(reasons.contains { $0.contains("envelope version 99") })

                    // The next good message is handled: a HOLD decision is recorded, a good candle reaches the
                    // indicators, a good alert reaches the notifier.
                    let hold = try decision(.hold("outsider's hold"))
                    let holdID = try EnvelopeCodec.decode(
                        DecisionPayload.self,
                        from: hold,
                        expectedType: MessageType.decision
                    ).id
                    try await send([
                        (candleKey, "good candle", try candle(goodCandle)),
                        (RoutingKey.decision(symbol: symbol), "good decision", hold),
                        ("alert.warning.outsider", "good alert", alert),
                    ])
                    let store = try pipeline.store()
                    #expect(await eventually(timeout: .seconds(30)) { (try? await store.decision(id: holdID)) != nil })
                    let cache = try Infrastructure.cache(
                        try SettingsReader(environment: ["REDIS_URL": redis.url]),
                        logger: Logger(label: "test")
                    )
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: "5m")) != nil
                        }
                    )
                    let notifier = pipeline.workers["notifier"]!
                    #expect(await eventually(timeout: .seconds(30)) { notifier.output.contains("outsider") })
                    // No order; every worker still up, none restarted.
                    #expect(try await store.orders(statuses: Set(OrderStatus.allCases)).isEmpty)
                    for (worker, process) in pipeline.workers.all {
                        #expect(
                            Command.wait(process.pid, blocking: false) == nil,
                            "\(worker) exited: \(process.output.suffix(2_000))"
                        )
                    }
                    await store.close()
                    await cache.close()
                    await pipeline.stopAll()
                }
            }
        }
    }
}
