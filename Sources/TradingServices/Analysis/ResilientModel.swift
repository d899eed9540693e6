import Foundation
import Logging
import Metrics
import TradingCore

/// One model of one provider with every bound a trading system needs around it: a timeout per
/// attempt, retries with backoff and jitter (or the provider's Retry-After), a circuit breaker, the
/// daily spending cap, and a deadline for the whole decision. Time and sleeping are injected, so tests
/// check the waits without waiting.
public actor ResilientModel {
    /// Retries, backoff, the breaker and the spending cap of one model.
    public struct Settings: Sendable {
        public var retry = RetryPolicy()
        public var attemptTimeout: Duration = .seconds(30)
        public var breakerThreshold = 5
        public var breakerCooldown: TimeInterval = 60
        public var price = ModelPrice(input: 5, output: 15)
        /// The defaults, as documented on each field.
        public init() {}
    }

    /// What asking came to.
    public struct Outcome: Sendable {
        public var reply: ModelReply?
        public var attempts: Int
        public var error: ModelCallError?
        public var cost: Double
    }

    public nonisolated let model: any LanguageModel
    let settings: Settings
    let ledger: SpendingBook
    let now: @Sendable () -> Date
    let sleep: @Sendable (Duration) async throws -> Void
    let random: @Sendable () -> Double
    let logger: Logger
    private var breaker: CircuitBreaker
    /// The output constraint of the last reply, to log when it changes.
    private var outputMode: OutputMode?

    /// `model` behind retries, a breaker and the spending cap.
    public init(
        model: any LanguageModel,
        settings: Settings,
        ledger: SpendingBook,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }
    ) {
        self.model = model
        self.settings = settings
        self.ledger = ledger
        self.now = now
        self.sleep = sleep
        self.random = random
        self.logger = logger
        self.breaker = CircuitBreaker(threshold: settings.breakerThreshold, cooldown: settings.breakerCooldown)
    }

    public var breakerState: CircuitBreaker.State { breaker.state }

    /// Asks, retrying what is worth retrying, until an answer, a final failure, or `deadline`.
    public func ask(_ request: ModelRequest, deadline: Date) async -> Outcome {
        var request = request
        request.timeout = settings.attemptTimeout
        let dimensions = [("provider", model.provider), ("model", model.model)]
        var attempts = 0
        var cost = 0.0
        var retry = 0
        while true {
            guard breaker.allow(now: now()) else {
                return Outcome(
                    reply: nil,
                    attempts: attempts,
                    error: ModelCallError(.refusedLocally("circuit breaker open for \(model.provider) \(model.model)")),
                    cost: cost
                )
            }
            // The worst case of this call: the whole prompt in, max_tokens out (a character is at most a token).
            let asked = request.repair.map { $0.reply.count + $0.instruction.count } ?? 0
            let estimate = settings.price.cost(
                inputTokens: request.system.count + request.user.count + asked,
                outputTokens: request.maxTokens
            )
            guard await ledger.canSpend(estimate, now: now()) else {
                breaker.recordSuccess()  // not the provider's failure
                return Outcome(
                    reply: nil,
                    attempts: attempts,
                    error: ModelCallError(.refusedLocally("daily LLM spending cap reached")),
                    cost: cost
                )
            }
            attempts += 1
            let started = ContinuousClock.now
            do {
                let reply = try await model.complete(request)
                Timer(label: "tradebus_llm_latency_seconds", dimensions: dimensions).recordNanoseconds(
                    (ContinuousClock.now - started).nanoseconds
                )
                breaker.recordSuccess()
                let spent = settings.price.cost(inputTokens: reply.inputTokens, outputTokens: reply.outputTokens)
                cost += spent
                await ledger.record(spent, now: now())
                Counter(label: "tradebus_llm_tokens_total", dimensions: dimensions + [("direction", "input")])
                    .increment(by: reply.inputTokens)
                Counter(label: "tradebus_llm_tokens_total", dimensions: dimensions + [("direction", "output")])
                    .increment(by: reply.outputTokens)
                Counter(label: "tradebus_llm_cost_microusd_total", dimensions: dimensions).increment(
                    by: Int(spent * 1_000_000)
                )
                noteOutputMode(reply.outputMode, asked: request.schema != nil, dimensions: dimensions)
                return Outcome(reply: reply, attempts: attempts, error: nil, cost: cost)
            } catch {
                breaker.recordFailure(now: now())
                Counter(label: "tradebus_llm_failures_total", dimensions: dimensions).increment()
                guard RetryPolicy.isRetryable(error), retry < settings.retry.maxRetries else {
                    logger.warning(
                        "LLM call failed",
                        metadata: [
                            "provider": "\(model.provider)", "model": "\(model.model)", "error": "\(error)",
                            "attempts": "\(attempts)",
                        ]
                    )
                    return Outcome(reply: nil, attempts: attempts, error: error, cost: cost)
                }
                let delay = settings.retry.delay(attempt: retry, after: error, now: now(), unit: random())
                if now().addingTimeInterval(delay.timeInterval) > deadline {
                    logger.warning(
                        "LLM call failed; no time left to retry",
                        metadata: ["provider": "\(model.provider)", "error": "\(error)"]
                    )
                    return Outcome(reply: nil, attempts: attempts, error: error, cost: cost)
                }
                Counter(label: "tradebus_llm_retries_total", dimensions: dimensions).increment()
                logger.info(
                    "LLM call failed; retrying",
                    metadata: ["provider": "\(model.provider)", "error": "\(error)", "retry_in": "\(delay)"]
                )
                retry += 1
                do { try await sleep(delay) } catch {
                    return Outcome(
                        reply: nil,
                        attempts: attempts,
                        error: ModelCallError(.refusedLocally("cancelled")),
                        cost: cost
                    )
                }
            }
        }
    }
}

