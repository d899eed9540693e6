import Foundation

/// A request to a language model.
public struct ModelRequest: Sendable, Hashable {
    /// A refused answer and why, sent back once so the model can correct it.
    public struct Repair: Sendable, Hashable {
        /// What the model answered before.
        public var reply: String
        /// Why that answer was refused.
        public var reason: String
        /// A `Repair` with the fields given.
        public init(reply: String, reason: String) {
            self.reply = reply
            self.reason = reason
        }

        /// The message that asks again.
        public var instruction: String {
            "Your answer was refused: \(reason). Answer again with exactly one JSON object in the schema, "
                + "citing only figures that are in the state."
        }
    }

    public var system: String
    public var user: String
    public var maxTokens: Int
    public var timeout: Duration
    /// The JSON Schema the answer must follow, sent where the provider can constrain output to it;
    /// nil asks for free text.
    public var schema: JSONValue?
    /// A second ask after a refused answer.
    public var repair: Repair?

    /// A `ModelRequest` with the fields given; the schema is the decision's unless told otherwise.
    public init(
        system: String,
        user: String,
        maxTokens: Int = 600,
        timeout: Duration = .seconds(30),
        schema: JSONValue? = AnswerParser.schema,
        repair: Repair? = nil
    ) {
        self.system = system
        self.user = user
        self.maxTokens = maxTokens
        self.timeout = timeout
        self.schema = schema
        self.repair = repair
    }
}

/// Why a call to a language model failed.
public struct ModelCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Sendable, Hashable {
        /// The provider answered with an HTTP error; `retryAfter` is its Retry-After header, if any.
        case http(status: Int, body: String, retryAfter: String?)
        case timeout
        case connection(String)
        /// Our own bounds said no: the circuit breaker is open, or the spending cap is reached.
        case refusedLocally(String)
    }

    public var code: Code
    /// A failure of kind `code`.
    public init(_ code: Code) { self.code = code }

    public var description: String {
        switch code {
        case .http(let status, let body, _): "HTTP \(status): \(body.prefix(200))"
        case .timeout: "timed out"
        case .connection(let reason): "connection failed: \(reason)"
        case .refusedLocally(let reason): reason
        }
    }
}

/// Port: one model of one provider.
public protocol LanguageModel: Sendable {
    /// `openai` or `anthropic`.
    var provider: String { get }
    var model: String { get }
    /// One HTTP attempt; no retries here.
    func complete(_ request: ModelRequest) async throws(ModelCallError) -> ModelReply
}

/// When to try a failed call again, and how long to wait first.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt.
    public var maxRetries = 3
    /// Base × 2^attempt, capped, with full jitter.
    public var backoff = Backoff(initial: .seconds(1), maximum: .seconds(20))
    /// A Retry-After longer than this is cut to it.
    public var retryAfterCap: Duration = .seconds(60)

    /// The defaults, as documented on each field.
    public init() {}

    /// Whether a failure is worth another attempt: 408, 409, 429 (unless it says the spending limit or
    /// quota is reached), 5xx, Anthropic's 529, timeouts and connection errors. Not other 4xx, and not
    /// our own refusals.
    public static func isRetryable(_ error: ModelCallError) -> Bool {
        switch error.code {
        case .timeout, .connection: return true
        case .refusedLocally: return false
        case .http(let status, let body, _):
            if status == 429 {
                let text = body.lowercased()
                return
                    !(text.contains("insufficient_quota") || text.contains("spending limit")
                    || text.contains("billing"))
            }
            return status == 408 || status == 409 || status >= 500
        }
    }

    /// The wait before retry `attempt` (0 for the first retry): the provider's Retry-After when it gave
    /// one (seconds or an HTTP date, capped), else the backoff with jitter `unit` in 0...1.
    public func delay(attempt: Int, after error: ModelCallError, now: Date, unit: Double) -> Duration {
        if case .http(_, _, let header?) = error.code, let wait = Self.retryAfter(header, now: now) {
            return min(wait, retryAfterCap)
        }
        return backoff.delay(attempt: attempt, unit: unit)
    }

    /// Parses Retry-After: delta-seconds, or an HTTP date (IMF-fixdate).
    public static func retryAfter(_ header: String, now: Date) -> Duration? {
        let text = header.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(text), seconds.isFinite, seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
    }
}

/// A circuit breaker per provider: `threshold` failures in a row open it; after `cooldown` it lets one
/// probe through (half-open); the probe's success closes it, its failure opens it again.
public struct CircuitBreaker: Sendable, Hashable {
    /// Closed (calls go), open (refused) or half-open (one trial call).
    public enum State: Sendable, Hashable {
        case closed(failures: Int)
        case open(until: Date)
        case halfOpen(probing: Bool)
    }

    public let threshold: Int
    public let cooldown: TimeInterval
    public private(set) var state: State = .closed(failures: 0)

