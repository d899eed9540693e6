import Foundation
import Testing
import TradingCore

/// Maintenance-margin tiers as Binance's leverage brackets and Bybit's risk limits define them.
@Suite("Margin tiers")
struct MarginTiersTests {
    /// Binance's documented ETHUSDT example as its first brackets: 0.65 % to 10,000, then 1 % (cum 35).
    let binance = MarginTiers(tiers: [
        .init(notionalCap: 10_000, rate: Money(string: "0.0065")!, deduction: 0),
        .init(notionalCap: 100_000, rate: Money(string: "0.01")!, deduction: 35),
        .init(notionalCap: nil, rate: Money(string: "0.02")!, deduction: 1_035),
    ])

    @Test("a notional's margin is its tier's rate less the tier's deduction, continuous at every cap")
    func margin() {
        #expect(binance.maintenanceMargin(notional: 5_000) == Money(string: "32.5"))
        #expect(binance.maintenanceMargin(notional: 10_000) == 65)
        #expect(binance.maintenanceMargin(notional: Money(string: "10000.01")!) == Money(string: "65.0001"))
        #expect(binance.maintenanceMargin(notional: 50_000) == 465)
        #expect(binance.maintenanceMargin(notional: 200_000) == 2_965)
        #expect(binance.rate(notional: 50_000) == Money(string: "0.0093"))
        #expect(MarginTiers.flat(0.005).rate(notional: 1_000_000) == Money(string: "0.005"))
    }

    @Test("tiers from caps and rates alone (Bybit gives no deduction) carry the deductions Binance lists")
    func continuous() {
        let built = MarginTiers.continuous([
            (Money(10_000), Money(string: "0.0065")!), (Money(100_000), Money(string: "0.01")!),
            (nil, Money(string: "0.02")!),
        ])
        #expect(built == binance)
    }
}
