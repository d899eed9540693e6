import Foundation
import Logging
import Metrics
import TradingCore

/// The analysts that decide together: the LLM models configured (each a ``ResilientModel``) and the
/// rules analyst. With no models, the rules analyst decides. With several, their valid answers are
/// combined by ``Consensus``; one model failing does not stop the others. If every model fails, the
/// rules analyst decides when `rulesFallback` is on, else HOLD. An invalid answer is never traded: it
/// counts as HOLD, and is reported so the worker raises `alert.warning.analyst_invalid`.
///
/// A model's answer is valid when it parses (``AnswerParser``), keeps the framework's limits, and its
/// cited figures are in the context (``Grounding``, by `grounding`). An invalid answer is asked again
/// up to `repairAttempts` times, with the reason, within the decision's deadline and the spending cap.
public struct AnalystPanel: Sendable {
    /// The decision and what it took.
    public struct Verdict: Sendable {
        public var proposal: TradeProposal
        public var provider: String
        public var model: String
        public var promptVersion: String
        public var attempts: Int
        /// Answers that were not valid, with the reason, for the alert.
        public var invalid: [String]
        /// Models that failed (after their retries), with the error.
        public var failures: [String]
        public var prompt: String?
        /// Every reply, repairs included, each headed by its model and attempt.
        public var replies: [String]
        public var cached: Bool
        /// What the calls cost (USD), from their token usage and the price table.
        public var cost: Double = 0
        /// Tokens in and out over every call.
        public var inputTokens = 0
        public var outputTokens = 0
        /// The slowest model's time to its final answer.
        public var latency: Duration = .zero
        /// How each model's last reply was constrained: `openai gpt-x: json_schema`.
        public var outputModes: [String] = []
        /// What the grounding gate found, per model: `grounded`, `uncited` or `ungrounded`.
        public var grounding: [String] = []
        /// Why each refused answer was refused, in order, repairs included.
        public var refusals: [String] = []
        /// Models whose last answer was valid in the schema (whether or not the checks after passed).
        public var wellFormed = 0
        /// Why the models may have known this candle's future (a replay run with --allow-lookahead).
        public var lookAhead: String?
        /// How the context was disguised, when it was (`--anonymise`).
        public var anonymisation: String?

        /// What is recorded of the calls with the decision; nil when no model was called.
        public var usage: LLMUsage? {
            guard attempts > 0 || !replies.isEmpty else { return nil }
            return LLMUsage(
                inputTokens: inputTokens,
                outputTokens: outputTokens,
                latencyMs: Int((latency.timeInterval * 1000).rounded()),
                attempts: attempts,
                outputModes: outputModes,
                grounding: grounding,
                refusals: refusals,
                lookAhead: lookAhead,
                anonymisation: anonymisation
            )
        }
    }

    /// One model's part in a decision.
    struct Asked: Sendable {
        var name: String
        var replies: [ModelReply] = []
        var refusals: [String] = []
        var checked: Result<TradeProposal, InvalidAnswer>?
        /// The last answer read in the schema.
        var wellFormed = false
        var grounding: Grounding.Result?
        var error: ModelCallError?
        var attempts = 0
        var cost = 0.0
        var latency: Duration = .zero
    }

    public let models: [ResilientModel]
    public let rules: RulesAnalyst

    /// What the models have cost today (USD), from the spending book they share.
    public var spentToday: Double {
        get async { await models.first?.ledger.spentToday ?? 0 }
    }
    public let rulesFallback: Bool
    /// How the question is put to a model: the system prompt and its version, and the user message.
    public let prompt: (version: String, system: String, user: @Sendable (AnalysisContext) -> String)
    public let cache: (any HotCache)?
    public let cacheTTL: Duration
    /// How long one decision may take in all, retries included.
    public let decisionBudget: Duration
    /// How strictly cited figures are held to the context.
    public let grounding: GroundingMode
    /// The grounding gate's relative tolerance.
    public let groundingTolerance: Double
    /// How many times an invalid answer is asked again.
    public let repairAttempts: Int
    /// Set when a replay was allowed to ask models about their own past; recorded with each decision.
    public let lookAhead: String?
    /// Models are shown an ``Anonymisation`` of the context, not the market it comes from.
    public let anonymise: Bool
    /// The decision's schema with this framework's leverage cap, built once.
    let schema: JSONValue
    let now: @Sendable () -> Date

