import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// A model that answers from a closure and keeps the questions.
final class ScriptedModel: LanguageModel {
    let provider = "openai"
    let model = "scripted"
    let answer: @Sendable (Int) -> ModelReply
    private let questions = Mutex<[ModelRequest]>([])

    init(answer: @escaping @Sendable (Int) -> ModelReply) { self.answer = answer }

    var asked: [ModelRequest] { questions.withLock { $0 } }

    func complete(_ request: ModelRequest) async throws(ModelCallError) -> ModelReply {
        let count = questions.withLock { questions in
            questions.append(request)
            return questions.count
        }
        return answer(count)
    }
}

/// The analyst's worker logic on the in-process bus, the LRU cache and a SQLite store.
@Suite("Analyst service (in process)")
struct SignalAnalystTests {
    static let long =
        #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"uptrend"}"#
    let now = Date(timeIntervalSince1970: 1_767_225_600 + 600)  // ten minutes after the candle below opened

    func snapshot(openTime: Int64 = 1_767_225_600_000) -> IndicatorSnapshot {
        IndicatorSnapshot(
            openTime: openTime,
            close: 100,
            sma20: 98,
            ema12: 99.5,
            ema26: 98.5,
            macd: 1,
            macdSignal: 0.8,
            macdHistogram: 0.2,
            rsi14: 60,
            atr14: 1,
            adx14: 32,
            obv: 1_000,
            volume: 1_000,
            volumeSMA20: 900,
            resistance: 110,
            support: 97,
            regime: .trendingUp
        )
    }

    struct Harness {
        let bus = InProcessBus()
        let cache = LocalCache()
        let store: SQLTradeStore
        let decisions = Collector<Envelope<DecisionPayload>>()
        let alerts = Collector<AlertPayload>()
        var consumers: [RunningConsumer] = []

        init() async throws {
            store = .sqlite(
                path: FileManager.default.temporaryDirectory.appendingPathComponent(
                    "analyst-\(UUID().uuidString).sqlite"
                ).path
            )
            try await store.migrate()
            try await bus.declare(QueueSpec(name: "decisions", bindings: ["decision.#"]))
            try await bus.declare(QueueSpec(name: "alerts", bindings: ["alert.#"]))
            let decisions = self.decisions
            let alerts = self.alerts
            consumers.append(
                RunningConsumer.start(bus, queue: "decisions") {
                    decisions.append(
                        try EnvelopeCodec.decode(
                            DecisionPayload.self,
                            from: $0.body,
                            expectedType: MessageType.decision
                        )
                    )
                }
            )
            consumers.append(
                RunningConsumer.start(bus, queue: "alerts") {
                    alerts.append(
                        try EnvelopeCodec.decode(AlertPayload.self, from: $0.body, expectedType: MessageType.alert)
                            .payload
                    )
                }
            )
        }

        func put(_ snapshot: IndicatorSnapshot, symbol: String, interval: String) async throws {
            let envelope = Envelope(
                type: MessageType.indicatorSnapshot,
                time: Date(),
                source: "test",
                payload: SnapshotPayload(symbol: symbol, interval: interval, snapshot: snapshot)
            )
            await cache.set(
                SnapshotPayload.cacheKey(symbol: symbol, interval: interval),
                CachedValue(bytes: try EnvelopeCodec.encode(envelope), sourceTime: Date()),
                ttl: nil
            )
        }

        func signal(_ snapshot: IndicatorSnapshot, symbol: String) throws -> Delivery {
            let envelope = Envelope(
                type: MessageType.signal,
                time: Date(),
                source: "test",
                payload: SignalPayload(
                    symbol: symbol,
                    interval: "5m",
                    signal: Signal(kind: .macdCross, direction: .bullish, snapshot: snapshot)
                )
            )
            return Delivery(
                routingKey: "sig.\(symbol).5m",
                body: try EnvelopeCodec.encode(envelope),
                messageID: envelope.id,
                correlationID: envelope.correlationID
            )
        }

        func stop() async throws { for consumer in consumers { try await consumer.stop() } }
    }

    func service(
        _ harness: Harness,
        models: [any LanguageModel],
        fallback: Bool = true,
        dailyCap: Double = 10
    ) -> SignalAnalyst {
        let framework = TradingFramework()
        let book = SpendingBook(dailyCap: dailyCap)
        let resilient = models.map {
            ResilientModel(
                model: $0,
                settings: .init(),
                ledger: book,
                logger: Logger(label: "test"),
                now: { now },
                sleep: { _ in }
            )
        }
        let panel = AnalystPanel(
            models: resilient,
            rules: RulesAnalyst(framework: framework),
            rulesFallback: fallback,
            prompt: (
                "analyst-test", "system",
                { context in
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    return String(decoding: (try? encoder.encode(context)) ?? Data(), as: UTF8.self)
                }
            ),
            cache: harness.cache,
            now: { now }
        )
        return SignalAnalyst(
            panel: panel,
            bus: harness.bus,
            cache: harness.cache,
            store: harness.store,
            settings: .init(),
            source: "test",
            logger: Logger(label: "test"),
            now: { now }
        )
    }

