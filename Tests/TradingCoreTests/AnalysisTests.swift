import Foundation
import Testing
import TradingCore

/// A snapshot that makes the rules analyst go LONG; each test breaks one thing.
func bullishSnapshot(close: Double = 100) -> IndicatorSnapshot {
    IndicatorSnapshot(
        openTime: 1_767_225_600_000,
        close: close,
        sma20: 98,
        ema12: 99.5,
        ema26: 98.5,
        macd: 1,
        macdSignal: 0.8,
        macdHistogram: 0.2,
        rsi14: 60,
        atr14: 1,
        bollingerUpper: 103,
        bollingerMiddle: 98,
        bollingerLower: 93,
        stochasticK: 70,
        stochasticD: 65,
        adx14: 32,
        obv: 1_000,
        volume: 1_000,
        volumeSMA20: 900,
        resistance: 110,
        support: 97,
        regime: .trendingUp
    )
}

@Suite("Rules analyst and the trading framework")
struct RulesAnalystTests {
    let framework = TradingFramework()
    var analyst: RulesAnalyst { RulesAnalyst(framework: framework) }

    func context(_ snapshot: IndicatorSnapshot, higher: [String: IndicatorSnapshot] = [:]) -> AnalysisContext {
        AnalysisContext(symbol: "BTCUSDT", interval: "5m", timeframes: higher.merging(["5m": snapshot]) { $1 })
    }

    @Test(
        "a clean uptrend goes LONG: stop beyond support, reward twice the risk, leverage by regime, passes the framework"
    )
    func long() throws {
        let proposal = analyst.decide(context(bullishSnapshot(), higher: ["1h": bullishSnapshot()]))
        #expect(proposal.action == .long)
        // 0.75 + 0.05 trend + 0.03 one higher timeframe + 0.03 ADX ≥ 30
        #expect(abs(proposal.confidence - 0.86) < 1e-9)
        #expect(proposal.leverage == 4)
        #expect(proposal.stopLoss == 96.5)  // support 97 − ATR/2
        #expect(proposal.takeProfit == 107)
        #expect(try framework.check(proposal, price: 100).get() == proposal)
    }

    @Test("the mirror image goes SHORT")
    func short() {
        var s = bullishSnapshot()
        s.sma20 = 102
        s.ema12 = 100.5
        s.ema26 = 101.5
        s.macdHistogram = -0.2
        s.regime = .trendingDown
        s.resistance = 103
        s.support = 90
        let proposal = analyst.decide(context(s))
        #expect(proposal.action == .short)
        #expect(proposal.stopLoss == 103.5 && proposal.takeProfit == 93)
    }

    @Test(
        "every red flag forces HOLD",
        arguments: [
            "rsi high", "rsi low", "low volume", "midway", "macd divergence", "volatile", "timeframes disagree",
            "no trend", "warming up",
        ]
    )
    func redFlags(flag: String) {
        var s = bullishSnapshot()
        var higher: [String: IndicatorSnapshot] = [:]
        switch flag {
        case "rsi high": s.rsi14 = 81
        case "rsi low":
            s.rsi14 = 19
            s.macdHistogram = 0.1
        case "low volume": s.volume = 400
        case "midway":
            s.support = 95
            s.resistance = 105
        case "macd divergence": s.macdHistogram = -0.01
        case "volatile": s.regime = .volatile
        case "timeframes disagree":
            var h = bullishSnapshot()
            h.ema12 = 97
            higher["1h"] = h
        case "no trend": s.sma20 = 101
        default: s.atr14 = nil
        }
        let proposal = analyst.decide(context(s, higher: higher))
        #expect(proposal.action == .hold, "\(flag): \(proposal.reasoning)")
    }

    @Test("leverage by regime, capped by MAX_LEVERAGE")
    func leverage() {
        var f = TradingFramework()
        #expect(f.leverage(regime: .trendingUp, confidence: 0.92) == 5)
        #expect(f.leverage(regime: .trendingDown, confidence: 0.85) == 4)
        #expect(f.leverage(regime: .ranging, confidence: 0.95) == 3)
        #expect(f.leverage(regime: .ranging, confidence: 0.76) == 2)
        f.maxLeverage = 2
        #expect(f.leverage(regime: .trendingUp, confidence: 0.99) == 2)
    }

