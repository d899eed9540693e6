import Foundation
import TradingCore

/// Hyperliquid's public market data, as documented: the WebSocket `candle` and `activeAssetCtx`
/// subscriptions on `/ws`, and the `POST /info` requests `candleSnapshot` and `fundingHistory`. Pure:
/// bytes in, candles and marks out.
public enum HyperliquidMessages {
    /// The WebSocket path.
    public static let webSocketPath = "/ws"
    /// The info path.
    public static let infoPath = "/info"
    /// The application heartbeat: Hyperliquid closes a connection that sends nothing for 60 s.
    public static let ping = Array(#"{"method":"ping"}"#.utf8)
    /// `candleSnapshot` answers at most this many candles (only the newest 5,000 exist at all).
    public static let maxCandlesPerRequest = 5000
    /// `fundingHistory` answers at most this many settlements, oldest first.
    public static let maxFundingRatesPerRequest = 500
    /// Funding settles every hour on Hyperliquid.
    public static let fundingInterval: Duration = .seconds(3600)
    /// The candle intervals Hyperliquid has.
    public static let intervals: Set<String> = [
        "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M",
    ]

    /// `{"method":"subscribe","subscription":{"type":"candle","coin":"BTC","interval":"1m"}}`
    public static func subscribeCandles(coin: String, interval: String) -> [UInt8] {
        Array(
            #"{"method":"subscribe","subscription":{"type":"candle","coin":"\#(coin)","interval":"\#(interval)"}}"#.utf8
        )
    }

    /// `{"method":"subscribe","subscription":{"type":"activeAssetCtx","coin":"BTC"}}`
    public static func subscribeAssetContext(coin: String) -> [UInt8] {
        Array(#"{"method":"subscribe","subscription":{"type":"activeAssetCtx","coin":"\#(coin)"}}"#.utf8)
    }

    /// `{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}`
    public static func subscribeTrades(coin: String) -> [UInt8] {
        Array(#"{"method":"subscribe","subscription":{"type":"trades","coin":"\#(coin)"}}"#.utf8)
    }

    /// The last trade of each coin in a `trades` push (`{"channel":"trades","data":[{"coin","side","px",
    /// "sz","time","hash","tid","users"}…]}`), for the coins `symbol` names; empty for other channels.
    public static func lastTrades(
        _ text: [UInt8],
        symbol: (String) -> String?
    ) throws -> [(
        symbol: String, price: Money, time: Date
    )] {
        struct Push: Decodable {
            struct Trade: Decodable {
                var coin: String
                var px: String
                var time: Int64
                var tid: Int64
            }
            var channel: String
            var data: [Trade]?
        }
        guard let head = try? JSONDecoder().decode(ChannelOnly.self, from: Data(text)), head.channel == "trades" else {
            return []
        }
        guard let push = try? JSONDecoder().decode(Push.self, from: Data(text)), let trades = push.data else {
            throw ExchangeMessageError("Hyperliquid trades push is malformed")
        }
        var last: [String: Push.Trade] = [:]
        for trade in trades where symbol(trade.coin) != nil {
            if let seen = last[trade.coin], (seen.time, seen.tid) > (trade.time, trade.tid) { continue }
            last[trade.coin] = trade
        }
        return try last.values.sorted { $0.coin < $1.coin }.map { trade in
            guard let price = Money(string: trade.px), price > 0 else {
                throw ExchangeMessageError("Hyperliquid trade \(trade.tid) has no positive px: \(trade.px)")
            }
            return (symbol(trade.coin)!, price, Date(timeIntervalSince1970: Double(trade.time) / 1000))
        }
    }

    /// Any push's channel.
    struct ChannelOnly: Decodable { var channel: String }

    /// The `{"channel":"error","data":"…"}` Hyperliquid sends for a subscription it refuses; nil otherwise.
    public static func error(_ text: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any],
            object["channel"] as? String == "error"
        else { return nil }
        return object["data"] as? String ?? "unknown error"
    }

    /// One candle as Hyperliquid sends it (stream and snapshot alike).
    struct WireCandle: Decodable {
        var t: Int64
        var T: Int64
        var s: String
        var i: String
        var o: String
        var c: String
        var h: String
        var l: String
        var v: String

        func candle() throws -> Candle {
            Candle(
                openTime: t,
                open: try BinanceMessages.number(o),
                high: try BinanceMessages.number(h),
                low: try BinanceMessages.number(l),
                close: try BinanceMessages.number(c),
                volume: try BinanceMessages.number(v)
            )
        }
    }

    /// A candle update from the `candle` channel: the coin, the interval and the candle as it stands.
    /// Hyperliquid has no "closed" flag; a candle is closed when the next one starts
    /// (``CandleRollover``). Nil for other channels (pongs, subscription answers, contexts).
    public static func candle(_ text: [UInt8]) throws -> (coin: String, interval: String, candle: Candle)? {
        struct Push: Decodable {
            var channel: String
            var data: WireCandle?
        }
        let data = Data(text)
        guard let push = try? JSONDecoder().decode(Push.self, from: data) else {
            if (try? JSONSerialization.jsonObject(with: data)) != nil { return nil }
            throw ExchangeMessageError("Hyperliquid message is not JSON")
        }
        guard push.channel == "candle" else { return nil }
        guard let wire = push.data else { throw ExchangeMessageError("Hyperliquid candle push has no candle") }
        return (wire.s, wire.i, try wire.candle())
    }

    /// The mark price and current (hourly) funding rate from an `activeAssetCtx` push, for `symbol`;
    /// the next settlement is the next whole hour after `now`. Nil for other channels.
    public static func assetContext(_ text: [UInt8], symbol: (String) -> String?, now: Date) throws -> MarkUpdate? {
        struct Push: Decodable {
            struct Context: Decodable {
                var markPx: String?
                var funding: String?
            }
            struct Payload: Decodable {
                var coin: String
                var ctx: Context
            }
            var channel: String
            var data: Payload?
        }
        guard let push = try? JSONDecoder().decode(Push.self, from: Data(text)), push.channel == "activeAssetCtx"
        else { return nil }
        guard let payload = push.data, let ours = symbol(payload.coin) else { return nil }
        let mark = payload.ctx.markPx.flatMap { Money(string: $0) }
        let rate = payload.ctx.funding.flatMap { Money(string: $0) }
        guard mark != nil || rate != nil else {
            throw ExchangeMessageError("Hyperliquid activeAssetCtx for \(payload.coin) has neither markPx nor funding")
        }
        let hour = 3_600.0
        return MarkUpdate(
            symbol: ours,
            time: now,
            markPrice: mark,
            fundingRate: rate,
            nextFundingTime: Date(
                timeIntervalSince1970: (now.timeIntervalSince1970 / hour).rounded(.down) * hour + hour
            )
        )
    }

    /// The `candleSnapshot` request body.
    public static func candleSnapshotRequest(
        coin: String,
        interval: String,
        startTime: Int64,
        endTime: Int64
    )
        -> [UInt8]
    {
        Array(
            #"{"type":"candleSnapshot","req":{"coin":"\#(coin)","interval":"\#(interval)","startTime":\#(startTime),"endTime":\#(endTime)}}"#
                .utf8
        )
    }

    /// The `candleSnapshot` answer, oldest first.
    public static func candles(_ body: [UInt8]) throws -> [Candle] {
        guard let rows = try? JSONDecoder().decode([WireCandle].self, from: Data(body)) else {
            throw ExchangeMessageError(
                "Hyperliquid candleSnapshot answer is not a list of candles: \(String(decoding: body.prefix(200), as: UTF8.self))"
            )
        }
        return try rows.map { try $0.candle() }.sorted { $0.openTime < $1.openTime }
    }

    /// The `fundingHistory` request body.
    public static func fundingHistoryRequest(coin: String, startTime: Int64, endTime: Int64) -> [UInt8] {
        Array(
            #"{"type":"fundingHistory","coin":"\#(coin)","startTime":\#(startTime),"endTime":\#(endTime)}"#.utf8
        )
    }

    /// The `fundingHistory` answer, oldest first:
    /// `[{"coin":"ETH","fundingRate":"-0.00022196","premium":"-0.00052196","time":1683849600076}]`.
    public static func fundingHistory(_ body: [UInt8]) throws -> [FundingEvent] {
        struct Row: Decodable {
            var fundingRate: String
            var time: Int64
        }
        guard let rows = try? JSONDecoder().decode([Row].self, from: Data(body)) else {
            throw ExchangeMessageError(
                "Hyperliquid fundingHistory answer is not a list of settlements: \(String(decoding: body.prefix(200), as: UTF8.self))"
            )
        }
        return try rows.map { row in
            guard let rate = Money(string: row.fundingRate) else {
                throw ExchangeMessageError("Hyperliquid funding rate '\(row.fundingRate)' is not a number")
            }
            return FundingEvent(time: Date(timeIntervalSince1970: Double(row.time) / 1000), rate: rate)
        }
        .sorted { $0.time < $1.time }
    }
}

/// Hyperliquid's candle stream sends the candle as it stands after each trade, and no "closed" flag: a
/// candle is closed when the first update of the next one arrives. Pure: updates in, closed and open
/// candles out.
public struct CandleRollover: Sendable {
    private var current: [String: KlineUpdate] = [:]

    /// An empty rollover.
    public init() {}

    /// `update` (an open candle) arrived: the updates to hand on, the previous candle closed first when
    /// this one starts a new period. An update older than the current candle is dropped.
    public mutating func observe(_ update: KlineUpdate) -> [KlineUpdate] {
        let key = "\(update.symbol) \(update.interval)"
        guard let previous = current[key] else {
            current[key] = update
            return [update]
        }
        if update.candle.openTime < previous.candle.openTime { return [] }
        current[key] = update
        if update.candle.openTime == previous.candle.openTime { return [update] }
        var closed = previous
        closed.closed = true
        return [closed, update]
    }
}