    /// A `AnalystPanel` with the fields given.
    public init(
        models: [ResilientModel],
        rules: RulesAnalyst,
        rulesFallback: Bool,
        prompt: (version: String, system: String, user: @Sendable (AnalysisContext) -> String),
        cache: (any HotCache)?,
        cacheTTL: Duration = .seconds(900),
        decisionBudget: Duration = .seconds(120),
        grounding: GroundingMode = .enforce,
        groundingTolerance: Double = 0.01,
        repairAttempts: Int = 1,
        lookAhead: String? = nil,
        anonymise: Bool = false,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.models = models
        self.rules = rules
        self.rulesFallback = rulesFallback
        self.prompt = prompt
        self.cache = cache
        self.cacheTTL = cacheTTL
        self.decisionBudget = decisionBudget
        self.grounding = grounding
        self.groundingTolerance = groundingTolerance
        self.repairAttempts = repairAttempts
        self.lookAhead = lookAhead
        self.anonymise = anonymise
        self.schema = AnswerParser.schema(maxLeverage: rules.framework.maxLeverage)
        self.now = now
    }

    /// The spending alerts due now (80 % and 100 % of the daily cap, once each a UTC day).
    public func spendingAlerts(now: Date) async -> [SpendingAlert] {
        guard let book = models.first?.ledger else { return [] }
        return await book.dueAlerts(now: now)
    }

    /// `provider:model,...` of the panel, or the rules analyst's name.
    public var members: String {
        models.isEmpty
            ? RulesAnalyst.name : models.map { "\($0.model.provider):\($0.model.model)" }.joined(separator: ",")
    }

