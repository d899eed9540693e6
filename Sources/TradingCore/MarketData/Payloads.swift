/// Envelope payloads of market data on the bus.
public enum MessageType {
    public static let candleClosed = "candle.closed"
    public static let indicatorSnapshot = "indicators.snapshot"
    public static let signal = "signal"
    public static let alert = "alert"
}

/// `candle.closed`, published as `md.candle.<venue>.<symbol>.<interval>`.
public struct CandlePayload: Sendable, Hashable, Codable {
    public var venue: String
    public var symbol: String
    public var interval: String
    public var candle: Candle
    /// The candle's lower-timeframe candles, in time order, when a replay has them (`--detail`): the
    /// paper venue walks them in turn (``IntrabarPath``). Absent on the wire otherwise.
    public var detail: [Candle]?
    /// The mark price's candle over the same period, when known (a replay's `--mark`, or the mark
    /// prices the feed saw during the candle): the paper venue triggers stops, targets and liquidation
    /// on it. Absent on the wire otherwise.
    public var mark: Candle?

    /// A `CandlePayload` with the fields given.
    public init(
        venue: String,
        symbol: String,
        interval: String,
        candle: Candle,
        detail: [Candle]? = nil,
        mark: Candle? = nil
    ) {
        self.venue = venue
        self.symbol = symbol
        self.interval = interval
        self.candle = candle
        self.detail = detail
        self.mark = mark
    }
}

/// `indicators.snapshot`, published as `ind.<symbol>.<interval>` and kept in the hot cache.
public struct SnapshotPayload: Sendable, Hashable, Codable {
    public var symbol: String
    public var interval: String
    public var snapshot: IndicatorSnapshot

    /// A `SnapshotPayload` with the fields given.
    public init(symbol: String, interval: String, snapshot: IndicatorSnapshot) {
        self.symbol = symbol
        self.interval = interval
        self.snapshot = snapshot
    }

    /// The hot-cache key of the latest snapshot.
    public static func cacheKey(symbol: String, interval: String) -> String { "ind:\(symbol):\(interval)" }
}

/// `signal`, published as `sig.<symbol>.<interval>`, with the snapshot it came from.
public struct SignalPayload: Sendable, Hashable, Codable {
    public var symbol: String
    public var interval: String
    public var signal: Signal

    /// A `SignalPayload` with the fields given.
    public init(symbol: String, interval: String, signal: Signal) {
        self.symbol = symbol
        self.interval = interval
        self.signal = signal
    }
}

/// Queues shared by the workers that publish into them and the workers that consume them, so both
/// declare the same topology (a publisher declares its consumers' queue, so nothing it sends before
/// they start is unroutable).
public enum WorkerQueues {
    /// The indicator workers' candle input: sharded by symbol, one active consumer per shard.
    public static func indicatorCandles(shards: Int) -> QueueSpec {
        QueueSpec(
            name: "indicator-worker.candles",
            bindings: ["md.candle.#"],
            singleActiveConsumer: true,
            sharding: .byShardKey(count: shards)
        )
    }
}

/// The latest price of a venue and symbol in the hot cache: the price as text, stamped with its time.
public enum LatestPrice {
    /// The cache key of the last price of `symbol` on `venue`.
    public static func cacheKey(venue: String, symbol: String) -> String { "price:\(venue):\(symbol)" }
}
