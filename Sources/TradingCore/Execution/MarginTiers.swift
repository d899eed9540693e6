import Foundation

/// A symbol's maintenance-margin tiers, as the venue sets them: the larger the position's notional,
/// the higher the rate (Binance's leverage brackets, Bybit's risk limits). A position of notional `n`
/// in the tier with rate `r` and deduction `d` needs `n × r − d` of maintenance margin; the deduction
/// (Binance's `cum`) makes that continuous from one tier to the next.
public struct MarginTiers: Sendable, Hashable, Codable {
    /// One tier: up to `notionalCap` (the last tier has no cap), at `rate`, less `deduction`.
    public struct Tier: Sendable, Hashable, Codable {
        public var notionalCap: Money?
        public var rate: Money
        public var deduction: Money

        /// A `Tier` with the fields given.
        public init(notionalCap: Money?, rate: Money, deduction: Money) {
            self.notionalCap = notionalCap
            self.rate = rate
            self.deduction = deduction
        }
    }

    /// Ascending by cap.
    public var tiers: [Tier]

    /// Tiers, sorted by notional.
    public init(tiers: [Tier]) {
        self.tiers = tiers.sorted {
            ($0.notionalCap ?? Money.max) < ($1.notionalCap ?? Money.max)
        }
    }

    /// One rate for every size (the fallback when the venue's tiers are unknown).
    public static func flat(_ rate: Money) -> MarginTiers {
        MarginTiers(tiers: [Tier(notionalCap: nil, rate: rate, deduction: 0)])
    }

    /// Tiers from caps and rates alone, ascending (Bybit lists no deduction): each tier's deduction
    /// carries the previous one on, so the margin is continuous at the caps.
    public static func continuous(_ caps: [(cap: Money?, rate: Money)]) -> MarginTiers {
        var tiers: [Tier] = []
        var floor: Money = 0
        var deduction: Money = 0
        var previous: Money?
        for (cap, rate) in caps {
            if let previous { deduction += floor * (rate - previous) }
            tiers.append(Tier(notionalCap: cap, rate: rate, deduction: deduction))
            previous = rate
            floor = cap ?? floor
        }
        return MarginTiers(tiers: tiers)
    }

    /// The tier a position of `notional` falls in (the last one past every cap).
    public func tier(notional: Money) -> Tier {
        tiers.first { notional <= ($0.notionalCap ?? Money.max) } ?? tiers.last
            ?? Tier(notionalCap: nil, rate: 0, deduction: 0)
    }

    /// The maintenance margin of a position of `notional`.
    public func maintenanceMargin(notional: Money) -> Money {
        let tier = tier(notional: notional)
        return max(notional * tier.rate - tier.deduction, 0)
    }

    /// The maintenance margin as a fraction of `notional`: the rate the liquidation price uses.
    public func rate(notional: Money) -> Money {
        notional > 0 ? maintenanceMargin(notional: notional) / notional : tier(notional: 0).rate
    }
}
