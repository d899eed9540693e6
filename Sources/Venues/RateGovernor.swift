import Foundation
import HTTPSupport
import TradingCore

/// One venue account's request budget, as its adapter spends it: orders and cancels before polling,
/// the exchange's own count from its headers, and a 429, a 418 or Bybit's 403 stopping every request
/// until the exchange allows them again. A request that would break the budget is not sent: it fails
/// at once as `unreachable`, saying when to try again, and the caller's next poll or retry does.
struct RateGovernor: Sendable {
    let venue: String
    private(set) var budget: RequestBudget

    init(venue: String, budget: RequestBudget) {
        self.venue = venue
        self.budget = budget
    }

    /// Spends `weight` for a request, or throws without sending it.
    mutating func admit(
        weight: Int,
        priority: RequestBudget.Priority,
        what: String,
        now: Date = Date()
    ) throws(VenueError) {
        let wait = budget.reserve(weight: weight, priority: priority, now: now)
        guard wait > 0 else { return }
        let why =
            budget.banned
            ? "banned (418/403) by \(venue)"
            : budget.blocked(now: now) != nil
                ? "told to slow down (429) by \(venue)" : "over our \(venue) request budget"
        throw VenueError(
            .unreachable,
            "\(what) not sent: \(why); requests go again in \(String(format: "%.1f", wait)) s",
            retryAfter: wait
        )
    }

    /// Binance: `X-MBX-USED-WEIGHT-1M` corrects our count; 429 and 418 block for `Retry-After`.
    mutating func observeBinance(_ answer: HTTPAnswer, now: Date = Date()) {
        if let used = answer.header("X-MBX-USED-WEIGHT-1M").flatMap(Int.init) { budget.observe(used: used, now: now) }
        if answer.status == 429 || answer.status == 418 {
            let seconds = answer.header("Retry-After").flatMap(TimeInterval.init) ?? (answer.status == 418 ? 120 : 1)
            budget.block(for: seconds, now: now, ban: answer.status == 418)
        }
    }

    /// Bybit: HTTP 403 is the IP ban (at least 10 minutes, Bybit says); `Too many visits` (10006, 10018)
    /// blocks until `X-Bapi-Limit-Reset-Timestamp`; 429 for `Retry-After`.
    mutating func observeBybit(_ answer: HTTPAnswer, retCode: Int?, now: Date = Date()) {
        if answer.status == 403 {
            budget.block(for: answer.header("Retry-After").flatMap(TimeInterval.init) ?? 600, now: now, ban: true)
        } else if answer.status == 429 {
            budget.block(for: answer.header("Retry-After").flatMap(TimeInterval.init) ?? 1, now: now)
        } else if retCode == 10006 || retCode == 10018 {
            let reset =
                answer.header("X-Bapi-Limit-Reset-Timestamp").flatMap(Double.init).map {
                    $0 / 1000 - now.timeIntervalSince1970
                } ?? 1
            budget.block(for: max(reset, 0.1), now: now)
        }
    }

    /// Hyperliquid: a 429 stops every request for `Retry-After`, 5 s when none is given (Hyperliquid
    /// documents the weights, not the wait).
    mutating func observeHyperliquid(_ answer: HTTPAnswer, now: Date = Date()) {
        if answer.status == 429 {
            budget.block(for: answer.header("Retry-After").flatMap(TimeInterval.init) ?? 5, now: now)
        }
    }

    /// The budget as `tradebus status` shows it.
    func status(now: Date = Date()) -> RateLimitStatus {
        RateLimitStatus(
            venue: venue,
            used: budget.used(now: now),
            limit: budget.limit,
            pollLimit: Int(Double(budget.limit) * budget.pollShare),
            windowSeconds: budget.window,
            blockedUntil: budget.blocked(now: now),
            banned: budget.banned && budget.blocked(now: now) != nil
        )
    }
}
