/// Why a candle cannot be used. Such a candle is never published; the feed raises an alert and
/// counts it instead.
public enum CandleDefect: String, Sendable, Hashable, Codable, CaseIterable {
    case notFinite = "not_finite"
    case nonPositivePrice = "non_positive_price"
    case negativeVolume = "negative_volume"
    case highBelowLow = "high_below_low"
    case openOutsideRange = "open_outside_range"
    case closeOutsideRange = "close_outside_range"
}

extension Candle {
    /// The first defect found, or nil for a usable candle.
    public var defect: CandleDefect? {
        let values = [open, high, low, close, volume]
        if !values.allSatisfy(\.isFinite) { return .notFinite }
        if open <= 0 || high <= 0 || low <= 0 || close <= 0 { return .nonPositivePrice }
        if volume < 0 { return .negativeVolume }
        if high < low { return .highBelowLow }
        if open < low || open > high { return .openOutsideRange }
        if close < low || close > high { return .closeOutsideRange }
        return nil
    }
}

/// Orders one stream of closed candles (one venue, symbol and interval): drops duplicates and
/// candles older than the last accepted one, and reports gaps in `open_time` so they can be filled
/// from REST (live) or reported (replay). It never invents candles.
public struct CandleSequencer: Sendable, Hashable, Codable {
    /// What the check made of an incoming candle: accepted (maybe after a gap), a duplicate, stale, or rejected.
    public enum Outcome: Sendable, Hashable {
        /// The next candle, in order.
        case accepted(Candle)
        /// Accepted, after a gap: `missing` open times were skipped, starting at `from`.
        case acceptedAfterGap(Candle, from: Int64, missing: Int)
        /// Seen already (same open time), or older than the last accepted candle.
        case duplicate
        case stale
        /// Unusable; see the defect.
        case rejected(CandleDefect)
    }

    public let intervalMilliseconds: Int64
    public private(set) var lastOpenTime: Int64?

    /// A `CandleSequencer` with the fields given.
    public init(intervalMilliseconds: Int64, lastOpenTime: Int64? = nil) {
        self.intervalMilliseconds = intervalMilliseconds
        self.lastOpenTime = lastOpenTime
    }

    /// Checks the next candle of the stream: in order, a duplicate, stale, after a gap, or defective.
    public mutating func accept(_ candle: Candle) -> Outcome {
        if let defect = candle.defect { return .rejected(defect) }
        guard let last = lastOpenTime else {
            lastOpenTime = candle.openTime
            return .accepted(candle)
        }
        if candle.openTime == last { return .duplicate }
        if candle.openTime < last { return .stale }
        lastOpenTime = candle.openTime
        let expected = last + intervalMilliseconds
        if candle.openTime == expected { return .accepted(candle) }
        return .acceptedAfterGap(
            candle,
            from: expected,
            missing: Int((candle.openTime - expected) / intervalMilliseconds)
        )
    }
}

/// Interval names (`1m`, `5m`, `1h`, `4h`, `1d`) and their length.
public enum CandleInterval {
    /// The intervals the workers take, shortest first.
    public static let names = ["1m", "5m", "15m", "1h", "4h", "1d"]

    /// The length of an interval name (`1m` … `1d`) in milliseconds, or nil.
    public static func milliseconds(_ name: String) -> Int64? {
        guard let unit = name.last, let count = Int64(name.dropLast()), count > 0 else { return nil }
        switch unit {
        case "m": return count * 60_000
        case "h": return count * 3_600_000
        case "d": return count * 86_400_000
        case "w": return count * 604_800_000
        default: return nil
        }
    }

    /// Lower-timeframe candles grouped under the candle of `length` ms that holds each, by that
    /// candle's open time; each group in time order.
    public static func group(_ detail: [Candle], by length: Int64) -> [Int64: [Candle]] {
        var groups: [Int64: [Candle]] = [:]
        for candle in detail.sorted(by: { $0.openTime < $1.openTime }) {
            groups[candle.openTime - candle.openTime % length, default: []].append(candle)
        }
        return groups
    }

    /// Candles of `length` ms made from lower-timeframe ones: first open, highest high, lowest low, last
    /// close, summed volume; a period with missing parts is made from those it has.
    public static func aggregate(_ candles: [Candle], to length: Int64) -> [Candle] {
        group(candles, by: length).sorted { $0.key < $1.key }.map { open, parts in
            Candle(
                openTime: open,
                open: parts[0].open,
                high: parts.map(\.high).max()!,
                low: parts.map(\.low).min()!,
                close: parts[parts.count - 1].close,
                volume: parts.map(\.volume).reduce(0, +)
            )
        }
    }

    /// `count` candles made by repeating `source` (candles of `length` ms, in order) end to end, every
    /// other copy mirrored in time (its candles in reverse order, each with open and close swapped), so
    /// each seam joins a close to the same price and the series neither jumps nor drifts: real moves,
    /// for benchmarks over more candles than a file has. The copies' candles follow one another at
    /// `length`, from the source's first open time.
    public static func tiled(_ source: [Candle], count: Int, length: Int64) -> [Candle] {
        guard let first = source.first, count > 0 else { return [] }
        let mirrored = source.reversed().map {
            Candle(openTime: 0, open: $0.close, high: $0.high, low: $0.low, close: $0.open, volume: $0.volume)
        }
        var candles: [Candle] = []
        candles.reserveCapacity(count)
        var copy = 0
        while candles.count < count {
            for candle in (copy % 2 == 0 ? source : mirrored).prefix(count - candles.count) {
                var placed = candle
                placed.openTime = first.openTime + Int64(candles.count) * length  // one after another, no gaps
                candles.append(placed)
            }
            copy += 1
        }
        return candles
    }
}
