import AsyncHTTPClient
import Foundation
import LLMProviders
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices

/// The trading framework's limits, read the same way by every worker that applies them.
extension TradingFramework {
    /// Reads the rules analyst's thresholds.
    public static func read(_ config: SettingsReader) throws -> TradingFramework {
        var framework = TradingFramework()
        framework.minConfidence = try config.double(
            "MIN_AI_CONFIDENCE",
            default: 0.75,
            range: 0...1,
            help: "no trade below this confidence"
        )
        framework.maxLeverage = try config.int("MAX_LEVERAGE", default: 5, range: 1...125, help: "leverage cap")
        framework.minStopFraction = try config.double(
            "MIN_STOP_LOSS_PERCENT",
            default: 0.005,
            range: 0.0001...0.5,
            help: "nearest stop, fraction of entry (0.005 = 0.5%)"
        )
        framework.maxStopFraction = try config.double(
            "MAX_STOP_LOSS_PERCENT",
            default: 0.07,
            range: 0.0001...0.5,
            help: "farthest stop, fraction of entry (0.07 = 7%)"
        )
        guard framework.minStopFraction < framework.maxStopFraction else {
            throw ConfigError(
                key: "MIN_STOP_LOSS_PERCENT",
                message: "must be below MAX_STOP_LOSS_PERCENT (\(framework.maxStopFraction))"
            )
        }
        framework.minRewardRisk = try config.double(
            "MIN_REWARD_RISK",
            default: 1.5,
            range: 0.1...100,
            help: "take-profit distance over stop distance"
        )
        return framework
    }
}

/// ai-analyst's configuration: who decides, within which bounds.
public struct AnalystConfiguration: Sendable {
    /// One LLM the panel asks.
    public struct ModelSpec: Sendable {
        public var provider: String
        public var baseURL: String
        public var model: String
        public var apiKey: String?
    }

    public var framework: TradingFramework
    /// `ANALYST_PROVIDERS=copy`: decisions come from followed leaders' fills (``CopyConfiguration``).
    public var copying: Bool
    public var models: [ModelSpec]
    public var rulesFallback: Bool
    public var resilience: ResilientModel.Settings
    public var dailyBudget: Double
    public var decisionBudget: Duration
    public var cacheTTL: Duration
    public var service: SignalAnalyst.Settings
    public var scanInterval: Duration?
    public var scanSymbols: [String]
    public var prefetch: Int
    /// How strictly cited figures are held to the context (`GROUNDING`).
    public var grounding: GroundingMode = .enforce
    public var groundingTolerance = 0.01
    /// How many times an invalid answer is asked again (`LLM_REPAIR_ATTEMPTS`).
    public var repairAttempts = 1
    /// The prompt version asked with (`ANALYST_PROMPT_VERSION`).
    public var promptVersion = AnalystPrompt.currentVersion
    /// Each model's training cutoff (`LLM_TRAINING_CUTOFFS` over the published table).
    public var cutoffs = TrainingCutoffs()
    /// Set by a replay allowed to ask models about their own past: recorded with every decision.
    public var lookAhead: String?
    /// A candidate that decides beside the panel on the same signals (`ANALYST_SHADOW`); its decisions
    /// are recorded apart and traded on a paper account of their own.
    public var shadow: ModelSpec?
    /// The candidate's prompt version (`ANALYST_SHADOW=...@version`).
    public var shadowPrompt = AnalystPrompt.currentVersion
    /// The share of live signals the candidate decides instead of the panel (`ANALYST_CANARY_PERCENT`).
    public var canaryPercent = 0.0
    /// Models are shown the context anonymised (`LLM_ANONYMISE`, `--anonymise`).
    public var anonymise = false

