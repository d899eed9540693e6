import Foundation

/// What each worker says of itself every few seconds on `heartbeat.<worker>`: whether it and the servers
/// it needs are up, and its own figures (a notifier's sinks, an analyst's LLM spend today). The
/// cockpit shows the newest from each instance, and counts one not heard from for three intervals as
/// gone.
public struct WorkerHeartbeat: Sendable, Hashable, Codable {
    public var worker: String
    public var instance: String
    /// `up`, `degraded` or `down`: the worst of its dependencies.
    public var state: String
    /// Each dependency's state, with why when it is not up.
    public var dependencies: [String: String]
    /// The worker's own figures, as its `/status` shows them.
    public var figures: [String: String]
    public var time: Date
    /// Seconds until the next one.
    public var interval: Double

    /// A `WorkerHeartbeat` with the fields given.
    public init(
        worker: String,
        instance: String,
        state: String,
        dependencies: [String: String],
        figures: [String: String],
        time: Date,
        interval: Double
    ) {
        self.worker = worker
        self.instance = instance
        self.state = state
        self.dependencies = dependencies
        self.figures = figures
        self.time = time
        self.interval = interval
    }

    /// The envelope type.
    public static let messageType = "heartbeat"
    /// The figure an analyst reports its LLM spending today in (USD).
    public static let llmSpentToday = "llm_spent_today_usd"

    /// `heartbeat.<worker>`.
    public var routingKey: String { RoutingKey.heartbeat(worker: worker) }

    /// Whether it is older than three intervals at `now`: the worker is gone or cannot reach the bus.
    public func isStale(now: Date) -> Bool { now.timeIntervalSince(time) > 3 * interval }
}