    /// A closed breaker that opens after `threshold` failures in a row, for `cooldown` seconds.
    public init(threshold: Int = 5, cooldown: TimeInterval = 60) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
    }

    /// Whether a call may go out now; in half-open, only one probe at a time.
    public mutating func allow(now: Date) -> Bool {
        switch state {
        case .closed: return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen(probing: true)
            return true
        case .halfOpen(let probing):
            if probing { return false }
            state = .halfOpen(probing: true)
            return true
        }
    }

    /// A call succeeded: the breaker closes.
    public mutating func recordSuccess() { state = .closed(failures: 0) }

    /// A call failed: after enough in a row the breaker opens until its cooldown ends.
    public mutating func recordFailure(now: Date) {
        switch state {
        case .closed(let failures):
            state =
                failures + 1 >= threshold
                ? .open(until: now.addingTimeInterval(cooldown)) : .closed(failures: failures + 1)
        case .halfOpen, .open:
            state = .open(until: now.addingTimeInterval(cooldown))
        }
    }

    public var isOpen: Bool { if case .open = state { return true } else { return false } }
}

/// What a model costs, in USD per million tokens.
public struct ModelPrice: Sendable, Hashable, Codable {
    public var input: Double
    public var output: Double
    /// A `ModelPrice` with the fields given.
    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }

    /// The cost in USD of a call with these token counts.
    public func cost(inputTokens: Int, outputTokens: Int) -> Double {
        (Double(inputTokens) * input + Double(outputTokens) * output) / 1_000_000
    }
}

/// A share of the daily cap that was crossed: `llm_budget` alerts at 80 % and 100 %.
public struct SpendingAlert: Sendable, Hashable {
    public var percent: Int
    public var spent: Double
    public var cap: Double
}

/// The daily spending cap: checked before every call with the worst case of that call, recorded after
/// with what it cost. Days are UTC.
public struct SpendingLedger: Sendable, Hashable {
    public let dailyCap: Double
    public private(set) var day = ""
    public private(set) var spent = 0.0

    /// A `SpendingLedger` with the field given.
    public init(dailyCap: Double) { self.dailyCap = dailyCap }

    static func dayKey(_ date: Date) -> String { String(Int(date.timeIntervalSince1970) / 86_400) }

    /// Whether a call costing `estimate` fits today's cap.
    public mutating func canSpend(_ estimate: Double, now: Date) -> Bool {
        roll(now)
        let fits = spent + estimate <= dailyCap
        if !fits { refused = true }
        return fits
    }

    /// Adds `cost` to today's spending (a new UTC day starts at zero).
    public mutating func record(_ cost: Double, now: Date) {
        roll(now)
        spent += cost
    }

    /// The share of the cap at which an alert goes out, once each a day.
    public static let alertPercents = [80, 100]
    /// Set when the cap refused a call: the cap is reached for practical purposes.
    private var refused = false
    private var alerted: Set<Int> = []

    /// The thresholds crossed today and not yet alerted: 80 % and 100 % of the cap (100 % also when
    /// the cap refused a call before the spending reached it exactly).
    public mutating func dueAlerts(now: Date) -> [SpendingAlert] {
        roll(now)
        guard dailyCap > 0 else { return [] }
        let percent = spent / dailyCap * 100
        let due = Self.alertPercents.filter {
            !alerted.contains($0) && (percent >= Double($0) || ($0 == 100 && refused))
        }
        alerted.formUnion(due)
        // Once 100 % is said, 80 % need not follow it.
        if due.contains(100) { alerted.insert(80) }
        return due.filter { !(due.contains(100) && $0 == 80) }.map {
            SpendingAlert(percent: $0, spent: spent, cap: dailyCap)
        }
    }

    private mutating func roll(_ now: Date) {
        let key = Self.dayKey(now)
        if key != day {
            day = key
            spent = 0
            refused = false
            alerted = []
        }
    }
}

/// Several analysts' proposals as one: the majority action, its confidence the average of the
/// majority's; its prices and leverage from the most confident member of the majority. No majority
/// (a tie) is HOLD.
public enum Consensus {
    /// The majority of the proposals, or nil when there is none.
    public static func combine(_ proposals: [TradeProposal]) -> TradeProposal? {
        guard !proposals.isEmpty else { return nil }
        if proposals.count == 1 { return proposals[0] }
        let counts = Dictionary(grouping: proposals, by: \.action)
        let ranked = counts.sorted { $0.value.count > $1.value.count }
        if ranked.count > 1 && ranked[0].value.count == ranked[1].value.count {
            return .hold(
                "no majority among \(proposals.count) analysts: "
                    + ranked.map { "\($0.key.rawValue) \($0.value.count)" }.joined(separator: ", ")
            )
        }
        let majority = ranked[0].value
        var best = majority.max { $0.confidence < $1.confidence }!
        best.confidence = majority.map(\.confidence).reduce(0, +) / Double(majority.count)
        best.reasoning =
            "\(majority.count) of \(proposals.count) analysts say \(best.action.rawValue): \(best.reasoning)"
        return best
    }
}
