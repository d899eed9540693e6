import Foundation

/// A seeded random walk of candles for many symbols, for load tests and demos: the same seed and
/// symbols give the same candles on every machine. Each symbol walks on its own generator, seeded
/// from the seed and the symbol's position, so symbol `i` is the same walk whatever the other symbols are.
public struct SyntheticMarket: Sendable {
    struct Walk: Sendable {
        var random: SplitMix64
        var price: Double
    }

    public let symbols: [String]
    public let intervalMilliseconds: Int64
    /// Standard deviation of a candle's log return.
    public let volatility: Double
    public private(set) var nextOpenTime: Int64
    private var walks: [Walk]

    /// A seeded random walk of candles for `symbol`.
    public init(
        symbols: [String],
        seed: UInt64,
        intervalMilliseconds: Int64,
        startTime: Int64,
        startPrice: Double = 100,
        volatility: Double = 0.003
    ) {
        precondition(startPrice > 0 && volatility > 0 && intervalMilliseconds > 0)
        self.symbols = symbols
        self.intervalMilliseconds = intervalMilliseconds
        self.volatility = volatility
        self.nextOpenTime = startTime - startTime % intervalMilliseconds
        self.walks = symbols.indices.map { index in
            var random = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            let price = startPrice * (0.5 + random.nextUnit())
            return Walk(random: random, price: price)
        }
    }

    /// The next candle of every symbol, in the order of `symbols`, all with the same open time.
    public mutating func next() -> [Candle] {
        let openTime = nextOpenTime
        nextOpenTime += intervalMilliseconds
        return walks.indices.map { index in
            var walk = walks[index]
            let open = walk.price
            // A sum of uniforms is close enough to normal for a load test, and cheap.
            let z =
                (walk.random.nextUnit() + walk.random.nextUnit() + walk.random.nextUnit() + walk.random.nextUnit() - 2)
                * 1.7320508075688772
            let close = open * exp(volatility * z)
            let high = max(open, close) * (1 + volatility * 0.5 * walk.random.nextUnit())
            let low = min(open, close) * (1 - volatility * 0.5 * walk.random.nextUnit())
            let volume = 1_000 * (0.25 + 1.5 * walk.random.nextUnit())
            walk.price = close
            walks[index] = walk
            return Candle(openTime: openTime, open: open, high: high, low: low, close: close, volume: volume)
        }
    }
}

/// SplitMix64: a tiny, fast, well-mixed generator whose output is fixed by its seed on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    /// A generator started from `seed`: the same seed, the same numbers.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform number in `0..<1` with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
