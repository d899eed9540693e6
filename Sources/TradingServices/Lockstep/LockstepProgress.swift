import Foundation
import Logging
import TradingCore

/// A worker's part in a lockstep replay (`REPLAY_LOCKSTEP=true`): its clock is the market's, moved
/// forward by each message it handles, and it publishes a ``Watermark`` on `progress.<worker>.<symbol>`
/// once it is done with one, so the feed knows when to publish the next candle.
public struct LockstepProgress: Sendable {
    public let worker: String
    public let clock: ReplayClock
    let bus: any MessageBus
    let logger: Logger

    /// A `LockstepProgress` for `worker`, publishing on `bus`.
    public init(worker: String, bus: any MessageBus, clock: ReplayClock = ReplayClock(), logger: Logger) {
        self.worker = worker
        self.bus = bus
        self.clock = clock
        self.logger = logger
    }

    /// A message of market time `time` is being handled: the clock moves to it (never back).
    public func begin(_ time: Date) { clock.advance(to: time) }

    /// The message `messageID` (from the candle closing at `candleTime`) is done; `emitted` is the work
    /// it started, as ``Watermark/key(_:_:)`` keys. A watermark nobody waits for is not an error.
    public func finished(symbol: String, candleTime: Date, messageID: String, emitted: [String]) async throws {
        let watermark = Watermark(
            worker: worker,
            symbol: symbol,
            candleTime: candleTime,
            handled: Watermark.key(worker, messageID),
            emitted: emitted
        )
        let id = "progress:\(watermark.handled)"
        do {
            try await bus.publish(
                Envelope(
                    id: id,
                    type: Watermark.messageType,
                    time: candleTime,
                    correlationID: id,
                    source: worker,
                    payload: watermark
                ),
                routingKey: RoutingKey.progress(worker: worker, symbol: symbol)
            )
        } catch let error as BusError where error.code == .unroutable {
            logger.debug("watermark not routed: no feed waits", metadata: ["handled": "\(watermark.handled)"])
        }
    }
}