    @Test(
        "the context carries the timeframes, the open position, recent trades and today's PnL; the decision is recorded with prompt and reply"
    )
    func context() async throws {
        let harness = try await Harness()
        try await harness.put(snapshot(), symbol: "BTCUSDT", interval: "5m")
        try await harness.put(snapshot(openTime: 1_767_222_000_000), symbol: "BTCUSDT", interval: "1h")
        try await harness.store.savePosition(
            PositionRecord(
                id: "p1",
                venue: "paper",
                symbol: "BTCUSDT",
                side: .long,
                quantity: 2,
                entryPrice: 95,
                leverage: 3,
                stopLoss: 90,
                takeProfit: 105,
                decisionID: "d0",
                openedAt: now.addingTimeInterval(-3_600)
            )
        )
        try await harness.store.recordTrade(
            TradeRecord(
                id: "t1",
                positionID: "p0",
                symbol: "BTCUSDT",
                side: .short,
                entryTime: now.addingTimeInterval(-7_200),
                entryPrice: 101,
                exitTime: now.addingTimeInterval(-500),
                exitPrice: 99,
                quantity: 1,
                leverage: 2,
                stopLoss: nil,
                takeProfit: nil,
                pnl: 2,
                fees: 0.1,
                funding: 0,
                exitReason: "take_profit"
            )
        )
        let model = ScriptedModel { _ in ModelReply(text: Self.long, inputTokens: 10, outputTokens: 10) }
        let analyst = service(harness, models: [model])
        let delivery = try harness.signal(snapshot(), symbol: "BTCUSDT")
        try await analyst.handle(delivery)
        #expect(await eventually { harness.decisions.count == 1 })

        let question = try #require(model.asked.first).user
        #expect(question.contains(#""5m""#) && question.contains(#""1h""#))
        #expect(question.contains(#""position":{"entry":95,"leverage":3,"quantity":2,"side":"LONG"}"#))
        #expect(question.contains(#""todayPnL":2"#) && question.contains("take_profit"))
        let decision = try #require(harness.decisions.all.first)
        #expect(decision.id == "decision:\(delivery.messageID!)" && decision.correlationID == delivery.correlationID)
        #expect(decision.payload.action == .long && decision.payload.candleTime == 1_767_225_900_000)
        let record = try #require(try await harness.store.decision(id: decision.id))
        #expect(
            record.reply == "[openai scripted, answer, text]\n" + Self.long
                && record.prompt?.contains("todayPnL") == true
                && record.promptVersion == "analyst-test"
        )

