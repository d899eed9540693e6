/// TA-Lib's test for zero (`TA_IS_ZERO`), which its RSI and ADX use; kept so values match TA-Lib.
@inline(__always)
func isTALibZero(_ value: Double) -> Bool { value > -0.000_000_01 && value < 0.000_000_01 }

/// A fixed-size ring of the last `capacity` values.
public struct RingBuffer: Sendable, Hashable, Codable {
    private var values: [Double]
    private var next = 0
    public private(set) var count = 0

    /// An empty window of `capacity` values.
    public init(capacity: Int) { values = Array(repeating: 0, count: capacity) }

    public var capacity: Int { values.count }
    public var isFull: Bool { count == values.count }

    /// Adds a value; returns the one it pushed out when full.
    @discardableResult
    public mutating func push(_ value: Double) -> Double? {
        let capacity = values.count
        let evicted = count == capacity ? values[next] : nil
        values[next] = value
        next += 1
        if next == capacity { next = 0 }
        if count < capacity { count += 1 }
        return evicted
    }

    /// The oldest value held (the next to be pushed out when full).
    public var oldest: Double { values[isFull ? next : 0] }

    /// The largest value held and how many pushes ago it came (0: the newest); the newest on ties.
    public var maximumWithAge: (value: Double, age: Int) {
        var result = -Double.infinity
        var age = 0
        for back in 0..<count {
            var index = next - 1 - back
            if index < 0 { index += values.count }
            if values[index] > result {
                result = values[index]
                age = back
            }
        }
        return (result, age)
    }

    /// The smallest value held and how many pushes ago it came (0: the newest); the newest on ties.
    public var minimumWithAge: (value: Double, age: Int) {
        var result = Double.infinity
        var age = 0
        for back in 0..<count {
            var index = next - 1 - back
            if index < 0 { index += values.count }
            if values[index] < result {
                result = values[index]
                age = back
            }
        }
        return (result, age)
    }
}

/// Simple moving average, as TA-Lib computes it: a running total, the trailing value subtracted
/// after each output. O(1) per value.
public struct SMA: Sendable, Hashable, Codable {
    public let period: Int
    private var window: RingBuffer
    private var total = 0.0

    /// An empty simple moving average over `period` values.
    public init(period: Int) {
        self.period = period
        self.window = RingBuffer(capacity: period)
    }

    /// Adds a value; returns the average once the period is full.
    public mutating func update(_ value: Double) -> Double? {
        window.push(value)
        total += value
        guard window.isFull else { return nil }
        let result = total / Double(period)
        // The oldest value leaves the total once it has been used, as in TA-Lib's INT_SMA.
        total -= window.oldest
        return result
    }
}

/// Exponential moving average seeded with the SMA of its first `period` values, k = 2/(period+1),
/// as TA-Lib's default. O(1) per value.
public struct EMA: Sendable, Hashable, Codable {
    public let period: Int
    private let k: Double
    private var seedTotal = 0.0
    private var seen = 0
    public private(set) var value: Double?

    /// An empty exponential moving average over `period` values (seeded with their mean, as TA-Lib does).
    public init(period: Int) {
        self.period = period
        self.k = 2.0 / Double(period + 1)
    }

    /// Adds a value; returns the average once it is seeded.
    public mutating func update(_ input: Double) -> Double? {
        if let previous = value {
            let next = (input - previous) * k + previous
            value = next
            return next
        }
        seedTotal += input
        seen += 1
        guard seen == period else { return nil }
        value = seedTotal / Double(period)
        return value
    }
}
