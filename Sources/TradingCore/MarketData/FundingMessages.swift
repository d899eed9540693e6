import Foundation

// Funding and mark prices on the wire, as Binance USDⓈ-M and Bybit v5 document them.

extension BinanceMessages {
    /// `btcusdt@markPrice@1s`: the mark price, the funding rate as it stands and the next funding time,
    /// every second.
    public static func markPriceStreamName(symbol: String) -> String { "\(symbol.lowercased())@markPrice@1s" }

    /// A `markPriceUpdate` event, alone or in a combined stream's wrapper; nil for other messages.
    /// `{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15","i":"11784.62","P":"11784.25",
    /// "r":"0.00038167","T":1562306400000}`: `p` mark, `r` rate, `T` next funding time.
    public static func markPrice(_ text: [UInt8]) throws -> MarkUpdate? {
        struct Event: Decodable {
            var e: String
            var E: Int64
            var s: String
            var p: String
            var r: String?
            var T: Int64?
        }
        struct Combined: Decodable { var data: Event }
        let data = Data(text)
        guard
            let event = (try? JSONDecoder().decode(Combined.self, from: data))?.data
                ?? (try? JSONDecoder().decode(Event.self, from: data)),
            event.e == "markPriceUpdate"
        else { return nil }
        guard let mark = Money(string: event.p), mark > 0 else {
            throw ExchangeMessageError("Binance markPriceUpdate for \(event.s) has no mark price: '\(event.p)'")
        }
        return MarkUpdate(
            symbol: event.s,
            time: Date(timeIntervalSince1970: Double(event.E) / 1000),
            markPrice: mark,
            // An empty rate ("") is what Binance sends for a contract without funding.
            fundingRate: event.r.flatMap { Money(string: $0) },
            nextFundingTime: event.T.flatMap { $0 > 0 ? Date(timeIntervalSince1970: Double($0) / 1000) : nil }
        )
    }

    /// `GET /fapi/v1/fundingRate` for settlements in `startTime...endTime`, at most `limit` (1000).
    public static func fundingRatePath(symbol: String, startTime: Int64, endTime: Int64, limit: Int) -> String {
        "/fapi/v1/fundingRate?symbol=\(symbol.uppercased())&startTime=\(startTime)&endTime=\(endTime)&limit=\(limit)"
    }

    /// `GET /fapi/v1/fundingRate` answers at most this many settlements.
    public static let maxFundingRatesPerRequest = 1000

    /// The `fundingRate` answer, oldest first:
    /// `[{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":"34287.54"}]`.
    public static func fundingRates(_ body: [UInt8]) throws -> [FundingEvent] {
        struct Row: Decodable {
            var fundingRate: String
            var fundingTime: Int64
            var markPrice: String?
        }
        guard let rows = try? JSONDecoder().decode([Row].self, from: Data(body)) else {
            throw ExchangeMessageError("Binance fundingRate answer is not a list of settlements")
        }
        return try rows.map { row in
            guard let rate = Money(string: row.fundingRate) else {
                throw ExchangeMessageError("Binance funding rate '\(row.fundingRate)' is not a number")
            }
            return FundingEvent(
                time: Date(timeIntervalSince1970: Double(row.fundingTime) / 1000),
                rate: rate,
                markPrice: row.markPrice.flatMap { Money(string: $0) }.flatMap { $0 > 0 ? $0 : nil }
            )
        }.sorted { $0.time < $1.time }
    }

    /// The symbol's `fundingIntervalHours` in the `GET /fapi/v1/fundingInfo` answer, which lists only
    /// symbols whose funding was adjusted; nil for the others.
    public static func fundingIntervalHours(_ body: [UInt8], symbol: String) throws -> Int? {
        struct Row: Decodable {
            var symbol: String
            var fundingIntervalHours: Int?
        }
        guard let rows = try? JSONDecoder().decode([Row].self, from: Data(body)) else {
            throw ExchangeMessageError("Binance fundingInfo answer is not a list")
        }
        return rows.first { $0.symbol == symbol.uppercased() }?.fundingIntervalHours
    }
}

extension BybitMessages {
    /// `tickers.BTCUSDT`
    public static func tickerTopic(symbol: String) -> String { "tickers.\(symbol.uppercased())" }