    /// Reads and checks the analyst's keys; a bad one stops it at start, naming the key.
    public static func read(_ config: SettingsReader) throws -> AnalystConfiguration {
        let framework = try TradingFramework.read(config)
        let providersText = try config.string(
            "ANALYST_PROVIDERS",
            default: "rules",
            help: "comma-separated: rules, openai, anthropic; or copy, alone"
        )!
        let providers = providersText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for provider in providers where !["rules", "openai", "anthropic", "copy"].contains(provider) {
            throw ConfigError(
                key: "ANALYST_PROVIDERS",
                message: "'\(provider)' is not one of rules, openai, anthropic, copy"
            )
        }
        if providers.contains("copy") && providers.count > 1 {
            throw ConfigError(
                key: "ANALYST_PROVIDERS",
                message:
                    "copy runs alone (its decisions come from leaders' fills, not signals); run another ai-analyst for \(providers.filter { $0 != "copy" }.joined(separator: ","))"
            )
        }
        var models: [ModelSpec] = []
        if providers.contains("openai") {
            let base = try config.string(
                "OPENAI_BASE_URL",
                default: "https://api.openai.com/v1",
                help: "any OpenAI-compatible server"
            )!
            let key = try config.string("OPENAI_API_KEY", secret: true, help: "bearer key; unset for local servers")
            for model in try config.string(
                "OPENAI_MODEL",
                default: "gpt-4o-mini",
                help: "comma-separated models; each one votes"
            )!.split(separator: ",") {
                models.append(
                    ModelSpec(
                        provider: "openai",
                        baseURL: base,
                        model: model.trimmingCharacters(in: .whitespaces),
                        apiKey: key
                    )
                )
            }
        }
        if providers.contains("anthropic") {
            let base = try config.string(
                "ANTHROPIC_BASE_URL",
                default: "https://api.anthropic.com",
                help: "Messages API base"
            )!
            guard let key = try config.string("ANTHROPIC_API_KEY", secret: true, help: "x-api-key") else {
                throw ConfigError(
                    key: "ANTHROPIC_API_KEY",
                    message: "is required when ANALYST_PROVIDERS has anthropic (or ANTHROPIC_API_KEY_FILE)"
                )
            }
            for model in try config.string(
                "ANTHROPIC_MODEL",
                default: "claude-3-5-haiku-latest",
                help: "comma-separated models; each one votes"
            )!.split(separator: ",") {
                models.append(
                    ModelSpec(
                        provider: "anthropic",
                        baseURL: base,
                        model: model.trimmingCharacters(in: .whitespaces),
                        apiKey: key
                    )
                )
            }
        }
        var resilience = ResilientModel.Settings()
        resilience.attemptTimeout = .seconds(
            try config.double("LLM_TIMEOUT_SECONDS", default: 30, range: 0.1...600, help: "per attempt")
        )
        resilience.retry.maxRetries = try config.int(
            "LLM_MAX_RETRIES",
            default: 3,
            range: 0...10,
            help: "retries after the first attempt"
        )
        let base = try config.int("LLM_BACKOFF_BASE_MS", default: 1_000, range: 1...60_000, help: "backoff base")
        let cap = try config.int("LLM_BACKOFF_MAX_MS", default: 20_000, range: base...600_000, help: "backoff cap")
        resilience.retry.backoff = Backoff(initial: .milliseconds(base), maximum: .milliseconds(cap))
        resilience.retry.retryAfterCap = .seconds(
            try config.int("LLM_RETRY_AFTER_MAX_SECONDS", default: 60, range: 0...3_600, help: "cap on Retry-After")
        )
        resilience.breakerThreshold = try config.int(
            "LLM_BREAKER_FAILURES",
            default: 5,
            range: 1...1_000,
            help: "failures in a row that open the breaker"
        )
        resilience.breakerCooldown = try config.double(
            "LLM_BREAKER_COOLDOWN_SECONDS",
            default: 60,
            range: 0...86_400,
            help: "open before a probe"
        )
        let priceText = try config.string(
            "LLM_PRICE_PER_MTOK",
            default: "5/15",
            help: "USD per million input/output tokens"
        )!
        let parts = priceText.split(separator: "/").compactMap { Double($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 >= 0 }) else {
            throw ConfigError(
                key: "LLM_PRICE_PER_MTOK",
                message: "'\(priceText)' is not input/output USD per million tokens, like 5/15"
            )
        }
        resilience.price = ModelPrice(input: parts[0], output: parts[1])
        let decisionSeconds = try config.double(
            "DECISION_TIMEOUT_SECONDS",
            default: 120,
            range: 1...1_500,
            help: "one decision in all, below the broker's consumer timeout"
        )
        let scanSeconds = try config.double(
            "SCAN_INTERVAL_SECONDS",
            default: 0,
            range: 0...86_400,
            help: "0: no periodic scan"
        )
        var service = SignalAnalyst.Settings()
        service.maxSnapshotAge = try config.double(
            "MAX_SNAPSHOT_AGE_SECONDS",
            default: 120,
            range: 0...86_400,
            help: "beyond its interval"
        )
        service.intervals = try config.string(
            "ANALYSIS_INTERVALS",
            default: "5m,15m,1h,4h",
            help: "timeframes in the context"
        )!
        .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for interval in service.intervals where CandleInterval.milliseconds(interval) == nil {
            throw ConfigError(key: "ANALYSIS_INTERVALS", message: "'\(interval)' is not an interval like 5m, 1h")
        }
        let scanSymbols = try config.string("SCAN_SYMBOLS", default: "", help: "symbols the periodic scan looks at")!
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter { !$0.isEmpty }
        if scanSeconds > 0 && scanSymbols.isEmpty {
            throw ConfigError(key: "SCAN_SYMBOLS", message: "is required when SCAN_INTERVAL_SECONDS is set")
        }
        var configuration = AnalystConfiguration(
            framework: framework,
            copying: providers == ["copy"],
            models: models,
            rulesFallback: try config.choice(
                "ANALYST_FALLBACK",
                default: "rules",
                allowed: ["rules", "hold"],
                help: "when every LLM fails"
            ) == "rules",
            resilience: resilience,
            dailyBudget: try config.double(
                "LLM_DAILY_BUDGET_USD",
                default: 10,
                range: 0...1_000_000,
                help: "spending cap per UTC day"
            ),
            decisionBudget: .milliseconds(Int64(decisionSeconds * 1000)),
            cacheTTL: .seconds(
                try config.int("DECISION_CACHE_TTL_SECONDS", default: 900, range: 1...86_400, help: "decision cache")
            ),
            service: service,
            scanInterval: scanSeconds > 0 ? .milliseconds(Int64(scanSeconds * 1000)) : nil,
            scanSymbols: scanSymbols,
            prefetch: try config.int(
                "ANALYST_PREFETCH",
                default: 1,
                range: 1...1_000,
                help: "unacked signals per analyst"
            )
        )
        configuration.grounding = GroundingMode(
            rawValue: try config.choice(
                "GROUNDING",
                default: "enforce",
                allowed: GroundingMode.allCases.map(\.rawValue),
                help: "cited figures against the context"
            )
        )!
        configuration.groundingTolerance = try config.double(
            "GROUNDING_TOLERANCE",
            default: 0.01,
            range: 0...0.5,
            help: "relative difference allowed between a cited figure and the context's"
        )
        configuration.repairAttempts = try config.int(
            "LLM_REPAIR_ATTEMPTS",
            default: 1,
            range: 0...3,
            help: "times an invalid answer is asked again with the reason"
        )
        configuration.promptVersion = try config.string(
            "ANALYST_PROMPT_VERSION",
            default: AnalystPrompt.currentVersion,
            help: "a prompt shipped in Sources/LLMProviders/Prompts"
        )!
        switch TrainingCutoffs.parse(
            try config.string("LLM_TRAINING_CUTOFFS", default: "", help: "model=YYYY-MM-DD,... over the table")!
        ) {
        case .success(let overrides): configuration.cutoffs = TrainingCutoffs(overrides: overrides)
        case .failure(let reason): throw ConfigError(key: "LLM_TRAINING_CUTOFFS", message: reason.description)
        }
        if let text = try config.string(
            "ANALYST_SHADOW",
            help: "a candidate beside the panel: provider:model[@prompt-version] (openai, anthropic or rules)"
        ), !text.isEmpty {
            let (spec, prompt) = try shadowSpec(text, config: config, framework: framework)
            configuration.shadow = spec
            configuration.shadowPrompt = prompt
        }
        configuration.anonymise = try config.bool(
            "LLM_ANONYMISE",
            default: false,
            help: "hide the symbol, shift dates and rescale prices in what models are shown"
        )
        configuration.canaryPercent = try config.double(
            "ANALYST_CANARY_PERCENT",
            default: 0,
            range: 0...100,
            help: "share of live signals the ANALYST_SHADOW candidate decides"
        )
        if configuration.canaryPercent > 0 && configuration.shadow == nil {
            throw ConfigError(key: "ANALYST_CANARY_PERCENT", message: "needs ANALYST_SHADOW: the candidate to route to")
        }
        do { _ = try AnalystPrompt(version: configuration.promptVersion, framework: framework) } catch {
            throw ConfigError(key: "ANALYST_PROMPT_VERSION", message: "\(error)")
        }
        return configuration
    }

