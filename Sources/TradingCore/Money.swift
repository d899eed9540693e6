import Foundation

/// An exact fixed-point amount for prices, quantities, fees and balances: a 128-bit integer count of
/// 10⁻¹⁸ (18 decimal places), up to ±1.7 × 10²⁰. Addition and subtraction are exact; a product or a
/// quotient that has more than 18 decimal places is rounded by the rule named at each use
/// (``Rounding``). Overflow is checked: it traps, as integer overflow does, never wraps. `Codable` as
/// a decimal string. Exactly equal to `Decimal` wherever both hold the value (the property tests).
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The count of 10⁻¹⁸.
    public var raw: Int128

    /// 10¹⁸, one unit.
    public static let scale: Int128 = 1_000_000_000_000_000_000
    public static let zero = Money(raw: 0)

    /// The amount `raw` × 10⁻¹⁸.
    public init(raw: Int128) { self.raw = raw }

    /// A whole number.
    public init(_ value: Int) { raw = Int128(value) * Self.scale }

    /// How a result with more than 18 decimal places is cut to 18.
    public enum Rounding: Sendable {
        /// Toward −∞ (a quantity down to its step, a long's stop down).
        case down
        /// Toward +∞.
        case up
        /// Toward zero.
        case towardZero
        /// To the nearest, halves to even (what `Decimal`'s `.bankers` does).
        case toNearestOrEven
    }

    // MARK: Arithmetic

    public static func + (a: Money, b: Money) -> Money { Money(raw: a.raw + b.raw) }
    public static func - (a: Money, b: Money) -> Money { Money(raw: a.raw - b.raw) }
    public static prefix func - (a: Money) -> Money { Money(raw: -a.raw) }
    public static func += (a: inout Money, b: Money) { a.raw += b.raw }
    public static func -= (a: inout Money, b: Money) { a.raw -= b.raw }
    public static func < (a: Money, b: Money) -> Bool { a.raw < b.raw }

    /// `a × b`, cut to 18 places by `rounding`.
    public func multiplied(by other: Money, rounding: Rounding) -> Money {
        let product = raw.magnitude.multipliedFullWidth(by: other.raw.magnitude)
        return Money(
            raw: Self.divide(product, by: UInt128(Self.scale), negative: (raw < 0) != (other.raw < 0), rounding)
        )
    }

    /// `a ÷ b`, cut to 18 places by `rounding`; traps on a zero divisor.
    public func divided(by other: Money, rounding: Rounding) -> Money {
        precondition(other.raw != 0, "Money: division by zero")
        let widened = raw.magnitude.multipliedFullWidth(by: UInt128(Self.scale))
        return Money(
            raw: Self.divide(widened, by: other.raw.magnitude, negative: (raw < 0) != (other.raw < 0), rounding)
        )
    }

    /// `a × n` for a whole `n`, exact.
    public func multiplied(by n: Int) -> Money { Money(raw: raw * Int128(n)) }

    /// A 256-bit magnitude divided by `divisor`, with the result's sign, rounded; traps when it does
    /// not fit (checked overflow).
    static func divide(
        _ dividend: (high: UInt128, low: UInt128),
        by divisor: UInt128,
        negative: Bool,
        _ rounding: Rounding
    ) -> Int128 {
        precondition(dividend.high < divisor, "Money: the result is out of range")
        var (quotient, remainder) = divisor.dividingFullWidth(dividend)
        if remainder != 0 {
            // The exact magnitude lies between `quotient` and `quotient + 1`.
            let away: Bool
            switch rounding {
            case .towardZero: away = false
            case .down: away = negative
            case .up: away = !negative
            case .toNearestOrEven:
                // remainder < divisor ≤ 2¹²⁸ − 1, so comparing it with what is left avoids doubling it.
                let rest = divisor - remainder
                away = remainder > rest || (remainder == rest && quotient % 2 == 1)
            }
            if away { quotient += 1 }
        }
        precondition(quotient <= UInt128(Int128.max), "Money: the result is out of range")
        return negative ? -Int128(quotient) : Int128(quotient)
    }

    /// Rounded to a multiple of `step` (a tick or a lot) by `rounding`.
    public func rounded(toMultipleOf step: Money, _ rounding: Rounding) -> Money {
        precondition(step.raw > 0, "Money: a step must be positive")
        let (quotient, remainder) = raw.quotientAndRemainder(dividingBy: step.raw)
        guard remainder != 0 else { return self }
        var units = quotient
        switch rounding {
        case .towardZero: break
        case .down: if remainder < 0 { units -= 1 }
        case .up: if remainder > 0 { units += 1 }
        case .toNearestOrEven:
            let twice = remainder.magnitude * 2
            if twice > step.raw.magnitude || (twice == step.raw.magnitude && units % 2 != 0) {
                units += remainder < 0 ? -1 : 1
            }
        }
        return Money(raw: units * step.raw)
    }

    public var magnitude: Money { Money(raw: raw < 0 ? -raw : raw) }
    public var isZero: Bool { raw == 0 }

    // MARK: Conversions

    /// The exact value of `decimal`, or nil when it has more than 18 places or is out of range.
    public init?(exactly decimal: Decimal) {
        guard decimal.isFinite else { return nil }
        var value = decimal
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 18, .plain)
        guard rounded == decimal, let parsed = Money(string: "\(decimal)") else { return nil }
        self = parsed
    }

    /// `decimal` rounded to 18 places to the nearest (halves to even); nil out of range.
    public init?(_ decimal: Decimal) {
        guard decimal.isFinite else { return nil }
        var value = decimal
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 18, .bankers)
        guard let parsed = Money(string: "\(rounded)") else { return nil }
        self = parsed
    }

    /// Reads `-123.456` (at most 18 places; a leading `+` or `-`; no exponent); nil otherwise.
    public init?(string: String) {
        var bytes = Substring(string).utf8[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        var whole: Int128 = 0
        var fraction: Int128 = 0
        var places = 0
        var seenPoint = false
        var digits = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard !seenPoint else { return nil }
                seenPoint = true
                continue
            }
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            digits += 1
            if seenPoint {
                guard places < 18 else {
                    if digit == 0 { continue }  // trailing zeros past 18 places change nothing
                    return nil
                }
                fraction = fraction * 10 + Int128(digit)
                places += 1
            } else {
                let (times, o1) = whole.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int128(digit))
                guard !o1, !o2 else { return nil }
                whole = sum
            }
        }
        guard digits > 0 else { return nil }
        for _ in places..<18 { fraction *= 10 }
        let (scaled, o3) = whole.multipliedReportingOverflow(by: Self.scale)
        let (total, o4) = scaled.addingReportingOverflow(fraction)
        guard !o3, !o4 else { return nil }
        raw = negative ? -total : total
    }

    /// The exact `Decimal` (38 significant digits hold every `Money`).
    public var decimal: Decimal { Decimal(string: description)! }

    /// The nearest `Double`.
    public var doubleValue: Double {
        let (whole, fraction) = raw.quotientAndRemainder(dividingBy: Self.scale)
        return Double(whole) + Double(fraction) / 1e18
    }

    /// The shortest decimal text: `-1.5`, `0.000001`, `12`.
    public var description: String {
        let negative = raw < 0
        let (whole, fraction) = raw.magnitude.quotientAndRemainder(dividingBy: UInt128(Self.scale))
        var text = negative ? "-\(whole)" : "\(whole)"
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 18 - digits.count) + digits
            while digits.last == "0" { digits.removeLast() }
            text += "." + digits
        }
        return text
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = Money(string: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a decimal amount with at most 18 places"
            )
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
