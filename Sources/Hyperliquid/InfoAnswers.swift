import Foundation
import TradingCore

// What `POST /info` answers, as the venue adapter and the copy-trading source both read it.

/// An account's state (`clearinghouseState`): positions, equity and what it can withdraw.
public struct HyperliquidClearinghouseState: Decodable, Sendable {
    public struct Summary: Decodable, Sendable { public var accountValue: String }
    public struct AssetPosition: Decodable, Sendable {
        public struct Position: Decodable, Sendable {
            public struct Leverage: Decodable, Sendable {
                public var type: String
                public var value: Int
            }
            public var coin: String
            public var szi: String
            public var entryPx: String?
            public var leverage: Leverage
            public var liquidationPx: String?
        }
        public var position: Position
    }
    public var assetPositions: [AssetPosition]
    public var marginSummary: Summary
    public var withdrawable: String
}

/// An order as `frontendOpenOrders` and `orderStatus` list it.
public struct HyperliquidOpenOrder: Decodable, Sendable {
    public var coin: String
    public var side: String
    public var limitPx: String
    public var sz: String
    public var oid: Int64
    public var origSz: String?
    public var isTrigger: Bool?
    public var triggerPx: String?
    public var reduceOnly: Bool?
    public var orderType: String?
    public var isPositionTpsl: Bool?
    public var cloid: String?
}

extension HyperliquidOpenOrder {
    /// A reduce-only stop trigger (not a take-profit, not the position's own TP/SL pair).
    public var isStopTrigger: Bool {
        isTrigger == true && reduceOnly == true && (orderType ?? "").hasPrefix("Stop")
    }
}

/// A followed account, read through `/info` and the `userFills` stream.
public enum HyperliquidLeaderMessages {
    /// `{"method":"subscribe","subscription":{"type":"userFills","user":"0x…"}}`
    public static func subscribeFills(user: String) -> [UInt8] {
        Array(#"{"method":"subscribe","subscription":{"type":"userFills","user":"\#(user)"}}"#.utf8)
    }

    /// `{"type":"clearinghouseState","user":"0x…"}`
    public static func stateRequest(user: String) -> [UInt8] {
        Array(#"{"type":"clearinghouseState","user":"\#(user)"}"#.utf8)
    }

    /// `{"type":"frontendOpenOrders","user":"0x…"}`
    public static func openOrdersRequest(user: String) -> [UInt8] {
        Array(#"{"type":"frontendOpenOrders","user":"\#(user)"}"#.utf8)
    }

    /// `{"type":"userFills","user":"0x…"}`: the account's most recent fills (up to 2,000), newest first.
    public static func fillsRequest(user: String) -> [UInt8] {
        Array(#"{"type":"userFills","user":"\#(user)"}"#.utf8)
    }

    /// The `userFills` answer: oldest first, each `tid` once.
    public static func recentFills(_ answer: [UInt8]) throws -> [LeaderFill] {
        do { return try LeaderFill.read(Data(answer)) } catch {
            throw ExchangeMessageError("Hyperliquid userFills answer is malformed: \(error)")
        }
    }

    /// The leader's stop triggers over time from a `historicalOrders` answer (`[{"order": {…, "timestamp"},
    /// "status", "statusTimestamp"}]`): each reduce-only stop trigger, working from its `timestamp` until
    /// its `statusTimestamp` unless its status is still `open`.
    public static func triggers(historicalOrders answer: [UInt8]) throws -> LeaderTriggers {
        struct Row: Decodable {
            struct Order: Decodable {
                var coin: String
                var side: String
                var triggerPx: String?
                var isTrigger: Bool?
                var reduceOnly: Bool?
                var orderType: String?
                var timestamp: Int64
            }
            var order: Order
            var status: String
            var statusTimestamp: Int64
        }
        let rows: [Row]
        do { rows = try JSONDecoder().decode([Row].self, from: Data(answer)) } catch {
            throw ExchangeMessageError("Hyperliquid historicalOrders answer is malformed: \(error)")
        }
        return LeaderTriggers(
            rows.compactMap { row in
                let order = row.order
                guard order.isTrigger == true, order.reduceOnly == true, (order.orderType ?? "").hasPrefix("Stop"),
                    let price = order.triggerPx.flatMap({ Money(string: $0) })
                else { return nil }
                return LeaderTriggers.Trigger(
                    coin: order.coin,
                    sells: order.side == "A",
                    price: price,
                    placed: order.timestamp,
                    ended: row.status == "open" ? nil : row.statusTimestamp
                )
            }
        )
    }

    /// The account from its state and open orders: equity, and each coin's stop trigger (the nearest
    /// one when there are several).
    public static func account(state: [UInt8], openOrders: [UInt8]) throws -> LeaderAccount {
        let decoder = JSONDecoder()
        guard let state = try? decoder.decode(HyperliquidClearinghouseState.self, from: Data(state)),
            let equity = Money(string: state.marginSummary.accountValue)
        else { throw ExchangeMessageError("Hyperliquid clearinghouseState answer is malformed") }
        guard let orders = try? decoder.decode([HyperliquidOpenOrder].self, from: Data(openOrders)) else {
            throw ExchangeMessageError("Hyperliquid frontendOpenOrders answer is malformed")
        }
        var stops: [String: Money] = [:]
        for order in orders where order.isStopTrigger {
            guard let trigger = order.triggerPx.flatMap({ Money(string: $0) }) else { continue }
            // A long's stop sells (A): the highest is the nearest; a short's buys: the lowest.
            let nearer: (Money, Money) -> Money = order.side == "A" ? { max($0, $1) } : { min($0, $1) }
            stops[order.coin] = stops[order.coin].map { nearer($0, trigger) } ?? trigger
        }
        return LeaderAccount(equity: equity, stops: stops)
    }

    /// A `userFills` push: `{"channel":"userFills","data":{"isSnapshot":true,"user":"0x…","fills":[…]}}`;
    /// nil for other channels.
    public static func fills(_ text: [UInt8]) throws -> LeaderFillBatch? {
        struct Push: Decodable {
            struct Payload: Decodable {
                var isSnapshot: Bool?
                var user: String
                var fills: [LeaderFill]
            }
            var channel: String
            var data: Payload?
        }
        let data = Data(text)
        guard let head = try? JSONDecoder().decode(HyperliquidMessages.ChannelOnly.self, from: data) else {
            throw ExchangeMessageError("Hyperliquid message is not JSON with a channel")
        }
        guard head.channel == "userFills" else { return nil }
        let push: Push
        do { push = try JSONDecoder().decode(Push.self, from: data) } catch {
            throw ExchangeMessageError("Hyperliquid userFills push is malformed: \(error)")
        }
        guard let payload = push.data else { throw ExchangeMessageError("Hyperliquid userFills push has no data") }
        return LeaderFillBatch(leader: payload.user, fills: payload.fills, snapshot: payload.isSnapshot ?? false)
    }

}
