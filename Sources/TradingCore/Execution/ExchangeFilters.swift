import Foundation

/// A symbol's trading rules at a venue: price tick, quantity step, quantity bounds and minimum
/// notional. Rounding always goes toward safety: quantities down, stops toward entry.
public struct ExchangeFilters: Sendable, Hashable, Codable {
    public var tickSize: Money
    public var stepSize: Money
    public var minQuantity: Money
    public var maxQuantity: Money
    public var minNotional: Money
    /// At most this many significant figures in a price, integers always allowed (Hyperliquid: 5, with
    /// `tickSize` its decimals limit, 10^-(6 - szDecimals)); nil: the tick alone.
    public var significantFigures: Int?

    /// A `ExchangeFilters` with the fields given.
    public init(
        tickSize: Money,
        stepSize: Money,
        minQuantity: Money,
        maxQuantity: Money,
        minNotional: Money,
        significantFigures: Int? = nil
    ) {
        self.significantFigures = significantFigures
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

    /// The price step at `price`: the tick, or coarser where `significantFigures` allows fewer
    /// decimals (never coarser than 1: whole prices are always allowed).
    public func tick(at price: Money) -> Money {
        guard let figures = significantFigures, figures > 0, price > 0 else { return tickSize }
        var magnitude: Money = 1  // the largest power of ten not above the price
        while magnitude * 10 <= price { magnitude *= 10 }
        while magnitude > price { magnitude /= 10 }
        var step = magnitude
        for _ in 1..<figures { step /= 10 }
        return max(tickSize, min(1, step))
    }

    /// A price rounded down to its tick (``tick(at:)``).
    public func floorPrice(_ value: Money) -> Money { Self.floor(value, step: tick(at: value)) }

    /// A price rounded up to its tick (``tick(at:)``).
    public func ceilPrice(_ value: Money) -> Money {
        let up = Self.ceil(value, step: tick(at: value))
        // Rounding up may cross into a decade of coarser steps: round again there.
        return Self.ceil(up, step: tick(at: up))
    }

    /// A price rounded to the tick toward `entry` (a stop or target then sits no further from entry
    /// than asked).
    public func price(_ value: Money, toward entry: Money) -> Money {
        value < entry ? ceilPrice(value) : floorPrice(value)
    }

    /// Whether `value` is a whole number of ticks (and within the significant figures).
    public func isOnTick(_ value: Money) -> Bool { floorPrice(value) == value }
}
