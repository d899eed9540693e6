import Foundation

/// An exact fixed-point amount for prices, quantities, fees and balances: a 128-bit integer count of
/// 10⁻²⁰ (20 decimal places), up to ±1.7 × 10¹⁸. Addition and subtraction are exact; a product or a
/// quotient that has more than 20 decimal places is rounded by the rule named at each use
/// (``Rounding``). Overflow is checked: it traps, as integer overflow does, never wraps. `Codable` as
/// a decimal string. Exactly equal to `Decimal` wherever both hold the value (the property tests).
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible, SignedNumeric,
    ExpressibleByFloatLiteral
{
    /// The count of 10⁻²⁰, kept as two 64-bit words rather than an `Int128`: Swift 6.3 on Linux
    /// mishandles 16-byte integers that cross async functions (swiftlang/swift#89842, #91204), and
    /// amounts cross many (every venue call). Two words travel as any pair of integers do; every
    /// computation below is synchronous, on `Int128` locals.
    private var low: UInt64
    private var high: Int64

    /// The count of 10⁻²⁰.
    public var raw: Int128 {
        get { Int128(_low: low, _high: high) }
        set {
            low = newValue._low
            high = newValue._high
        }
    }

    /// The decimal places held: 20, so that a fee on a slipped price (a price of 8 places times
    /// 1.0005, times a quantity, times a rate) stays exact, where 18 would round it.
    public static let places = 20
    /// 10²⁰, one unit.
    public static let scale: Int128 = 100_000_000_000_000_000_000
    public static let zero = Money(raw: 0)
    /// The largest amount, about 1.7 × 10¹⁸ (an uncapped tier's bound).
    public static let max = Money(raw: .max)

    /// The amount `raw` × 10⁻²⁰.
    public init(raw: Int128) {
        low = raw._low
        high = raw._high
    }

    /// A whole number.
    public init(_ value: Int) { self.init(raw: Int128(value) * Self.scale) }

    /// A whole number, nil out of range.
    public init?<T: BinaryInteger>(exactly source: T) {
        guard let value = Int128(exactly: source) else { return nil }
        let (scaled, overflow) = value.multipliedReportingOverflow(by: Self.scale)
        guard !overflow else { return nil }
        self.init(raw: scaled)
    }

    public init(integerLiteral value: Int) { self.init(value) }

    /// How a result with more than 20 decimal places is cut to 20.
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

    /// `a × b` to the nearest 10⁻²⁰, halves to even, as `Decimal` rounds its last digit. Where the
    /// direction matters (a quantity, a stop), the caller names it with ``multiplied(by:rounding:)`` or
    /// rounds the result to its step with ``rounded(toMultipleOf:_:)``.
    public static func * (a: Money, b: Money) -> Money { a.multiplied(by: b, rounding: .toNearestOrEven) }
    /// `a ÷ b` to the nearest 10⁻²⁰, halves to even; see `*` for where a direction is named instead.
    public static func / (a: Money, b: Money) -> Money { a.divided(by: b, rounding: .toNearestOrEven) }
    public static func *= (a: inout Money, b: Money) { a = a * b }
    public static func /= (a: inout Money, b: Money) { a = a / b }

    /// `a × b`, cut to 20 places by `rounding`.
    public func multiplied(by other: Money, rounding: Rounding) -> Money {
        // Most products (a price times a quantity) fit 128 bits before the scale is divided out.
        let (small, overflow) = raw.multipliedReportingOverflow(by: other.raw)
        if !overflow { return Money(raw: Self.quotient(small, Self.scale, rounding)) }
        let product = raw.magnitude.multipliedFullWidth(by: other.raw.magnitude)
        return Money(
            raw: Self.divide(product, by: UInt128(Self.scale), negative: (raw < 0) != (other.raw < 0), rounding)
        )
    }

    /// `a ÷ b`, cut to 20 places by `rounding`; traps on a zero divisor.
    public func divided(by other: Money, rounding: Rounding) -> Money {
        precondition(other.raw != 0, "Money: division by zero")
        let (small, overflow) = raw.multipliedReportingOverflow(by: Self.scale)
        if !overflow, other.raw != .min {
            return Money(
                raw: other.raw > 0
                    ? Self.quotient(small, other.raw, rounding) : Self.quotient(-small, -other.raw, rounding)
            )
        }
        let widened = raw.magnitude.multipliedFullWidth(by: UInt128(Self.scale))
        return Money(
            raw: Self.divide(widened, by: other.raw.magnitude, negative: (raw < 0) != (other.raw < 0), rounding)
        )
    }

    /// `a × n` for a whole `n`, exact.
    public func multiplied(by n: Int) -> Money { Money(raw: raw * Int128(n)) }

    /// `n ÷ d` for a positive `d`, rounded by `rounding`.
    static func quotient(_ n: Int128, _ d: Int128, _ rounding: Rounding) -> Int128 {
        let (q, r) = n.quotientAndRemainder(dividingBy: d)
        guard r != 0 else { return q }
        switch rounding {
        case .towardZero: return q
        case .down: return r < 0 ? q - 1 : q
        case .up: return r > 0 ? q + 1 : q
        case .toNearestOrEven:
            let m = r < 0 ? -r : r
            let rest = d - m
            let away = m > rest || (m == rest && q % 2 != 0)
            return away ? (r < 0 ? q - 1 : q + 1) : q
        }
    }

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
    /// −1, 0 or 1.
    public var signum: Int { raw < 0 ? -1 : raw == 0 ? 0 : 1 }
    public var isZero: Bool { raw == 0 }

    // MARK: Conversions

    /// The exact value of `decimal`, or nil when it has more than 20 places or is out of range.
    public init?(exactly decimal: Decimal) {
        guard decimal.isFinite else { return nil }
        var value = decimal
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, Self.places, .plain)
        guard rounded == decimal, let parsed = Money(string: "\(decimal)") else { return nil }
        self = parsed
    }

    /// `decimal` rounded to 20 places to the nearest (halves to even); nil out of range.
    public init?(_ decimal: Decimal) {
        guard decimal.isFinite else { return nil }
        var value = decimal
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, Self.places, .bankers)
        guard let parsed = Money(string: "\(rounded)") else { return nil }
        self = parsed
    }

    /// The shortest decimal that reads back as `value` (what `String(value)` prints, so 0.1 is 0.1),
    /// to the nearest 10⁻²⁰; nil for NaN, infinities and values out of range.
    ///
    /// Prices of up to 8 places (every candle) take a fast path: `n = value × 10⁸` rounded is the one
    /// 8-place decimal that reads back as `value` when `n ÷ 10⁸` does and `|n| < 2⁵²` (below 4.5 × 10⁷
    /// doubles are closer than 10⁻⁸ apart, so no two such decimals read back alike; IEEE division is
    /// correctly rounded). A test holds both paths to the printed text, at that bound too.
    public init?(finite value: Double) {
        guard value.isFinite else { return nil }
        let scaled = (value * 1e8).rounded()
        if scaled.magnitude < 4_503_599_627_370_496, scaled / 1e8 == value {
            self.init(raw: Int128(scaled) * 1_000_000_000_000)
            return
        }
        // Else the printed digits (at most 17) as significand × 10^exponent, moved to 20 places.
        var significand: Int128 = 0
        var exponent = 0
        var exponentPart = 0
        var negative = false
        var inFraction = false
        var inExponent = false
        var exponentNegative = false
        for byte in String(value).utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int(byte &- UInt8(ascii: "0"))
                if inExponent {
                    exponentPart = exponentPart * 10 + digit
                } else {
                    significand = significand * 10 + Int128(digit)
                    if inFraction { exponent -= 1 }
                }
            case UInt8(ascii: "-"): if inExponent { exponentNegative = true } else { negative = true }
            case UInt8(ascii: "."): inFraction = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"): inExponent = true
            default: break
            }
        }
        exponent += exponentNegative ? -exponentPart : exponentPart
        if negative { significand = -significand }
        let shift = Self.places + exponent
        if shift >= 0 {
            guard shift <= 38 else { return nil }
            var raw = significand
            for _ in 0..<shift {
                let (next, overflow) = raw.multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                raw = next
            }
            self.init(raw: raw)
        } else if shift < -36 {
            self = .zero  // under 10⁻³⁶ of a unit of 10⁻²⁰: rounds to zero
        } else {
            var divisor: Int128 = 1
            for _ in 0..<(-shift) { divisor *= 10 }
            self.init(raw: Self.quotient(significand, divisor, .toNearestOrEven))
        }
    }

    public init(floatLiteral value: Double) { self = Money(finite: value)! }

    /// Reads `-123.456`, `1.5e-7` or `2E3` (a leading `+` or `-`, an optional exponent) when it has
    /// at most 20 places; nil otherwise.
    public init?(string: String) { self.init(text: string, rounding: false) }

    /// Reads as ``init(string:)`` does, and rounds past 20 places to the nearest (halves to even).
    public init?(rounding text: String) { self.init(text: text, rounding: true) }

    private init?(text: String, rounding: Bool) {
        var mantissa = Substring(text)
        var exponent = 0
        if let e = mantissa.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let power = Int(mantissa[mantissa.index(after: e)...]), power < 60 else { return nil }
            guard power > -60 else {
                // Far under 10⁻²⁰: zero when rounding, too many places otherwise.
                guard rounding else { return nil }
                self = .zero
                return
            }
            exponent = power
            mantissa = mantissa[..<e]
        }
        if exponent == 0 && !rounding {
            self.init(plain: mantissa)
            return
        }
        // Move the point by the exponent in the text, then read it as a plain amount.
        var negative = false
        if let first = mantissa.first, first == "-" || first == "+" {
            negative = first == "-"
            mantissa = mantissa.dropFirst()
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholePart = parts.first else { return nil }
        var digits = String(wholePart) + (parts.count > 1 ? String(parts[1]) : "")
        var point = wholePart.count + exponent
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        if point < 0 {
            digits = String(repeating: "0", count: -point) + digits
            point = 0
        }
        if point > digits.count { digits += String(repeating: "0", count: point - digits.count) }
        var whole = String(digits.prefix(point))
        var fraction = String(digits.dropFirst(point))
        if whole.isEmpty { whole = "0" }
        var bump = false
        if rounding && fraction.count > Self.places {
            let kept = fraction.prefix(Self.places)
            let rest = fraction.dropFirst(Self.places)
            let first = rest.first!
            let beyondHalf = rest.dropFirst().contains { $0 != "0" }
            let lastOdd = (kept.last.flatMap { $0.wholeNumberValue } ?? 0) % 2 == 1
            bump = first > "5" || (first == "5" && (beyondHalf || lastOdd))
            fraction = String(kept)
        }
        guard let plain = Money(plain: Substring((negative ? "-" : "") + whole + "." + fraction)) else { return nil }
        self = bump ? plain + Money(raw: negative ? -1 : 1) : plain
    }

    /// `-123.456` with no exponent and at most 20 places.
    private init?(plain: Substring) {
        let string = plain
        var bytes = string.utf8[...]
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
                guard places < Self.places else {
                    if digit == 0 { continue }  // trailing zeros past 20 places change nothing
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
        for _ in places..<Self.places { fraction *= 10 }
        let (scaled, o3) = whole.multipliedReportingOverflow(by: Self.scale)
        let (total, o4) = scaled.addingReportingOverflow(fraction)
        guard !o3, !o4 else { return nil }
        self.init(raw: negative ? -total : total)
    }

    /// The exact `Decimal` (38 significant digits hold every `Money`).
    public var decimal: Decimal { Decimal(string: description)! }

    /// The nearest `Double`. An amount of up to 8 or 15 places whose digits fit a double's 53 bits is
    /// one correctly rounded division (`n ÷ 10⁸`, both exact); any other goes through its text.
    public var doubleValue: Double {
        let (n8, r8) = raw.quotientAndRemainder(dividingBy: 1_000_000_000_000)
        if r8 == 0, n8.magnitude < 9_007_199_254_740_992 { return Double(n8) / 1e8 }
        let (n15, r15) = raw.quotientAndRemainder(dividingBy: 100_000)
        if r15 == 0, n15.magnitude < 9_007_199_254_740_992 { return Double(n15) / 1e15 }
        return Double(description)!
    }

    /// The shortest decimal text: `-1.5`, `0.000001`, `12`.
    public var description: String {
        let negative = raw < 0
        let (whole, fraction) = raw.magnitude.quotientAndRemainder(dividingBy: UInt128(Self.scale))
        var text = negative ? "-\(whole)" : "\(whole)"
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: Self.places - digits.count) + digits
            while digits.last == "0" { digits.removeLast() }
            text += "." + digits
        }
        return text
    }

    /// Reads a decimal string; a JSON number (what `Decimal` wrote before) is read too.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let text = try? container.decode(String.self) else {
            let number = try container.decode(Decimal.self)
            guard let value = Money(number) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(number) is out of range")
            }
            self = value
            return
        }
        guard let value = Money(string: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a decimal amount with at most 20 places"
            )
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
