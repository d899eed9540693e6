import Foundation

/// A symbol's trading rules at a venue: price tick, quantity step, quantity bounds and minimum
/// notional. Rounding always goes toward safety: quantities down, stops toward entry.
public struct ExchangeFilters: Sendable, Hashable, Codable {
    public var tickSize: Money
    public var stepSize: Money
    public var minQuantity: Money
    public var maxQuantity: Money
    public var minNotional: Money

    /// A `ExchangeFilters` with the fields given.
    public init(tickSize: Money, stepSize: Money, minQuantity: Money, maxQuantity: Money, minNotional: Money) {
        self.tickSize = tickSize
        self.stepSize = stepSize
        self.minQuantity = minQuantity
        self.maxQuantity = maxQuantity
        self.minNotional = minNotional
    }

    /// `value` down to a whole number of `step`s (unchanged when `step` is not positive).
    public static func floor(_ value: Money, step: Money) -> Money {
        step > 0 ? value.rounded(toMultipleOf: step, .down) : value
    }

    /// `value` up to a whole number of `step`s (unchanged when `step` is not positive).
    public static func ceil(_ value: Money, step: Money) -> Money {
        step > 0 ? value.rounded(toMultipleOf: step, .up) : value
    }

    /// A quantity rounded down to the step.
    public func quantity(_ value: Money) -> Money { Self.floor(value, step: stepSize) }

    /// A price rounded to the tick toward `entry` (a stop or target then sits no further from entry
    /// than asked).
    public func price(_ value: Money, toward entry: Money) -> Money {
        value < entry ? Self.ceil(value, step: tickSize) : Self.floor(value, step: tickSize)
    }

    /// Whether `value` is a whole number of ticks.
    public func isOnTick(_ value: Money) -> Bool { Self.floor(value, step: tickSize) == value }
}