    /// A linear ticker push (`snapshot` first, then `delta`s holding only the fields that changed), as
    /// the mark price, funding rate and next funding time it carries; nil for other messages.
    public static func ticker(_ text: [UInt8]) throws -> MarkUpdate? {
        struct Push: Decodable {
            struct Data: Decodable {
                var symbol: String
                var markPrice: String?
                var fundingRate: String?
                var nextFundingTime: String?
            }
            var topic: String
            var ts: Int64
            var data: Data
        }
        guard let push = try? JSONDecoder().decode(Push.self, from: Data(text)), push.topic.hasPrefix("tickers.")
        else { return nil }
        let mark = push.data.markPrice.flatMap { Money(string: $0) }
        if let text = push.data.markPrice, mark == nil || mark! <= 0 {
            throw ExchangeMessageError("Bybit ticker for \(push.data.symbol) has a mark price of '\(text)'")
        }
        return MarkUpdate(
            symbol: push.data.symbol,
            time: Date(timeIntervalSince1970: Double(push.ts) / 1000),
            markPrice: mark,
            fundingRate: push.data.fundingRate.flatMap { Money(string: $0) },
            nextFundingTime: push.data.nextFundingTime.flatMap { Int64($0) }.flatMap {
                $0 > 0 ? Date(timeIntervalSince1970: Double($0) / 1000) : nil
            }
        )
    }

    /// `GET /v5/market/funding/history` for settlements in `startTime...endTime`, at most `limit` (200).
    public static func fundingHistoryPath(symbol: String, startTime: Int64, endTime: Int64, limit: Int) -> String {
        "/v5/market/funding/history?category=linear&symbol=\(symbol.uppercased())&startTime=\(startTime)&endTime=\(endTime)&limit=\(limit)"
    }

    /// `GET /v5/market/funding/history` answers at most this many settlements.
    public static let maxFundingRatesPerRequest = 200

    /// The funding-history answer, oldest first (Bybit lists newest first, and gives no mark price):
    /// `{"retCode":0,"result":{"list":[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingRateTimestamp":"1672041600000"}]}}`.
    public static func fundingHistory(_ body: [UInt8]) throws -> [FundingEvent] {
        struct Answer: Decodable {
            struct Result: Decodable {
                struct Row: Decodable {
                    var fundingRate: String
                    var fundingRateTimestamp: String
                }
                var list: [Row]?
            }
            var retCode: Int
            var retMsg: String
            var result: Result?
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)) else {
            throw ExchangeMessageError("Bybit funding history answer is malformed")
        }
        guard answer.retCode == 0 else {
            throw ExchangeMessageError("Bybit answered retCode \(answer.retCode): \(answer.retMsg)")
        }
        return try (answer.result?.list ?? []).map { row in
            guard let rate = Money(string: row.fundingRate), let millis = Int64(row.fundingRateTimestamp) else {
                throw ExchangeMessageError(
                    "Bybit funding row is malformed: \(row.fundingRate) at \(row.fundingRateTimestamp)"
                )
            }
            return FundingEvent(time: Date(timeIntervalSince1970: Double(millis) / 1000), rate: rate)
        }.sorted { $0.time < $1.time }
    }

    /// `GET /v5/market/instruments-info` for one linear symbol.
    public static func instrumentPath(symbol: String) -> String {
        "/v5/market/instruments-info?category=linear&symbol=\(symbol.uppercased())"
    }

    /// The symbol's `fundingInterval` (minutes) in the instruments-info answer; nil when not listed.
    public static func fundingIntervalMinutes(_ body: [UInt8], symbol: String) throws -> Int? {
        struct Answer: Decodable {
            struct Result: Decodable {
                struct Row: Decodable {
                    var symbol: String
                    var fundingInterval: Int?
                }
                var list: [Row]?
            }
            var retCode: Int
            var retMsg: String
            var result: Result?
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)) else {
            throw ExchangeMessageError("Bybit instruments-info answer is malformed")
        }
        guard answer.retCode == 0 else {
            throw ExchangeMessageError("Bybit answered retCode \(answer.retCode): \(answer.retMsg)")
        }
        return answer.result?.list?.first { $0.symbol == symbol.uppercased() }?.fundingInterval
    }
}
