import Foundation
import Logging
import Metrics
import TradingCore

/// What every feed (replay, synthetic, live) does with its candles: builds `candle.closed` messages for
/// `md.candle.<venue>.<symbol>.<interval>`, raises alerts, counts and alerts invalid candles instead
/// of publishing them, and writes the latest price, mark and funding settlement to the hot cache; with
/// a `record`, it keeps the candles and settlements there too (a live run's record of its market data).
public struct FeedOutput: Sendable {
    public let venue: String
    public let source: String
    public let bus: any MessageBus
    public let cache: any HotCache
    public let logger: Logger
    /// Where candles and funding settlements are kept, if anywhere.
    public let record: (any MarketRecord)?

    /// A `FeedOutput` with the fields given.
    public init(
        venue: String,
        source: String,
        bus: any MessageBus,
        cache: any HotCache,
        logger: Logger,
        record: (any MarketRecord)? = nil
    ) {
        self.venue = venue
        self.source = source
        self.bus = bus
        self.cache = cache
        self.logger = logger
        self.record = record
    }

    /// The bus message of a closed candle (with the mark's candle over it, when known); its envelope
    /// time is the candle's close, its shard key the symbol.
    public func message(
        _ candle: Candle,
        of stream: CandleStreamID,
        intervalMilliseconds: Int64,
        mark: Candle? = nil
    ) throws -> OutgoingMessage {
        let envelope = Envelope(
            type: MessageType.candleClosed,
            time: Self.closeTime(candle, intervalMilliseconds: intervalMilliseconds),
            source: source,
            payload: CandlePayload(
                venue: venue,
                symbol: stream.symbol,
                interval: stream.interval,
                candle: candle,
                mark: mark
            )
        )
        return OutgoingMessage(
            routingKey: RoutingKey.candle(venue: venue, symbol: stream.symbol, interval: stream.interval),
            body: try EnvelopeCodec.encode(envelope),
            messageID: envelope.id,
            correlationID: envelope.correlationID,
            shardKey: stream.symbol
        )
    }

    /// When a candle closes.
    public static func closeTime(_ candle: Candle, intervalMilliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(candle.openTime + intervalMilliseconds) / 1000)
    }

    /// Publishes an alert as `alert.<severity>.<kind>`; nobody listening yet is not an error for a feed.
    public func alert(_ payload: AlertPayload) async throws {
        let envelope = Envelope(type: MessageType.alert, time: Date(), source: source, payload: payload)
        do {
            try await bus.publish(envelope, routingKey: payload.routingKey)
        } catch let failure as BusError where failure.code == .unroutable {
            logger.debug("no queue bound for \(payload.routingKey)")
        }
    }

    /// An invalid candle: never published; counted, logged and alerted as `alert.warning.invalid_candle`.
    public func reportInvalid(_ candle: Candle, of stream: CandleStreamID, defect: CandleDefect) async throws {
        Counter(
            label: "tradebus_feed_invalid_candles_total",
            dimensions: [("venue", venue), ("defect", defect.rawValue)]
        ).increment()
        logger.warning(
            "invalid candle skipped",
            metadata: [
                "symbol": "\(stream.symbol)", "interval": "\(stream.interval)", "open_time": "\(candle.openTime)",
                "defect": "\(defect.rawValue)",
            ]
        )
        try await alert(
            AlertPayload(
                severity: .warning,
                kind: "invalid_candle",
                title: "Invalid candle skipped",
                message:
                    "\(venue) \(stream.symbol) \(stream.interval) candle at \(candle.openTime) is invalid (\(defect.rawValue)); it was not published",
                symbol: stream.symbol,
                fields: ["open_time": .number(Double(candle.openTime)), "defect": .string(defect.rawValue)]
            )
        )
    }

    /// Writes the latest price of `symbol`, stamped with the time it was seen at the venue.
    public func setLatestPrice(symbol: String, price: Double, time: Date) async {
        await cache.set(
            LatestPrice.cacheKey(venue: venue, symbol: symbol),
            CachedValue(String(price), sourceTime: time),
            ttl: nil
        )
    }
}

extension FeedOutput {
    /// Writes a symbol's latest premium index (`mark:<symbol>`, a ``MarkUpdate``).
    public func setMark(_ update: MarkUpdate) async {
        await cache.set(
            MarkUpdate.cacheKey(symbol: update.symbol),
            CachedValue(bytes: update.cacheValue, sourceTime: update.time),
            ttl: nil
        )
    }

    /// Funding settlements of `symbol`: the newest goes to the cache (`funding:<symbol>`, where the
    /// executor charges it and the analyst reads it), all of them to the record. A record that fails is
    /// logged and counted; the feed goes on.
    public func recordFunding(symbol: String, _ events: [FundingEvent]) async {
        guard let newest = events.max(by: { $0.time < $1.time }) else { return }
        let key = FundingEvent.cacheKey(symbol: symbol)
        let cached = await cache.get(key).flatMap { FundingEvent(cacheValue: $0.bytes) }
        if cached.map({ $0.time <= newest.time }) ?? true {
            await cache.set(key, CachedValue(bytes: newest.cacheValue, sourceTime: newest.time), ttl: nil)
        }
        guard let record else { return }
        do {
            try await record.recordFunding(venue: venue, symbol: symbol, events)
        } catch {
            Counter(label: "tradebus_feed_record_failures_total", dimensions: [("venue", venue)]).increment()
            logger.error(
                "funding settlements not recorded",
                metadata: ["symbol": "\(symbol)", "count": "\(events.count)", "error": "\(error)"]
            )
        }
    }

    /// Keeps published candles in the record, if any. A record that fails is logged and counted; the
    /// candles are on the bus already, and the feed goes on.
    public func recordCandles(_ candles: [Candle], of stream: CandleStreamID) async {
        guard let record, !candles.isEmpty else { return }
        do {
            try await record.recordCandles(venue: venue, symbol: stream.symbol, interval: stream.interval, candles)
        } catch {
            Counter(label: "tradebus_feed_record_failures_total", dimensions: [("venue", venue)]).increment()
            logger.error(
                "candles not recorded",
                metadata: ["stream": "\(stream)", "count": "\(candles.count)", "error": "\(error)"]
            )
        }
    }
}
