/// MACD(fast, slow, signal) as TA-Lib computes it: both EMAs start together where the slow one can,
/// so the fast EMA is seeded with the SMA of the `fast` values ending there (not of the first `fast`
/// values), and the signal is an EMA of the MACD line. O(1) per value.
public struct MACD: Sendable, Hashable, Codable {
    /// The indicator's lines at one bar.
    public struct Value: Sendable, Hashable, Codable {
        public var macd: Double
        public var signal: Double
        public var histogram: Double
    }

    private var fast: EMA
    private var slow: EMA
    private var signal: EMA
    private let fastDelay: Int
    private var seen = 0

    /// An empty MACD with TA-Lib's periods by default.
    public init(fast: Int = 12, slow: Int = 26, signal: Int = 9) {
        self.fast = EMA(period: fast)
        self.slow = EMA(period: slow)
        self.signal = EMA(period: signal)
        self.fastDelay = max(0, slow - fast)
    }

    /// Adds a close; returns the lines once they are defined.
    public mutating func update(_ close: Double) -> Value? {
        seen += 1
        let slowValue = slow.update(close)
        guard seen > fastDelay else { return nil }
        let fastValue = fast.update(close)
        guard let fastValue, let slowValue else { return nil }
        let line = fastValue - slowValue
        guard let signalValue = signal.update(line) else { return nil }
        return Value(macd: line, signal: signalValue, histogram: line - signalValue)
    }
}

/// RSI with Wilder's smoothing, seeded with the averages of the first `period` changes; TA-Lib's
/// arithmetic and its zero test. O(1) per value.
public struct RSI: Sendable, Hashable, Codable {
    public let period: Int
    private var previousClose: Double?
    private var gain = 0.0
    private var loss = 0.0
    private var changes = 0

    /// A `RSI` with the field given.
    public init(period: Int = 14) { self.period = period }

    /// Adds a close; returns the value once it is defined.
    public mutating func update(_ close: Double) -> Double? {
        guard let previous = previousClose else {
            previousClose = close
            return nil
        }
        previousClose = close
        let change = close - previous
        let p = Double(period)
        changes += 1
        if changes <= period {
            if change < 0 { loss -= change } else { gain += change }
            guard changes == period else { return nil }
            loss /= p
            gain /= p
        } else {
            loss *= p - 1
            gain *= p - 1
            if change < 0 { loss -= change } else { gain += change }
            loss /= p
            gain /= p
        }
        let total = gain + loss
        return isTALibZero(total) ? 0 : 100 * (gain / total)
    }
}

/// True range: the largest of high − low, |high − previous close| and |low − previous close|.
@inline(__always)
func trueRange(high: Double, low: Double, previousClose: Double) -> Double {
    var range = high - low
    let up = abs(high - previousClose)
    if up > range { range = up }
    let down = abs(low - previousClose)
    if down > range { range = down }
    return range
}

/// ATR with Wilder's smoothing, seeded with the SMA of the first `period` true ranges (the first
/// candle has none). O(1) per value.
public struct ATR: Sendable, Hashable, Codable {
    public let period: Int
    private var previousClose: Double?
    private var seed: SMA
    public private(set) var value: Double?

    /// An empty ATR (Wilder's smoothing) over `period` bars.
    public init(period: Int = 14) {
        self.period = period
        self.seed = SMA(period: period)
    }

    /// Adds a bar; returns the value once it is defined.
    public mutating func update(high: Double, low: Double, close: Double) -> Double? {
        guard let previous = previousClose else {
            previousClose = close
            return nil
        }
        previousClose = close
        let range = trueRange(high: high, low: low, previousClose: previous)
        if var atr = value {
            atr *= Double(period - 1)
            atr += range
            atr /= Double(period)
            value = atr
            return atr
        }
        value = seed.update(range)
        return value
    }
}

/// Bollinger bands around an SMA, with the population standard deviation from running sums of x and
/// x² (TA-Lib's method). O(1) per value.
public struct Bollinger: Sendable, Hashable, Codable {
    /// The indicator's lines at one bar.
    public struct Value: Sendable, Hashable, Codable {
        public var upper: Double
        public var middle: Double
        public var lower: Double
    }

    public let period: Int
    public let deviations: Double
    private var mean: SMA
    private var squares: RingBuffer
    private var squaresTotal = 0.0

    /// Empty Bollinger bands over `period` closes, `deviations` standard deviations wide.
    public init(period: Int = 20, deviations: Double = 2) {
        self.period = period
        self.deviations = deviations
        self.mean = SMA(period: period)
        self.squares = RingBuffer(capacity: period)
    }

    /// Adds a close; returns the lines once they are defined.
    public mutating func update(_ close: Double) -> Value? {
        let middle = mean.update(close)
        let square = close * close
        squares.push(square)
        squaresTotal += square
        guard let middle else { return nil }
        var variance = squaresTotal / Double(period)
        squaresTotal -= squares.oldest
        variance -= middle * middle
        let deviation = variance > 0 ? variance.squareRoot() : 0
        let width = deviations * deviation
        return Value(upper: middle + width, middle: middle, lower: middle - width)
    }
}

