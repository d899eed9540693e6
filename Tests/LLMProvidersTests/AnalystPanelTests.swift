import Foundation
import LLMProviders
import Logging
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Sleeps recorded, not slept: backoff timing checked without waiting.
final class RecordedSleeps: Sendable {
    private let sleeps = Mutex<[Duration]>([])
    var all: [Duration] { sleeps.withLock { $0 } }
    var sleep: @Sendable (Duration) async throws -> Void {
        { duration in self.sleeps.withLock { $0.append(duration) } }
    }
}

/// The analysts against a local server speaking the OpenAI and Anthropic formats, errors included.
@Suite("Analyst panel over OpenAI and Anthropic formats (local server)")
struct AnalystPanelTests {
    static let long =
        #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"uptrend"}"#
    let framework = TradingFramework()
    let logger = Logger(label: "test")

    var context: AnalysisContext {
        let snapshot = IndicatorSnapshot(
            openTime: 1_767_225_600_000,
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
        return AnalysisContext(symbol: "BTCUSDT", interval: "5m", timeframes: ["5m": snapshot])
    }

    func settings(timeout: Duration = .seconds(5), breaker: Int = 5) -> ResilientModel.Settings {
        var settings = ResilientModel.Settings()
        settings.attemptTimeout = timeout
        settings.retry.backoff = Backoff(initial: .seconds(1), maximum: .seconds(20))
        settings.breakerThreshold = breaker
        return settings
    }

    func panel(
        _ models: [any LanguageModel],
        sleeps: RecordedSleeps,
        settings: ResilientModel.Settings? = nil,
        fallback: Bool = true,
        cache: (any HotCache)? = nil,
        grounding: GroundingMode = .enforce,
        repairs: Int = 0,
        anonymise: Bool = false
    ) throws -> AnalystPanel {
        let prompt = try AnalystPrompt(framework: framework)
        let book = SpendingBook(dailyCap: 10)
        let resilient = models.map {
            ResilientModel(
                model: $0,
                settings: settings ?? self.settings(),
                ledger: book,
                logger: logger,
                sleep: sleeps.sleep,
                random: { 1 }
            )
        }
        return AnalystPanel(
            models: resilient,
            rules: RulesAnalyst(framework: framework),
            rulesFallback: fallback,
            prompt: (prompt.version, prompt.system, { prompt.user($0) }),
            cache: cache,
            grounding: grounding,
            repairAttempts: repairs,
            anonymise: anonymise
        )
    }

    @Test("OpenAI format: bearer key, model, system and user messages; a valid answer is the decision")
    func openAI() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        let verdict = try await panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "gpt-test", apiKey: "sk-test")],
            sleeps: RecordedSleeps()
        ).decide(context)
        #expect(
            verdict.proposal.action == .long && verdict.provider == "openai" && verdict.model == "gpt-test"
                && verdict.attempts == 1
        )
        #expect(verdict.promptVersion == "analyst-v2" && verdict.invalid.isEmpty)
        let request = try #require(server.received.first)
        #expect(request.path == "/v1/chat/completions" && request.headers["authorization"] == "Bearer sk-test")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect(body["model"] as? String == "gpt-test" && messages.map { $0["role"] as? String } == ["system", "user"])
        #expect((messages[0]["content"] as? String)?.contains("Capital preservation comes first") == true)
        #expect((messages[1]["content"] as? String)?.contains("BTCUSDT") == true)
        // The prompt promises only what the context holds.
        #expect(
            (messages[1]["content"] as? String)?.contains(
                "The state holds indicators for 5m (the timeframe asked about), no funding rate, no open position, "
                    + "no recent trades, today's PnL. It holds nothing else."
            ) == true
        )
        await server.stop()
    }

    @Test(
        "Anthropic format: x-api-key and anthropic-version; a 529 and a 429 with Retry-After are retried, waiting as told"
    )
    func anthropicRetries() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script([.status(529), .status(429, retryAfter: "7")])
        let sleeps = RecordedSleeps()
        let verdict = try await panel(
            [AnthropicMessagesModel(baseURL: server.anthropicBaseURL, model: "claude-test", apiKey: "key-test")],
            sleeps: sleeps
        ).decide(context)
        #expect(verdict.proposal.action == .long && verdict.attempts == 3)
        // backoff ceiling for the first retry (jitter pinned to 1), then Retry-After
        #expect(sleeps.all == [.seconds(1), .seconds(7)])
        let request = try #require(server.received.first)
        #expect(
            request.path == "/v1/messages" && request.headers["x-api-key"] == "key-test"
                && request.headers["anthropic-version"] == "2023-06-01"
        )
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
        #expect(
            (body["system"] as? String)?.contains("red flags") == false
                && (body["system"] as? String)?.contains("Red flags") == true
        )
        await server.stop()
    }

    @Test(
        "5xx retries back off exponentially up to 3 retries, then every model has failed and the rules analyst decides"
    )
    func exhausted() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script(Array(repeating: .status(500), count: 4))
        let sleeps = RecordedSleeps()
        let verdict = try await panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)],
            sleeps: sleeps
        ).decide(context)
        #expect(sleeps.all == [.seconds(1), .seconds(2), .seconds(4)])
        #expect(verdict.attempts == 4 && verdict.provider == "rules" && verdict.failures.count == 1)
        #expect(verdict.proposal.reasoning.hasPrefix("every model failed; rules analyst decided"))
        await server.stop()
    }

    @Test("a 400 is not retried; with the fallback off, all failing means HOLD")
    func notRetried() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script([.status(400)])
        let sleeps = RecordedSleeps()
        let verdict = try await panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)],
            sleeps: sleeps,
            fallback: false
        ).decide(context)
        #expect(
            verdict.attempts == 1 && sleeps.all.isEmpty && verdict.proposal.action == .hold
                && verdict.provider == "openai"
        )
        await server.stop()
    }

    @Test("a reply slower than the attempt timeout is abandoned and retried")
    func timeout() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script([.slow(.seconds(120), Self.long)])
        let started = ContinuousClock.now
        let verdict = try await panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)],
            sleeps: RecordedSleeps(),
            settings: settings(timeout: .seconds(1))
        ).decide(context)
        // The slow first attempt was abandoned at its timeout, not waited out (120 s); a later one answered.
        // The bound is loose because a loaded two-core machine can add seconds; waiting out would take minutes.
        #expect(verdict.attempts >= 2 && verdict.proposal.action == .long)
        #expect(ContinuousClock.now - started < .seconds(60))
        await server.stop()
    }

    @Test(
        "invalid answers give HOLD and a reason; prose-wrapped JSON is fine",
        arguments: [
            ("this is not json", true),
            ("Here you go:\n```json\n\(AnalystPanelTests.long)\n```\nThanks!", false),
            (AnalystPanelTests.long.replacingOccurrences(of: "}", with: #","position_size_usd":5000}"#), true),
            (
                #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":103,"take_profit":106,"reasoning":"x"}"#,
                true
            ),
            (#"{"action":"LONG","confidence":0.82,"lever"#, true),
        ]
    )
    func invalid(answer: String, isInvalid: Bool) async throws {
        let server = try await FakeLLM.start(fallback: answer)
        let verdict = try await panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)],
            sleeps: RecordedSleeps()
        ).decide(context)
        #expect(verdict.invalid.isEmpty == !isInvalid, "\(verdict.invalid)")
        #expect(verdict.proposal.action == (isInvalid ? .hold : .long))
        await server.stop()
    }

    @Test("a truncated reply and a refusal are invalid, in both formats")
    func truncatedAndRefused() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script([
            .answer(Self.long, truncated: true), .refusal("I cannot give financial advice"),
            .answer(Self.long, truncated: true), .refusal("no"),
        ])
        for model in [
            OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil) as any LanguageModel,
            AnthropicMessagesModel(baseURL: server.anthropicBaseURL, model: "m", apiKey: "k"),
        ] {
            let p = try panel([model], sleeps: RecordedSleeps())
            let first = await p.decide(context)
            let second = await p.decide(context)
            #expect(first.proposal.action == .hold && first.invalid.first?.contains("cut off") == true)
            #expect(second.proposal.action == .hold && second.invalid.first?.contains("refused") == true)
        }
        await server.stop()
    }

    @Test("several models: the survivors decide by majority when one fails; the decision cache answers a repeat")
    func consensusAndCache() async throws {
        let up = try await FakeLLM.start(fallback: Self.long)
        let down = try await FakeLLM.start(fallback: Self.long)
        down.script([.status(401)])
        let cache = LocalCache()
        let p = try panel(
            [
                OpenAIChatModel(baseURL: up.openAIBaseURL, model: "a", apiKey: nil),
                AnthropicMessagesModel(baseURL: up.anthropicBaseURL, model: "b", apiKey: "k"),
                OpenAIChatModel(baseURL: down.openAIBaseURL, model: "c", apiKey: nil),
            ],
            sleeps: RecordedSleeps(),
            cache: cache
        )
        let first = await p.decide(context)
        #expect(first.proposal.action == .long && first.provider == "consensus" && first.failures.count == 1)
        #expect(first.proposal.reasoning.hasPrefix("2 of 2 analysts say LONG"))
        // With a failure the answer is not cached; the next one, all answering, is.
        let second = await p.decide(context)
        let third = await p.decide(context)
        #expect(!second.cached && third.cached && third.attempts == 0 && third.proposal == second.proposal)
        #expect(up.received.count == 4 && down.received.count == 2)
        await up.stop()
        await down.stop()
    }

    @Test("the circuit breaker opens after repeated failures and stops calling the provider")
    func breaker() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.script(Array(repeating: .status(503), count: 10))
        var s = settings(breaker: 2)
        s.retry.maxRetries = 0
        let p = try panel(
            [OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)],
            sleeps: RecordedSleeps(),
            settings: s
        )
        _ = await p.decide(context)
        _ = await p.decide(context)
        let third = await p.decide(context)
        #expect(
            server.received.count == 2 && third.attempts == 0
                && third.failures.first?.contains("circuit breaker open") == true
        )
        await server.stop()
    }

    static func cited(_ citations: String, action: String = "LONG") -> String {
        #"{"action":"\#(action)","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"uptrend","cited":[\#(citations)]}"#
    }

    @Test("structured output: OpenAI gets a strict json_schema, Anthropic a forced tool; answers are read from them")
    func structured() async throws {
        let server = try await FakeLLM.start(fallback: Self.cited(#"{"name":"rsi14","value":60}"#))
        for model in [
            OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil) as any LanguageModel,
            AnthropicMessagesModel(baseURL: server.anthropicBaseURL, model: "m", apiKey: "k"),
        ] {
            let verdict = try await panel([model], sleeps: RecordedSleeps()).decide(context)
            let mode = model.provider == "openai" ? "json_schema" : "tool"
            #expect(verdict.proposal.action == .long && verdict.outputModes == ["\(model.provider) m: \(mode)"])
            #expect(verdict.grounding == ["\(model.provider) m: grounded"])
        }
        let (openAI, anthropic) = (server.received[0].json, server.received[1].json)
        let format = try #require(openAI["response_format"] as? [String: Any])
        let spec = try #require(format["json_schema"] as? [String: Any])
        #expect(format["type"] as? String == "json_schema" && spec["name"] as? String == "trade_decision")
        #expect(spec["strict"] as? Bool == true && (spec["schema"] as? [String: Any])?["type"] as? String == "object")
        let tools = try #require(anthropic["tools"] as? [[String: Any]])
        #expect(tools.first?["name"] as? String == "trade_decision" && tools.first?["input_schema"] != nil)
        #expect((anthropic["tool_choice"] as? [String: Any])?["name"] as? String == "trade_decision")
        // The schema sent is the parser's own, so the two cannot drift apart.
        let sent = try JSONDecoder().decode(
            JSONValue.self,
            from: JSONSerialization.data(withJSONObject: spec["schema"]!)
        )
        #expect(sent == AnswerParser.schema(maxLeverage: framework.maxLeverage))
        await server.stop()
    }

    @Test(
        "a server without json_schema falls back to JSON mode (llama-cpp-python's 500), one without either to text; remembered, and said"
    )
    func schemaFallback() async throws {
        let server = try await FakeLLM.start(fallback: Self.long)
        server.setSchemaSupport(.jsonObjectOnly)
        let model = OpenAIChatModel(baseURL: server.openAIBaseURL, model: "local", apiKey: nil)
        let p = try panel([model], sleeps: RecordedSleeps())
        let first = await p.decide(context)
        #expect(first.proposal.action == .long && first.outputModes == ["openai local: json_object"])
        _ = await p.decide(AnalysisContext(symbol: "ETHUSDT", interval: "5m", timeframes: context.timeframes))
        // json_schema refused once, then JSON mode with the schema for every later request
        #expect(server.received.map(\.outputMode) == ["json_schema", "json_object", "json_object"])
        #expect((server.received[1].json["response_format"] as? [String: Any])?["schema"] != nil)

        let bare = try await FakeLLM.start(fallback: Self.long)
        bare.setSchemaSupport(.none)
        for model in [
            OpenAIChatModel(baseURL: bare.openAIBaseURL, model: "bare", apiKey: nil) as any LanguageModel,
            AnthropicMessagesModel(baseURL: bare.anthropicBaseURL, model: "bare", apiKey: "k"),
        ] {
            let verdict = try await panel([model], sleeps: RecordedSleeps()).decide(context)
            #expect(verdict.proposal.action == .long && verdict.outputModes == ["\(model.provider) bare: text"])
            #expect(verdict.attempts == 1, "a step down is not a retry")
        }
        #expect(bare.received.map(\.outputMode) == ["json_schema", "json_object", "text", "tool", "text"])
        await server.stop()
        await bare.stop()
    }

    @Test(
        "grounding: a wrong RSI becomes HOLD with the reason, a right one trades; strict needs a citation; warn lets it by"
    )
    func grounding() async throws {
        let server = try await FakeLLM.start()
        let model = OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)
        server.script([
            .answer(Self.cited(#"{"name":"rsi14","value":28}"#)),
            .answer(Self.cited(#"{"name":"rsi14","value":60.2},{"name":"support","value":97}"#)),
            .answer(Self.cited(#"{"name":"level","value":250}"#)),
            .answer(Self.long),
            .answer(Self.long),
            .answer(Self.cited(#"{"name":"rsi14","value":28}"#)),
        ])
        let enforce = try panel([model], sleeps: RecordedSleeps())
        let wrong = await enforce.decide(context)
        #expect(wrong.proposal.action == .hold)
        #expect(
            wrong.proposal.reasoning.contains("ungrounded: rsi14 28 cited, the state says 60 (5m)"),
            "\(wrong.proposal)"
        )
        #expect(wrong.grounding == ["openai m: ungrounded"])
        #expect(await enforce.decide(context).proposal.action == .long)
        let level = await enforce.decide(context)
        #expect(level.proposal.action == .hold && level.proposal.reasoning.contains("level 250 is outside"))
        // uncited: counted, not refused, unless strict
        let uncited = await enforce.decide(context)
        #expect(uncited.proposal.action == .long && uncited.grounding == ["openai m: uncited"])
        let strict = try await panel([model], sleeps: RecordedSleeps(), grounding: .strict).decide(context)
        #expect(strict.proposal.action == .hold && strict.proposal.reasoning.contains("cites no figure"))
        let warn = try await panel([model], sleeps: RecordedSleeps(), grounding: .warn).decide(context)
        #expect(warn.proposal.action == .long && warn.grounding == ["openai m: ungrounded"])
        await server.stop()
    }

    @Test("an invalid answer is asked again once with the reason; every attempt is kept; a second failure stays HOLD")
    func repair() async throws {
        let server = try await FakeLLM.start()
        let model = OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)
        let wrong = Self.cited(#"{"name":"rsi14","value":28}"#)
        server.script([.answer(wrong), .answer(Self.cited(#"{"name":"rsi14","value":60}"#))])
        let p = try panel([model], sleeps: RecordedSleeps(), repairs: 1)
        let repaired = await p.decide(context)
        #expect(repaired.proposal.action == .long && repaired.attempts == 2 && repaired.replies.count == 2)
        #expect(repaired.refusals.count == 1 && repaired.refusals[0].contains("ungrounded: rsi14 28"))
        #expect(repaired.replies[1].hasPrefix("[openai m, repair 1, json_schema]"))
        let messages = try #require(server.received[1].json["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "user"])
        #expect((messages[2]["content"] as? String) == wrong)
        #expect((messages[3]["content"] as? String)?.contains("refused: ungrounded: rsi14 28") == true)

        server.script([.answer("I think BTC will go up"), .answer("still prose")])
        let failed = await p.decide(AnalysisContext(symbol: "ETHUSDT", interval: "5m", timeframes: context.timeframes))
        #expect(failed.proposal.action == .hold && failed.refusals.count == 2 && server.received.count == 4)
        #expect(failed.invalid.first?.contains("no JSON object in the reply (it begins \"still prose\")") == true)
        await server.stop()
    }

    @Test(
        "--anonymise: the model sees no symbol, moved dates and prices scaled to 100; its prices come back in the market's"
    )
    func anonymised() async throws {
        let server = try await FakeLLM.start()
        server.setResponder(FakeLLM.longAtClose)
        var snapshot = try #require(context.primary)
        snapshot.close = 250
        snapshot.support = 240
        snapshot.resistance = 275
        let real = AnalysisContext(symbol: "SOLUSDT", interval: "5m", timeframes: ["5m": snapshot])
        let model = OpenAIChatModel(baseURL: server.openAIBaseURL, model: "m", apiKey: nil)
        let verdict = try await panel([model], sleeps: RecordedSleeps(), anonymise: true).decide(real)
        let question = try #require(
            (server.received.first?.json["messages"] as? [[String: Any]])?.last?["content"] as? String
        )
        #expect(!question.contains("SOLUSDT") && question.contains("ASSET") && question.contains(#""close":100"#))
        #expect(!question.contains("2026-"), "dates moved")
        #expect(verdict.proposal.action == .long && verdict.grounding == ["openai m: grounded"])
        #expect(abs((verdict.proposal.entry ?? 0) - 250) < 1e-9 && abs((verdict.proposal.stopLoss ?? 0) - 245) < 1e-9)
        #expect(verdict.anonymisation?.hasPrefix("SOLUSDT shown as ASSET") == true)
        await server.stop()
    }
}
