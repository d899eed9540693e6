import Foundation
import RedisCache
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

/// A Redis server of the test's own, so the test can kill and pause it.
struct PrivateRedis {
    let port: Int
    let directory: String

    init(port: Int) {
        self.port = port
        self.directory = NSTemporaryDirectory() + "tradebus-redis-\(port)"
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }
    var pidFile: String { directory + "/redis.pid" }

    func start() async throws {
        try await Command.offload { try startBlocking() }
    }

    func startBlocking() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Command.run("redis-server", [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
            "--daemonize", "yes", "--pidfile", pidFile, "--logfile", directory + "/redis.log",
        ])
        for _ in 0..<100 {
            if (try? Command.run("redis-cli", ["-p", String(port), "ping"]))?.contains("PONG") == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CommandFailed(command: "redis-server on \(port)", status: 1, output: "did not answer PING")
    }

    func signal(_ name: String) throws {
        let pid = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try Command.run("kill", ["-\(name)", pid])
    }

    func kill() async throws {
        try await Command.offload { try killBlocking() }
    }

    func killBlocking() throws {
        try signal("KILL")
        for _ in 0..<100 {
            if (try? Command.run("redis-cli", ["-p", String(port), "ping"])) == nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    func cli(_ arguments: [String]) throws -> String { try Command.run("redis-cli", ["-p", String(port)] + arguments) }
}

@Suite("RedisCache when Redis fails", .serialized)
struct RedisOutageTests {
    let now = Date()

    @Test("with Redis killed, calls answer from the LRU within the timeout, then use Redis again")
    func killedRedis() async throws {
        let redis = PrivateRedis(port: 6391)
        try await redis.start()
        defer { try? redis.killBlocking() }
        let cache = RedisCache(configuration: .init(url: try RedisURL(redis.url), commandTimeout: .milliseconds(50), localFreshness: .zero))
        await cache.set("price:BTC", CachedValue("100", sourceTime: now), ttl: nil)
        #expect(try redis.cli(["get", "price:BTC"]).contains("100"), "written through to Redis")

        try await redis.kill()
        let clock = ContinuousClock()
        var answer: CachedValue?
        let elapsed = await clock.measure { answer = await cache.get("price:BTC") }
        #expect(answer?.string == "100", "the LRU answers")
        #expect(elapsed < .milliseconds(500), "answered within the timeout, not a hang: \(elapsed)")
        #expect(cache.health == .degraded)
        // Writes and dedupe keep working locally.
        await cache.set("price:ETH", CachedValue("5", sourceTime: now), ttl: nil)
        #expect(await cache.get("price:ETH")?.string == "5")
        #expect(await cache.setIfAbsent("alert:1", CachedValue("x", sourceTime: now), ttl: .seconds(60)))
        #expect(await !cache.setIfAbsent("alert:1", CachedValue("x", sourceTime: now), ttl: .seconds(60)))

        try await redis.start()
        _ = try redis.cli(["set", "price:SOL", "\(Int64(now.timeIntervalSince1970 * 1_000_000))|42"])
        #expect(await eventually { cache.health == .healthy })
        #expect(await cache.get("price:SOL")?.string == "42", "a key only Redis has is read from Redis again")
        // What was written while Redis was away is written back, so other processes see it.
        #expect(try redis.cli(["get", "price:ETH"]).contains("|5"))
        #expect(try redis.cli(["get", "alert:1"]).contains("|x"))
        #expect(try redis.cli(["pttl", "alert:1"]).trimmingCharacters(in: .whitespacesAndNewlines) != "-1", "with its TTL")
    }

    @Test("with Redis paused (slower than the timeout), calls answer from the LRU")
    func pausedRedis() async throws {
        let redis = PrivateRedis(port: 6392)
        try await redis.start()
        defer {
            try? redis.signal("CONT")
            try? redis.killBlocking()
        }
        let cache = RedisCache(configuration: .init(url: try RedisURL(redis.url), commandTimeout: .milliseconds(50), localFreshness: .zero))
        await cache.set("k", CachedValue("v", sourceTime: now), ttl: nil)
        try redis.signal("STOP")
        let clock = ContinuousClock()
        var answer: CachedValue?
        let elapsed = await clock.measure { answer = await cache.get("k") }
        #expect(answer?.string == "v")
        #expect(elapsed < .milliseconds(500), "bounded by the command timeout: \(elapsed)")
        #expect(cache.health == .degraded)
        try redis.signal("CONT")
        #expect(await eventually { cache.health == .healthy })
    }
}

@Suite("RedisClient on its connection's executor")
struct RedisClientExecutorTests {
    @Test("a task preferring the connection's executor gets the same answers, inline")
    func executorPreference() async throws {
        let client = RedisClient(url: try RedisURL(TestServices.redisURL), timeout: .seconds(1))
        let key = TestServices.uniqueName("exec")
        let values = try await withTaskExecutorPreference(client.executor) {
            var values: [String] = []
            for n in 0..<50 {
                try await client.set(key, Array("v\(n)".utf8))
                values.append(String(decoding: try await client.get(key) ?? [], as: UTF8.self))
            }
            return values
        }
        #expect(values == (0..<50).map { "v\($0)" })
        // And from the cooperative pool, the same client still works.
        #expect(try await client.get(key) == Array("v49".utf8))
        _ = try await client.command(["DEL", key])
    }
}
