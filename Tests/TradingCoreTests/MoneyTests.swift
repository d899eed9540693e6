import Foundation
import Testing

@testable import TradingCore

/// The fixed-point money type against `Decimal`, on generated values and at the boundaries.
@Suite("Money (fixed point) against Decimal")
struct MoneyTests {
    /// A value below `digits` in its last places, with 0...20 places, as both types (under 10⁹: a product
    /// of two stays in range).
    static func value(_ random: inout SplitMix64, digits: UInt64 = 1_000_000_000) -> (Money, Decimal) {
        let mantissa = Int64(random.next() % digits) * (random.next() % 2 == 0 ? 1 : -1)
        let places = Int(random.next() % 21)
        let decimal = Decimal(
            sign: mantissa < 0 ? .minus : .plus,
            exponent: -places,
            significand: Decimal(mantissa.magnitude)
        )
        var raw = Int128(mantissa)
        for _ in places..<Money.places { raw *= 10 }
        return (Money(raw: raw), decimal)
    }

    static func rounded(_ value: Decimal, _ mode: NSDecimalNumber.RoundingMode) -> Decimal {
        var value = value
        var result = Decimal()
        NSDecimalRound(&result, &value, Money.places, mode)
        return result
    }

    @Test("on 1,000,000 generated pairs: conversion, sum, difference, order, product and quotient equal Decimal's")
    func generated() throws {
        var random = SplitMix64(seed: 2026)
        for index in 0..<1_000_000 {
            let (a, x) = Self.value(&random)
            let (b, y) = Self.value(&random)
            #expect(a.decimal == x && Money(exactly: x) == a)
            #expect(a.doubleValue == Double(a.description), "the nearest Double")
            #expect((a + b).decimal == x + y && (a - b).decimal == x - y)
            #expect((a < b) == (x < y) && (a == b) == (x == y))
            // Products and quotients on a quarter of them (Decimal's are the slow side).
            guard index % 4 == 0 else { continue }
            #expect(a.multiplied(by: b, rounding: .toNearestOrEven).decimal == Self.rounded(x * y, .bankers))
            #expect(a.multiplied(by: b, rounding: .down).decimal == Self.rounded(x * y, .down))
            #expect(a.multiplied(by: b, rounding: .up).decimal == Self.rounded(x * y, .up))
            // Decimal keeps 38 significant digits: a quotient under 10⁹ has more than 20 places to round from.
            if !b.isZero, (x / y).magnitude < 1e9 {
                #expect(a.divided(by: b, rounding: .toNearestOrEven).decimal == Self.rounded(x / y, .bankers))
                #expect(a.divided(by: b, rounding: .down).decimal == Self.rounded(x / y, .down))
            }
        }
    }

    @Test("boundaries: the limit passes and a hair above fails; ties; steps; the range; text and JSON")
    func boundaries() throws {
        // The deviation guard's rule: within the limit passes, one unit of 10⁻²⁰ above fails.
        let reference = try #require(Money(string: "100"))
        let limit = try #require(Money(string: "0.02"))
        let atLimit = try #require(Money(string: "102"))
        let hair = atLimit + Money(raw: 1)
        func deviation(_ price: Money) -> Money { (price - reference).magnitude.divided(by: reference, rounding: .up) }
        #expect(deviation(atLimit) <= limit && deviation(hair) > limit)
        // Ties to even, and the named directions, on both signs.
        let half = Money(raw: 5)
        let one = Money(1)
        #expect(half.multiplied(by: Money(raw: Money.scale / 10), rounding: .toNearestOrEven).raw == 0, "0.5 → 0")
        #expect(Money(raw: 15).multiplied(by: Money(raw: Money.scale / 10), rounding: .toNearestOrEven).raw == 2)
        #expect(Money(raw: -15).multiplied(by: Money(raw: Money.scale / 10), rounding: .down).raw == -2)
        #expect(Money(raw: -15).multiplied(by: Money(raw: Money.scale / 10), rounding: .up).raw == -1)
        #expect(one.divided(by: Money(3), rounding: .down).description == "0.33333333333333333333")
        #expect(one.divided(by: Money(3), rounding: .up).description == "0.33333333333333333334")
        // Steps: a quantity down to its lot, a price toward the entry.
        let step = try #require(Money(string: "0.001"))
        #expect(try #require(Money(string: "1.23456")).rounded(toMultipleOf: step, .down).description == "1.234")
        #expect(try #require(Money(string: "-1.23456")).rounded(toMultipleOf: step, .down).description == "-1.235")
        #expect(
            try #require(Money(string: "1.2345")).rounded(toMultipleOf: step, .toNearestOrEven).description == "1.234"
        )
        #expect(
            try #require(Money(string: "1.2355")).rounded(toMultipleOf: step, .toNearestOrEven).description == "1.236"
        )
        // The same as Decimal's rounding to the step on generated prices.
        var random = SplitMix64(seed: 7)
        let filters = ExchangeFilters(
            tickSize: 0.0001,
            stepSize: 0.001,
            minQuantity: 0.001,
            maxQuantity: 1e6,
            minNotional: 5
        )
        for _ in 0..<10_000 {
            let (m, d) = Self.value(&random)
            var steps = d.magnitude / step.decimal
            var whole = Decimal()
            NSDecimalRound(&whole, &steps, 0, .down)
            #expect(m.magnitude.rounded(toMultipleOf: step, .down).decimal == whole * step.decimal)
            #expect(filters.quantity(m.magnitude) == m.magnitude.rounded(toMultipleOf: step, .down))
        }
        // The range: ±1.7 × 10¹⁸, checked.
        #expect(Money(string: "1701411834604692318") == nil, "past the range")
        #expect(Money(string: "1701411834604692317.31687303715884105727") == Money(raw: .max))
        #expect(Money(string: "1.000000000000000000001") == nil, "21 places")
        #expect(Money(string: "1.0000000000000000000000")?.description == "1", "trailing zeros past 20 places")
        #expect(Money(string: "") == nil && Money(string: "-") == nil && Money(string: "1.2.3") == nil)
        // Exponents, as venues and Decimal print small rates; past 20 places only when rounding.
        #expect(Money(string: "1e5") == Money(100_000) && Money(string: "-1.5E-7")?.description == "-0.00000015")
        #expect(Money(string: "1e-21") == nil && Money(rounding: "1.5e-20") == Money(raw: 2))
        #expect(Money(rounding: "0.123456789012345678905") == Money(string: "0.1234567890123456789"), "a tie to even")
        #expect(Money(rounding: "-0.123456789012345678915") == Money(string: "-0.12345678901234567892"))
        #expect(Money(rounding: "3e-200") == .zero && Money(string: "1e60") == nil)
        // The operators round to the nearest, as `Decimal` does its 38th digit.
        #expect(one / Money(3) * Money(3) == Money(string: "0.99999999999999999999"))
        #expect(Money(2) / Money(3) == Money(string: "0.66666666666666666667") && (-one).signum == -1)
        let encoded = try JSONEncoder().encode([try #require(Money(string: "-0.00000000000000000001"))])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["-0.00000000000000000001"]"#)
        #expect(try JSONDecoder().decode([Money].self, from: encoded) == [Money(raw: -1)])
        // A JSON number, as `Decimal` wrote amounts before, reads the same.
        #expect(try JSONDecoder().decode([Money].self, from: Data("[12.5, -0.0001]".utf8)) == [12.5, -0.0001])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Money].self, from: Data(#"["1.5x"]"#.utf8)) }
    }
}
