/// The market's state, from the indicators, by a fixed documented rule (`MarketRegime.classify`).
public enum MarketRegime: String, Sendable, Hashable, Codable, CaseIterable {
    case trendingUp = "trending_up"
    case trendingDown = "trending_down"
    case ranging
    case volatile

    /// The rule, in order:
    /// 1. **volatile** when ATR(14) is at least `volatileATRFraction` of the close (default 3 %);
    /// 2. **trending up** when ADX(14) ≥ `trendADX` (default 25), EMA(12) > EMA(26) and close > SMA(20);
    /// 3. **trending down** when ADX(14) ≥ `trendADX`, EMA(12) < EMA(26) and close < SMA(20);
    /// 4. **ranging** otherwise.
    /// Nil until ATR, ADX, both EMAs and the SMA are defined.
    public static func classify(
        _ s: IndicatorSnapshot,
        volatileATRFraction: Double = 0.03,
        trendADX: Double = 25
    ) -> MarketRegime? {
        guard let atr = s.atr14, let adx = s.adx14, let fast = s.ema12, let slow = s.ema26, let sma = s.sma20,
            s.close > 0
        else {
            return nil
        }
        if atr / s.close >= volatileATRFraction { return .volatile }
        if adx >= trendADX && fast > slow && s.close > sma { return .trendingUp }
        if adx >= trendADX && fast < slow && s.close < sma { return .trendingDown }
        return .ranging
    }
}

/// Swing highs and lows (fractals): a candle whose high is above the `strength` candles on each side
/// is a swing high, known `strength` candles later; likewise for lows. The latest ones are resistance
/// and support. O(strength) per candle.
public struct SwingLevels: Sendable, Hashable, Codable {
    public let strength: Int
    private var highs: [Double]
    private var lows: [Double]
    private var next = 0
    private var count = 0
    public private(set) var resistance: Double?
    public private(set) var support: Double?

    /// Swing points confirmed by `strength` bars on each side.
    public init(strength: Int = 2) {
        self.strength = strength
        highs = Array(repeating: 0, count: 2 * strength + 1)
        lows = Array(repeating: 0, count: 2 * strength + 1)
    }

    /// Adds a bar's high and low.
    public mutating func update(high: Double, low: Double) {
        let width = highs.count
        highs[next] = high
        lows[next] = low
        next = next + 1 == width ? 0 : next + 1
        if count < width { count += 1 }
        guard count == width else { return }
        // `next` is now the oldest slot; the middle candle is `strength` slots after it.
        var center = next + strength
        if center >= width { center -= width }
        let h = highs[center]
        let l = lows[center]
        var isHigh = true
        var isLow = true
        for slot in 0..<width where slot != center {
            if highs[slot] >= h { isHigh = false }
            if lows[slot] <= l { isLow = false }
        }
        if isHigh { resistance = h }
        if isLow { support = l }
    }
}

/// Builds higher-timeframe candles from 1-minute candles. A candle is emitted when the last minute of
/// its interval arrives, or, after a gap, when a minute of a later interval does; `minutes` says how
/// many 1m candles it was made of, so a reader can tell a complete one.
public struct TimeframeAggregator: Sendable, Hashable, Codable {
    /// Support, resistance and trend at one bar.
    public struct Output: Sendable, Hashable, Codable {
        public var interval: String
        public var candle: Candle
        public var minutes: Int
        public var complete: Bool
    }

    struct Bucket: Sendable, Hashable, Codable {
        var interval: String
        var milliseconds: Int64
        var current: Candle?
        var minutes = 0
    }

    private var buckets: [Bucket]
    /// The last minute added; an older or equal one is ignored, so a minute never counts twice.
    public private(set) var lastMinute: Int64?

    /// The intervals it makes, shortest first.
    public var intervals: [String] { buckets.map(\.interval) }

