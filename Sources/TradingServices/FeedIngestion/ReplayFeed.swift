import Foundation
import Logging
import Metrics
import TradingCore

/// Replays a candle file onto the bus as closed candles, as fast as the bus takes them or at a factor
/// of real time. Duplicates are dropped; gaps are reported (logged and counted), never filled with
/// invented candles; invalid candles are skipped, counted and alerted. The latest price goes to the hot cache.
public struct ReplayFeed: Sendable {
    /// What a replay published, skipped and refused.
    public struct Report: Sendable, Equatable {
        public var published = 0
        public var duplicates = 0
        public var rejected = 0
        public var gaps = 0
        public var missingCandles = 0
    }

    public var stream: CandleStreamID
    /// 0: as fast as the bus takes them; 60: a minute of market time a second.
    public var speed: Double
    let output: FeedOutput

    /// A `ReplayFeed` with the fields given.
    public init(stream: CandleStreamID, speed: Double = 0, output: FeedOutput) {
        self.stream = stream
        self.speed = speed
        self.output = output
    }

    /// Publishes `candles` in order; returns what happened to them. With a `gate` (a lockstep replay),
    /// one candle at a time, each after the whole pipeline is done with the one before.
    public func replay(_ candles: [Candle], batch: Int = 256, gate: LockstepGate? = nil) async throws -> Report {
        guard let length = CandleInterval.milliseconds(stream.interval) else {
            throw ExchangeMessageError("interval '\(stream.interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        var sequencer = CandleSequencer(intervalMilliseconds: length)
        var report = Report()
        var pending: [OutgoingMessage] = []
        var previousTime: Int64?
        let published = Counter(label: "tradebus_feed_candles_total", dimensions: [("venue", output.venue)])
        var lastPublished: Candle?
        for candle in candles {
            switch sequencer.accept(candle) {
            case .duplicate, .stale:
                report.duplicates += 1
                continue
            case .rejected(let defect):
                report.rejected += 1
                try await output.reportInvalid(candle, of: stream, defect: defect)
                continue
            case .acceptedAfterGap(_, let from, let missing):
                report.gaps += 1
                report.missingCandles += missing
                output.logger.info(
                    "gap in the data: candles missing, none invented",
                    metadata: ["from": "\(from)", "missing": "\(missing)"]
                )
            case .accepted:
                break
            }
            if speed > 0, let previous = previousTime {
                try await output.bus.publish(pending)
                pending.removeAll()
                try await Task.sleep(for: .milliseconds(Int64(Double(candle.openTime - previous) / speed)))
            }
            previousTime = candle.openTime
            if let gate {
                let message = try output.message(candle, of: stream, intervalMilliseconds: length)
                let close = FeedOutput.closeTime(candle, intervalMilliseconds: length)
                await gate.start(candleID: message.messageID ?? "", close: close)
                try await output.bus.publish([message])
                try await gate.wait { holders in
                    output.logger.error(
                        "lockstep: a candle's work is not done; the replay waits",
                        metadata: ["candle_close": "\(close)", "waiting_for": "\(holders.joined(separator: "; "))"]
                    )
                    try? await output.alert(
                        AlertPayload(
                            severity: .critical,
                            kind: "lockstep_stall",
                            title: "Lockstep replay stalled",
                            message: "The candle closing at \(close) waits for: \(holders.joined(separator: "; ")).",
                            symbol: stream.symbol
                        )
                    )
                }
                lastPublished = candle
                report.published += 1
                published.increment()
                continue
            }
            pending.append(try output.message(candle, of: stream, intervalMilliseconds: length))
            lastPublished = candle
            report.published += 1
            published.increment()
            if pending.count >= batch {
                try await output.bus.publish(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        try await output.bus.publish(pending)
        if let last = lastPublished {
            await output.setLatestPrice(
                symbol: stream.symbol,
                price: last.close,
                time: FeedOutput.closeTime(last, intervalMilliseconds: length)
            )
        }
        return report
    }
}
