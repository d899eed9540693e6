/// The indicator values after one candle; nil while an indicator is still warming up.
public struct IndicatorSnapshot: Sendable, Hashable, Codable {
    public var openTime: Int64
    public var close: Double
    public var sma20: Double?
    public var ema12: Double?
    public var ema26: Double?
    public var macd: Double?
    public var macdSignal: Double?
    public var macdHistogram: Double?
    public var rsi14: Double?
    public var atr14: Double?
    public var bollingerUpper: Double?
    public var bollingerMiddle: Double?
    public var bollingerLower: Double?
    public var stochasticK: Double?
    public var stochasticD: Double?
    public var adx14: Double?
    public var obv: Double?
    public var volume: Double
    public var volumeSMA20: Double?
    /// The latest swing high and low: resistance and support.
    public var resistance: Double?
    public var support: Double?
    /// ``MarketRegime/classify(_:volatileATRFraction:trendADX:)`` of this snapshot.
    public var regime: MarketRegime?

    /// A `IndicatorSnapshot` with the fields given.
    public init(
        openTime: Int64,
        close: Double,
        sma20: Double? = nil,
        ema12: Double? = nil,
        ema26: Double? = nil,
        macd: Double? = nil,
        macdSignal: Double? = nil,
        macdHistogram: Double? = nil,
        rsi14: Double? = nil,
        atr14: Double? = nil,
        bollingerUpper: Double? = nil,
        bollingerMiddle: Double? = nil,
        bollingerLower: Double? = nil,
        stochasticK: Double? = nil,
        stochasticD: Double? = nil,
        adx14: Double? = nil,
        obv: Double? = nil,
        volume: Double,
        volumeSMA20: Double? = nil,
        resistance: Double? = nil,
        support: Double? = nil,
        regime: MarketRegime? = nil
    ) {
        self.openTime = openTime
        self.close = close
        self.sma20 = sma20
        self.ema12 = ema12
        self.ema26 = ema26
        self.macd = macd
        self.macdSignal = macdSignal
        self.macdHistogram = macdHistogram
        self.rsi14 = rsi14
        self.atr14 = atr14
        self.bollingerUpper = bollingerUpper
        self.bollingerMiddle = bollingerMiddle
        self.bollingerLower = bollingerLower
        self.stochasticK = stochasticK
        self.stochasticD = stochasticD
        self.adx14 = adx14
        self.obv = obv
        self.volume = volume
        self.volumeSMA20 = volumeSMA20
        self.resistance = resistance
        self.support = support
        self.regime = regime
    }

    /// The columns of `tradebus indicators`, in order.
    public static let columns = [
        "open_time", "close", "sma20", "ema12", "ema26", "macd", "macd_signal", "macd_hist", "rsi14", "atr14",
        "bb_upper", "bb_middle", "bb_lower", "stoch_k", "stoch_d", "adx14", "obv",
    ]

    /// The values of `columns` after `open_time`, in order.
    public var columnValues: [Double?] {
        [
            close, sma20, ema12, ema26, macd, macdSignal, macdHistogram, rsi14, atr14, bollingerUpper, bollingerMiddle,
            bollingerLower, stochasticK, stochasticD, adx14, obv,
        ]
    }
}

/// Every indicator of one (symbol, interval), updated incrementally: O(1) per candle (the stochastic's
/// 14-value window aside), never recomputed over the window. Codable, so a worker can save and restore it.
public struct IndicatorSet: Sendable, Hashable, Codable {
    private var sma20 = SMA(period: 20)
    private var ema12 = EMA(period: 12)
    private var ema26 = EMA(period: 26)
    private var macd = MACD(fast: 12, slow: 26, signal: 9)
    private var rsi = RSI(period: 14)
    private var atr = ATR(period: 14)
    private var bollinger = Bollinger(period: 20, deviations: 2)
    private var stochastic = Stochastic(kPeriod: 14, kSlowing: 3, dPeriod: 3)
    private var adx = ADX(period: 14)
    private var obv = OBV()
    private var volumeSMA = SMA(period: 20)
    private var swings = SwingLevels(strength: 2)
    public private(set) var candles = 0

    /// Every indicator empty, at its standard period.
    public init() {}

