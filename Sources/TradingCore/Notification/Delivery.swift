import Foundation

/// Why a sink could not send.
public struct SinkError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status, or nil for a network failure.
    public var status: Int?
    /// How long the service asked us to wait (a 429's `retry_after` or `Retry-After`).
    public var retryAfter: Duration?
    public var message: String

    /// A `SinkError` with the fields given.
    public init(status: Int?, retryAfter: Duration? = nil, message: String) {
        self.status = status
        self.retryAfter = retryAfter
        self.message = message
    }

    /// 429, 5xx and network failures are worth another try; other answers are not.
    public var isRetryable: Bool {
        guard let status else { return true }
        return status == 429 || status == 408 || status >= 500
    }

    public var description: String { status.map { "HTTP \($0): \(message)" } ?? message }
}

/// Port: one place notices go.
public protocol NotificationSink: Sendable {
    /// `telegram`, `discord`, `slack`, `webhook` or `log`.
    var name: String { get }
    /// The service's own rate limits, as buckets (all must allow a send).
    var rateLimits: [RateLimit] { get }
    func send(_ notice: Notice) async throws(SinkError)
}

/// A rate limit: at most `count` sends per `per`.
public struct RateLimit: Sendable, Hashable {
    public var count: Int
    public var per: Duration
    /// A `RateLimit` with the fields given.
    public init(count: Int, per: Duration) {
        self.count = count
        self.per = per
    }
}

/// A token bucket for one ``RateLimit``: full at start, refilled continuously.
public struct TokenBucket: Sendable, Hashable {
    public let limit: RateLimit
    private var tokens: Double
    private var updated: Double

    /// A token bucket for `limit`, full at `now`.
    public init(_ limit: RateLimit, now: TimeInterval) {
        self.limit = limit
        self.tokens = Double(limit.count)
        self.updated = now
    }

    var rate: Double { Double(limit.count) / limit.per.timeInterval }

    /// How long until a token is there (0: now), without taking it.
    public mutating func wait(now: TimeInterval) -> TimeInterval {
        tokens = min(Double(limit.count), tokens + max(0, now - updated) * rate)
        updated = now
        return tokens >= 1 ? 0 : (1 - tokens) / rate
    }

    /// Takes a token if there is one; otherwise says how long until there will be.
    public mutating func take(now: TimeInterval) -> TimeInterval {
        let wait = wait(now: now)
        if wait == 0 { tokens -= 1 }
        return wait
    }
}

/// Which notices a sink gets: those at or above its minimum severity whose kind matches one of its
/// patterns (`*` for any run of characters).
public struct SinkRoute: Sendable, Hashable {
    public var minSeverity: AlertSeverity
    public var kinds: [String]

    /// A `SinkRoute` with the fields given.
    public init(minSeverity: AlertSeverity, kinds: [String] = ["*"]) {
        self.minSeverity = minSeverity
        self.kinds = kinds
    }

    /// Whether this route takes `notice` (its kinds and minimum severity).
    public func accepts(_ notice: Notice) -> Bool {
        notice.severity >= minSeverity && kinds.contains { Self.matches($0, notice.kind) }
    }

    static func matches(_ pattern: String, _ text: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1 { return pattern == text }
        var rest = Substring(text)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.dropFirst().enumerated() {
            let last = index == parts.count - 2
            if last { return part.isEmpty || rest.hasSuffix(part) }
            guard !part.isEmpty else { continue }
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }

    /// Parses `NOTIFY_ROUTES`: `sink:severity[:kind,kind...]` separated by `;`, e.g.
    /// `telegram:warning;slack:info:trade_*,daily_summary`.
    public static func parse(_ text: String) throws(RouteSyntaxError) -> [String: SinkRoute] {
        var routes: [String: SinkRoute] = [:]
        for entry in text.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count >= 2, let severity = AlertSeverity(rawValue: parts[1]) else {
                throw RouteSyntaxError(description: "'\(entry)' is not sink:info|warning|critical[:kinds]")
            }
            let kinds =
                parts.count == 3
                ? parts[2].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : ["*"]
            routes[parts[0]] = SinkRoute(minSeverity: severity, kinds: kinds)
        }
        return routes
    }
}

/// A routing rule that does not parse.
public struct RouteSyntaxError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