        // The same signal again (a redelivery): no second decision.
        try await analyst.handle(delivery)
        try await Task.sleep(for: .milliseconds(200))
        #expect(harness.decisions.count == 1 && model.asked.count == 1)
        try await harness.stop()
    }

    @Test(
        "a dead analyst's publishing lease: its own restart takes it over at once; another instance waits it out; each signal is decided once"
    )
    func deadLease() async throws {
        let harness = try await Harness()
        try await harness.put(snapshot(), symbol: "SOLUSDT", interval: "5m")
        let model = ScriptedModel { _ in ModelReply(text: Self.long) }
        let analyst = service(harness, models: [model])
        // This instance's previous process died holding the lease (the service's instance is "test").
        let mine = try harness.signal(snapshot(), symbol: "SOLUSDT")
        await harness.cache.set(
            "publishing:decision:\(mine.messageID!)",
            CachedValue("test/2147483000/a-process-now-dead", sourceTime: now),
            ttl: .seconds(600)
        )
        let started = ContinuousClock.now
        try await analyst.handle(mine)
        // Taken over, not waited out: waiting would take the lease's 600 s or the analyst's patience
        // (its decision budget and more), and a loaded two-core machine can take a second to decide.
        #expect(ContinuousClock.now - started < .seconds(20), "taken over, not waited out")
        // A live process of this instance (a replica beside it) holds a lease: waited for, not taken.
        let beside = try harness.signal(snapshot(), symbol: "SOLUSDT")
        await harness.cache.set(
            "publishing:decision:\(beside.messageID!)",
            CachedValue("test/1/a-live-replica", sourceTime: now),
            ttl: .milliseconds(1_500)
        )
        let besideStarted = ContinuousClock.now
        try await analyst.handle(beside)
        #expect(ContinuousClock.now - besideStarted >= .seconds(1), "a live replica's lease is waited for")
        // Another instance died holding a lease with 1.5 s left: the redelivery waits, then decides.
        let theirs = try harness.signal(snapshot(), symbol: "SOLUSDT")
        await harness.cache.set(
            "publishing:decision:\(theirs.messageID!)",
            CachedValue("other-analyst/its-process", sourceTime: now),
            ttl: .milliseconds(1_500)
        )
        let waited = ContinuousClock.now
        try await analyst.handle(theirs)
        #expect(ContinuousClock.now - waited >= .seconds(1), "a live-looking lease of another instance is waited for")
        let asked = model.asked.count
        // Redelivered once more each: nothing is decided or published again.
        try await analyst.handle(mine)
        try await analyst.handle(theirs)
        #expect(await eventually { harness.decisions.count == 3 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(harness.decisions.count == 3 && model.asked.count == asked)
        #expect(
            Set(harness.decisions.all.map(\.id)) == [
                "decision:\(mine.messageID!)", "decision:\(beside.messageID!)", "decision:\(theirs.messageID!)",
            ]
        )
        try await harness.stop()
    }

    @Test("an invalid answer is HOLD and alert.warning.analyst_invalid, never a trade")
    func invalidAnswer() async throws {
        let harness = try await Harness()
        try await harness.put(snapshot(), symbol: "ETHUSDT", interval: "5m")
        let analyst = service(harness, models: [ScriptedModel { _ in ModelReply(text: "I think you should buy!") }])
        try await analyst.handle(try harness.signal(snapshot(), symbol: "ETHUSDT"))
        #expect(await eventually { harness.decisions.count == 1 && harness.alerts.count == 1 })
        #expect(harness.decisions.all.first?.payload.action == .hold)
        let alert = try #require(harness.alerts.all.first)
        #expect(alert.kind == "analyst_invalid" && alert.severity == .warning && alert.symbol == "ETHUSDT")
        try await harness.stop()
    }

    @Test("the daily LLM spending cap alerts at 80 % (warning) and at 100 % (critical), once each")
    func spendingAlerts() async throws {
        let harness = try await Harness()
        // Each call reports a million input tokens: 5 USD at the default 5/15 per million, against a cap of 6.
        let model = ScriptedModel { _ in ModelReply(text: Self.long, inputTokens: 1_000_000, outputTokens: 0) }
        let analyst = service(harness, models: [model], dailyCap: 6)
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            try await harness.put(snapshot(), symbol: symbol, interval: "5m")
            try await analyst.handle(try harness.signal(snapshot(), symbol: symbol))
        }
        #expect(await eventually { harness.decisions.count == 3 })
        let budget = harness.alerts.all.filter { $0.kind == "llm_budget" }
        #expect(budget.map(\.severity) == [.warning, .critical], "\(budget)")
        #expect(
            budget.first?.title == "LLM spending at 80 % of the cap" && budget.last?.title == "LLM spending cap reached"
        )
        #expect(model.asked.count == 2, "the third call would pass the cap: not made")
        try await harness.stop()
    }

    @Test("a stale snapshot is refused: no decision")
    func stale() async throws {
        let harness = try await Harness()
        let old = snapshot(openTime: 1_767_225_600_000 - 3_600_000)
        try await harness.put(old, symbol: "SOLUSDT", interval: "5m")
        let analyst = service(harness, models: [])
        try await analyst.handle(try harness.signal(old, symbol: "SOLUSDT"))
        try await Task.sleep(for: .milliseconds(200))
        #expect(harness.decisions.count == 0)
        try await harness.stop()
    }

    @Test("two analysts scanning the same candle decide it once")
    func scanOnce() async throws {
        let harness = try await Harness()
        try await harness.put(snapshot(), symbol: "XRPUSDT", interval: "5m")
        let first = service(harness, models: [])
        let second = service(harness, models: [])
        async let a: Void = first.scan(symbol: "XRPUSDT", interval: "5m")
        async let b: Void = second.scan(symbol: "XRPUSDT", interval: "5m")
        _ = try await (a, b)
        #expect(await eventually { harness.decisions.count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(harness.decisions.count == 1)
        #expect(harness.decisions.all.first?.payload.requestID == "scan:XRPUSDT:5m:1767225600000")
        try await harness.stop()
    }

    @Test("a body that is not a signal goes to the dead-letter queue")
    func notASignal() async throws {
        let harness = try await Harness()
        let analyst = service(harness, models: [])
        await #expect(throws: MessageRejected.self) {
            try await analyst.handle(Delivery(routingKey: "sig.X.5m", body: Array("nope".utf8)))
        }
        try await harness.stop()
    }
}
