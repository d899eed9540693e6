import Foundation
import TradingCore

/// Who a cockpit token belongs to. An operator may do all a viewer may, and send control commands.
public enum CockpitRole: String, Sendable, Codable, Comparable {
    case viewer
    case `operator`

    public static func < (a: CockpitRole, b: CockpitRole) -> Bool { a == .viewer && b == .operator }
}

/// A cockpit configuration that cannot be served: names the key and what it must be.
public struct CockpitConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String
    public var description: String { "\(key): \(message)" }
}

/// The two tokens, viewer and operator. A token is checked against both in constant time, so the time
/// an answer takes says nothing about how much of a guess was right.
public struct CockpitTokens: Sendable {
    let viewer: [UInt8]?
    let operatorToken: [UInt8]?

    /// At least one token, each at least 16 characters, and two different ones.
    public init(viewer: String?, operator operatorToken: String?) throws(CockpitConfigurationError) {
        let viewer = viewer.flatMap { $0.isEmpty ? nil : $0 }
        let operatorToken = operatorToken.flatMap { $0.isEmpty ? nil : $0 }
        guard viewer != nil || operatorToken != nil else {
            throw CockpitConfigurationError(
                key: "COCKPIT_VIEWER_TOKEN",
                message:
                    "set COCKPIT_VIEWER_TOKEN or COCKPIT_OPERATOR_TOKEN (or their _FILE forms): the cockpit shows nothing without a token"
            )
        }
        for (key, token) in [("COCKPIT_VIEWER_TOKEN", viewer), ("COCKPIT_OPERATOR_TOKEN", operatorToken)] {
            if let token, token.utf8.count < 16 {
                throw CockpitConfigurationError(key: key, message: "must be at least 16 characters long")
            }
        }
        if let viewer, viewer == operatorToken {
            throw CockpitConfigurationError(
                key: "COCKPIT_OPERATOR_TOKEN",
                message: "must differ from COCKPIT_VIEWER_TOKEN"
            )
        }
        self.viewer = viewer.map { Array($0.utf8) }
        self.operatorToken = operatorToken.map { Array($0.utf8) }
    }

    /// The role `token` grants, or nil.
    public func role(for token: String) -> CockpitRole? {
        let given = Array(token.utf8)
        // Both are compared whatever the first gives: the same work for every guess.
        let isOperator = operatorToken.map { Self.constantTimeEquals(given, $0) } ?? false
        let isViewer = viewer.map { Self.constantTimeEquals(given, $0) } ?? false
        return isOperator ? .operator : isViewer ? .viewer : nil
    }

    /// Equal bytes, in a time that depends only on the lengths.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}

/// Failed logins per client, pure: events and time in, a verdict out. After `limit` failures within
/// `window`, the client is refused until the oldest of them leaves the window.
public struct LoginLimiter: Sendable {
    public let limit: Int
    public let window: TimeInterval
    var failures: [String: [Date]] = [:]

    /// A `LoginLimiter` with the fields given.
    public init(limit: Int = 10, window: TimeInterval = 60) {
        self.limit = limit
        self.window = window
    }

    /// Whether `client` may try at `now`; when not, the seconds until it may.
    public func check(_ client: String, now: Date) -> (allowed: Bool, retryAfter: TimeInterval) {
        let recent = (failures[client] ?? []).filter { now.timeIntervalSince($0) < window }
        guard recent.count >= limit, let oldest = recent.first else { return (true, 0) }
        return (false, max(1, window - now.timeIntervalSince(oldest)))
    }

    /// Counts a failure of `client` at `now`.
    public mutating func fail(_ client: String, now: Date) {
        var recent = (failures[client] ?? []).filter { now.timeIntervalSince($0) < window }
        recent.append(now)
        failures[client] = recent
        // Forget clients that have been quiet a whole window, so the table cannot grow without bound.
        if failures.count > 10_000 {
            failures = failures.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
        }
    }
}
