import Foundation
import RedisCache
import TradingCore
import TradingServices
import WorkerRuntime

/// `tradebus bench cache`: Redis GET and SET on one connection, unpipelined and pipelined by 16,
/// next to `redis-benchmark -c 1` and `-c 1 -P 16` run in the same command; and an LRU hit.
public enum CacheBenchmark {
    public static func run(url: RedisURL, requests: Int) async throws -> BenchReport {
        var report = BenchReport(benchmark: "cache")
        let client = RedisClient(url: url, timeout: .seconds(2))
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: 3)  // redis-benchmark's default 3-byte payload
        try await client.set("key:__rand_int__", value)

        let setCommand = [Array("SET".utf8), Array("key:__rand_int__".utf8), value]
        let getCommand = [Array("GET".utf8), Array("key:__rand_int__".utf8)]
        let pipelined = 16
        let pipelinedRequests = requests / pipelined * pipelined
        /// Requests per second of each case, run by the calling task.
        @Sendable func measure() async throws -> [(String, Double)] {
            let set = try await seconds { for _ in 0..<requests { try await client.set("key:__rand_int__", value) } }
            let get = try await seconds { for _ in 0..<requests { _ = try await client.get("key:__rand_int__") } }
            let setPipelined = try await seconds {
                for _ in 0..<(requests / pipelined) {
                    _ = try await client.pipeline(Array(repeating: setCommand, count: pipelined))
                }
            }
            let getPipelined = try await seconds {
                for _ in 0..<(requests / pipelined) {
                    _ = try await client.pipeline(Array(repeating: getCommand, count: pipelined))
                }
            }
            return [
                ("SET", Double(requests) / set), ("GET", Double(requests) / get),
                ("SET -P 16", Double(pipelinedRequests) / setPipelined),
                ("GET -P 16", Double(pipelinedRequests) / getPipelined),
            ]
        }
        // A task on the cooperative pool: each call hops to the connection thread and back.
        let hopping = try await measure()
        // A task that prefers the connection's executor: its calls run inline on the connection thread.
        let onExecutor = try await withTaskExecutorPreference(client.executor) { try await measure() }
        // The C path alone: a loop on the connection thread.
        let threadGetSeconds = try await client.withConnectionOnThread { command in
            let start = ContinuousClock.now
            for _ in 0..<requests { _ = try command(getCommand) }
            let elapsed = ContinuousClock.now - start
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }

        let peer = try redisBenchmark(url: url, requests: requests, pipeline: 1).merging(
            try redisBenchmark(url: url, requests: requests * 4, pipeline: pipelined).mapKeys { "\($0) -P 16" }
        ) { $1 }
        for ((name, hopRate), (_, executorRate)) in zip(hopping, onExecutor) {
            let reference = peer[name] ?? .nan
            report.add(BenchFigure("\(name): redis-benchmark -c 1", reference, "req/s"))
            report.add(
                BenchFigure(
                    "\(name): task on the connection's executor",
                    executorRate,
                    "req/s",
                    note: "ratio \(String(format: "%.2f", executorRate / reference))"
                )
            )
            report.add(
                BenchFigure(
                    "\(name): task on the cooperative pool (two hops a call)",
                    hopRate,
                    "req/s",
                    note: "ratio \(String(format: "%.2f", hopRate / reference))"
                )
            )
            report.goal(
                "\(name) 0.8x redis-benchmark or better (\(String(format: "%.2f", executorRate / reference))x on the connection's executor, \(String(format: "%.2f", hopRate / reference))x from the pool)",
                met: executorRate / reference >= 0.8
            )
        }
        report.add(
            BenchFigure(
                "GET: C path alone on the connection thread",
                Double(requests) / threadGetSeconds,
                "req/s",
                note: "ratio \(String(format: "%.2f", Double(requests) / threadGetSeconds / (peer["GET"] ?? .nan)))"
            )
        )

        // An LRU hit: the first tier's cost.
        let lru = LRUCache<CachedValue>(capacity: 100_000)
        for index in 0..<10_000 { lru.set(CachedValue("v", sourceTime: Date()), forKey: "price:SYM\(index)") }
        let keys = (0..<1024).map { "price:SYM\($0 * 7 % 10_000)" }
        let lookups = 5_000_000
        var hits = 0
        let lruSeconds = await seconds {
            for index in 0..<lookups where lru.value(forKey: keys[index & 1023]) != nil { hits += 1 }
        }
        let nanosPerHit = lruSeconds * 1e9 / Double(lookups)
        report.add(BenchFigure("LRU hit (10k entries, 1024 hot keys)", nanosPerHit, "ns", note: "\(hits) hits"))
        report.goal("LRU hit 100 ns or less (\(String(format: "%.1f", nanosPerHit)) ns)", met: nanosPerHit <= 100)
        return report
    }

    /// Runs `redis-benchmark -c 1 -t set,get` and returns requests per second by test name.
    static func redisBenchmark(url: RedisURL, requests: Int, pipeline: Int) throws -> [String: Double] {
        var arguments = [
            "-h", url.host, "-p", String(url.port), "-c", "1", "-n", String(requests), "-t", "set,get", "-P",
            String(pipeline), "--csv",
        ]
        if let password = url.password { arguments += ["-a", password] }
        let output = try Command.run("redis-benchmark", arguments)
        var rates: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count >= 2, let rate = Double(fields[1]) { rates[fields[0]] = rate }
        }
        return rates
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ transform: (Key) -> K) -> [K: Value] {
        [K: Value](uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