    /// Intervals by name and length in minutes; the default is 5m, 15m, 1h and 4h.
    public init(intervals: [(String, Int)] = [("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240)]) {
        buckets = intervals.map { Bucket(interval: $0.0, milliseconds: Int64($0.1) * 60_000) }
    }

    /// Adds a closed 1m candle (in time order) and returns the higher-timeframe candles it closed; a
    /// minute not after the last one added changes nothing.
    public mutating func add(_ minute: Candle) -> [Output] {
        if let last = lastMinute, minute.openTime <= last { return [] }
        lastMinute = minute.openTime
        var closed: [Output] = []
        for index in buckets.indices {
            let length = buckets[index].milliseconds
            let start = minute.openTime - ((minute.openTime % length) + length) % length
            if let current = buckets[index].current, current.openTime != start {
                // A gap skipped this interval's last minute: close what there is.
                closed.append(
                    Output(
                        interval: buckets[index].interval,
                        candle: current,
                        minutes: buckets[index].minutes,
                        complete: false
                    )
                )
                buckets[index].current = nil
                buckets[index].minutes = 0
            }
            if var current = buckets[index].current {
                current.high = max(current.high, minute.high)
                current.low = min(current.low, minute.low)
                current.close = minute.close
                current.volume += minute.volume
                buckets[index].current = current
            } else {
                buckets[index].current = Candle(
                    openTime: start,
                    open: minute.open,
                    high: minute.high,
                    low: minute.low,
                    close: minute.close,
                    volume: minute.volume
                )
            }
            buckets[index].minutes += 1
            if minute.openTime + 60_000 == start + length, let current = buckets[index].current {
                let complete = buckets[index].minutes == Int(length / 60_000)
                closed.append(
                    Output(
                        interval: buckets[index].interval,
                        candle: current,
                        minutes: buckets[index].minutes,
                        complete: complete
                    )
                )
                buckets[index].current = nil
                buckets[index].minutes = 0
            }
        }
        return closed
    }
}

/// A trading signal from one snapshot to the next.
public struct Signal: Sendable, Hashable, Codable {
    /// Which rule fired.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case macdCross = "macd_cross"
        case rsiExitOverbought = "rsi_exit_overbought"
        case rsiExitOversold = "rsi_exit_oversold"
        case bollingerBreakout = "bollinger_breakout"
    }

    /// Bullish or bearish.
    public enum Direction: String, Sendable, Hashable, Codable { case bullish, bearish }

    public var kind: Kind
    public var direction: Direction
    public var snapshot: IndicatorSnapshot

    /// A `Signal` with the fields given.
    public init(kind: Kind, direction: Direction, snapshot: IndicatorSnapshot) {
        self.kind = kind
        self.direction = direction
        self.snapshot = snapshot
    }

    /// The signals between two consecutive snapshots: MACD crossing its signal line; RSI leaving
    /// overbought (above `overbought`, default 70) or oversold (below `oversold`, default 30); a close
    /// outside the Bollinger bands on volume at least `volumeFactor` (default 1.5) times its 20-candle
    /// average.
    public static func detect(
        previous: IndicatorSnapshot,
        current: IndicatorSnapshot,
        overbought: Double = 70,
        oversold: Double = 30,
        volumeFactor: Double = 1.5
    ) -> [Signal] {
        var signals: [Signal] = []
        if let pm = previous.macd, let ps = previous.macdSignal, let m = current.macd, let s = current.macdSignal {
            if pm <= ps && m > s { signals.append(Signal(kind: .macdCross, direction: .bullish, snapshot: current)) }
            if pm >= ps && m < s { signals.append(Signal(kind: .macdCross, direction: .bearish, snapshot: current)) }
        }
        if let pr = previous.rsi14, let r = current.rsi14 {
            if pr > overbought && r <= overbought {
                signals.append(Signal(kind: .rsiExitOverbought, direction: .bearish, snapshot: current))
            }
            if pr < oversold && r >= oversold {
                signals.append(Signal(kind: .rsiExitOversold, direction: .bullish, snapshot: current))
            }
        }
        if let upper = current.bollingerUpper, let lower = current.bollingerLower,
            let averageVolume = current.volumeSMA20,
            current.volume >= volumeFactor * averageVolume, averageVolume > 0
        {
            if current.close > upper {
                signals.append(Signal(kind: .bollingerBreakout, direction: .bullish, snapshot: current))
            }
            if current.close < lower {
                signals.append(Signal(kind: .bollingerBreakout, direction: .bearish, snapshot: current))
            }
        }
        return signals
    }
}
