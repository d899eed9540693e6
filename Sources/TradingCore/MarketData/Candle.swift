/// One OHLCV candle. Prices and volume are `Double`: market data feeds the indicators, where speed
/// matters; money that moves (orders, fills) is `Decimal`.
public struct Candle: Sendable, Hashable, Codable {
    /// Open time in milliseconds since the Unix epoch, UTC.
    public var openTime: Int64
    public var open: Double
    public var high: Double
    public var low: Double
    public var close: Double
    public var volume: Double

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
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> [Candle] {
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "[" { return try parseJSONArrays(String(trimmed)) }
        var candles: [Candle] = []
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count >= 6 else { throw ParseError(line: number, message: "expected at least 6 comma-separated fields, found \(fields.count)") }
            guard let time = Int64(fields[0].trimmingCharacters(in: .whitespaces)) else {
                if number == 1 { continue }  // a header row
                throw ParseError(line: number, message: "open time '\(fields[0])' is not an integer")
            }
            var values = [Double]()
            values.reserveCapacity(5)
            for index in 1...5 {
                guard let value = Double(fields[index].trimmingCharacters(in: .whitespaces)) else {
                    throw ParseError(line: number, message: "field \(index + 1) '\(fields[index])' is not a number")
                }
                values.append(value)
            }
            candles.append(Candle(openTime: normalise(time), open: values[0], high: values[1], low: values[2], close: values[3], volume: values[4]))
        }
        return candles
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
                throw ParseError(line: index + 1, message: "row \(index) needs 6 numbers: time, open, high, low, close, volume")
            }
            candles.append(Candle(openTime: normalise(Int64(numbers[0])), open: numbers[1], high: numbers[2], low: numbers[3], close: numbers[4], volume: numbers[5]))
        }
        return candles
    }
}

import Foundation
