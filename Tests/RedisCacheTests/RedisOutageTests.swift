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
        try Command.run(
            "redis-server",
            [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
                "--daemonize", "yes", "--pidfile", pidFile, "--logfile", directory + "/redis.log",
            ]
        )
        for _ in 0..<100 {
            if (try? Command.run("redis-cli", ["-p", String(port), "ping"]))?.contains("PONG") == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CommandFailed(command: "redis-server on \(port)", status: 1, output: "did not answer PING")
    }

    func signal(_ name: String) async throws {
        let pid = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await Command.run("kill", ["-\(name)", pid])
    }

    /// Kills the server (resuming it first if paused) and waits until it no longer answers.
    func kill() async throws {
        try? await signal("CONT")
        try await signal("KILL")
        for _ in 0..<100 {
            if (try? await cli(["ping"])) == nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func cli(_ arguments: [String]) async throws -> String {
        try await Command.run("redis-cli", ["-p", String(port)] + arguments)
    }

    /// Runs `body` with a private server started, and kills the server afterwards, also when `body` throws.
    /// Everything is awaited: a test that blocks a thread of the shared pool starves the other tests.
    static func with(port: Int, _ body: (PrivateRedis) async throws -> Void) async throws {
        let redis = PrivateRedis(port: port)
        try await redis.start()
        do {
            try await body(redis)
        } catch {
            try? await redis.kill()
            throw error
        }
        try await redis.kill()
    }
}

/// Runs `call` and returns what it answered, or nil if it gave no answer within `limit`. A hang is told
/// from a timeout by a bound far above the timeout under test, so a loaded machine does not fail the test;
/// a call that hangs is left behind.
func answerWithin<T: Sendable>(_ limit: Duration, _ call: @escaping @Sendable () async -> T) async -> T? {
    let (answers, continuation) = AsyncStream<T?>.makeStream()
    Task { continuation.yield(await call()) }
    let timer = Task {
        try? await Task.sleep(for: limit)
        continuation.yield(nil)
    }
    var iterator = answers.makeAsyncIterator()
    let first = await iterator.next() ?? nil
    timer.cancel()
    continuation.finish()
    return first
}

@Suite("RedisCache when Redis fails", .serialized)
struct RedisOutageTests {
    let now = Date()

    @Test("with Redis killed, calls answer from the LRU without waiting for it, then use Redis again")
    func killedRedis() async throws {
        try await PrivateRedis.with(port: 6391) { redis in
            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(redis.url),
                    commandTimeout: .milliseconds(50),
                    localFreshness: .zero
                )
            )
            await cache.set("price:BTC", CachedValue("100", sourceTime: now), ttl: nil)
            #expect(try await redis.cli(["get", "price:BTC"]).contains("100"), "written through to Redis")

            try await redis.kill()
            let answer = await answerWithin(.seconds(20)) { await cache.get("price:BTC") }
            #expect(answer??.string == "100", "the LRU answers, not a hang")
            #expect(cache.health == .degraded)
            // Writes and dedupe keep working locally.
            await cache.set("price:ETH", CachedValue("5", sourceTime: now), ttl: nil)
            #expect(await cache.get("price:ETH")?.string == "5")
            #expect(await cache.setIfAbsent("alert:1", CachedValue("x", sourceTime: now), ttl: .seconds(60)))
            #expect(await !cache.setIfAbsent("alert:1", CachedValue("x", sourceTime: now), ttl: .seconds(60)))

            try await redis.start()
            _ = try await redis.cli(["set", "price:SOL", "\(Int64(now.timeIntervalSince1970 * 1_000_000))|42"])
            #expect(await eventually { cache.health == .healthy })
            // The command timeout is 50 ms, so on a loaded machine one read may time out and answer
            // from the LRU (which has no SOL); the next ones reach Redis.
            #expect(
                await eventually { await cache.get("price:SOL")?.string == "42" },
                "a key only Redis has is read from Redis again"
            )
            // What was written while Redis was away is written back, so other processes see it.
            #expect(try await redis.cli(["get", "price:ETH"]).contains("|5"))
            #expect(try await redis.cli(["get", "alert:1"]).contains("|x"))
            #expect(
                try await redis.cli(["pttl", "alert:1"]).trimmingCharacters(in: .whitespacesAndNewlines) != "-1",
                "with its TTL"
            )
        }
    }

    @Test("with Redis paused (it never answers), calls answer from the LRU while it is still paused")
    func pausedRedis() async throws {
        try await PrivateRedis.with(port: 6392) { redis in
            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(redis.url),
                    commandTimeout: .milliseconds(50),
                    localFreshness: .zero
                )
            )
            await cache.set("k", CachedValue("v", sourceTime: now), ttl: nil)
            try await redis.signal("STOP")
            // A paused Redis never answers, so without the command timeout this call would wait until it resumes.
            let answer = await answerWithin(.seconds(20)) { await cache.get("k") }
            #expect(answer??.string == "v", "answered from the LRU while Redis is paused")
            #expect(cache.health == .degraded)
            try await redis.signal("CONT")
            #expect(await eventually { cache.health == .healthy })
        }
    }
}

@Suite("RedisCache's own tasks")
struct RedisCacheTaskTests {
    @Test("the reconnect task that starts when Redis is away is owned by the cache: close() cancels and awaits it")
    func reconnectOwned() async throws {
        // Nothing listens on this port: the cache degrades and starts reconnecting.
        let cache = RedisCache(
            configuration: .init(url: try RedisURL("redis://127.0.0.1:1/0"), reconnectInterval: .milliseconds(50))
        )
        #expect(await !cache.checkConnection())
        #expect(cache.isReconnecting && cache.health == .degraded)
        await cache.close()
        #expect(!cache.isReconnecting, "the reconnect loop ended with close()")
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