    @Test("the framework check refuses what must not trade, and turns low confidence into HOLD")
    func check() {
        let good = TradeProposal(
            action: .long,
            confidence: 0.82,
            leverage: 3,
            entry: 100,
            stopLoss: 97,
            takeProfit: 106,
            reasoning: "ok"
        )
        #expect((try? framework.check(good, price: 100).get()) == good)
        func changed(_ change: (inout TradeProposal) -> Void) -> TradeProposal {
            var p = good
            change(&p)
            return p
        }
        let bad: [(String, TradeProposal, Double)] = [
            ("stop on the wrong side", changed { $0.stopLoss = 101 }, 100),
            ("the same numbers as a short", changed { $0.action = .short }, 100),
            ("NaN confidence", changed { $0.confidence = .nan }, 100),
            ("confidence above 1", changed { $0.confidence = 1.2 }, 100),
            ("leverage above the cap", changed { $0.leverage = 6 }, 100),
            ("leverage 0", changed { $0.leverage = 0 }, 100),
            ("infinite entry", changed { $0.entry = .infinity }, 100),
            ("no take-profit", changed { $0.takeProfit = nil }, 100),
            ("stop 8% away", changed { $0.stopLoss = 92 }, 100),
            ("stop 0.2% away", changed { $0.stopLoss = 99.8 }, 100),
            ("reward to risk 1.33", changed { $0.takeProfit = 104 }, 100),
            ("entry 11% from the price", good, 90),
        ]
        for (name, proposal, price) in bad {
            if case .success = framework.check(proposal, price: price) { Issue.record("accepted: \(name)") }
        }
        var low = good
        low.confidence = 0.7
        #expect((try? framework.check(low, price: 100).get())?.action == .hold)
        #expect((try? framework.check(.hold("wait"), price: 100).get())?.action == .hold)
    }
}

@Suite("Reading model answers")
struct AnswerParserTests {
    let valid =
        #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"trend"}"#

    func parse(
        _ text: String,
        truncated: Bool = false,
        refusal: String? = nil,
        symbol: String = "BTCUSDT"
    ) -> Result<TradeProposal, InvalidAnswer> {
        AnswerParser.proposal(from: ModelReply(text: text, truncated: truncated, refusal: refusal), symbol: symbol)
    }

