import Foundation

/// One OHLCV candle. Prices and volume are `Double`: market data feeds the indicators, where speed
/// matters; money that moves (orders, fills) is `Money`.
public struct Candle: Sendable, Hashable, Codable {
    /// Open time in milliseconds since the Unix epoch, UTC.
    public var openTime: Int64
    public var open: Double
    public var high: Double
    public var low: Double
    public var close: Double
    public var volume: Double

    /// A `Candle` with the fields given.
    public init(openTime: Int64, open: Double, high: Double, low: Double, close: Double, volume: Double) {
        self.openTime = openTime
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
    }
}

/// Reads candle files: the 6-column CSV `open_time,open,high,low,close,volume` (with or without a
/// header), Binance's 12-column kline CSV (with or without a header, open time in milliseconds or
/// microseconds), and freqtrade's JSON arrays `[[ms, o, h, l, c, v], ...]`. Parsing only; reading the
/// file is the caller's.
public enum CandleFile {
    /// A candle file's line could not be read; says which and why.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Reads a candle CSV (Binance's kline export, or `open_time,open,high,low,close,volume`).
    public static func parse(_ text: String) throws(ParseError) -> [Candle] {
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "[" { return try parseJSONArrays(String(trimmed)) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer throws(ParseError) in try parseCSV(buffer) }
    }

    /// The CSV forms, read byte by byte: a line is split at commas, each field trimmed of spaces.
    static func parseCSV(_ bytes: UnsafeBufferPointer<UInt8>) throws(ParseError) -> [Candle] {
        var candles: [Candle] = []
        candles.reserveCapacity(bytes.count / 48)
        var number = 0
        var start = 0
        var fields: [Range<Int>] = []
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            defer { start = end + 1 }
            number += 1
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd == start { continue }
            fields.removeAll(keepingCapacity: true)
            var fieldStart = start
            for index in start...lineEnd where index == lineEnd || bytes[index] == UInt8(ascii: ",") {
                fields.append(trim(bytes, fieldStart..<index))
                fieldStart = index + 1
            }
            func text(_ field: Int) -> String {
                String(decoding: UnsafeBufferPointer(rebasing: bytes[fields[field]]), as: UTF8.self)
            }
            guard fields.count >= 6 else {
                throw ParseError(
                    line: number,
                    message: "expected at least 6 comma-separated fields, found \(fields.count)"
                )
            }
            guard let time = integer(bytes, fields[0]) else {
                if number == 1 { continue }  // a header row
                throw ParseError(line: number, message: "open time '\(text(0))' is not an integer")
            }
            var values: (Double, Double, Double, Double, Double) = (0, 0, 0, 0, 0)
            for index in 1...5 {
                guard let value = Double(text(index)) else {
                    throw ParseError(line: number, message: "field \(index + 1) '\(text(index))' is not a number")
                }
                switch index {
                case 1: values.0 = value
                case 2: values.1 = value
                case 3: values.2 = value
                case 4: values.3 = value
                default: values.4 = value
                }
            }
            candles.append(
                Candle(
                    openTime: normalise(time),
                    open: values.0,
                    high: values.1,
                    low: values.2,
                    close: values.3,
                    volume: values.4
                )
            )
        }
        return candles
    }

    static func trim(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper && (bytes[lower] == UInt8(ascii: " ") || bytes[lower] == UInt8(ascii: "\t")) { lower += 1 }
        while upper > lower && (bytes[upper - 1] == UInt8(ascii: " ") || bytes[upper - 1] == UInt8(ascii: "\t")) {
            upper -= 1
        }
        return lower..<upper
    }

    /// A decimal integer with an optional sign, or nil.
    static func integer(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int64? {
        guard !range.isEmpty else { return nil }
        var index = range.lowerBound
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative || bytes[index] == UInt8(ascii: "+") { index += 1 }
        guard index < range.upperBound else { return nil }
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = times.addingReportingOverflow(Int64(digit))
            guard !overflowTimes && !overflowSum else { return nil }
            value = sum
            index += 1
        }
        return negative ? -value : value
    }

    /// Binance's newer archives give microseconds; everything here is milliseconds.
    static func normalise(_ time: Int64) -> Int64 {
        time >= 100_000_000_000_000 ? time / 1000 : time
    }

    static func parseJSONArrays(_ text: String) throws(ParseError) -> [Candle] {
        guard let data = text.data(using: .utf8),
            let rows = try? JSONSerialization.jsonObject(with: data) as? [[Any]]
        else { throw ParseError(line: 1, message: "not a JSON array of [time, open, high, low, close, volume] arrays") }
        var candles: [Candle] = []
        candles.reserveCapacity(rows.count)
        for (index, row) in rows.enumerated() {
            let numbers = row.compactMap { ($0 as? NSNumber)?.doubleValue ?? ($0 as? String).flatMap(Double.init) }
            guard numbers.count >= 6, row.count >= 6 else {
                throw ParseError(
                    line: index + 1,
                    message: "row \(index) needs 6 numbers: time, open, high, low, close, volume"
                )
            }
            candles.append(
                Candle(
                    openTime: normalise(Int64(numbers[0])),
                    open: numbers[1],
                    high: numbers[2],
                    low: numbers[3],
                    close: numbers[4],
                    volume: numbers[5]
                )
            )
        }
        return candles
    }
}
