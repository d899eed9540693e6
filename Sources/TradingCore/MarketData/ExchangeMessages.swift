import Foundation

/// A kline update from an exchange: the candle so far, and whether it is closed.
public struct KlineUpdate: Sendable, Hashable {
    public var venue: String
    public var symbol: String
    public var interval: String
    public var candle: Candle
    public var closed: Bool

    /// An update with the fields given.
    public init(venue: String, symbol: String, interval: String, candle: Candle, closed: Bool) {
        self.venue = venue
        self.symbol = symbol
        self.interval = interval
        self.candle = candle
        self.closed = closed
    }
}

/// Why an exchange message could not be read.
public struct ExchangeMessageError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// A `ExchangeMessageError` with the field given.
    public init(_ description: String) { self.description = description }
}

/// Binance USDⓈ-M futures market data, as documented: the WebSocket kline event (alone or wrapped by
/// a combined stream) and the REST `GET /fapi/v1/klines` arrays.
public enum BinanceMessages {
    struct Event: Decodable {
        struct Kline: Decodable {
            var t: Int64
            var s: String
            var i: String
            var o: String
            var c: String
            var h: String
            var l: String
            var v: String
            var x: Bool
        }
        var e: String
        var k: Kline
    }

    struct Combined: Decodable {
        var stream: String
        var data: Event
    }

    /// Decodes a kline event; nil for other events (subscription answers, pongs).
    public static func kline(_ text: [UInt8]) throws -> KlineUpdate? {
        let data = Data(text)
        let event: Event
        if let combined = try? JSONDecoder().decode(Combined.self, from: data) {
            event = combined.data
        } else if let plain = try? JSONDecoder().decode(Event.self, from: data) {
            event = plain
        } else {
            if (try? JSONSerialization.jsonObject(with: data)) != nil { return nil }
            throw ExchangeMessageError("Binance message is not JSON")
        }
        guard event.e == "kline" else { return nil }
        let k = event.k
        return KlineUpdate(
            venue: "binance",
            symbol: k.s,
            interval: k.i,
            candle: Candle(
                openTime: k.t,
                open: try number(k.o),
                high: try number(k.h),
                low: try number(k.l),
                close: try number(k.c),
                volume: try number(k.v)
            ),
            closed: k.x
        )
    }

    /// Decodes the REST klines answer: `[[openTime, "open", "high", "low", "close", "volume", closeTime, ...], ...]`.
    public static func restKlines(_ body: [UInt8]) throws -> [Candle] {
        guard let rows = try? JSONSerialization.jsonObject(with: Data(body)) as? [[Any]] else {
            throw ExchangeMessageError("Binance klines answer is not an array of arrays")
        }
        return try rows.map { row in
            guard row.count >= 6, let time = (row[0] as? NSNumber)?.int64Value else {
                throw ExchangeMessageError("Binance kline row is malformed: \(row.prefix(6))")
            }
            let values = try (1...5).map { index -> Double in
                guard let text = row[index] as? String else {
                    throw ExchangeMessageError("Binance kline field \(index) is not a string")
                }
                return try number(text)
            }
            return Candle(
                openTime: time,
                open: values[0],
                high: values[1],
                low: values[2],
                close: values[3],
                volume: values[4]
            )
        }
    }

    /// A decimal string as a number; an error naming it otherwise.
    public static func number(_ text: String) throws -> Double {
        guard let value = Double(text) else { throw ExchangeMessageError("'\(text)' is not a number") }
        return value
    }
}

/// Bybit v5 linear market data, as documented: the public WebSocket topic `kline.<interval>.<symbol>`
/// and REST `GET /v5/market/kline` (whose list comes newest first).
public enum BybitMessages {
    struct Push: Decodable {
        struct Kline: Decodable {
            var start: Int64
            var interval: String
            var open: String
            var close: String
            var high: String
            var low: String
            var volume: String
            var confirm: Bool
        }
        var topic: String
        var data: [Kline]
    }

    struct Rest: Decodable {
        struct Result: Decodable { var list: [[String]]? }
        var retCode: Int
        var retMsg: String
        var result: Result?
    }

    /// Bybit's interval names ("1", "5", "60", "240", "D") as ours ("1m", "5m", "1h", "4h", "1d").
    public static func interval(_ bybit: String) -> String {
        switch bybit {
        case "D": "1d"
        case "W": "1w"
        default: Int(bybit).map { $0 % 60 == 0 ? "\($0 / 60)h" : "\($0)m" } ?? bybit
        }
    }

    /// Decodes a kline push; empty for other messages (subscription answers, pongs).
    public static func klines(_ text: [UInt8]) throws -> [KlineUpdate] {
        let data = Data(text)
        guard let push = try? JSONDecoder().decode(Push.self, from: data) else {
            if (try? JSONSerialization.jsonObject(with: data)) != nil { return [] }
            throw ExchangeMessageError("Bybit message is not JSON")
        }
        let parts = push.topic.split(separator: ".")
        guard parts.count == 3, parts[0] == "kline" else { return [] }
        return try push.data.map { k in
            KlineUpdate(
                venue: "bybit",
                symbol: String(parts[2]),
                interval: interval(k.interval),
                candle: Candle(
                    openTime: k.start,
                    open: try BinanceMessages.number(k.open),
                    high: try BinanceMessages.number(k.high),
                    low: try BinanceMessages.number(k.low),
                    close: try BinanceMessages.number(k.close),
                    volume: try BinanceMessages.number(k.volume)
                ),
                closed: k.confirm
            )
        }
    }

