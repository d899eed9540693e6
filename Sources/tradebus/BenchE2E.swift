import ArgumentParser
import Foundation
import RabbitMQBus
import TradingCore
import TradingServices
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// `tradebus bench e2e`: the five workers as processes over the real RabbitMQ, Redis and Postgres
/// (AMQP_URL, REDIS_URL, DATABASE_URL), fed a synthetic market of many symbols at a set rate, each
/// candle stamped as closing when it is published. The latency from a candle's close to each stage
/// (signal, decision, order, fill) comes from the workers' own `tradebus_pipeline_seconds` histograms;
/// the backlog of every work queue is sampled each second; the RSS of each worker is read from /proc
/// when idle and after the run.
struct E2EBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "The five worker processes end to end: latency by stage, the rate they sustain, their memory."
    )
    @Option(help: "Symbols in the synthetic market.") var symbols = 100
    @Option(help: "Candles per second to try, comma-separated; each runs for --seconds.") var rates = "1000"
    @Option(help: "How long each rate runs.") var seconds = 60
    @Flag(help: "Print the report as JSON.") var json = false

    /// The workers' executables: beside this one.
    var directory: String {
        let link =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: link).deletingLastPathComponent().path
    }

    func run() async throws {
        let config = try SettingsReader()
        for key in ["AMQP_URL", "REDIS_URL", "DATABASE_URL"] { _ = try config.required(key) }
        let list = rates.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 > 0 }), symbols > 0, seconds > 0 else {
            throw ValidationError(
                "--rates takes positive candles per second (1000,2000), --symbols and --seconds positive numbers"
            )
        }
        var runs: [[String: Any]] = []
        for rate in list {
            let result = try await measure(rate: rate, url: try AMQPURL(try config.required("AMQP_URL")))
            runs.append(result)
            if !json { print(Self.text(result)) }
        }
        if json {
            let object: [String: Any] = ["symbols": symbols, "seconds": seconds, "runs": runs]
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                    as: UTF8.self
                )
            )
        }
    }

    /// One rate: start the workers, measure them idle, feed them, watch the queues, read their figures.
    func measure(rate: Int, url: AMQPURL) async throws -> [String: Any] {
        let run = "e2e\(UUID().uuidString.prefix(6).lowercased())"
        let names = (0..<symbols).map {
            "E\(run.dropFirst(3).uppercased())\($0)USDT".filter { $0.isLetter || $0.isNumber }
        }
        let candlesPerSymbol = max(1, rate * seconds / symbols)
        // One step (a candle for each symbol) every symbols/rate seconds: a 1m interval at this speed.
        let speed = 60.0 * Double(rate) / Double(symbols)
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "HTTP_PORT": "0", "LOG_LEVEL": "info", "EXECUTOR_ACCOUNT": run,
            "PAPER_STATE_FILE": NSTemporaryDirectory() + "\(run)-paper.json",
            "FEED_SOURCE": "synthetic", "FEED_SYMBOLS": names.joined(separator: ","), "FEED_INTERVAL": "1m",
            "SYNTHETIC_CLOCK": "wall", "SYNTHETIC_CANDLES": "\(candlesPerSymbol)", "REPLAY_SPEED": "\(speed)",
            "REPLAY_LOCKSTEP": "false", "NOTIFY_LOG": "false",
        ]) { $1 }
        var processes: [String: (pid: pid_t, log: String)] = [:]
        defer {
            for (_, process) in processes {
                kill(process.pid, SIGKILL)
                _ = Command.wait(process.pid)
            }
        }
        func start(_ worker: String) throws {
            let log = NSTemporaryDirectory() + "\(run)-\(worker).log"
            processes[worker] = (
                try Command.spawn("\(directory)/\(worker)", [], environment: environment, outputPath: log), log
            )
        }
        func output(_ worker: String) -> String {
            (try? String(contentsOfFile: processes[worker]!.log, encoding: .utf8)) ?? ""
        }
        func wait(_ what: String, seconds: Double, _ condition: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while !condition() {
                guard Date() < deadline else {
                    throw ValidationError("bench e2e: \(what) did not happen within \(Int(seconds)) s")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        // The shared work queues start empty: what an earlier run left (a rate it did not sustain) would
        // be measured as this one's backlog.
        let queues = [
            WorkerQueues.indicatorCandles(shards: 1).shard(0), SignalAnalyst.signalQueue.name,
            TradeExecutor.decisionQueue(account: run).name, TradeExecutor.candleQueue(account: run).name,
        ]
        let bus = RabbitMQBus(configuration: .init(url: url, connectionName: "bench-e2e"))
        try await bus.connect()
        try await bus.declare(WorkerQueues.indicatorCandles(shards: 1))
        try await bus.declare(SignalAnalyst.signalQueue)
        for queue in queues.prefix(2) { _ = try await bus.purge(queue) }
        let consumers = ["indicator-worker", "ai-analyst", "executor", "notifier"]
        for worker in consumers { try start(worker) }
        for worker in consumers {
            try await wait("\(worker) serving", seconds: 60) { output(worker).contains("health endpoint listening") }
        }
        try await wait("the executor's reconciliation", seconds: 60) {
            output("executor").contains("reconciled with the venue")
        }
        try await Task.sleep(for: .seconds(3))
        let idle = Dictionary(uniqueKeysWithValues: consumers.map { ($0, Self.rss(processes[$0]!.pid)) })

        // The queues a backlog builds in are sampled each second while the feed publishes.
        try start("feed-ingester")
        try await wait("feed-ingester serving", seconds: 60) {
            output("feed-ingester").contains("health endpoint listening")
        }
        let started = Date()
        var backlog: [Int] = []
        while !output("feed-ingester").contains("synthetic feed finished") {
            var total = 0
            for queue in queues { total += (try? await bus.messageCount(queue)) ?? 0 }
            backlog.append(total)
            guard Date().timeIntervalSince(started) < Double(seconds) * 5 + 60 else {
                throw ValidationError("bench e2e: the feed did not finish; see \(processes["feed-ingester"]!.log)")
            }
            try await Task.sleep(for: .seconds(1))
        }
        let publishing = Date().timeIntervalSince(started)
        var atEnd = 0
        for queue in queues { atEnd += (try? await bus.messageCount(queue)) ?? 0 }
        // Then the backlog drains (or not, within a minute).
        let drainStart = Date()
        var drained = atEnd == 0
        while !drained, Date().timeIntervalSince(drainStart) < 60 {
            try await Task.sleep(for: .milliseconds(250))
            var total = 0
            for queue in queues { total += (try? await bus.messageCount(queue)) ?? 0 }
            drained = total == 0
        }
        let drainSeconds = Date().timeIntervalSince(drainStart)
        try await Task.sleep(for: .seconds(2))
        // A backlog left behind is not the next rate's.
        for queue in queues.prefix(2) { _ = try? await bus.purge(queue) }
        await bus.shutdown()

        var stages: [String: [String: Double]] = [:]
        for (worker, stage) in [
            ("indicator-worker", "signal"), ("ai-analyst", "decision"), ("executor", "order"), ("executor", "fill"),
        ] {
            guard let port = Self.healthPort(output(worker)),
                let text = try? await Command.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
            else { continue }
            stages[stage] = Self.quantiles(text, stage: stage)
        }
        let after = Dictionary(
            uniqueKeysWithValues: (consumers + ["feed-ingester"]).map { ($0, Self.rss(processes[$0]!.pid)) }
        )
        for (_, process) in processes { kill(process.pid, SIGTERM) }
        for (_, process) in processes { _ = Command.wait(process.pid) }
        processes = [:]
        let published = candlesPerSymbol * symbols
        // Sustained: when the feed stopped, the queues held under one second of input.
        return [
            "rate": rate, "published": published, "publishing_seconds": publishing,
            "achieved_rate": Double(published) / max(publishing, 1e-9),
            "backlog_max": backlog.max() ?? 0, "backlog_at_end": atEnd, "drain_seconds": drainSeconds,
            "drained": drained, "sustained": atEnd < rate,
            "stages": stages, "rss_idle_mb": idle, "rss_after_mb": after,
        ]
    }

    /// A process's resident memory in MB, from /proc.
    static func rss(_ pid: pid_t) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = Double(line.split(separator: " ").dropFirst().first { !$0.isEmpty } ?? "")
        else { return 0 }
        return kb / 1024
    }

    static func healthPort(_ log: String) -> Int? {
        guard let range = log.range(of: "health endpoint listening port=") else { return nil }
        return Int(log[range.upperBound...].prefix { $0.isNumber })
    }

    /// p50, p99 and p99.9 (seconds) and the count of one stage of `tradebus_pipeline_seconds`, from its
    /// cumulative buckets, interpolated linearly inside the bucket that holds each.
    static func quantiles(_ metrics: String, stage: String) -> [String: Double] {
        var buckets: [(le: Double, count: Double)] = []
        for line in metrics.split(separator: "\n") where line.hasPrefix("tradebus_pipeline_seconds_bucket{") {
            guard line.contains("stage=\"\(stage)\""), let leRange = line.range(of: "le=\""),
                let value = Double(line.split(separator: " ").last ?? "")
            else { continue }
            let le = line[leRange.upperBound...].prefix { $0 != "\"" }
            buckets.append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, value))
        }
        buckets.sort { $0.le < $1.le }
        guard let total = buckets.last?.count, total > 0 else { return ["count": 0] }
        func quantile(_ q: Double) -> Double {
            let rank = q * total
            var previous = (le: 0.0, count: 0.0)
            for bucket in buckets {
                if bucket.count >= rank {
                    guard bucket.le.isFinite else { return previous.le }
                    let share =
                        bucket.count > previous.count ? (rank - previous.count) / (bucket.count - previous.count) : 1
                    return previous.le + (bucket.le - previous.le) * share
                }
                previous = bucket
            }
            return previous.le
        }
        return ["count": total, "p50": quantile(0.5), "p99": quantile(0.99), "p99.9": quantile(0.999)]
    }

    static func text(_ run: [String: Any]) -> String {
        func ms(_ value: Double?) -> String { value.map { String(format: "%.1f ms", $0 * 1000) } ?? "-" }
        var lines = [
            String(
                format:
                    "e2e at %d candles/s: %d candles in %.1f s (%.0f/s); backlog max %d, at the end %d (%@); %@ in %.1f s",
                run["rate"] as? Int ?? 0,
                run["published"] as? Int ?? 0,
                run["publishing_seconds"] as? Double ?? 0,
                run["achieved_rate"] as? Double ?? 0,
                run["backlog_max"] as? Int ?? 0,
                run["backlog_at_end"] as? Int ?? 0,
                (run["sustained"] as? Bool ?? false) ? "sustained" : "NOT sustained",
                (run["drained"] as? Bool ?? false) ? "drained" : "NOT drained",
                run["drain_seconds"] as? Double ?? 0
            )
        ]
        let stages = run["stages"] as? [String: [String: Double]] ?? [:]
        for stage in PipelineLatency.stages {
            let figures = stages[stage] ?? [:]
            lines.append(
                "  candle close → \(stage): p50 \(ms(figures["p50"])), p99 \(ms(figures["p99"])), p99.9 \(ms(figures["p99.9"])) (\(Int(figures["count"] ?? 0)) samples)"
            )
        }
        let idle = run["rss_idle_mb"] as? [String: Double] ?? [:]
        let after = run["rss_after_mb"] as? [String: Double] ?? [:]
        for worker in after.keys.sorted() {
            lines.append(
                String(format: "  %@ RSS: idle %.1f MB, after %.1f MB", worker, idle[worker] ?? 0, after[worker] ?? 0)
            )
        }
        return lines.joined(separator: "\n")
    }
}