    /// Asks every model and combines their answers into one verdict.
    public func decide(_ context: AnalysisContext) async -> Verdict {
        guard !models.isEmpty else {
            return rulesVerdict(context, price: context.price ?? 0, attempts: 0, failures: [])
        }
        // What the models see; their prices come back through the same mapping.
        let anonymisation = anonymise ? Anonymisation(for: context) : nil
        let shown = anonymisation?.apply(context) ?? context
        let price = shown.price ?? 0

        let user = prompt.user(shown)
        let members = self.members
        let cacheKey =
            "llm-decision:\(members):\(prompt.version):\(context.symbol):\(context.interval):\(context.candleTime):\(StableHash.fnv1a(user.utf8))"
        if let cache, let hit = await cache.get(cacheKey),
            let cached = try? JSONDecoder().decode(TradeProposal.self, from: Data(hit.bytes))
        {
            Counter(label: "tradebus_analyst_cache_total", dimensions: [("result", "hit")]).increment()
            return Verdict(
                proposal: cached,
                provider: models.count == 1 ? models[0].model.provider : "consensus",
                model: models.count == 1 ? models[0].model.model : members,
                promptVersion: prompt.version,
                attempts: 0,
                invalid: [],
                failures: [],
                prompt: nil,
                replies: [],
                cached: true
            )
        }
        Counter(label: "tradebus_analyst_cache_total", dimensions: [("result", "miss")]).increment()

        let request = ModelRequest(
            system: prompt.system,
            user: user,
            schema: schema
        )
        let deadline = now().addingTimeInterval(decisionBudget.timeInterval)
        let asked = await withTaskGroup(of: (Int, Asked).self) { group in
            for (index, model) in models.enumerated() {
                group.addTask { (index, await ask(model, request, context: shown, price: price, deadline: deadline)) }
            }
            var results: [(Int, Asked)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var valid: [TradeProposal] = []
        var invalid: [String] = []
        var failures: [String] = []
        for one in asked {
            switch one.checked {
            case .success(let proposal)?: valid.append(proposal)
            case .failure(let reason)?: invalid.append("\(one.name): \(reason)")
            case nil: failures.append("\(one.name): \(one.error.map { "\($0)" } ?? "no answer")")
            }
        }
        let provider = models.count == 1 ? models[0].model.provider : "consensus"
        let model = models.count == 1 ? models[0].model.model : members
        var verdict = Verdict(
            proposal: .hold(""),
            provider: provider,
            model: model,
            promptVersion: prompt.version,
            attempts: asked.map(\.attempts).reduce(0, +),
            invalid: invalid,
            failures: failures,
            prompt: request.system + "\n\n" + user,
            replies: asked.flatMap { one in
                one.replies.enumerated().map { index, reply in
                    "[\(one.name), \(index == 0 ? "answer" : "repair \(index)"), \(reply.outputMode.rawValue)]\n\(reply.text)"
                }
            },
            cached: false,
            cost: asked.map(\.cost).reduce(0, +),
            inputTokens: asked.flatMap(\.replies).map(\.inputTokens).reduce(0, +),
            outputTokens: asked.flatMap(\.replies).map(\.outputTokens).reduce(0, +),
            latency: asked.map(\.latency).max() ?? .zero,
            outputModes: asked.compactMap { one in one.replies.last.map { "\(one.name): \($0.outputMode.rawValue)" } },
            grounding: asked.compactMap { one in one.grounding.map { "\(one.name): \($0.label)" } },
            refusals: asked.flatMap { one in one.refusals.map { "\(one.name): \($0)" } },
            wellFormed: asked.filter(\.wellFormed).count,
            lookAhead: lookAhead,
            anonymisation: anonymisation?.description
        )

        if !invalid.isEmpty {
            // Never trade on a panel where an answer could not be believed.
            Counter(label: "tradebus_analyst_invalid_total").increment(by: invalid.count)
            verdict.proposal = .hold("invalid analyst answer: \(invalid.joined(separator: "; "))")
            return verdict
        }
        guard let combined = Consensus.combine(valid) else {
            Counter(label: "tradebus_analyst_all_failed_total").increment()
            if rulesFallback {
                var fallback = rulesVerdict(
                    context,
                    price: context.price ?? 0,
                    attempts: verdict.attempts,
                    failures: failures
                )
                fallback.proposal.reasoning =
                    "every model failed; rules analyst decided: " + fallback.proposal.reasoning
                fallback.cost = verdict.cost
                fallback.latency = verdict.latency
                return fallback
            }
            verdict.proposal = .hold("every model failed: \(failures.joined(separator: "; "))")
            return verdict
        }
        // Averaging can take the consensus below the minimum confidence: check it again.
        switch rules.framework.check(combined, price: price) {
        case .success(let proposal): verdict.proposal = proposal
        case .failure(let reason): verdict.proposal = .hold("consensus not usable: \(reason)")
        }
        if let anonymisation { verdict.proposal = anonymisation.restore(verdict.proposal) }
        if failures.isEmpty, let cache, let bytes = try? JSONEncoder().encode(verdict.proposal) {
            await cache.set(
                cacheKey,
                CachedValue(
                    bytes: Array(bytes),
                    sourceTime: Date(timeIntervalSince1970: Double(context.candleTime) / 1000)
                ),
                ttl: cacheTTL
            )
        }
        return verdict
    }

    /// Asks one model, checks its answer, and asks again with the reason while it is invalid and
    /// repairs, time and the spending cap allow.
    func ask(
        _ model: ResilientModel,
        _ request: ModelRequest,
        context: AnalysisContext,
        price: Double,
        deadline: Date
    ) async -> Asked {
        var asked = Asked(name: "\(model.model.provider) \(model.model.model)")
        var request = request
        let started = ContinuousClock.now
        while true {
            let outcome = await model.ask(request, deadline: deadline)
            asked.attempts += outcome.attempts
            asked.cost += outcome.cost
            asked.latency = ContinuousClock.now - started
            guard let reply = outcome.reply else {
                // A repair that fails to come back leaves the earlier refusal standing.
                if asked.checked == nil { asked.error = outcome.error }
                return asked
            }
            asked.replies.append(reply)
            let answer = AnswerParser.answer(from: reply, symbol: context.symbol)
            asked.wellFormed = false
            if case .success(let parsed) = answer {
                asked.wellFormed = true
                asked.grounding = ground(parsed, context: context)
            }
            let checked = answer.flatMap { parsed -> Result<TradeProposal, InvalidAnswer> in
                if case .ungrounded(let problems)? = asked.grounding, grounding == .enforce || grounding == .strict {
                    return .failure(InvalidAnswer("ungrounded: \(problems.joined(separator: "; "))"))
                }
                if asked.grounding == .uncited && grounding == .strict {
                    return .failure(InvalidAnswer("ungrounded: the answer cites no figure of the state"))
                }
                return rules.framework.check(parsed.proposal, price: price)
            }
            asked.checked = checked
            guard case .failure(let reason) = checked else { return asked }
            asked.refusals.append(reason.description)
            guard asked.replies.count <= repairAttempts, now() < deadline else { return asked }
            Counter(
                label: "tradebus_llm_repairs_total",
                dimensions: [("provider", model.model.provider), ("model", model.model.model)]
            ).increment()
            request.repair = ModelRequest.Repair(reply: reply.text, reason: reason.description)
        }
    }

    /// The grounding gate's finding for one answer, counted; nil when the gate is off.
    func ground(_ answer: ParsedAnswer, context: AnalysisContext) -> Grounding.Result? {
        guard grounding != .off else { return nil }
        let result = Grounding.check(answer.citations, context: context, tolerance: groundingTolerance)
        Counter(label: "tradebus_analyst_grounding_total", dimensions: [("result", result.label)]).increment()
        return result
    }

    func rulesVerdict(_ context: AnalysisContext, price: Double, attempts: Int, failures: [String]) -> Verdict {
        Verdict(
            proposal: rules.checkedDecision(context),
            provider: RulesAnalyst.name,
            model: RulesAnalyst.model,
            promptVersion: RulesAnalyst.promptVersion,
            attempts: attempts,
            invalid: [],
            failures: failures,
            prompt: nil,
            replies: [],
            cached: false
        )
    }
}
