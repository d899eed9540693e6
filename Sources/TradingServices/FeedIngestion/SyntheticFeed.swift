import Foundation
import TradingCore

/// Publishes a seeded random walk (``SyntheticMarket``) for many symbols: every step, one closed candle
/// per symbol, as fast as the bus takes them or at a factor of real time. For load tests and demos.
public struct SyntheticFeed: Sendable {
    public var symbols: [String]
    public var interval: String
    public var seed: UInt64
    /// Candles per symbol; nil runs until cancelled.
    public var candles: Int?
    /// 0: as fast as the bus takes them; N: N× real time.
    public var speed: Double
    /// Open time of the first candles; by default, that many intervals before now, so the walk ends about now.
    public var startTime: Int64?
    /// Each candle stamped as closing now (`SYNTHETIC_CLOCK=wall`), whatever the speed: the workers then
    /// measure their latency from its close (`tradebus bench e2e`). Open times still only increase.
    public var wallClock: Bool
    let output: FeedOutput

    /// A `SyntheticFeed` with the fields given.
    public init(
        symbols: [String],
        interval: String,
        seed: UInt64,
        candles: Int?,
        speed: Double = 0,
        startTime: Int64? = nil,
        wallClock: Bool = false,
        output: FeedOutput
    ) {
        self.wallClock = wallClock
        self.symbols = symbols
        self.interval = interval
        self.seed = seed
        self.candles = candles
        self.speed = speed
        self.startTime = startTime
        self.output = output
    }

    /// Publishes the walk; returns how many candles went out.
    @discardableResult
    public func run() async throws -> Int {
        guard let length = CandleInterval.milliseconds(interval) else {
            throw ExchangeMessageError("interval '\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let start = startTime ?? (nowMillis - Int64(candles ?? 0) * length)
        var market = SyntheticMarket(symbols: symbols, seed: seed, intervalMilliseconds: length, startTime: start)
        let streams = symbols.map { CandleStreamID(symbol: $0, interval: interval) }
        var published = 0
        var step = 0
        var last: [Candle] = []
        var lastOpen: Int64?
        while candles.map({ step < $0 }) ?? true {
            try Task.checkCancellation()
            last = market.next()
            if wallClock {
                let open = max(Int64(Date().timeIntervalSince1970 * 1000) - length, (lastOpen ?? .min) + 1)
                last = last.map {
                    Candle(
                        openTime: open,
                        open: $0.open,
                        high: $0.high,
                        low: $0.low,
                        close: $0.close,
                        volume: $0.volume
                    )
                }
                lastOpen = open
            }
            try await output.bus.publish(
                try zip(last, streams).map { try output.message($0, of: $1, intervalMilliseconds: length) }
            )
            published += last.count
            step += 1
            if speed > 0 {
                await setLatestPrices(last, length: length)
                try await Task.sleep(for: .milliseconds(Int64(Double(length) / speed)))
            }
        }
        await setLatestPrices(last, length: length)
        return published
    }

    private func setLatestPrices(_ candles: [Candle], length: Int64) async {
        for (candle, symbol) in zip(candles, symbols) {
            await output.setLatestPrice(
                symbol: symbol,
                price: candle.close,
                time: FeedOutput.closeTime(candle, intervalMilliseconds: length)
            )
        }
    }
}