    /// Adds the next closed candle and returns the snapshot after it.
    public mutating func update(_ candle: Candle) -> IndicatorSnapshot {
        candles += 1
        let macdValue = macd.update(candle.close)
        let bands = bollinger.update(candle.close)
        let stoch = stochastic.update(high: candle.high, low: candle.low, close: candle.close)
        swings.update(high: candle.high, low: candle.low)
        var snapshot = IndicatorSnapshot(
            openTime: candle.openTime,
            close: candle.close,
            sma20: sma20.update(candle.close),
            ema12: ema12.update(candle.close),
            ema26: ema26.update(candle.close),
            macd: macdValue?.macd,
            macdSignal: macdValue?.signal,
            macdHistogram: macdValue?.histogram,
            rsi14: rsi.update(candle.close),
            atr14: atr.update(high: candle.high, low: candle.low, close: candle.close),
            bollingerUpper: bands?.upper,
            bollingerMiddle: bands?.middle,
            bollingerLower: bands?.lower,
            stochasticK: stoch?.k,
            stochasticD: stoch?.d,
            adx14: adx.update(high: candle.high, low: candle.low, close: candle.close),
            obv: obv.update(close: candle.close, volume: candle.volume),
            volume: candle.volume,
            volumeSMA20: volumeSMA.update(candle.volume),
            resistance: swings.resistance,
            support: swings.support
        )
        snapshot.regime = MarketRegime.classify(snapshot)
        return snapshot
    }
}

/// The columns of `tradebus indicators` for a whole series at once: the same incremental indicators
/// as ``IndicatorSet``, without a snapshot per candle (and so without swing levels or the regime,
/// which are not columns). Row-major, `IndicatorSnapshot.columns.count - 1` values a row (`open_time`
/// is the candle's); a value still warming up is NaN.
public struct IndicatorTable: Sendable {
    public static let width = IndicatorSnapshot.columns.count - 1
    public private(set) var values: [Double]
    public let rows: Int

    /// Every indicator fed with `candles`, in order.
    public init(_ candles: [Candle]) {
        rows = candles.count
        var sma20 = SMA(period: 20)
        var ema12 = EMA(period: 12)
        var ema26 = EMA(period: 26)
        var macd = MACD(fast: 12, slow: 26, signal: 9)
        var rsi = RSI(period: 14)
        var atr = ATR(period: 14)
        var bollinger = Bollinger(period: 20, deviations: 2)
        var stochastic = Stochastic(kPeriod: 14, kSlowing: 3, dPeriod: 3)
        var adx = ADX(period: 14)
        var obv = OBV()
        let width = Self.width
        values = Array(repeating: .nan, count: candles.count * width)
        values.withUnsafeMutableBufferPointer { table in
            for (row, candle) in candles.enumerated() {
                let base = row * width
                table[base] = candle.close
                if let v = sma20.update(candle.close) { table[base + 1] = v }
                if let v = ema12.update(candle.close) { table[base + 2] = v }
                if let v = ema26.update(candle.close) { table[base + 3] = v }
                if let v = macd.update(candle.close) {
                    table[base + 4] = v.macd
                    table[base + 5] = v.signal
                    table[base + 6] = v.histogram
                }
                if let v = rsi.update(candle.close) { table[base + 7] = v }
                if let v = atr.update(high: candle.high, low: candle.low, close: candle.close) { table[base + 8] = v }
                if let v = bollinger.update(candle.close) {
                    table[base + 9] = v.upper
                    table[base + 10] = v.middle
                    table[base + 11] = v.lower
                }
                if let v = stochastic.update(high: candle.high, low: candle.low, close: candle.close) {
                    table[base + 12] = v.k
                    table[base + 13] = v.d
                }
                if let v = adx.update(high: candle.high, low: candle.low, close: candle.close) { table[base + 14] = v }
                table[base + 15] = obv.update(close: candle.close, volume: candle.volume)
            }
        }
    }

    /// Row `row`'s values, nil where still warming up.
    public func row(_ row: Int) -> [Double?] {
        (0..<Self.width).map { column in
            let value = values[row * Self.width + column]
            return value.isNaN ? nil : value
        }
    }
}
