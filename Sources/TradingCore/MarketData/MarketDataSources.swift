import Foundation

/// One candle stream of a venue: a symbol at an interval.
public struct CandleStreamID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var symbol: String
    public var interval: String

    /// A `CandleStreamID` with the fields given.
    public init(symbol: String, interval: String) {
        self.symbol = symbol
        self.interval = interval
    }

    public var description: String { "\(symbol) \(interval)" }
}

/// What a live connection to an exchange reports.
public enum KlineStreamEvent: Sendable, Hashable {
    /// The connection is up and subscribed.
    case connected
    /// A kline update, open or closed.
    case update(KlineUpdate)
    /// A premium-index update: mark price, funding rate, next funding time.
    case mark(MarkUpdate)
    /// The venue's last trade in a symbol: its price is the latest.
    case trade(symbol: String, price: Money, time: Date)
}

/// Port: an exchange's live kline stream. One call is one connection; the caller reconnects.
public protocol KlineStream: Sendable {
    /// The venue's name in routing keys, e.g. `binance`.
    var venue: String { get }
    /// Connects, subscribes to `streams` and hands each event to `receive` until the connection ends.
    /// Returns when the server closed the connection; throws when it failed.
    func session(
        _ streams: [CandleStreamID],
        receive: @escaping @Sendable (KlineStreamEvent) async throws -> Void
    ) async throws
}

/// Port: an exchange's REST candle history, used to fill gaps.
public protocol KlineHistory: Sendable {
    /// The candles of `stream` with open times in `from...through`, oldest first.
    func candles(_ stream: CandleStreamID, from: Int64, through: Int64) async throws -> [Candle]
}
