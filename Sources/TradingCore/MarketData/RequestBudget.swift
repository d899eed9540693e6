import Foundation

/// An exchange's request-weight limit, kept on our side so we never hit it: at most `limit` weight per
/// fixed `window` (Binance: 2,400 per minute, counted per clock minute; Bybit: 600 requests per 5 s).
/// The exchange's own count (Binance's `X-MBX-USED-WEIGHT-1M` header) corrects ours, and a 429 or
/// 418 with `Retry-After` stops all requests until then.
public struct RequestBudget: Sendable, Hashable {
    public let limit: Int
    public let window: TimeInterval
    private var windowStart: TimeInterval = 0
    private var used = 0
    private var blockedUntil: TimeInterval = 0

    public init(limit: Int, window: TimeInterval) {
        precondition(limit > 0 && window > 0)
        self.limit = limit
        self.window = window
    }

    /// How long to wait before spending `weight` at `now`; zero means go, and the weight is then spent.
    public mutating func reserve(weight: Int, now: Date) -> TimeInterval {
        let time = now.timeIntervalSince1970
        if time < blockedUntil { return blockedUntil - time }
        roll(to: time)
        if used + weight > limit && used > 0 { return windowStart + window - time }
        used += weight
        return 0
    }

    /// The exchange said how much of this window is used: trust the larger count.
    public mutating func observe(used reported: Int, now: Date) {
        roll(to: now.timeIntervalSince1970)
        used = max(used, reported)
    }

    /// The exchange said stop (429 or 418): nothing goes out before `now + seconds`.
    public mutating func block(for seconds: TimeInterval, now: Date) {
        blockedUntil = max(blockedUntil, now.timeIntervalSince1970 + seconds)
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
