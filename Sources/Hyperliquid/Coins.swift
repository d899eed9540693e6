import TradingCore

/// Hyperliquid's names and rules for a coin.
public enum HyperliquidCoins {
    /// The coin of a system symbol: `BTCUSDT`, `BTCUSDC`, `BTC-PERP` → `BTC`.
    public static func coin(_ symbol: String) -> String {
        for suffix in ["-PERP", "USDT", "USDC", "USD"] where symbol.hasSuffix(suffix) && symbol.count > suffix.count {
            return String(symbol.dropLast(suffix.count))
        }
        return symbol
    }

    /// Sizes in `szDecimals` decimals; prices at most 5 significant figures and 6 - `szDecimals`
    /// decimals (whole prices always); at least 10 USDC an order.
    public static func filters(szDecimals: Int) -> ExchangeFilters {
        var step: Money = 1
        for _ in 0..<szDecimals { step /= 10 }
        var tick: Money = 1
        for _ in 0..<max(0, 6 - szDecimals) { tick /= 10 }
        return ExchangeFilters(
            tickSize: tick,
            stepSize: step,
            minQuantity: step,
            maxQuantity: 1_000_000_000,
            minNotional: 10,
            significantFigures: 5
        )
    }
}
