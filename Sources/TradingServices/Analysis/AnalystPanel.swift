import Foundation
import Logging
import Metrics
import TradingCore

/// The analysts that decide together: the LLM models configured (each a ``ResilientModel``) and the
/// rules analyst. With no models, the rules analyst decides. With several, their valid answers are
/// combined by ``Consensus``; one model failing does not stop the others. If every model fails, the
/// rules analyst decides when `rulesFallback` is on, else HOLD. An invalid answer is never traded: it
/// counts as HOLD, and is reported so the worker raises `alert.warning.analyst_invalid`.
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
        public var replies: [String]
        public var cached: Bool
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
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.models = models
        self.rules = rules
        self.rulesFallback = rulesFallback
        self.prompt = prompt
        self.cache = cache
        self.cacheTTL = cacheTTL
        self.decisionBudget = decisionBudget
        self.now = now
    }

    /// Asks every model and combines their answers into one verdict.
    public func decide(_ context: AnalysisContext) async -> Verdict {
        let price = context.price ?? 0
        guard !models.isEmpty else { return rulesVerdict(context, price: price, attempts: 0, failures: []) }

        let user = prompt.user(context)
        let members = models.map { "\($0.model.provider):\($0.model.model)" }.joined(separator: ",")
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

        let request = ModelRequest(system: prompt.system, user: user)
        let deadline = now().addingTimeInterval(decisionBudget.timeInterval)
        let outcomes = await withTaskGroup(of: (Int, ResilientModel.Outcome).self) { group in
            for (index, model) in models.enumerated() {
                group.addTask { (index, await model.ask(request, deadline: deadline)) }
            }
            var results: [(Int, ResilientModel.Outcome)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var valid: [TradeProposal] = []
        var invalid: [String] = []
        var failures: [String] = []
        var replies: [String] = []
        for (model, outcome) in zip(models, outcomes) {
            let name = "\(model.model.provider) \(model.model.model)"
            guard let reply = outcome.reply else {
                failures.append("\(name): \(outcome.error.map { "\($0)" } ?? "no answer")")
                continue
            }
            replies.append(reply.text)
            let checked = AnswerParser.proposal(from: reply, symbol: context.symbol).flatMap {
                rules.framework.check($0, price: price)
            }
            switch checked {
            case .success(let proposal): valid.append(proposal)
            case .failure(let reason): invalid.append("\(name): \(reason)")
            }
        }
        let attempts = outcomes.map(\.attempts).reduce(0, +)
        let provider = models.count == 1 ? models[0].model.provider : "consensus"
        let model = models.count == 1 ? models[0].model.model : members

        if !invalid.isEmpty {
            // Never trade on a panel where an answer could not be believed.
            Counter(label: "tradebus_analyst_invalid_total").increment(by: invalid.count)
            return Verdict(
                proposal: .hold("invalid analyst answer: \(invalid.joined(separator: "; "))"),
                provider: provider,
                model: model,
                promptVersion: prompt.version,
                attempts: attempts,
                invalid: invalid,
                failures: failures,
                prompt: request.system + "\n\n" + user,
                replies: replies,
                cached: false
            )
        }
        guard let combined = Consensus.combine(valid) else {
            Counter(label: "tradebus_analyst_all_failed_total").increment()
            if rulesFallback {
                var verdict = rulesVerdict(context, price: price, attempts: attempts, failures: failures)
                verdict.proposal.reasoning = "every model failed; rules analyst decided: " + verdict.proposal.reasoning
                return verdict
            }
            return Verdict(
                proposal: .hold("every model failed: \(failures.joined(separator: "; "))"),
                provider: provider,
                model: model,
                promptVersion: prompt.version,
                attempts: attempts,
                invalid: [],
                failures: failures,
                prompt: request.system + "\n\n" + user,
                replies: replies,
                cached: false
            )
        }
        // Averaging can take the consensus below the minimum confidence: check it again.
        let final: TradeProposal
        switch rules.framework.check(combined, price: price) {
        case .success(let proposal): final = proposal
        case .failure(let reason): final = .hold("consensus not usable: \(reason)")
        }
        if failures.isEmpty, let cache, let bytes = try? JSONEncoder().encode(final) {
            await cache.set(
                cacheKey,
                CachedValue(
                    bytes: Array(bytes),
                    sourceTime: Date(timeIntervalSince1970: Double(context.candleTime) / 1000)
                ),
                ttl: cacheTTL
            )
        }
        return Verdict(
            proposal: final,
            provider: provider,
            model: model,
            promptVersion: prompt.version,
            attempts: attempts,
            invalid: [],
            failures: failures,
            prompt: request.system + "\n\n" + user,
            replies: replies,
            cached: false
        )
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
