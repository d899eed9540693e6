import Foundation

extension Decimal {
    /// Rounded down to `places` decimal places (the local exchanges' partial fills, on a 0.001 step).
    func rounded(_ places: Int) -> Decimal {
        var value = self
        var result = Decimal()
        NSDecimalRound(&result, &value, places, .down)
        return result
    }
}
