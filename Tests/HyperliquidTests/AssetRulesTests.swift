import Hyperliquid
import Testing
import TradingCore

@Suite("Hyperliquid's price and size rules, as the risk gateway rounds to them")
struct AssetRulesTests {
    @Test("5 significant figures and 6 - szDecimals decimals; whole prices always allowed")
    func prices() {
        let btc = HyperliquidCoins.filters(szDecimals: 5)  // 1 decimal
        #expect(btc.floorPrice(Money(string: "98765.43")!) == 98_765)
        #expect(btc.floorPrice(Money(string: "123456.7")!) == 123_456)  // whole: allowed beyond 5 figures
        #expect(btc.isOnTick(Money(string: "9876.5")!) && !btc.isOnTick(Money(string: "98765.4")!))
        let xrp = HyperliquidCoins.filters(szDecimals: 0)  // 6 decimals
        #expect(xrp.floorPrice(Money(string: "0.5123456")!) == Money(string: "0.51234")!)
        #expect(xrp.ceilPrice(Money(string: "0.5123401")!) == Money(string: "0.51235")!)
        #expect(xrp.ceilPrice(Money(string: "9.99999")!) == 10)
        let small = HyperliquidCoins.filters(szDecimals: 2)  // 4 decimals
        #expect(small.floorPrice(Money(string: "0.000123456")!) == Money(string: "0.0001")!)
        // A stop rounded toward entry keeps to the rules: 98,000.06 below a 100,000 entry is 98,001.
        #expect(btc.price(Money(string: "98000.06")!, toward: 100_000) == 98_001)
        #expect(btc.quantity(Money(string: "0.0123456")!) == Money(string: "0.01234")!)
        #expect(btc.minNotional == 10)
    }

    @Test("the coin of a system symbol")
    func coins() {
        #expect(HyperliquidCoins.coin("BTCUSDT") == "BTC" && HyperliquidCoins.coin("ETH-PERP") == "ETH")
        #expect(HyperliquidCoins.coin("SOL") == "SOL")
    }
}