    @Test("plain, fenced and prose-wrapped JSON all read the same")
    func extraction() throws {
        let expected = TradeProposal(
            action: .long,
            confidence: 0.82,
            leverage: 3,
            entry: 100,
            stopLoss: 97,
            takeProfit: 106,
            reasoning: "trend"
        )
        #expect(try parse(valid).get() == expected)
        #expect(try parse("```json\n\(valid)\n```").get() == expected)
        #expect(try parse("Sure! Here is my decision:\n\(valid)\nGood luck {not json}").get() == expected)
        #expect(
            try parse(
                #"{"action":"HOLD","confidence":0.4,"leverage":1,"entry":null,"stop_loss":null,"take_profit":null,"reasoning":"a } in {text}"}"#
            ).get().reasoning == "a } in {text}"
        )
        #expect(try parse(valid.replacingOccurrences(of: "{", with: #"{"symbol":"btcusdt","#)).get() == expected)
    }

    @Test(
        "anything else is invalid, with a reason",
        arguments: [
            ("not json", "no JSON"),
            (#"{"action":"LONG""#, "no complete JSON object"),
            (#"{"action":"LONG","confidence":0.8}"#, "missing fields"),
            (
                #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x","position_size":5}"#,
                "unexpected fields"
            ),
            (
                #"{"action":"BUY","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "action"
            ),
            (
                #"{"action":"LONG","confidence":"high","leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "confidence"
            ),
            (
                #"{"action":"LONG","confidence":0.82,"leverage":2.5,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "leverage"
            ),
            (
                #"{"action":"LONG","confidence":0.82,"leverage":true,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "leverage"
            ),
            (
                #"{"action":"LONG","confidence":0.82,"leverage":3,"entry":"100","stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "entry"
            ),
            (
                #"{"symbol":"ETHUSDT","action":"LONG","confidence":0.82,"leverage":3,"entry":100,"stop_loss":97,"take_profit":106,"reasoning":"x"}"#,
                "not BTCUSDT"
            ),
        ]
    )
    func invalid(text: String, reason: String) {
        guard case .failure(let error) = parse(text) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(error.description.contains(reason), "\(error)")
    }

    @Test("reasons are precise: no JSON is said before cut off, and a failing field is named with its value")
    func preciseReasons() {
        func reason(_ text: String, truncated: Bool = false) -> String {
            if case .failure(let error) = parse(text, truncated: truncated) { return error.description }
            return "accepted"
        }
        #expect(reason("<html><body>BUY BUY BUY", truncated: true).hasPrefix("no JSON object in the reply (it begins"))
        #expect(reason("<html>", truncated: true).hasSuffix("; it was also cut off by the length limit"))
        #expect(reason("", truncated: false) == "no JSON object in the reply (it is empty)")
        #expect(reason(#"{"action":"LONG","confidence":0."#, truncated: true).contains("cut off by the length limit"))
        #expect(
            reason(#"{"action":"LONG","confidence":0."#)
                == "no complete JSON object in the reply: a '{' is never closed"
        )
        #expect(
            reason(valid.replacingOccurrences(of: "0.82", with: #""high""#))
                == #"confidence must be a number, not "high""#
        )
        #expect(reason(valid.replacingOccurrences(of: #""LONG""#, with: #""BUY""#)).hasSuffix(#"not "BUY""#))
        #expect(
            reason(valid.replacingOccurrences(of: "}", with: #","cited":[{"name":"rsi14"}]}"#))
                .hasPrefix("each of cited must be")
        )
    }

    @Test("cited figures are read with the answer")
    func citations() throws {
        let text = valid.replacingOccurrences(
            of: "}",
            with: #","cited":[{"name":"rsi14","value":61.5},{"name":"1h.support","value":97}]}"#
        )
        let answer = try AnswerParser.answer(from: ModelReply(text: text), symbol: "BTCUSDT").get()
        #expect(answer.citations == [Citation(name: "rsi14", value: 61.5), Citation(name: "1h.support", value: 97)])
        #expect(answer.proposal.action == .long)
    }

    @Test("a truncated reply or a refusal is invalid even when it holds JSON")
    func truncatedAndRefused() {
        if case .success = parse(valid, truncated: true) { Issue.record("truncated accepted") }
        if case .success = parse(valid, refusal: "I can't help with that") { Issue.record("refusal accepted") }
    }
}

@Suite("Retries, circuit breaker, spending cap, consensus")
struct ModelReliabilityTests {
    func http(_ status: Int, _ body: String = "", retryAfter: String? = nil) -> ModelCallError {
        ModelCallError(.http(status: status, body: body, retryAfter: retryAfter))
    }

    @Test("retried: 408, 409, 429, 5xx, 529, timeouts, connection errors; not: other 4xx, quota 429s, local refusals")
    func retryable() {
        for status in [408, 409, 429, 500, 502, 503, 529] {
            #expect(RetryPolicy.isRetryable(http(status)), "\(status)")
        }
        for status in [400, 401, 403, 404, 422] { #expect(!RetryPolicy.isRetryable(http(status)), "\(status)") }
        #expect(!RetryPolicy.isRetryable(http(429, #"{"error":{"code":"insufficient_quota"}}"#)))
        #expect(RetryPolicy.isRetryable(ModelCallError(.timeout)))
        #expect(RetryPolicy.isRetryable(ModelCallError(.connection("reset"))))
        #expect(!RetryPolicy.isRetryable(ModelCallError(.refusedLocally("breaker open"))))
    }

    @Test("Retry-After in seconds or as an HTTP date, capped; otherwise backoff with full jitter")
    func delays() {
        var policy = RetryPolicy()
        policy.backoff = Backoff(initial: .seconds(1), maximum: .seconds(8))
        policy.retryAfterCap = .seconds(30)
        let now = Date(timeIntervalSince1970: 1_767_225_600)  // Thu, 01 Jan 2026 00:00:00 GMT
        #expect(policy.delay(attempt: 0, after: http(429, retryAfter: "7"), now: now, unit: 0.5) == .seconds(7))
        #expect(
            policy.delay(attempt: 0, after: http(429, retryAfter: "Thu, 01 Jan 2026 00:00:12 GMT"), now: now, unit: 0.5)
                == .seconds(12)
        )
        #expect(policy.delay(attempt: 0, after: http(503, retryAfter: "3600"), now: now, unit: 0.5) == .seconds(30))
        #expect(policy.delay(attempt: 2, after: http(500), now: now, unit: 1) == .seconds(4))
        #expect(policy.delay(attempt: 2, after: http(500), now: now, unit: 0.25) == .seconds(1))
        #expect(policy.delay(attempt: 9, after: ModelCallError(.timeout), now: now, unit: 1) == .seconds(8))
        #expect(RetryPolicy.retryAfter("soon", now: now) == nil)
    }

    @Test("the spending cap alerts at 80 % and 100 % once a day; a call the cap refused counts as reaching it")
    func spendingAlerts() {
        var ledger = SpendingLedger(dailyCap: 10)
        let day = Date(timeIntervalSince1970: 1_767_225_600)
        ledger.record(7.9, now: day)
        let none = ledger.dueAlerts(now: day)
        #expect(none.isEmpty)
        ledger.record(0.2, now: day)
        let first = ledger.dueAlerts(now: day)
        let again = ledger.dueAlerts(now: day)
        #expect(first.map(\.percent) == [80] && again.isEmpty, "once a day")
        let fits = ledger.canSpend(2, now: day)
        #expect(!fits)
        let reached = ledger.dueAlerts(now: day)
        #expect(reached.map(\.percent) == [100])
        let tomorrow = day.addingTimeInterval(86_400)
        ledger.record(10, now: tomorrow)
        let next = ledger.dueAlerts(now: tomorrow)
        #expect(next.map(\.percent) == [100], "100 % says it all")
    }

    @Test("training cutoffs: the longest published prefix, overrides, and unknown models knowing everything to today")
    func cutoffs() throws {
        let today = Date(timeIntervalSince1970: 1_796_428_800)  // 2026-12-05
        let published = TrainingCutoffs()
        #expect(
            TrainingCutoffs.show(published.cutoff(model: "gpt-4o-mini-2024-07-18", today: today).date) == "2023-10-01"
        )
        #expect(TrainingCutoffs.show(published.cutoff(model: "gpt-4.1-mini", today: today).date) == "2024-06-01")
        let unknown = published.cutoff(model: "my-model", today: today)
        #expect(unknown.date == today && !unknown.known)
        let cutoffs = TrainingCutoffs(overrides: try TrainingCutoffs.parse("my-model=2022-01-01").get())
        let first = try #require(TrainingCutoffs.day("2021-11-20"))
        #expect(
            cutoffs.lookAhead(models: ["my-model"], firstCandle: first, today: today).first?.contains("2022-01-01")
                == true
        )
        #expect(cutoffs.lookAhead(models: ["my-model"], firstCandle: today, today: today).isEmpty)
        guard case .failure = TrainingCutoffs.parse("gpt-x=June") else {
            Issue.record("a bad date was accepted")
            return
        }
    }

    @Test("the breaker opens after N failures, lets one probe through after the cooldown, and closes on its success")
    func breaker() {
        var breaker = CircuitBreaker(threshold: 3, cooldown: 10)
        let t0 = Date(timeIntervalSince1970: 0)
        var allowed: [Bool] = []
        for _ in 0..<2 {
            allowed.append(breaker.allow(now: t0))
            breaker.recordFailure(now: t0)
        }
        #expect(allowed == [true, true] && !breaker.isOpen)
        breaker.recordFailure(now: t0)
        #expect(breaker.isOpen)
        allowed = [breaker.allow(now: t0 + 9.9), breaker.allow(now: t0 + 10), breaker.allow(now: t0 + 10.1)]
        #expect(allowed == [false, true, false])  // closed until the cooldown, then one probe only
        breaker.recordFailure(now: t0 + 11)
        allowed = [breaker.allow(now: t0 + 20), breaker.allow(now: t0 + 21)]
        #expect(allowed == [false, true])
        breaker.recordSuccess()
        allowed = [breaker.allow(now: t0 + 21), breaker.allow(now: t0 + 21)]
        #expect(allowed == [true, true])
    }

    @Test("the daily spending cap, reset each UTC day")
    func ledger() {
        var ledger = SpendingLedger(dailyCap: 1)
        let day = Date(timeIntervalSince1970: 86_400 * 20_000 + 100)
        let first = ledger.canSpend(0.6, now: day)
        ledger.record(0.6, now: day)
        let answers = [
            first, ledger.canSpend(0.5, now: day), ledger.canSpend(0.4, now: day),
            ledger.canSpend(0.9, now: day + 86_400),
        ]
        #expect(answers == [true, false, true, true])
        #expect(ModelPrice(input: 5, output: 15).cost(inputTokens: 1_000, outputTokens: 100) == 0.0065)
    }

    @Test("consensus: the majority action with the average confidence; a tie is HOLD")
    func consensus() throws {
        let long = TradeProposal(
            action: .long,
            confidence: 0.8,
            leverage: 3,
            entry: 100,
            stopLoss: 97,
            takeProfit: 106,
            reasoning: "a"
        )
        var longer = long
        longer.confidence = 0.9
        longer.leverage = 4
        let hold = TradeProposal.hold("b", confidence: 0.6)
        let combined = try #require(Consensus.combine([long, hold, longer]))
        #expect(combined.action == .long && abs(combined.confidence - 0.85) < 1e-12 && combined.leverage == 4)
        #expect(Consensus.combine([long, hold])?.action == .hold)
        #expect(Consensus.combine([long]) == long)
        #expect(Consensus.combine([]) == nil)
    }
}

@Suite("The grounding gate")
struct GroundingTests {
    let context: AnalysisContext = {
        let primary = IndicatorSnapshot(
            openTime: 0,
            close: 100,
            sma20: 98,
            rsi14: 71.3,
            bollingerUpper: 104,
            bollingerLower: 95,
            volume: 10,
            resistance: 103,
            support: 96
        )
        let hour = IndicatorSnapshot(openTime: 0, close: 100.5, rsi14: 55, volume: 100, resistance: 108, support: 90)
        return AnalysisContext(
            symbol: "BTCUSDT",
            interval: "5m",
            timeframes: ["5m": primary, "1h": hour],
            fundingRate: 0.0001
        )
    }()

    func check(_ citations: [(String, Double)]) -> Grounding.Result {
        Grounding.check(citations.map { Citation(name: $0.0, value: $0.1) }, context: context)
    }

    @Test("an indicator must match its value within tolerance, on the timeframe named or any")
    func indicators() {
        #expect(check([("rsi14", 71)]) == .grounded(1))
        #expect(check([("RSI", 71.3), ("1h.rsi14", 55)]) == .grounded(2))
        #expect(check([("rsi14", 55)]) == .grounded(1), "no timeframe named: the 1h value is in the state")
        #expect(check([("rsi14", 28)]) == .ungrounded(["rsi14 28 cited, the state says 71.3 (5m)"]))
        #expect(check([("1h.rsi14", 71.3)]) == .ungrounded(["1h.rsi14 71.3 cited, the state says 55 (1h)"]))
        #expect(check([("adx14", 30)]) == .ungrounded(["adx14 30: the state has no adx14"]))
        #expect(check([("fibonacci", 0.618)]) == .ungrounded(["\"fibonacci\" is not a figure of the state"]))
        #expect(check([("fundingRate", 0.0001)]) == .grounded(1))
        #expect(check([("position.entry", 99)]) == .ungrounded(["position.entry 99: the state has no position.entry"]))
    }

    @Test("a level must lie within the prices the state shows; no citation is uncited")
    func levels() {
        #expect(check([("support", 96), ("level", 107.9), ("resistance", 90)]) == .grounded(3))
        guard case .ungrounded(let problems) = check([("level", 150)]) else {
            Issue.record("a level far outside the range passed")
            return
        }
        #expect(problems == ["level 150 is outside the prices the state shows (90 to 108)"])
        #expect(check([]) == .uncited)
    }
}
