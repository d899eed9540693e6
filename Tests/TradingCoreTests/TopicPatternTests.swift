import Testing
import TradingCore

@Suite("Topic patterns and routing keys")
struct TopicPatternTests {
    @Test(
        "matches like RabbitMQ's topic exchange",
        arguments: [
            ("md.candle.*.*.*", "md.candle.binance.BTCUSDT.1m", true),
            ("md.candle.*.*.*", "md.candle.binance.BTCUSDT", false),
            ("md.#", "md", true),
            ("md.#", "md.candle.binance.BTCUSDT.1m", true),
            ("#", "anything.at.all", true),
            ("alert.*.feed_stale", "alert.warning.feed_stale", true),
            ("alert.*.feed_stale", "alert.warning.other", false),
            ("*.x.#.z", "a.x.z", true),
            ("*.x.#.z", "a.x.b.c.z", true),
            ("*.x.#.z", "x.z", false),
            ("sig.BTCUSDT.*", "sig.ETHUSDT.1h", false),
            ("a.b", "a.b.c", false),
        ]
    )
    func matches(pattern: String, key: String, expected: Bool) {
        #expect(TopicPattern(pattern).matches(key) == expected)
    }

    @Test("routing keys follow DESIGN.md and cannot be broken by dots or wildcards in names")
    func routingKeys() {
        #expect(
            RoutingKey.candle(venue: "binance", symbol: "BTCUSDT", interval: "1m") == "md.candle.binance.BTCUSDT.1m"
        )
        #expect(RoutingKey.indicators(symbol: "BTCUSDT", interval: "4h") == "ind.BTCUSDT.4h")
        #expect(RoutingKey.signal(symbol: "BTCUSDT", interval: "5m") == "sig.BTCUSDT.5m")
        #expect(RoutingKey.decision(symbol: "ETHUSDT") == "decision.ETHUSDT")
        #expect(RoutingKey.order(status: "filled", symbol: "ETHUSDT") == "order.filled.ETHUSDT")
        #expect(RoutingKey.trade("opened", symbol: "ETHUSDT") == "trade.opened.ETHUSDT")
        #expect(RoutingKey.alert(severity: "warning", kind: "feed_stale") == "alert.warning.feed_stale")
        #expect(RoutingKey.candle(venue: "x", symbol: "BTC.USDT#*", interval: "1m") == "md.candle.x.BTC_USDT__.1m")
    }
}
