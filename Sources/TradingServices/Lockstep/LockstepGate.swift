import Foundation
import Logging
import TradingCore

/// The feed's side of a lockstep replay (`REPLAY_LOCKSTEP=true`): it publishes one candle, then waits
/// until every worker has finished what that candle caused (``LockstepTracker``, fed by the workers'
/// watermarks) before the next one goes. A candle that is not done after `stallAfter` is a stall: the
/// gate names the workers and queues that hold it, raises an alert, and goes on waiting (a worker that
/// restarts picks its message up again).
public actor LockstepGate {
    private var tracker = LockstepTracker()
    let stallAfter: Duration
    let logger: Logger
    /// How often a stall has been reported.
    public private(set) var stalls = 0

    /// A gate that reports a stall after `stallAfter`.
    public init(stallAfter: Duration = .seconds(60), logger: Logger) {
        self.stallAfter = stallAfter
        self.logger = logger
    }

    /// The feed's watermark queue: every worker's progress on `symbol`; this process's own, gone when it is.
    public static func queue(instance: String, symbol: String) -> QueueSpec {
        QueueSpec(
            name: "feed-ingester.\(instance).\(UUID().uuidString.prefix(8).lowercased()).progress",
            bindings: ["progress.*.\(RoutingKey.part(symbol))"],
            expiresAfter: .seconds(60)
        )
    }

    /// Handles one watermark delivery; a body that is not one goes to the dead-letter queue.
    public func handle(_ delivery: Delivery) throws {
        let watermark = try delivery.envelope(Watermark.self, expectedType: Watermark.messageType, what: "a watermark")
        tracker.receive(watermark.payload)
    }

    /// The candle `candleID`, closing at `close`, is about to be published.
    public func start(candleID: String, close: Date) { tracker.start(candleID: candleID, close: close) }

    /// Returns once the candle's work is all done; `onStall` hears what holds it, each `stallAfter`.
    public func wait(onStall: @Sendable ([String]) async -> Void) async throws {
        var deadline = ContinuousClock.now + stallAfter
        while !tracker.isDone {
            try await Task.sleep(for: .microseconds(500))
            if ContinuousClock.now >= deadline, !tracker.isDone {
                stalls += 1
                await onStall(tracker.holders.map(Self.described))
                deadline = ContinuousClock.now + stallAfter
            }
        }
    }

    /// What is pending at the moment, for the status page: `ai-analyst (sig:…)`.
    public var pending: [String] { tracker.holders }

    /// A pending piece of work with the queue it waits in.
    static func described(_ holder: String) -> String {
        let queue: String
        if holder.hasPrefix("indicator-worker") {
            queue = "indicator-worker.candles"
        } else if holder.hasPrefix("ai-analyst") {
            queue = SignalAnalyst.signalQueue.name
        } else if holder.contains("(decision:") {
            queue = "executor.<account>.decisions"
        } else {
            queue = "executor.<account>.candles"
        }
        return "\(holder) in \(queue)"
    }
}