    /// Decodes the REST answer into candles, oldest first; a non-zero retCode is an error with Bybit's message.
    public static func restKlines(_ body: [UInt8]) throws -> [Candle] {
        guard let answer = try? JSONDecoder().decode(Rest.self, from: Data(body)) else {
            throw ExchangeMessageError("Bybit kline answer is malformed")
        }
        guard answer.retCode == 0, let list = answer.result?.list else {
            throw ExchangeMessageError("Bybit answered retCode \(answer.retCode): \(answer.retMsg)")
        }
        return try list.reversed().map { row in
            guard row.count >= 6, let time = Int64(row[0]) else {
                throw ExchangeMessageError("Bybit kline row is malformed: \(row)")
            }
            let values = try row[1...5].map(BinanceMessages.number)
            return Candle(
                openTime: time,
                open: values[0],
                high: values[1],
                low: values[2],
                close: values[3],
                volume: values[4]
            )
        }
    }
}

// MARK: Requests: stream names, subscriptions and REST paths, as the exchanges document them

extension BinanceMessages {
    /// A single USDⓈ-M futures connection carries at most this many streams.
    public static let maxStreamsPerConnection = 1024
    /// `GET /fapi/v1/klines` answers at most this many candles.
    public static let maxKlinesPerRequest = 1500

    /// `btcusdt@kline_1m`
    public static func streamName(symbol: String, interval: String) -> String {
        "\(symbol.lowercased())@kline_\(interval)"
    }

    /// The combined-stream path on the market-data route: `/market/stream?streams=btcusdt@kline_1m/...`,
    /// with each symbol's `@markPrice@1s` stream after the klines. Since 2026-04-23 Binance sends klines
    /// on `/market` only; the old `/stream` route still connects but sends none.
    public static func combinedStreamPath(_ streams: [CandleStreamID], marks: Bool = true) -> String {
        var names = streams.map { streamName(symbol: $0.symbol, interval: $0.interval) }
        if marks {
            var seen: Set<String> = []
            for stream in streams where seen.insert(stream.symbol.uppercased()).inserted {
                names.append(markPriceStreamName(symbol: stream.symbol))
            }
        }
        return "/market/stream?streams=" + names.joined(separator: "/")
    }

    /// `GET /fapi/v1/klines` for open times in `startTime...endTime`.
    public static func klinesPath(
        symbol: String,
        interval: String,
        startTime: Int64,
        endTime: Int64,
        limit: Int
    ) -> String {
        "/fapi/v1/klines?symbol=\(symbol.uppercased())&interval=\(interval)&startTime=\(startTime)&endTime=\(endTime)&limit=\(limit)"
    }

    /// The request weight of `GET /fapi/v1/klines` by `limit`, from Binance's table.
    public static func klinesWeight(limit: Int) -> Int {
        switch limit {
        case ..<100: 1
        case ..<500: 2
        case ...1000: 5
        default: 10
        }
    }

    /// Binance's error body `{"code": -1121, "msg": "Invalid symbol."}` as text, if it is one.
    public static func errorMessage(_ body: [UInt8]) -> String? {
        struct Failure: Decodable {
            var code: Int
            var msg: String
        }
        return (try? JSONDecoder().decode(Failure.self, from: Data(body))).map { "Binance error \($0.code): \($0.msg)" }
    }
}

extension BybitMessages {
    /// The public linear (USDT perpetual) WebSocket path.
    public static let publicLinearPath = "/v5/public/linear"
    /// `GET /v5/market/kline` answers at most this many candles.
    public static let maxKlinesPerRequest = 1000
    /// Topics per subscribe request we send; Bybit caps the request's length.
    public static let topicsPerSubscribe = 10
    /// Bybit's application-level heartbeat; the server drops a connection that sends none for a while.
    public static let ping = Array(#"{"op":"ping"}"#.utf8)

    /// Our interval names as Bybit's: `1m` → `1`, `1h` → `60`, `1d` → `D`; nil if Bybit has none.
    public static func bybitInterval(_ ours: String) -> String? {
        switch ours {
        case "1d": return "D"
        case "1w": return "W"
        default:
            guard let millis = CandleInterval.milliseconds(ours), ours.last != "d", ours.last != "w" else { return nil }
            let minutes = Int(millis / 60_000)
            return [1, 3, 5, 15, 30, 60, 120, 240, 360, 720].contains(minutes) ? String(minutes) : nil
        }
    }

    /// `kline.1.BTCUSDT`
    public static func topic(symbol: String, interval: String) -> String? {
        bybitInterval(interval).map { "kline.\($0).\(symbol.uppercased())" }
    }

    /// `{"req_id": "...", "op": "subscribe", "args": [topics]}`
    public static func subscribe(_ topics: [String], requestID: String) -> [UInt8] {
        struct Request: Encodable {
            var req_id: String
            var op = "subscribe"
            var args: [String]
        }
        return Array((try? JSONEncoder().encode(Request(req_id: requestID, args: topics))) ?? Data())
    }

    /// The reason, when `text` is the answer to a subscription that failed.
    public static func subscriptionFailure(_ text: [UInt8]) -> String? {
        struct Answer: Decodable {
            var success: Bool?
            var ret_msg: String?
            var op: String?
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(text)), answer.op == "subscribe",
            answer.success == false
        else { return nil }
        return answer.ret_msg ?? "subscription refused"
    }

    /// `GET /v5/market/kline` for open times in `start...end`.
    public static func klinesPath(symbol: String, interval: String, start: Int64, end: Int64, limit: Int) -> String? {
        bybitInterval(interval).map {
            "/v5/market/kline?category=linear&symbol=\(symbol.uppercased())&interval=\($0)&start=\(start)&end=\(end)&limit=\(limit)"
        }
    }
}
