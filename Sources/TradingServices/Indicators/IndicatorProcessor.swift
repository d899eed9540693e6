import Foundation
import Logging
import Metrics
import TradingCore

/// The indicator worker's logic: for each closed candle, update that (symbol, interval)'s indicators
/// (and, from 1m candles, the higher timeframes), publish the snapshot as `ind.<symbol>.<interval>`
/// and any signal as `sig.<symbol>.<interval>` with the candle's correlation id, then keep the
/// snapshot in the hot cache stamped with its candle time.
///
/// **Exactly-once updates from at-least-once delivery.** A candle older than or equal to the last one
/// of its stream is a redelivery and is skipped. State advances only after the messages are on the bus;
/// if publishing fails the delivery is retried from the old state. Snapshot and signal ids are derived
/// from the stream and candle time, so a message published twice (a crash between publish and ack)
/// carries the same id both times and consumers can drop the second.
///
/// **Takeover.** After every candle the stream's state (its ``IndicatorSet``, last candle and snapshot,
/// and the 1m→higher-timeframe aggregator) is saved in the hot cache. A worker that sees a stream for
/// the first time, after a restart or when its shard moves to it, restores that state first, so its
/// outputs are the ones the previous worker would have produced.
public actor IndicatorProcessor {
    /// One (symbol, interval) stream, as saved for takeover.
    struct StreamState: Codable {
        var indicators = IndicatorSet()
        var lastOpenTime: Int64?
        var previous: IndicatorSnapshot?
        /// The signals the last candle raised: a lockstep replay publishes them again when that candle
        /// comes again (the feed restarted), so that their work is seen to finish.
        var lastSignals: [SavedSignal]?
    }

    /// A signal message as saved with its stream.
    struct SavedSignal: Codable {
        var id: String
        var routingKey: String
        var body: String
        var correlationID: String?
    }

    /// What one candle changes, committed only once its messages are published.
    struct Changes {
        var streams: [String: StreamState] = [:]
        var aggregator: (symbol: String, state: TimeframeAggregator)?
        var messages: [OutgoingMessage] = []
        /// The latest snapshot of each stream updated.
        var snapshots: [CacheEntry] = []
        /// The takeover state.
        var entries: [CacheEntry] = []
    }

    private var streams: [String: StreamState] = [:]
    private var aggregators: [String: TimeframeAggregator] = [:]
    let bus: any MessageBus
    let cache: any HotCache
    let source: String
    let logger: Logger
    /// This worker's part in a lockstep replay; nil live.
    let lockstep: LockstepProgress?

    /// Whether each stream's state is saved for a takeover (a worker among others); one process alone
    /// (`tradebus run`, `backtest`) has no one to hand over to and skips it.
    let savesState: Bool

    /// A `IndicatorProcessor` with the fields given.
    public init(
        bus: any MessageBus,
        cache: any HotCache,
        source: String,
        logger: Logger = Logger(label: "indicator-worker"),
        savesState: Bool = true,
        lockstep: LockstepProgress? = nil
    ) {
        self.savesState = savesState
        self.lockstep = lockstep
        self.bus = bus
        self.cache = cache
        self.source = source
        self.logger = logger
    }

    /// The hot-cache key of a stream's saved state.
    public static func stateKey(symbol: String, interval: String) -> String { "state:ind:\(symbol):\(interval)" }
    /// The hot-cache key of a symbol's saved 1m aggregator.
    public static func aggregatorKey(symbol: String) -> String { "state:agg:\(symbol)" }

    /// Handles one `candle.closed` delivery; a body that is not one is rejected to the dead-letter queue.
    public func handle(_ delivery: Delivery) async throws {
        let envelope = try delivery.envelope(
            CandlePayload.self,
            expectedType: MessageType.candleClosed,
            what: "a candle"
        )
        let payload = envelope.payload
        guard CandleInterval.milliseconds(payload.interval) != nil else {
            throw MessageRejected("candle interval '\(payload.interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        if let defect = payload.candle.defect {
            throw MessageRejected("candle at \(payload.candle.openTime) is invalid (\(defect.rawValue))")
        }
        lockstep?.begin(envelope.time)
        var changes = Changes()
        let isNew = try await update(
            payload.symbol,
            payload.interval,
            payload.candle,
            correlationID: envelope.correlationID,
            into: &changes
        )
        if isNew && payload.interval == "1m" {
            var aggregator = await restoredAggregator(payload.symbol)
            let closed = aggregator.add(payload.candle)
            changes.aggregator = (payload.symbol, aggregator)
            if savesState {
                changes.entries.append(
                    CacheEntry(
                        key: Self.aggregatorKey(symbol: payload.symbol),
                        value: CachedValue(
                            bytes: Array(try JSONEncoder().encode(aggregator)),
                            sourceTime: envelope.time
                        )
                    )
                )
            }
            for output in closed {
                try await update(
                    payload.symbol,
                    output.interval,
                    output.candle,
                    correlationID: envelope.correlationID,
                    into: &changes
                )
            }
        }
        guard isNew else {
            // A candle again (a redelivery, or a restarted feed): in a lockstep replay, the signals it
            // raised go out again (the same ids: their consumers drop what they have done) and the
            // watermark names them, so the feed sees their work finish.
            if let lockstep {
                let signals = await signalsRaised(symbol: payload.symbol, close: envelope.time)
                try await publishRoutable(signals)
                try await lockstep.finished(
                    symbol: payload.symbol,
                    candleTime: envelope.time,
                    messageID: envelope.id,
                    emitted: signals.compactMap(\.messageID).map { Watermark.key(SignalAnalyst.worker, $0) }
                )
            }
            return
        }
        // The snapshots are in the cache before their signals go out, so an analyst handling a signal
        // reads this candle's snapshots of every timeframe. They are facts of the candle; only the
        // takeover state waits until the messages are published.
        await cache.set(changes.snapshots)
        try await publishRoutable(changes.messages)
        streams.merge(changes.streams) { $1 }
        if let (symbol, aggregator) = changes.aggregator { aggregators[symbol] = aggregator }
        await cache.set(changes.entries)
        Counter(label: "tradebus_indicator_candles_total").increment()
        if lockstep == nil, changes.messages.contains(where: { $0.routingKey.hasPrefix("sig.") }) {
            PipelineLatency.record("signal", candleClose: envelope.time)
        }
        try await lockstep?.finished(
            symbol: payload.symbol,
            candleTime: envelope.time,
            messageID: envelope.id,
            emitted: changes.messages.filter { $0.routingKey.hasPrefix("sig.") }.compactMap(\.messageID).map {
                Watermark.key(SignalAnalyst.worker, $0)
            }
        )
    }

    /// The signals the candle closing at `close` raised: those of every stream of `symbol` whose last
    /// candle closed then.
    private func signalsRaised(symbol: String, close: Date) async -> [OutgoingMessage] {
        var messages: [OutgoingMessage] = []
        for interval in CandleInterval.names {
            guard let length = CandleInterval.milliseconds(interval) else { continue }
            let stream = await restoredStream(symbol, interval)
            guard let last = stream.lastOpenTime, Double(last + length) / 1000 == close.timeIntervalSince1970 else {
                continue
            }
            messages += (stream.lastSignals ?? []).map {
                OutgoingMessage(
                    routingKey: $0.routingKey,
                    body: Array($0.body.utf8),
                    messageID: $0.id,
                    correlationID: $0.correlationID
                )
            }
        }
        return messages
    }

    /// The latest snapshot of a stream held in memory.
    public func snapshot(symbol: String, interval: String) -> IndicatorSnapshot? {
        streams["\(symbol)|\(interval)"]?.previous
    }

    /// Updates one stream with `candle`; false if the candle is not newer than the stream's last one.
    @discardableResult
    private func update(
        _ symbol: String,
        _ interval: String,
        _ candle: Candle,
        correlationID: String,
        into changes: inout Changes
    ) async throws -> Bool {
        let key = "\(symbol)|\(interval)"
        var stream: StreamState
        if let pending = changes.streams[key] {
            stream = pending
        } else {
            stream = await restoredStream(symbol, interval)
        }
        if let last = stream.lastOpenTime, candle.openTime <= last { return false }
        let snapshot = stream.indicators.update(candle)
        let signals = stream.previous.map { Signal.detect(previous: $0, current: snapshot) } ?? []
        stream.lastOpenTime = candle.openTime
        stream.previous = snapshot
        changes.streams[key] = stream

        let length = CandleInterval.milliseconds(interval) ?? 0
        let candleClose = Date(timeIntervalSince1970: Double(candle.openTime + length) / 1000)
        let envelope = Envelope(
            id: "ind:\(symbol):\(interval):\(candle.openTime)",
            type: MessageType.indicatorSnapshot,
            time: candleClose,
            correlationID: correlationID,
            source: source,
            payload: SnapshotPayload(symbol: symbol, interval: interval, snapshot: snapshot)
        )
        let body = try EnvelopeCodec.encode(envelope)
        changes.messages.append(
            OutgoingMessage(
                routingKey: RoutingKey.indicators(symbol: symbol, interval: interval),
                body: body,
                messageID: envelope.id,
                correlationID: correlationID
            )
        )
        stream.lastSignals = lockstep == nil ? nil : []
        for signal in signals {
            let signalEnvelope = Envelope(
                id: "sig:\(symbol):\(interval):\(candle.openTime):\(signal.kind.rawValue):\(signal.direction.rawValue)",
                type: MessageType.signal,
                time: candleClose,
                correlationID: correlationID,
                source: source,
                payload: SignalPayload(symbol: symbol, interval: interval, signal: signal)
            )
            let message = OutgoingMessage(
                routingKey: RoutingKey.signal(symbol: symbol, interval: interval),
                body: try EnvelopeCodec.encode(signalEnvelope),
                messageID: signalEnvelope.id,
                correlationID: correlationID
            )
            changes.messages.append(message)
            if lockstep != nil {
                stream.lastSignals?.append(
                    SavedSignal(
                        id: signalEnvelope.id,
                        routingKey: message.routingKey,
                        body: String(decoding: message.body, as: UTF8.self),
                        correlationID: correlationID
                    )
                )
            }
        }
        changes.streams[key] = stream
        changes.snapshots.append(
            CacheEntry(
                key: SnapshotPayload.cacheKey(symbol: symbol, interval: interval),
                value: CachedValue(bytes: body, sourceTime: candleClose)
            )
        )
        if savesState {
            changes.entries.append(
                CacheEntry(
                    key: Self.stateKey(symbol: symbol, interval: interval),
                    value: CachedValue(bytes: Array(try JSONEncoder().encode(stream)), sourceTime: candleClose)
                )
            )
        }
        return true
    }

    /// A stream's state: in memory, or saved by whichever worker had it before, or new.
    private func restoredStream(_ symbol: String, _ interval: String) async -> StreamState {
        let key = "\(symbol)|\(interval)"
        if let stream = streams[key] { return stream }
        guard let saved = await cache.get(Self.stateKey(symbol: symbol, interval: interval)) else {
            return StreamState()
        }
        do {
            let stream = try JSONDecoder().decode(StreamState.self, from: Data(saved.bytes))
            logger.info(
                "restored indicator state",
                metadata: [
                    "symbol": "\(symbol)", "interval": "\(interval)", "last_open_time": "\(stream.lastOpenTime ?? -1)",
                ]
            )
            Counter(label: "tradebus_indicator_state_restored_total").increment()
            return streams[key] ?? stream
        } catch {
            logger.error(
                "saved indicator state unreadable; starting this stream afresh",
                metadata: ["symbol": "\(symbol)", "interval": "\(interval)", "error": "\(error)"]
            )
            return StreamState()
        }
    }

    private func restoredAggregator(_ symbol: String) async -> TimeframeAggregator {
        if let aggregator = aggregators[symbol] { return aggregator }
        guard let saved = await cache.get(Self.aggregatorKey(symbol: symbol)),
            let aggregator = try? JSONDecoder().decode(TimeframeAggregator.self, from: Data(saved.bytes))
        else { return TimeframeAggregator() }
        return aggregators[symbol] ?? aggregator
    }

    /// Snapshots and signals go out even when nobody listens yet: an unroutable one is not an error here.
    private func publishRoutable(_ messages: [OutgoingMessage]) async throws {
        for message in messages {
            do {
                try await bus.publish(message)
            } catch let failure as BusError where failure.code == .unroutable {
                continue
            }
        }
    }
}
