import Foundation
import Testing

@testable import TradingCore

/// The fixed-point money type against `Decimal`, on generated values and at the boundaries.
@Suite("Money (fixed point) against Decimal")
struct MoneyTests {
    /// A value below `digits` in its last places, with 0...18 places, as both types (at most 10¹⁰: a product
    /// of two stays in range).
    static func value(_ random: inout SplitMix64, digits: UInt64 = 10_000_000_000) -> (Money, Decimal) {
        let mantissa = Int64(random.next() % digits) * (random.next() % 2 == 0 ? 1 : -1)
        let places = Int(random.next() % 19)
        let decimal = Decimal(
            sign: mantissa < 0 ? .minus : .plus,
            exponent: -places,
            significand: Decimal(mantissa.magnitude)
        )
        var raw = Int128(mantissa)
        for _ in places..<18 { raw *= 10 }
        return (Money(raw: raw), decimal)
    }

    static func rounded(_ value: Decimal, _ mode: NSDecimalNumber.RoundingMode) -> Decimal {
        var value = value
        var result = Decimal()
        NSDecimalRound(&result, &value, 18, mode)
        return result
    }

    @Test("on 1,000,000 generated pairs: conversion, sum, difference, order, product and quotient equal Decimal's")
    func generated() throws {
        var random = SplitMix64(seed: 2026)
        for index in 0..<1_000_000 {
            let (a, x) = Self.value(&random)
            let (b, y) = Self.value(&random)
            #expect(a.decimal == x && Money(exactly: x) == a)
            #expect((a + b).decimal == x + y && (a - b).decimal == x - y)
            #expect((a < b) == (x < y) && (a == b) == (x == y))
            // Products and quotients on a quarter of them (Decimal's are the slow side).
            guard index % 4 == 0 else { continue }
            #expect(a.multiplied(by: b, rounding: .toNearestOrEven).decimal == Self.rounded(x * y, .bankers))
            #expect(a.multiplied(by: b, rounding: .down).decimal == Self.rounded(x * y, .down))
            #expect(a.multiplied(by: b, rounding: .up).decimal == Self.rounded(x * y, .up))
            // Decimal keeps 38 significant digits: a quotient under 10⁹ has more than 18 places to round from.
            if !b.isZero, (x / y).magnitude < 1e9 {
                #expect(a.divided(by: b, rounding: .toNearestOrEven).decimal == Self.rounded(x / y, .bankers))
                #expect(a.divided(by: b, rounding: .down).decimal == Self.rounded(x / y, .down))
            }
        }
    }

    @Test("boundaries: the limit passes and a hair above fails; ties; steps; the range; text and JSON")
    func boundaries() throws {
        // The deviation guard's rule: within the limit passes, one unit of 10⁻¹⁸ above fails.
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
        #expect(one.divided(by: Money(3), rounding: .down).description == "0.333333333333333333")
        #expect(one.divided(by: Money(3), rounding: .up).description == "0.333333333333333334")
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
        // The same as ExchangeFilters' Decimal rounding on generated prices.
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
            #expect(m.magnitude.rounded(toMultipleOf: step, .down).decimal == filters.quantity(d.magnitude))
        }
        // The range: ±1.7 × 10²⁰, checked.
        #expect(Money(string: "170141183460469231732") == nil, "past the range")
        #expect(Money(string: "170141183460469231731.687303715884105727") == Money(raw: .max))
        #expect(Money(string: "1.0000000000000000001") == nil, "19 places")
        #expect(Money(string: "1.0000000000000000000")?.description == "1", "trailing zeros past 18 places")
        #expect(Money(string: "1e5") == nil && Money(string: "") == nil && Money(string: "-") == nil)
        let encoded = try JSONEncoder().encode([try #require(Money(string: "-0.000000000000000001"))])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["-0.000000000000000001"]"#)
        #expect(try JSONDecoder().decode([Money].self, from: encoded) == [Money(raw: -1)])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Money].self, from: Data(#"["1.5x"]"#.utf8)) }
    }
}
