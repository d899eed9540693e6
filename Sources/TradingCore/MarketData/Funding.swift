import Foundation

/// One funding settlement of a perpetual: at `time`, every open position pays `rate` × its notional at
/// the mark price to the other side. A long pays when the rate is positive; a short receives it.
public struct FundingEvent: Sendable, Hashable, Codable {
    /// When the venue settles it.
    public var time: Date
    /// The rate for the period (0.0001 = 0.01 %).
    public var rate: Decimal
    /// The mark price at `time`, when known; else the price at that time stands in for it.
    public var markPrice: Decimal?

    /// An event with the fields given.
    public init(time: Date, rate: Decimal, markPrice: Decimal? = nil) {
        self.time = time
        self.rate = rate
        self.markPrice = markPrice
    }

    /// What a position of `quantity` (positive long, negative short) pays at `price`: positive is paid,
    /// negative received. Binance and Bybit: funding = position value × rate, a long pays a positive rate.
    public static func payment(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal {
        quantity * price * rate
    }

    /// The cache key of the latest funding settlement of `symbol` (``cacheValue``).
    public static func cacheKey(symbol: String) -> String { "funding:\(symbol)" }

    /// The event as the cache holds it: JSON, the time in milliseconds since 1970, decimals as strings
    /// (`{"markPrice":"1.2","rate":"0.0001","time":1637193600017}`).
    public var cacheValue: [UInt8] {
        var fields = ["\"rate\":\"\(rate)\"", "\"time\":\(Int64((time.timeIntervalSince1970 * 1000).rounded()))"]
        if let markPrice { fields.insert("\"markPrice\":\"\(markPrice)\"", at: 0) }
        return Array("{\(fields.joined(separator: ","))}".utf8)
    }

    /// Reads a ``cacheValue``; nil when it is not one.
    public init?(cacheValue bytes: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let rateText = object["rate"] as? String, let rate = Decimal(string: rateText),
            let millis = (object["time"] as? NSNumber)?.int64Value
        else { return nil }
        self.init(
            time: Date(timeIntervalSince1970: Double(millis) / 1000),
            rate: rate,
            markPrice: (object["markPrice"] as? String).flatMap { Decimal(string: $0) }
        )
    }
}

/// A symbol's funding settlements in time order, read from a file: the `funding_time,funding_rate`
/// CSV, or Binance's public archive (`calc_time,funding_interval_hours,last_funding_rate`).
public struct FundingSchedule: Sendable, Hashable {
    /// The settlements, oldest first.
    public private(set) var events: [FundingEvent]

    /// A schedule of `events`, sorted by time.
    public init(_ events: [FundingEvent]) {
        self.events = events.sorted { $0.time < $1.time }
    }

    /// A funding file could not be read; says which line and why.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// The line, from 1.
        public var line: Int
        /// What is wrong with it.
        public var message: String
        public var description: String { "funding file line \(line): \(message)" }
    }

    /// Reads a funding CSV. Times are milliseconds since 1970; the header names the format.
    public static func parse(_ text: String) throws(ParseError) -> FundingSchedule {
        var lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let header = lines.first?.lowercased().split(separator: ",").map(String.init) else {
            throw ParseError(line: 1, message: "empty: expected funding_time,funding_rate")
        }
        lines.removeFirst()
        let timeColumn: Int
        let rateColumn: Int
        if let time = header.firstIndex(of: "funding_time"), let rate = header.firstIndex(of: "funding_rate") {
            (timeColumn, rateColumn) = (time, rate)
        } else if let time = header.firstIndex(of: "calc_time"), let rate = header.firstIndex(of: "last_funding_rate") {
            (timeColumn, rateColumn) = (time, rate)
        } else {
            throw ParseError(
                line: 1,
                message: "header '\(header.joined(separator: ","))' names neither funding_time,funding_rate "
                    + "nor Binance's calc_time,funding_interval_hours,last_funding_rate"
            )
        }
        var events: [FundingEvent] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard fields.count > max(timeColumn, rateColumn), let millis = Int64(fields[timeColumn]),
                let rate = Decimal(string: fields[rateColumn]), rate.isFinite, rate.magnitude < 1
            else {
                throw ParseError(line: index + 2, message: "expected a time in ms and a rate, got '\(line)'")
            }
            events.append(FundingEvent(time: Date(timeIntervalSince1970: Double(millis) / 1000), rate: rate))
        }
        return FundingSchedule(events)
    }

    /// The settlement inside `[start, end)`, if any (the last one, should there be more).
    public func event(from start: Date, before end: Date) -> FundingEvent? {
        // Binary search for the first event at or after `start`.
        var low = 0
        var high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].time < start { low = middle + 1 } else { high = middle }
        }
        var found: FundingEvent?
        var index = low
        while index < events.count, events[index].time < end {
            found = events[index]
            index += 1
        }
        return found
    }
}

/// A mark-price series from a file of mark-price candles (`open_time,open,high,low,close`, times in ms):
/// the mark at a time is the open of the mark candle that holds it.
public struct MarkPrices: Sendable, Hashable {
    /// Each mark candle's open time (ms) and open, oldest first.
    public private(set) var opens: [(time: Int64, price: Decimal)]
    /// The mark candles' length, ms.
    public let length: Int64

    /// Reads a mark-price candle CSV; a header row is skipped.
    public static func parse(_ text: String) throws(FundingSchedule.ParseError) -> MarkPrices {
        var opens: [(time: Int64, price: Decimal)] = []
        for (index, raw) in text.split(whereSeparator: \.isNewline).enumerated() {
            let fields = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 2, let time = Int64(fields[0]) else {
                if index == 0 { continue }
                throw FundingSchedule.ParseError(line: index + 1, message: "expected open_time,open,...; got '\(raw)'")
            }
            guard let price = Decimal(string: fields[1]), price > 0 else {
                throw FundingSchedule.ParseError(line: index + 1, message: "the open '\(fields[1])' is not a price")
            }
            opens.append((time, price))
        }
        opens.sort { $0.time < $1.time }
        guard opens.count >= 2, let step = zip(opens, opens.dropFirst()).map({ $1.time - $0.time }).min(), step > 0
        else {
            throw FundingSchedule.ParseError(line: 1, message: "a mark-price file needs at least two candles")
        }
        return MarkPrices(opens: opens, length: step)
    }

    /// The mark at `time`: the open of the mark candle holding it, or nil outside the series.
    public func price(at time: Date) -> Decimal? {
        let millis = Int64((time.timeIntervalSince1970 * 1000).rounded(.down))
        var low = 0
        var high = opens.count
        while low < high {
            let middle = (low + high) / 2
            if opens[middle].time <= millis { low = middle + 1 } else { high = middle }
        }
        guard low > 0, millis < opens[low - 1].time + length else { return nil }
        return opens[low - 1].price
    }

    public static func == (a: MarkPrices, b: MarkPrices) -> Bool {
        a.length == b.length && a.opens.elementsEqual(b.opens) { $0.time == $1.time && $0.price == $1.price }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(length)
        hasher.combine(opens.count)
    }
}

extension FundingSchedule {
    /// The same settlements, each with the mark at its time where `marks` covers it.
    public func marked(by marks: MarkPrices) -> FundingSchedule {
        FundingSchedule(
            events.map { event in
                var event = event
                event.markPrice = marks.price(at: event.time) ?? event.markPrice
                return event
            }
        )
    }

    /// How many settlements carry a mark price.
    public var markedCount: Int { events.filter { $0.markPrice != nil }.count }
}
