import Foundation

/// One funding settlement of a perpetual: at `time`, every open position pays `rate` × its notional at
/// the mark price to the other side. A long pays when the rate is positive; a short receives it.
public struct FundingEvent: Sendable, Hashable, Codable {
    /// When the venue settles it.
    public var time: Date
    /// The rate for the period (0.0001 = 0.01 %).
    public var rate: Money
    /// The mark price at `time`, when known; else the price at that time stands in for it.
    public var markPrice: Money?

    /// An event with the fields given.
    public init(time: Date, rate: Money, markPrice: Money? = nil) {
        self.time = time
        self.rate = rate
        self.markPrice = markPrice
    }

    /// What a position of `quantity` (positive long, negative short) pays at `price`: positive is paid,
    /// negative received. Binance and Bybit: funding = position value × rate, a long pays a positive rate.
    public static func payment(quantity: Money, price: Money, rate: Money) -> Money {
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
            let rateText = object["rate"] as? String, let rate = Money(string: rateText),
            let millis = (object["time"] as? NSNumber)?.int64Value
        else { return nil }
        self.init(
            time: Date(timeIntervalSince1970: Double(millis) / 1000),
            rate: rate,
            markPrice: (object["markPrice"] as? String).flatMap { Money(string: $0) }
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
                let rate = Money(string: fields[rateColumn]), rate.magnitude < 1
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

/// A mark-price series from a file of mark-price candles (`open_time,open,high,low,close`, times in ms,
/// as Binance's `markPriceKlines` export): the mark at a time is the open of the mark candle that holds
/// it, and ``candles(for:length:)`` gives each traded candle the mark's path over its period.
public struct MarkPrices: Sendable, Hashable {
    /// The mark candles, oldest first (volume 0).
    public private(set) var candles: [Candle]
    /// The mark candles' length, ms.
    public let length: Int64

    /// Reads a mark-price candle CSV; a header row is skipped. Open, high, low and close are needed
    /// (a file with the open alone stands it in for all four).
    public static func parse(_ text: String) throws(FundingSchedule.ParseError) -> MarkPrices {
        var candles: [Candle] = []
        for (index, raw) in text.split(whereSeparator: \.isNewline).enumerated() {
            let fields = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 2, let time = Int64(fields[0]) else {
                if index == 0 { continue }
                throw FundingSchedule.ParseError(line: index + 1, message: "expected open_time,open,...; got '\(raw)'")
            }
            let prices = fields.dropFirst().prefix(4).map { Double($0) }
            guard let open = prices[0], open > 0, open.isFinite else {
                throw FundingSchedule.ParseError(line: index + 1, message: "the open '\(fields[1])' is not a price")
            }
            let (high, low, close) =
                prices.count >= 4 ? (prices[1], prices[2], prices[3]) : (open, open, open)
            guard let high, let low, let close, low > 0, high >= max(open, close), low <= min(open, close) else {
                throw FundingSchedule.ParseError(
                    line: index + 1,
                    message: "'\(raw)' is not a candle: the high must be the highest price and the low the lowest"
                )
            }
            candles.append(Candle(openTime: time, open: open, high: high, low: low, close: close, volume: 0))
        }
        candles.sort { $0.openTime < $1.openTime }
        guard candles.count >= 2,
            let step = zip(candles, candles.dropFirst()).map({ $1.openTime - $0.openTime }).min(), step > 0
        else {
            throw FundingSchedule.ParseError(line: 1, message: "a mark-price file needs at least two candles")
        }
        return MarkPrices(candles: candles, length: step)
    }

    /// The index of the mark candle holding `millis`, or nil outside the series.
    func index(holding millis: Int64) -> Int? {
        var low = 0
        var high = candles.count
        while low < high {
            let middle = (low + high) / 2
            if candles[middle].openTime <= millis { low = middle + 1 } else { high = middle }
        }
        guard low > 0, millis < candles[low - 1].openTime + length else { return nil }
        return low - 1
    }

    /// The mark at `time`: the open of the mark candle holding it, or nil outside the series.
    public func price(at time: Date) -> Money? {
        index(holding: Int64((time.timeIntervalSince1970 * 1000).rounded(.down))).flatMap {
            Money(finite: candles[$0].open)
        }
    }

    /// The mark's candle over each of `traded` (candles of `length` ms), by its open time; those the
    /// series does not cover are left out.
    /// - Mark candles as short as the traded ones or shorter: aggregated over the period, exact.
    /// - Longer ones (1h marks for a 5m run): the traded candle moved by the basis, the mark's open less
    ///   the traded price at the mark candle's start, and held inside the mark candle's range.
    public func candles(for traded: [Candle], length tradedLength: Int64) -> [Int64: Candle] {
        var marks: [Int64: Candle] = [:]
        if length <= tradedLength {
            let covered = Set(traded.map(\.openTime))
            for candle in CandleInterval.aggregate(candles, to: tradedLength) where covered.contains(candle.openTime) {
                marks[candle.openTime] = candle
            }
            return marks
        }
        var basis: (mark: Int, value: Double)?
        for candle in traded {
            guard let holder = index(holding: candle.openTime) else { continue }
            let mark = candles[holder]
            if basis?.mark != holder { basis = (holder, mark.open - candle.open) }
            let shift = basis!.value
            func held(_ price: Double) -> Double { min(max(price + shift, mark.low), mark.high) }
            marks[candle.openTime] = Candle(
                openTime: candle.openTime,
                open: held(candle.open),
                high: held(candle.high),
                low: held(candle.low),
                close: held(candle.close),
                volume: 0
            )
        }
        return marks
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

/// A venue's premium index for a symbol at a moment, as its stream gives it (Binance
/// `<symbol>@markPrice`, Bybit `tickers.<symbol>`): the mark price, the funding rate the next settlement
/// will charge as it stands, and when that is. A field the message did not carry is nil (Bybit's
/// deltas carry only what changed: ``merged(into:)``).
public struct MarkUpdate: Sendable, Hashable, Codable {
    public var symbol: String
    /// The venue's time of the update.
    public var time: Date
    public var markPrice: Money?
    public var fundingRate: Money?
    public var nextFundingTime: Date?

    /// An update with the fields given.
    public init(
        symbol: String,
        time: Date,
        markPrice: Money? = nil,
        fundingRate: Money? = nil,
        nextFundingTime: Date? = nil
    ) {
        self.symbol = symbol
        self.time = time
        self.markPrice = markPrice
        self.fundingRate = fundingRate
        self.nextFundingTime = nextFundingTime
    }

    /// This update over `earlier`: its fields where it has them, the earlier ones where it has none.
    public func merged(into earlier: MarkUpdate?) -> MarkUpdate {
        MarkUpdate(
            symbol: symbol,
            time: time,
            markPrice: markPrice ?? earlier?.markPrice,
            fundingRate: fundingRate ?? earlier?.fundingRate,
            nextFundingTime: nextFundingTime ?? earlier?.nextFundingTime
        )
    }

    /// The cache key of a symbol's latest premium index (``cacheValue``).
    public static func cacheKey(symbol: String) -> String { "mark:\(symbol)" }

    /// The update as the cache holds it: JSON, times in milliseconds since 1970, decimals as strings
    /// (`{"fundingRate":"0.0001","markPrice":"1.2","nextFundingTime":1637222400000,"time":1637193600017}`).
    public var cacheValue: [UInt8] {
        func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        var fields: [String] = []
        if let fundingRate { fields.append("\"fundingRate\":\"\(fundingRate)\"") }
        if let markPrice { fields.append("\"markPrice\":\"\(markPrice)\"") }
        if let nextFundingTime { fields.append("\"nextFundingTime\":\(millis(nextFundingTime))") }
        fields.append("\"symbol\":\"\(symbol)\"")
        fields.append("\"time\":\(millis(time))")
        return Array("{\(fields.joined(separator: ","))}".utf8)
    }

    /// Reads a ``cacheValue``; nil when it is not one.
    public init?(cacheValue bytes: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let symbol = object["symbol"] as? String, let millis = (object["time"] as? NSNumber)?.int64Value
        else { return nil }
        self.init(
            symbol: symbol,
            time: Date(timeIntervalSince1970: Double(millis) / 1000),
            markPrice: (object["markPrice"] as? String).flatMap { Money(string: $0) },
            fundingRate: (object["fundingRate"] as? String).flatMap { Money(string: $0) },
            nextFundingTime: (object["nextFundingTime"] as? NSNumber).map {
                Date(timeIntervalSince1970: Double($0.int64Value) / 1000)
            }
        )
    }
}

/// The mark prices a live feed saw, kept minute by minute, so that a closed candle can carry the mark's
/// candle over its period (``CandlePayload/mark``). Pure; the feed owns one per symbol.
public struct MarkMinutes: Sendable, Hashable {
    /// One candle per minute that saw a mark, by its open time (ms).
    public private(set) var minutes: [Int64: Candle] = [:]
    /// How much history is kept, ms.
    public let keep: Int64

    /// Keeps `keep` ms of minutes (a day by default: the longest candle).
    public init(keep: Int64 = 86_400_000) { self.keep = keep }

    /// A mark seen at `millis`.
    public mutating func observe(_ price: Double, at millis: Int64) {
        guard price.isFinite, price > 0 else { return }
        let minute = millis - millis % 60_000
        if var candle = minutes[minute] {
            candle.high = max(candle.high, price)
            candle.low = min(candle.low, price)
            candle.close = price
            minutes[minute] = candle
        } else {
            minutes[minute] = Candle(openTime: minute, open: price, high: price, low: price, close: price, volume: 0)
            minutes = minutes.filter { $0.key > minute - keep }
        }
    }

    /// The mark's candle over `[openTime, openTime + length)`, when the marks seen cover its first and
    /// last minutes; nil otherwise (a feed that started inside the candle, or a stream that went quiet).
    public func candle(openTime: Int64, length: Int64) -> Candle? {
        let parts = minutes.filter { $0.key >= openTime && $0.key < openTime + length }.sorted { $0.key < $1.key }
            .map(\.value)
        guard let first = parts.first, let last = parts.last, first.openTime == openTime,
            last.openTime == openTime + length - 60_000 || length < 60_000
        else { return nil }
        return Candle(
            openTime: openTime,
            open: first.open,
            high: parts.map(\.high).max()!,
            low: parts.map(\.low).min()!,
            close: last.close,
            volume: 0
        )
    }
}

/// Port: a venue's REST funding history and funding interval, for the live feed's backfill.
public protocol FundingHistory: Sendable {
    /// Settlements of `symbol` at times in `from...through`, oldest first (with the mark where the
    /// venue gives it).
    func fundingRates(symbol: String, from: Date, through: Date) async throws -> [FundingEvent]
    /// The symbol's funding interval as the venue sets it; nil when the venue does not say.
    func fundingInterval(symbol: String) async throws -> Duration?
}

/// Port: where a live run keeps the market data it traded on, so that its record holds it
/// (`tradebus diff --run` backtests those candles): candles, and funding settlements.
public protocol MarketRecord: Sendable {
    /// Keeps closed candles (one row per venue, symbol, interval and open time; a repeat is ignored).
    func recordCandles(venue: String, symbol: String, interval: String, _ candles: [Candle]) async throws
    /// The candles kept for `symbol` at `interval` with open times in `from...through`, oldest first.
    func candles(symbol: String, interval: String, from: Int64, through: Int64) async throws -> [Candle]
    /// Keeps settlements (one row per venue, symbol and time; a later one with the same time replaces it).
    func recordFunding(venue: String, symbol: String, _ events: [FundingEvent]) async throws
    /// The settlements kept for `symbol` in `from...through`, oldest first.
    func funding(symbol: String, from: Date, through: Date) async throws -> [FundingEvent]
}