/// Slow stochastic (%K period, %K slowing, %D period), SMAs as in TA-Lib's default. The window's
/// highest high and lowest low are tracked as TA-Lib does: kept until they leave the window, and only
/// then found again by a scan, so the cost per value is O(1) amortised.
public struct Stochastic: Sendable, Hashable, Codable {
    /// The indicator's lines at one bar.
    public struct Value: Sendable, Hashable, Codable {
        public var k: Double
        public var d: Double
    }

    private var highs: RingBuffer
    private var lows: RingBuffer
    private var slowK: SMA
    private var slowD: SMA
    // Finite, so the state encodes as JSON; the ages start expired, so the first value is found by a scan.
    private var highest = 0.0
    private var highestAge: Int
    private var lowest = 0.0
    private var lowestAge: Int

    /// An empty stochastic with TA-Lib's periods by default.
    public init(kPeriod: Int = 14, kSlowing: Int = 3, dPeriod: Int = 3) {
        highs = RingBuffer(capacity: kPeriod)
        lows = RingBuffer(capacity: kPeriod)
        slowK = SMA(period: kSlowing)
        slowD = SMA(period: dPeriod)
        highestAge = kPeriod
        lowestAge = kPeriod
    }

    /// Adds a bar; returns the lines once they are defined.
    public mutating func update(high: Double, low: Double, close: Double) -> Value? {
        highs.push(high)
        lows.push(low)
        let period = highs.capacity
        highestAge += 1
        if high >= highest && highestAge <= period {
            highest = high
            highestAge = 0
        } else if highestAge >= period {
            (highest, highestAge) = highs.maximumWithAge
        }
        lowestAge += 1
        if low <= lowest && lowestAge <= period {
            lowest = low
            lowestAge = 0
        } else if lowestAge >= period {
            (lowest, lowestAge) = lows.minimumWithAge
        }
        guard highs.isFull else { return nil }
        let scale = (highest - lowest) / 100.0
        let fastK = scale != 0 ? (close - lowest) / scale : 0
        guard let k = slowK.update(fastK), let d = slowD.update(k) else { return nil }
        return Value(k: k, d: d)
    }
}

/// ADX with Wilder's smoothing of +DM, −DM and true range (seeded with sums), DX averaged over
/// `period` values first; TA-Lib's arithmetic and zero test. O(1) per value.
public struct ADX: Sendable, Hashable, Codable {
    public let period: Int
    private struct Bar: Sendable, Hashable, Codable {
        var high: Double
        var low: Double
        var close: Double
    }

    private var previous: Bar?
    private var plusDM = 0.0
    private var minusDM = 0.0
    private var range = 0.0
    private var steps = 0
    private var dxTotal = 0.0
    public private(set) var value: Double?

    /// A `ADX` with the field given.
    public init(period: Int = 14) { self.period = period }

    /// Adds a bar; returns the value once it is defined.
    public mutating func update(high: Double, low: Double, close: Double) -> Double? {
        guard let last = previous else {
            previous = Bar(high: high, low: low, close: close)
            return nil
        }
        previous = Bar(high: high, low: low, close: close)
        steps += 1
        let p = Double(period)
        let inverse = 1 / p
        let up = high - last.high
        let down = last.low - low
        let tr = trueRange(high: high, low: low, previousClose: last.close)
        if steps < period {
            // The first period − 1 steps build the sums.
            if down > 0 && up < down { minusDM += down } else if up > 0 && up > down { plusDM += up }
            range += tr
            return nil
        }
        minusDM -= minusDM * inverse
        plusDM -= plusDM * inverse
        if down > 0 && up < down { minusDM += down } else if up > 0 && up > down { plusDM += up }
        range = range - range * inverse + tr
        var dx: Double?
        if !isTALibZero(range) {
            let minusDI = 100 * (minusDM / range)
            let plusDI = 100 * (plusDM / range)
            let sum = minusDI + plusDI
            if !isTALibZero(sum) { dx = 100 * (abs(minusDI - plusDI) / sum) }
        }
        if steps < 2 * period - 1 {
            dxTotal += dx ?? 0
            return nil
        }
        if steps == 2 * period - 1 {
            dxTotal += dx ?? 0
            value = dxTotal / p
            return value
        }
        if let dx, let adx = value { value = (adx * (p - 1) + dx) / p }
        return value
    }
}

/// On-balance volume, starting at the first candle's volume.
public struct OBV: Sendable, Hashable, Codable {
    private var previousClose: Double?
    public private(set) var value = 0.0

    /// A running total from zero.
    public init() {}

    /// Adds a bar; returns the running total.
    public mutating func update(close: Double, volume: Double) -> Double {
        if let previous = previousClose {
            if close > previous { value += volume } else if close < previous { value -= volume }
        } else {
            value = volume
        }
        previousClose = close
        return value
    }
}