    /// What a replay from `firstCandle` would ask these models (the shadow's too) about their own past.
    public func lookAhead(firstCandle: Date, today: Date = Date()) -> [String] {
        let asked = (models + (shadow.map { $0.provider == "rules" ? [] : [$0] } ?? [])).map(\.model)
        return cutoffs.lookAhead(models: asked, firstCandle: firstCandle, today: today)
    }

    /// `ANALYST_SHADOW`'s `provider:model[@prompt-version]`, with the provider's URL and key.
    static func shadowSpec(
        _ text: String,
        config: SettingsReader,
        framework: TradingFramework
    ) throws -> (ModelSpec, String) {
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        let prompt = parts.count == 2 ? parts[1] : AnalystPrompt.currentVersion
        let target = (parts.first ?? "").split(separator: ":", maxSplits: 1).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let provider = target.first?.lowercased() ?? ""
        guard ["openai", "anthropic", "rules"].contains(provider), provider == "rules" || target.count == 2,
            target.count == 1 || !target[1].isEmpty
        else {
            throw ConfigError(
                key: "ANALYST_SHADOW",
                message: "'\(text)' is not provider:model[@prompt-version] with provider openai, anthropic or rules"
            )
        }
        do { _ = try AnalystPrompt(version: prompt, framework: framework) } catch {
            throw ConfigError(key: "ANALYST_SHADOW", message: "prompt '\(prompt)' is not shipped with this build")
        }
        guard provider != "rules" else {
            return (ModelSpec(provider: "rules", baseURL: "", model: RulesAnalyst.model, apiKey: nil), prompt)
        }
        let anthropic = provider == "anthropic"
        let base = try config.string(
            anthropic ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL",
            default: anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1",
            help: "the provider's base URL"
        )!
        let key = try config.string(anthropic ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY", secret: true, help: "key")
        return (ModelSpec(provider: provider, baseURL: base, model: target[1], apiKey: key), prompt)
    }

    /// The shadow candidate's panel, with a spending book of its own (the same daily cap), or nil.
    public func shadowPanel(
        cache: (any HotCache)?,
        logger: Logger,
        http: HTTPClient = .shared,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> AnalystPanel? {
        guard let shadow else { return nil }
        var candidate = self
        candidate.models = shadow.provider == "rules" ? [] : [shadow]
        candidate.promptVersion = shadowPrompt
        candidate.shadow = nil
        // Never from the live panel's cache: the candidate answers for itself.
        return try candidate.panel(cache: nil, logger: logger, http: http, now: now)
    }

    /// The panel these settings describe.
    public func panel(
        cache: (any HotCache)?,
        logger: Logger,
        http: HTTPClient = .shared,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> AnalystPanel {
        let prompt = try AnalystPrompt(version: promptVersion, framework: framework)
        let book = SpendingBook(dailyCap: dailyBudget)
        let resilient = models.map { spec -> ResilientModel in
            let model: any LanguageModel =
                spec.provider == "openai"
                ? OpenAIChatModel(baseURL: spec.baseURL, model: spec.model, apiKey: spec.apiKey, http: http)
                : AnthropicMessagesModel(baseURL: spec.baseURL, model: spec.model, apiKey: spec.apiKey, http: http)
            return ResilientModel(model: model, settings: resilience, ledger: book, logger: logger)
        }
        return AnalystPanel(
            models: resilient,
            rules: RulesAnalyst(framework: framework),
            rulesFallback: rulesFallback,
            prompt: (prompt.version, prompt.system, { prompt.user($0) }),
            cache: cache,
            cacheTTL: cacheTTL,
            decisionBudget: decisionBudget,
            grounding: grounding,
            groundingTolerance: groundingTolerance,
            repairAttempts: repairAttempts,
            lookAhead: lookAhead,
            anonymise: anonymise,
            now: now
        )
    }
}

/// Runs the periodic scan until shutdown.
public struct ScanService: Service {
    public let service: SignalAnalyst
    public let symbols: [String]
    public let interval: String
    public let every: Duration
    public let logger: Logger

    /// A `ScanService` with the fields given.
    public init(
        service: SignalAnalyst,
        symbols: [String],
        interval: String,
        every: Duration,
        logger: Logger
    ) {
        self.service = service
        self.symbols = symbols
        self.interval = interval
        self.every = every
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for symbol in symbols {
                    do { try await service.scan(symbol: symbol, interval: interval) } catch {
                        logger.error("scan failed", metadata: ["symbol": "\(symbol)", "error": "\(error)"])
                    }
                }
                try await Task.sleep(for: every)
            }
        }
    }
}
