import Foundation
import Logging
import TradingCore

/// The indicator worker's logic: for each closed candle, update that (symbol, interval)'s indicators
/// (and, from 1m candles, the higher timeframes), keep the snapshot in the hot cache stamped with its
/// candle time, publish it as `ind.<symbol>.<interval>`, and publish any signal as
/// `sig.<symbol>.<interval>` with the candle's correlation id. A candle older than or equal to the
/// last one seen for its stream is a redelivery and is skipped, so at-least-once delivery gives
/// exactly-once updates.
public actor IndicatorProcessor {
    struct Stream {
        var indicators = IndicatorSet()
        var lastOpenTime: Int64?
        var previous: IndicatorSnapshot?
    }

    private var streams: [String: Stream] = [:]
    private var aggregators: [String: TimeframeAggregator] = [:]
    let bus: any MessageBus
    let cache: any HotCache
    let source: String

    public init(bus: any MessageBus, cache: any HotCache, source: String) {
        self.bus = bus
        self.cache = cache
        self.source = source
    }

    /// Handles one `candle.closed` delivery; a body that is not one is rejected to the dead-letter queue.
    public func handle(_ delivery: Delivery) async throws {
        let envelope: Envelope<CandlePayload>
        do {
            envelope = try EnvelopeCodec.decode(CandlePayload.self, from: delivery.body, expectedType: MessageType.candleClosed)
        } catch {
            throw MessageRejected("not a candle: \(error)")
        }
        let payload = envelope.payload
        try await update(symbol: payload.symbol, interval: payload.interval, candle: payload.candle, correlationID: envelope.correlationID)
        if payload.interval == "1m" {
            let key = payload.symbol
            var aggregator = aggregators[key] ?? TimeframeAggregator()
            let closed = aggregator.add(payload.candle)
            aggregators[key] = aggregator
            for output in closed {
                try await update(symbol: payload.symbol, interval: output.interval, candle: output.candle, correlationID: envelope.correlationID)
            }
        }
    }

    /// The latest snapshot of a stream held in memory.
    public func snapshot(symbol: String, interval: String) -> IndicatorSnapshot? {
        streams["\(symbol)|\(interval)"]?.previous
    }

    private func update(symbol: String, interval: String, candle: Candle, correlationID: String) async throws {
        let key = "\(symbol)|\(interval)"
        var stream = streams[key] ?? Stream()
        if let last = stream.lastOpenTime, candle.openTime <= last { return }
        let snapshot = stream.indicators.update(candle)
        let signals = stream.previous.map { Signal.detect(previous: $0, current: snapshot) } ?? []
        stream.lastOpenTime = candle.openTime
        stream.previous = snapshot
        streams[key] = stream

        let length = CandleInterval.milliseconds(interval) ?? 0
        let candleClose = Date(timeIntervalSince1970: Double(candle.openTime + length) / 1000)
        let envelope = Envelope(
            type: MessageType.indicatorSnapshot, time: candleClose, correlationID: correlationID, source: source,
            payload: SnapshotPayload(symbol: symbol, interval: interval, snapshot: snapshot))
        let body = try EnvelopeCodec.encode(envelope)
        await cache.set(SnapshotPayload.cacheKey(symbol: symbol, interval: interval), CachedValue(bytes: body, sourceTime: candleClose), ttl: nil)
        var messages = [OutgoingMessage(
            routingKey: RoutingKey.indicators(symbol: symbol, interval: interval), body: body, messageID: envelope.id,
            correlationID: correlationID)]
        for signal in signals {
            let signalEnvelope = Envelope(
                type: MessageType.signal, time: candleClose, correlationID: correlationID, source: source,
                payload: SignalPayload(symbol: symbol, interval: interval, signal: signal))
            messages.append(OutgoingMessage(
                routingKey: RoutingKey.signal(symbol: symbol, interval: interval), body: try EnvelopeCodec.encode(signalEnvelope),
                messageID: signalEnvelope.id, correlationID: correlationID))
        }
        try await publishRoutable(messages)
    }

    /// Snapshots and signals go out even when nobody listens yet: an unroutable one is not an error here.
    private func publishRoutable(_ messages: [OutgoingMessage]) async throws {
        for message in messages {
            do {
                try await bus.publish(message)
            } catch BusError.unroutable {
                continue
            }
        }
    }
}