extension ResilientModel {
    /// Counts the path each reply took (`tradebus_llm_output_mode_total`) and says once, on a change,
    /// whether the server constrains answers to the schema.
    func noteOutputMode(_ mode: OutputMode, asked: Bool, dimensions: [(String, String)]) {
        Counter(label: "tradebus_llm_output_mode_total", dimensions: dimensions + [("mode", mode.rawValue)])
            .increment()
        guard mode != outputMode else { return }
        outputMode = mode
        let metadata: Logger.Metadata = [
            "provider": "\(model.provider)", "model": "\(model.model)", "output_mode": "\(mode.rawValue)",
        ]
        switch mode {
        case .jsonSchema, .tool:
            logger.info("structured output: the server constrains answers to the decision's schema", metadata: metadata)
        case .jsonObject where asked:
            logger.warning(
                "structured output: the server refused a JSON schema; asking for JSON mode instead",
                metadata: metadata
            )
        case .text where asked:
            logger.warning(
                "structured output: the server takes no schema and no JSON mode; reading JSON from free text",
                metadata: metadata
            )
        default: break
        }
    }
}

/// The spending ledger shared by every model of the worker.
public actor SpendingBook {
    private var ledger: SpendingLedger
    /// A ledger allowing `dailyCap` USD a day.
    public init(dailyCap: Double) { ledger = SpendingLedger(dailyCap: dailyCap) }
    /// Whether the daily spending cap leaves room for a call costing `estimate`.
    public func canSpend(_ estimate: Double, now: Date) -> Bool { ledger.canSpend(estimate, now: now) }
    /// Adds a call's cost to today's spending.
    public func record(_ cost: Double, now: Date) { ledger.record(cost, now: now) }
    public var spentToday: Double { ledger.spent }
    /// Today's spending as a share of the cap (0 with no cap).
    public var usedToday: Double { ledger.dailyCap > 0 ? ledger.spent / ledger.dailyCap : 0 }
    /// The thresholds of the cap crossed today and not yet alerted.
    public func dueAlerts(now: Date) -> [SpendingAlert] { ledger.dueAlerts(now: now) }
}
