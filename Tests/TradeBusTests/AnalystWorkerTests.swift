import Foundation
import RabbitMQBus
import RedisCache
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// ai-analyst as separate processes against the real RabbitMQ, Redis and Postgres.
@Suite("AI analyst (processes)", .serialized)
struct AnalystWorkerTests {
    let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path

    func snapshot(close: Double, openTime: Int64) -> IndicatorSnapshot {
        IndicatorSnapshot(
            openTime: openTime,
            close: close,
            sma20: close * 0.98,
            ema12: close * 0.995,
            ema26: close * 0.985,
            macd: 1,
            macdSignal: 0.8,
            macdHistogram: 0.2,
            rsi14: 60,
            atr14: close * 0.01,
            adx14: 32,
            obv: 1_000,
            volume: 1_000,
            volumeSMA20: 900,
            resistance: close * 1.1,
            support: close * 0.97,
            regime: .trendingUp
        )
    }

    @Test(
        "two analysts share the signals: every signal gets exactly one decision, duplicates included; decisions are recorded"
    )
    func twoAnalysts() async throws {
        // The publishing lease is a Redis key. A Redis slower than REDIS_TIMEOUT_MS sends each analyst to its
        // own LRU, where both may hold it and publish the same decision (same id, dropped by consumers); on
        // a loaded two-core machine the 50 ms default is crossed, so this test, about healthy Redis, allows 2 s.
        let environment = [
            "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL,
            "DATABASE_URL": TestServices.databaseURL, "HTTP_PORT": "0",
            "REDIS_TIMEOUT_MS": "2000",
        ]
        let bus = RabbitMQBus(
            configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "analyst-test")
        )
        try await bus.connect()
        let run = "AN" + UUID().uuidString.prefix(6).uppercased()
        let symbols = (0..<6).map { "\(run)S\($0)USDT" }
        try await bus.declare(QueueSpec(name: "test.decisions.\(run)", bindings: symbols.map { "decision.\($0)" }))
        try await bus.declare(QueueSpec(name: "ai-analyst.signals", bindings: ["sig.#"]))
        // Every test that publishes signals fills this shared, durable queue, and on a broker that has
        // seen earlier runs thousands wait in it: the analysts would work through them (each refused as
        // stale) before reaching this test's. Drain it first.
        let drain = RunningConsumer.start(bus, queue: "ai-analyst.signals", options: .init(prefetch: 500)) { _ in }
        #expect(try await eventually(timeout: .seconds(60)) { try await bus.messageCount("ai-analyst.signals") == 0 })
        try await drain.stop()

        let analysts = try (0..<2).map { _ in
            try SpawnedProcess(executable: "\(build)/ai-analyst", environment: environment)
        }
        defer { for analyst in analysts { analyst.signal(SIGKILL) } }

        // Fresh snapshots in Redis; then each signal twice, as a redelivery would.
        let cache = RedisCache(
            configuration: .init(
                url: try RedisURL(TestServices.redisURL),
                commandTimeout: .seconds(1),
                localFreshness: .zero
            )
        )
        let openTime = (Int64(Date().timeIntervalSince1970 * 1000) / 300_000 - 1) * 300_000
        var signalIDs: [String] = []
        for (index, symbol) in symbols.enumerated() {
            let s = snapshot(close: 100 + Double(index), openTime: openTime)
            let envelope = Envelope(
                type: MessageType.indicatorSnapshot,
                time: Date(),
                source: "test",
                payload: SnapshotPayload(symbol: symbol, interval: "5m", snapshot: s)
            )
            await cache.set(
                SnapshotPayload.cacheKey(symbol: symbol, interval: "5m"),
                CachedValue(bytes: try EnvelopeCodec.encode(envelope), sourceTime: Date()),
                ttl: .seconds(600)
            )
            let signal = Envelope(
                type: MessageType.signal,
                time: Date(),
                source: "test",
                payload: SignalPayload(
                    symbol: symbol,
                    interval: "5m",
                    signal: Signal(kind: .macdCross, direction: .bullish, snapshot: s)
                )
            )
            signalIDs.append(signal.id)
            let message = OutgoingMessage(
                routingKey: RoutingKey.signal(symbol: symbol, interval: "5m"),
                body: try EnvelopeCodec.encode(signal),
                messageID: signal.id,
                correlationID: signal.correlationID
            )
            try await bus.publish([message, message])
        }

