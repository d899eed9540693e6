import Foundation

/// A symbol's trading rules at a venue: price tick, quantity step, quantity bounds and minimum
/// notional. Rounding always goes toward safety: quantities down, stops toward entry.
public struct ExchangeFilters: Sendable, Hashable, Codable {
    public var tickSize: Decimal
    public var stepSize: Decimal
    public var minQuantity: Decimal
    public var maxQuantity: Decimal
    public var minNotional: Decimal

    public init(tickSize: Decimal, stepSize: Decimal, minQuantity: Decimal, maxQuantity: Decimal, minNotional: Decimal) {
        self.tickSize = tickSize
        self.stepSize = stepSize
        self.minQuantity = minQuantity
        self.maxQuantity = maxQuantity
        self.minNotional = minNotional
    }

    /// `value` down to a whole number of `step`s.
    public static func floor(_ value: Decimal, step: Decimal) -> Decimal {
        guard step > 0 else { return value }
        var steps = value / step
        var whole = Decimal()
        NSDecimalRound(&whole, &steps, 0, .down)
        return whole * step
    }

    /// `value` up to a whole number of `step`s.
    public static func ceil(_ value: Decimal, step: Decimal) -> Decimal {
        guard step > 0 else { return value }
        var steps = value / step
        var whole = Decimal()
        NSDecimalRound(&whole, &steps, 0, .up)
        return whole * step
    }

    /// A quantity rounded down to the step.
    public func quantity(_ value: Decimal) -> Decimal { Self.floor(value, step: stepSize) }

    /// A price rounded to the tick toward `entry` (a stop or target then sits no further from entry
    /// than asked).
    public func price(_ value: Decimal, toward entry: Decimal) -> Decimal {
        value < entry ? Self.ceil(value, step: tickSize) : Self.floor(value, step: tickSize)
    }

    /// Whether `value` is a whole number of ticks.
    public func isOnTick(_ value: Decimal) -> Bool { Self.floor(value, step: tickSize) == value }
}

extension Decimal {
    /// A finite, exact-as-printed decimal from a Double; nil for NaN and infinities.
    public init?(finite value: Double) {
        guard value.isFinite else { return nil }
        self.init(string: String(value))
    }

    public var doubleValue: Double { NSDecimalNumber(decimal: self).doubleValue }
}
