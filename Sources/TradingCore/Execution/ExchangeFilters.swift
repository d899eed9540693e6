import Foundation

/// A symbol's trading rules at a venue: price tick, quantity step, quantity bounds and minimum
/// notional. Rounding always goes toward safety: quantities down, stops toward entry.
public struct ExchangeFilters: Sendable, Hashable, Codable {
    public var tickSize: Decimal
    public var stepSize: Decimal
    public var minQuantity: Decimal
    public var maxQuantity: Decimal
    public var minNotional: Decimal

    /// A `ExchangeFilters` with the fields given.
    public init(tickSize: Decimal, stepSize: Decimal, minQuantity: Decimal, maxQuantity: Decimal, minNotional: Decimal)
    {
        self.tickSize = tickSize
        self.stepSize = stepSize
        self.minQuantity = minQuantity
        self.maxQuantity = maxQuantity
        self.minNotional = minNotional
    }

    /// `value` down to a whole number of `step`s.
    public static func floor(_ value: Decimal, step: Decimal) -> Decimal {
        guard step > 0 else { return value }
        var steps = steps(value, step)
        var whole = Decimal()
        NSDecimalRound(&whole, &steps, 0, .down)
        return whole * step
    }

    /// `value` up to a whole number of `step`s.
    public static func ceil(_ value: Decimal, step: Decimal) -> Decimal {
        guard step > 0 else { return value }
        var steps = steps(value, step)
        var whole = Decimal()
        NSDecimalRound(&whole, &steps, 0, .up)
        return whole * step
    }

    /// `value / step`. Ticks and steps are mostly powers of ten (0.0001, 0.001): then the quotient is
    /// `value` with its exponent moved, exactly, without a decimal division (four times the cost).
    static func steps(_ value: Decimal, _ step: Decimal) -> Decimal {
        guard step.significand == 1 else { return value / step }
        return Decimal(sign: value.sign, exponent: value.exponent - step.exponent, significand: value.significand)
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
    /// A finite, exact-as-printed decimal from a Double: the shortest decimal that reads back as
    /// `value` (what `String(value)` prints), so 0.1 is 0.1; nil for NaN and infinities.
    ///
    /// The printed digits are read here into a significand and an exponent, which gives the decimal
    /// `Decimal(string:)` gives at a third of its cost (a test checks the two agree on random
    /// doubles of every magnitude); zero and exponents at the edge of `Decimal`'s range go through
    /// `Decimal(string:)` itself.
    public init?(finite value: Double) {
        guard value.isFinite else { return nil }
        let text = String(value)
        var significand: UInt64 = 0
        var exponent = 0
        var exponentPart = 0
        var negative = false
        var inFraction = false
        var inExponent = false
        var exponentNegative = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int(byte &- UInt8(ascii: "0"))
                if inExponent {
                    exponentPart = exponentPart * 10 + digit
                } else {
                    significand = significand * 10 + UInt64(digit)  // at most 17 digits: no overflow
                    if inFraction { exponent -= 1 }
                }
            case UInt8(ascii: "-"): if inExponent { exponentNegative = true } else { negative = true }
            case UInt8(ascii: "."): inFraction = true
            case UInt8(ascii: "e"): inExponent = true
            default: break
            }
        }
        exponent += exponentNegative ? -exponentPart : exponentPart
        guard significand != 0, (-128...127).contains(exponent) else {
            self.init(string: text)
            return
        }
        self.init(sign: negative ? .minus : .plus, exponent: exponent, significand: Decimal(significand))
    }

    public var doubleValue: Double { NSDecimalNumber(decimal: self).doubleValue }
}