        let decisions = Collector<Envelope<DecisionPayload>>()
        let reader = RunningConsumer.start(bus, queue: "test.decisions.\(run)") {
            decisions.append(
                try EnvelopeCodec.decode(DecisionPayload.self, from: $0.body, expectedType: MessageType.decision)
            )
        }
        #expect(
            await eventually(timeout: .seconds(60)) { decisions.count >= symbols.count },
            "\(analysts.map(\.output))"
        )
        try await Task.sleep(for: .seconds(2))  // any duplicate would have arrived by now
        try await reader.stop()
        let all = decisions.all
        #expect(
            all.count == symbols.count,
            "exactly one decision per signal: \(all.map(\.id))\n\(analysts.map(\.output))"
        )
        #expect(Set(all.map(\.payload.requestID)) == Set(signalIDs))
        #expect(
            all.allSatisfy { $0.id == "decision:\($0.payload.requestID)" && $0.correlationID == $0.payload.requestID }
        )
        #expect(
            all.allSatisfy {
                $0.payload.action == .long && $0.payload.provider == "rules"
                    && $0.payload.promptVersion == "framework-v1"
            }
        )

        let store = try Infrastructure.store(
            try SettingsReader(environment: ["DATABASE_URL": TestServices.databaseURL])
        )
        for decision in all {
            let recorded = try #require(try await store.decision(id: decision.id))
            #expect(recorded.symbol == decision.payload.symbol && recorded.action == .long)
        }
        await store.close()
        for analyst in analysts {
            analyst.signal(SIGTERM)
            #expect(try await analyst.waitForExit(timeout: .seconds(30)) == 0, "\(analyst.output)")
        }
        await bus.shutdown()
    }

    @Test("an invalid setting stops ai-analyst at start with the key named")
    func invalidConfiguration() async throws {
        let servers = ["AMQP_URL": "amqp://x", "REDIS_URL": "redis://x", "DATABASE_URL": "sqlite:///tmp/x.sqlite"]
        for (settings, key) in [
            (["ANALYST_PROVIDERS": "rules,gemini"], "ANALYST_PROVIDERS"),
            (["ANALYST_PROVIDERS": "anthropic"], "ANTHROPIC_API_KEY"),
            (["ANALYST_PROVIDERS": "copy"], "COPY_LEADERS"),
            (["ANALYST_PROVIDERS": "copy,rules"], "copy runs alone"),
            (["ANALYST_PROVIDERS": "copy", "COPY_LEADERS": "0x1234:0.5"], "COPY_LEADERS: 0x1234 is not an address"),
            (
                ["ANALYST_PROVIDERS": "copy", "COPY_LEADERS": "0xabcdefabcdefabcdefabcdefabcdefabcdef0001:2"],
                "must be in (0, 1]"
            ),
            (
                [
                    "ANALYST_PROVIDERS": "copy", "COPY_LEADERS": "0xabcdefabcdefabcdefabcdefabcdefabcdef0001",
                    "COPY_SIZING": "martingale",
                ], "COPY_SIZING"
            ),
            (["MIN_AI_CONFIDENCE": "1.5"], "MIN_AI_CONFIDENCE"),
            (["MIN_STOP_LOSS_PERCENT": "0.1", "MAX_STOP_LOSS_PERCENT": "0.05"], "MIN_STOP_LOSS_PERCENT"),
            (["LLM_PRICE_PER_MTOK": "cheap"], "LLM_PRICE_PER_MTOK"),
            (["SCAN_INTERVAL_SECONDS": "60"], "SCAN_SYMBOLS"),
            (["GROUNDING": "lenient"], "GROUNDING"),
            (["LLM_REPAIR_ATTEMPTS": "9"], "LLM_REPAIR_ATTEMPTS"),
            (["ANALYST_PROMPT_VERSION": "analyst-v9"], "ANALYST_PROMPT_VERSION"),
            (["LLM_TRAINING_CUTOFFS": "gpt-x=June"], "LLM_TRAINING_CUTOFFS"),
            (["ANALYST_SHADOW": "gemini:pro"], "ANALYST_SHADOW"),
            (["ANALYST_SHADOW": "@"], "ANALYST_SHADOW"),
            (["ANALYST_SHADOW": "openai:gpt-x@analyst-v9"], "ANALYST_SHADOW"),
            (["ANALYST_SHADOW": "openai:gpt-x"], "SHADOW_DATABASE_URL"),
            (["ANALYST_CANARY_PERCENT": "10"], "ANALYST_CANARY_PERCENT"),
        ] {
            await #expect {
                try await Command.run("\(build)/ai-analyst", [], environment: servers.merging(settings) { $1 })
            } throws: { error in
                guard let failure = error as? CommandFailed else { return false }
                return failure.status == 2 && failure.output.contains(key)
            }
        }
    }
}
