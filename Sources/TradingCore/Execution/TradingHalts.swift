import Foundation

/// The account's circuit breakers: a daily loss limit, a maximum run of losing trades, and a maximum
/// drawdown from the equity peak. While one is tripped, new entries are refused; exits still go.
///
/// Every breaker is evaluated on every close and every equity reading, so several may be tripped at
/// once. Reset rule: only an operator resets a breaker (``reset(_:now:equity:)``); the daily-loss
/// breaker also clears at the next UTC day. The state is `Codable`, so the executor persists it and a
/// restart never clears a halt.
public struct TradingHalts: Sendable, Hashable, Codable {
    /// The breakers' thresholds.
    public struct Limits: Sendable, Hashable, Codable {
        public var dailyLossFraction: Money = 0.05
        public var maxConsecutiveLosses = 3
        public var maxDrawdownFraction: Money = 0.15
        /// The defaults, as documented on each field.
        public init() {}
    }

    /// A tripped breaker: when, why, and the figures.
    public struct Halt: Sendable, Hashable, Codable {
        /// Which breaker.
        public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
            case dailyLoss = "daily_loss"
            case consecutiveLosses = "consecutive_losses"
            case maxDrawdown = "max_drawdown"
        }
        public var kind: Kind
        public var reason: String
        public var since: Date
        /// The equity when it tripped.
        public var equity: Money
    }

    public private(set) var limits: Limits
    public private(set) var day: Int
    public private(set) var dayStartEquity: Money
    public private(set) var dayRealised: Money = 0
    public private(set) var consecutiveLosses = 0
    public private(set) var peakEquity: Money
    /// Every tripped breaker, in the order they tripped.
    public private(set) var tripped: [Halt] = []

    /// Breakers with `limits`, starting the day and the peak at `equity`.
    public init(limits: Limits, equity: Money, now: Date) {
        self.limits = limits
        self.day = Self.day(now)
        self.dayStartEquity = equity
        self.peakEquity = equity
    }

    /// The same state under new limits (the configuration changed between runs); tripped halts stay
    /// until reset, whatever the new limits say.
    public mutating func update(limits: Limits) { self.limits = limits }

    /// The first tripped breaker, if any: entries are refused while there is one.
    public var halt: Halt? { tripped.first }

    static func day(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }

    /// Whether `now` is on a later UTC day than the breakers' (``roll(now:equity:)`` would start a new day).
    public func isNewDay(_ now: Date) -> Bool { Self.day(now) != day }

    /// A new UTC day: the daily figures start again and the daily-loss breaker clears (returned).
    @discardableResult
    public mutating func roll(now: Date, equity: Money) -> [Halt] {
        let today = Self.day(now)
        guard today != day else { return [] }
        day = today
        dayStartEquity = equity
        dayRealised = 0
        return clear(.dailyLoss)
    }

    /// A closed trade; returns the breakers it trips (every one is evaluated).
    public mutating func recordTrade(pnl: Money, equityAfter: Money, now: Date) -> [Halt] {
        roll(now: now, equity: equityAfter - pnl)
        dayRealised += pnl
        consecutiveLosses = pnl < 0 ? consecutiveLosses + 1 : 0
        var tripped: [Halt] = []
        if !isTripped(.dailyLoss), dayStartEquity > 0, -dayRealised >= limits.dailyLossFraction * dayStartEquity {
            tripped.append(
                trip(
                    .dailyLoss,
                    "daily loss \(-dayRealised) reached \(limits.dailyLossFraction) of the day's starting equity \(dayStartEquity)",
                    now,
                    equityAfter
                )
            )
        }
        if !isTripped(.consecutiveLosses), consecutiveLosses >= limits.maxConsecutiveLosses {
            tripped.append(
                trip(
                    .consecutiveLosses,
                    "\(consecutiveLosses) losing trades in a row (limit \(limits.maxConsecutiveLosses))",
                    now,
                    equityAfter
                )
            )
        }
        return tripped + observe(equity: equityAfter, now: now)
    }

    /// An equity reading (realised and unrealised); returns the breaker it trips, if any.
    public mutating func observe(equity: Money, now: Date) -> [Halt] {
        roll(now: now, equity: equity)
        peakEquity = max(peakEquity, equity)
        guard !isTripped(.maxDrawdown), peakEquity > 0 else { return [] }
        let drawdown = (peakEquity - equity) / peakEquity
        guard drawdown >= limits.maxDrawdownFraction else { return [] }
        return [
            trip(
                .maxDrawdown,
                "drawdown \(drawdown) from the peak \(peakEquity) reached \(limits.maxDrawdownFraction)",
                now,
                equity
            )
        ]
    }

    /// An operator's reset of one breaker (`nil`: every one); returns the halts it cleared. The
    /// breaker starts again from the current equity: the day's start, the loss run, or the peak.
    @discardableResult
    public mutating func reset(_ kind: Halt.Kind?, now: Date, equity: Money) -> [Halt] {
        let kinds = kind.map { [$0] } ?? Halt.Kind.allCases
        var cleared: [Halt] = []
        for kind in kinds {
            switch kind {
            case .dailyLoss:
                day = Self.day(now)
                dayStartEquity = equity
                dayRealised = 0
            case .consecutiveLosses: consecutiveLosses = 0
            case .maxDrawdown: peakEquity = equity
            }
            cleared += clear(kind)
        }
        return cleared
    }

    /// Whether the breaker `kind` is tripped.
    public func isTripped(_ kind: Halt.Kind) -> Bool { tripped.contains { $0.kind == kind } }

    private mutating func clear(_ kind: Halt.Kind) -> [Halt] {
        let cleared = tripped.filter { $0.kind == kind }
        tripped.removeAll { $0.kind == kind }
        return cleared
    }

    private mutating func trip(_ kind: Halt.Kind, _ reason: String, _ now: Date, _ equity: Money) -> Halt {
        let halt = Halt(kind: kind, reason: reason, since: now, equity: equity)
        tripped.append(halt)
        return halt
    }
}
