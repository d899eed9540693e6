import Foundation

/// An exchange's request-weight limit, kept on our side so we never hit it: at most `limit` weight per
/// fixed `window` (Binance: 2,400 per minute, counted per clock minute; Bybit: 600 requests per 5 s).
/// The exchange's own count (Binance's `X-MBX-USED-WEIGHT-1M` header) corrects ours, and a 429 or
/// 418 with `Retry-After` stops all requests until then.
///
/// Two priorities share it: orders and cancels may spend all of `limit`; polling only `pollShare` of it,
/// so that the rest is always there for the orders that protect a position.
public struct RequestBudget: Sendable, Hashable {
    /// What a request is for: orders and cancels go before polling.
    public enum Priority: Sendable, Hashable { case order, poll }

    public let limit: Int
    public let window: TimeInterval
    /// The share of `limit` that polling may spend.
    public let pollShare: Double
    private var windowStart: TimeInterval = 0
    private var used = 0
    private var blockedUntil: TimeInterval = 0
    /// The exchange banned us (418) until `blockedUntil`.
    public private(set) var banned = false

    /// A budget of `limit` weight per `window` seconds; polling may use `pollShare` of it.
    public init(limit: Int, window: TimeInterval, pollShare: Double = 1) {
        precondition(limit > 0 && window > 0 && pollShare > 0 && pollShare <= 1)
        self.limit = limit
        self.window = window
        self.pollShare = pollShare
    }

    /// How long to wait before spending `weight` at `now`; zero means go, and the weight is then spent.
    public mutating func reserve(weight: Int, priority: Priority = .order, now: Date) -> TimeInterval {
        let time = now.timeIntervalSince1970
        if time < blockedUntil { return blockedUntil - time }
        banned = false
        roll(to: time)
        let cap = priority == .order ? limit : max(1, Int(Double(limit) * pollShare))
        if used + weight > cap && used > 0 { return windowStart + window - time }
        used += weight
        return 0
    }

    /// When requests may go again after a 429 or 418, if that is still ahead of `now`.
    public func blocked(now: Date) -> Date? {
        blockedUntil > now.timeIntervalSince1970 ? Date(timeIntervalSince1970: blockedUntil) : nil
    }

    /// The exchange said how much of this window is used: trust the larger count.
    public mutating func observe(used reported: Int, now: Date) {
        roll(to: now.timeIntervalSince1970)
        used = max(used, reported)
    }

    /// The exchange said stop (429, or 418 when `ban`): nothing goes out before `now + seconds`.
    public mutating func block(for seconds: TimeInterval, now: Date, ban: Bool = false) {
        blockedUntil = max(blockedUntil, now.timeIntervalSince1970 + seconds)
        if ban { banned = true }
    }

    /// Weight spent in the current window.
    public func used(now: Date) -> Int {
        var copy = self
        copy.roll(to: now.timeIntervalSince1970)
        return copy.used
    }

    private mutating func roll(to time: TimeInterval) {
        let start = (time / window).rounded(.down) * window
        if start > windowStart {
            windowStart = start
            used = 0
        }
    }
}
