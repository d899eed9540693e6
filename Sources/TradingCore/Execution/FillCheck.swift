import Foundation

/// The risk gateway's stop and target rules, checked again against an entry's average fill price
/// (the gateway judged them against the decision's price, and the entry fills later, elsewhere):
/// - the stop lies `minStopFraction`...`maxStopFraction` from the fill;
/// - the loss at the stop, entry and exit fees included, is at most `riskBudget`;
/// - the target gives at least `minRewardRisk` against the stop.
///
/// A stop that breaks a rule moves to the nearest price that keeps both stop rules, never beyond the
/// maximum distance; when no price does, the position is cut to the size the budget allows at the
/// nearest allowed stop (or closed, below the venue's minimum). A target too near moves out.
public struct FillCheck: Sendable, Hashable, Codable {
    public var minStopFraction: Money
    public var maxStopFraction: Money
    /// RISK_PER_TRADE_PERCENT of the equity when the decision was taken.
    public var riskBudget: Money
    public var feeRate: Money
    public var minRewardRisk: Money
    public var filters: ExchangeFilters

    /// A `FillCheck` with the fields given.
    public init(
        minStopFraction: Money,
        maxStopFraction: Money,
        riskBudget: Money,
        feeRate: Money,
        minRewardRisk: Money,
        filters: ExchangeFilters
    ) {
        self.minStopFraction = minStopFraction
        self.maxStopFraction = maxStopFraction
        self.riskBudget = riskBudget
        self.feeRate = feeRate
        self.minRewardRisk = minRewardRisk
        self.filters = filters
    }

    /// The gateway's rules for an entry decided at `equity`.
    public init(limits: RiskLimits, equity: Money, filters: ExchangeFilters) {
        self.init(
            minStopFraction: limits.minStopFraction,
            maxStopFraction: limits.maxStopFraction,
            riskBudget: equity * limits.riskPerTradeFraction,
            feeRate: limits.takerFeeRate,
            minRewardRisk: limits.minRewardRisk,
            filters: filters
        )
    }

    /// What the rules make of a position.
    public struct Verdict: Sendable, Hashable {
        /// The stop to hold (the asked one when it passes).
        public var stop: Money
        /// The target to hold, nil without one.
        public var target: Money?
        /// The size the budget allows; below the position's, the rest is to be sold (zero: all of it).
        public var quantity: Money
        /// Why the stop or size changed, nil when nothing did.
        public var reason: String?

        /// A `Verdict` with the fields given.
        public init(stop: Money, target: Money?, quantity: Money, reason: String?) {
            self.stop = stop
            self.target = target
            self.quantity = quantity
            self.reason = reason
        }
    }

    /// The loss per unit at `stop`, fees on the way in and out included.
    func lossPerUnit(side: PositionSide, average: Money, stop: Money) -> Money {
        (side == .long ? average - stop : stop - average) + feeRate * (average + stop)
    }

    /// Checks `stop` and `target` of a position of `quantity` filled at `average`.
    public func verdict(
        side: PositionSide,
        average: Money,
        quantity: Money,
        stop: Money,
        target: Money?
    ) -> Verdict {
        let long = side == .long
        // Most fills leave the stop where it was: that is checked with products alone (a decimal
        // division costs several of them), exact for a stop on the tick.
        let near = long ? average * (1 - minStopFraction) : average * (1 + minStopFraction)
        let far = long ? average * (1 - maxStopFraction) : average * (1 + maxStopFraction)
        if long ? stop <= near && stop >= far : stop >= near && stop <= far,
            riskBudget <= 0 || quantity * lossPerUnit(side: side, average: average, stop: stop) <= riskBudget
        {
            return Verdict(
                stop: stop,
                target: checked(target, side: side, average: average, stop: stop),
                quantity: quantity,
                reason: nil
            )
        }
        return moved(side: side, average: average, quantity: quantity, stop: stop, target: target)
    }

    /// A target that gives at least `minRewardRisk` against `stop`: the asked one, or the nearest that does.
    func checked(_ target: Money?, side: PositionSide, average: Money, stop: Money) -> Money? {
        guard let target else { return nil }
        let long = side == .long
        let risk = (average - stop).magnitude
        let least = long ? average + minRewardRisk * risk : average - minRewardRisk * risk
        guard long ? target < least : target > least else { return target }
        return long ? filters.ceilPrice(least) : filters.floorPrice(least)
    }

    /// The verdict on a stop that breaks a rule.
    func moved(side: PositionSide, average: Money, quantity: Money, stop: Money, target: Money?) -> Verdict {
        let long = side == .long
        // The band of stops at an allowed distance, rounded inward to the tick.
        let near = long ? average * (1 - minStopFraction) : average * (1 + minStopFraction)
        let far = long ? average * (1 - maxStopFraction) : average * (1 + maxStopFraction)
        let nearest = long ? filters.floorPrice(near) : filters.ceilPrice(near)
        var farthest = long ? filters.ceilPrice(far) : filters.floorPrice(far)
        // The budget bounds the stop from the far side: loss = qty × lossPerUnit ≤ budget.
        if quantity > 0, riskBudget > 0 {
            let perUnit = riskBudget / quantity
            let bound =
                long
                ? (average * (1 + feeRate) - perUnit) / (1 - feeRate)
                : (average * (1 - feeRate) + perUnit) / (1 + feeRate)
            let rounded = long ? filters.ceilPrice(bound) : filters.floorPrice(bound)
            farthest = long ? max(farthest, rounded) : min(farthest, rounded)
        }
        var reason: String?
        var held = stop
        var allowed = quantity
        if long ? farthest > nearest : farthest < nearest {
            // No stop keeps both rules at this size: the nearest allowed stop, and the size the budget allows there.
            held = nearest
            let perUnit = lossPerUnit(side: side, average: average, stop: held)
            allowed =
                perUnit > 0 ? min(quantity, filters.quantity(riskBudget.divided(by: perUnit, rounding: .down))) : 0
            if allowed < filters.minQuantity { allowed = 0 }
            reason = allowed == 0 ? "stop_unaffordable" : "risk_reduced"
        } else if long ? stop > nearest : stop < nearest {
            held = nearest
            reason = "stop_too_near"
        } else if long ? stop < farthest : stop > farthest {
            held = farthest
            reason = "stop_too_far"
        }
        return Verdict(
            stop: held,
            target: checked(target, side: side, average: average, stop: held),
            quantity: allowed,
            reason: reason
        )
    }
}
