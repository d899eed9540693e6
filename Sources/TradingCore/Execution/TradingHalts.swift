import Foundation

/// The account's circuit breakers: a daily loss limit, a maximum run of losing trades, and a maximum
/// drawdown from the equity peak. While one is tripped, new entries are refused; exits still go.
///
/// Reset rule: the daily-loss and consecutive-loss halts clear at the next UTC day (the loss run starts
/// again from zero); the drawdown halt stays until an operator resets it (`reset(now:equity:)`), which
/// also takes the current equity as the new peak. Every trip and reset is persisted as an event.
public struct TradingHalts: Sendable, Hashable, Codable {
    public struct Limits: Sendable, Hashable, Codable {
        public var dailyLossFraction: Decimal = 0.05
        public var maxConsecutiveLosses = 3
        public var maxDrawdownFraction: Decimal = 0.15
        public init() {}
    }

    /// A tripped breaker.
    public struct Halt: Sendable, Hashable, Codable {
        public enum Kind: String, Sendable, Hashable, Codable { case dailyLoss = "daily_loss", consecutiveLosses = "consecutive_losses", maxDrawdown = "max_drawdown" }
        public var kind: Kind
        public var reason: String
        public var since: Date
    }

    public let limits: Limits
    public private(set) var day: Int
    public private(set) var dayStartEquity: Decimal
    public private(set) var dayRealised: Decimal = 0
    public private(set) var consecutiveLosses = 0
    public private(set) var peakEquity: Decimal
    public private(set) var halt: Halt?

    public init(limits: Limits, equity: Decimal, now: Date) {
        self.limits = limits
        self.day = Self.day(now)
        self.dayStartEquity = equity
        self.peakEquity = equity
    }

    static func day(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }

    /// A new UTC day: daily figures start again, and the daily and loss-run halts clear.
    public mutating func roll(now: Date, equity: Decimal) {
        let today = Self.day(now)
        guard today != day else { return }
        day = today
        dayStartEquity = equity
        dayRealised = 0
        consecutiveLosses = 0
        if let halt, halt.kind != .maxDrawdown { self.halt = nil }
    }

    /// A closed trade; returns the halt it trips, if any.
    public mutating func recordTrade(pnl: Decimal, equityAfter: Decimal, now: Date) -> Halt? {
        roll(now: now, equity: equityAfter - pnl)
        dayRealised += pnl
        consecutiveLosses = pnl < 0 ? consecutiveLosses + 1 : 0
        if halt == nil, dayStartEquity > 0, -dayRealised >= limits.dailyLossFraction * dayStartEquity {
            return trip(.dailyLoss, "daily loss \(-dayRealised) reached \(limits.dailyLossFraction) of the day's starting equity \(dayStartEquity)", now)
        }
        if halt == nil, consecutiveLosses >= limits.maxConsecutiveLosses {
            return trip(.consecutiveLosses, "\(consecutiveLosses) losing trades in a row (limit \(limits.maxConsecutiveLosses))", now)
        }
        return observe(equity: equityAfter, now: now)
    }

    /// An equity reading (realised and unrealised); returns the halt it trips, if any.
    public mutating func observe(equity: Decimal, now: Date) -> Halt? {
        roll(now: now, equity: equity)
        peakEquity = max(peakEquity, equity)
        guard halt == nil, peakEquity > 0 else { return nil }
        let drawdown = (peakEquity - equity) / peakEquity
        if drawdown >= limits.maxDrawdownFraction {
            return trip(.maxDrawdown, "drawdown \(drawdown) from the peak \(peakEquity) reached \(limits.maxDrawdownFraction)", now)
        }
        return nil
    }

    /// An operator's reset: every halt clears and the current equity is the new peak.
    public mutating func reset(now: Date, equity: Decimal) {
        halt = nil
        consecutiveLosses = 0
        peakEquity = equity
        day = Self.day(now)
        dayStartEquity = equity
        dayRealised = 0
    }

    private mutating func trip(_ kind: Halt.Kind, _ reason: String, _ now: Date) -> Halt {
        let halt = Halt(kind: kind, reason: reason, since: now)
        self.halt = halt
        return halt
    }
}
