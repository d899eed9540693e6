import Foundation
import Logging
import Metrics
import TradingCore

/// Replays a candle file onto the bus as closed candles, as fast as the bus takes them or at a factor
/// of real time. Duplicates are dropped; gaps are reported (logged and counted), never filled with
/// invented candles; invalid candles are skipped and counted. The latest price goes to the hot cache.
public struct ReplayFeed: Sendable {
    public struct Report: Sendable, Equatable {
        public var published = 0
        public var duplicates = 0
        public var rejected = 0
        public var gaps = 0
        public var missingCandles = 0
    }

    public var venue: String
    public var symbol: String
    public var interval: String
    /// 0: as fast as the bus takes them; 60: a minute of market time a second.
    public var speed: Double
    public var source: String
    let bus: any MessageBus
    let cache: any HotCache
    let logger: Logger

    public init(
        venue: String, symbol: String, interval: String, speed: Double = 0, source: String, bus: any MessageBus,
        cache: any HotCache, logger: Logger
    ) {
        self.venue = venue
        self.symbol = symbol
        self.interval = interval
        self.speed = speed
        self.source = source
        self.bus = bus
        self.cache = cache
        self.logger = logger
    }

    /// Publishes an alert; nobody listening yet is not an error for the feed.
    func alert(_ payload: AlertPayload) async throws {
        let envelope = Envelope(type: MessageType.alert, time: Date(), source: source, payload: payload)
        do {
            try await bus.publish(envelope, routingKey: payload.routingKey)
        } catch BusError.unroutable {
            logger.debug("no queue bound for \(payload.routingKey)")
        }
    }

    /// Publishes `candles` in order; returns what happened to them.
    public func replay(_ candles: [Candle], batch: Int = 256) async throws -> Report {
        guard let length = CandleInterval.milliseconds(interval) else {
            throw ExchangeMessageError("interval '\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        var sequencer = CandleSequencer(intervalMilliseconds: length)
        var report = Report()
        var pending: [OutgoingMessage] = []
        var previousTime: Int64?
        let key = RoutingKey.candle(venue: venue, symbol: symbol, interval: interval)
        for candle in candles {
            switch sequencer.accept(candle) {
            case .duplicate, .stale:
                report.duplicates += 1
                continue
            case .rejected(let defect):
                report.rejected += 1
                Counter(label: "tradebus_feed_invalid_candles_total", dimensions: [("defect", defect.rawValue)]).increment()
                logger.warning("invalid candle skipped", metadata: ["open_time": "\(candle.openTime)", "defect": "\(defect.rawValue)"])
                try await alert(AlertPayload(
                    severity: .warning, kind: "invalid_candle", title: "Invalid candle skipped",
                    message: "\(venue) \(symbol) \(interval) candle at \(candle.openTime) is invalid (\(defect.rawValue)); it was not published",
                    symbol: symbol, fields: ["open_time": .number(Double(candle.openTime)), "defect": .string(defect.rawValue)]))
                continue
            case .acceptedAfterGap(_, let from, let missing):
                report.gaps += 1
                report.missingCandles += missing
                logger.info("gap in the data: candles missing, none invented", metadata: ["from": "\(from)", "missing": "\(missing)"])
            case .accepted:
                break
            }
            if speed > 0, let previous = previousTime {
                try await bus.publish(pending)
                pending.removeAll()
                try await Task.sleep(for: .milliseconds(Int64(Double(candle.openTime - previous) / speed)))
            }
            previousTime = candle.openTime
            let envelope = Envelope(
                type: MessageType.candleClosed, time: Date(timeIntervalSince1970: Double(candle.openTime + length) / 1000),
                source: source, payload: CandlePayload(venue: venue, symbol: symbol, interval: interval, candle: candle))
            pending.append(OutgoingMessage(
                routingKey: key, body: try EnvelopeCodec.encode(envelope), messageID: envelope.id,
                correlationID: envelope.correlationID, shardKey: symbol))
            report.published += 1
            if pending.count >= batch {
                try await bus.publish(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        try await bus.publish(pending)
        if let last = candles.last(where: { $0.defect == nil }) {
            await cache.set(
                "price:\(venue):\(symbol)", CachedValue(String(last.close), sourceTime: Date(timeIntervalSince1970: Double(last.openTime + length) / 1000)),
                ttl: nil)
        }
        return report
    }
}
