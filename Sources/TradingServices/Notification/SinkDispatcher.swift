import Foundation
import Logging
import Metrics
import TradingCore

/// Delivers notices to one sink from that sink's own queue, so a sink that is down never holds the
/// others back. For each message: render the notice, drop it if the sink's route does not take it,
/// claim `notified:<sink>:<id>` in the hot cache (set-if-absent: a duplicate delivery, or the same
/// alert at another notifier, finds the claim and sends nothing), wait for the sink's rate limits, and
/// send, retrying 429s (after the wait the service asked for) and 5xx/network failures (with backoff
/// and jitter). What still fails goes to the dead-letter queue with the reason, its claim released.
public actor SinkDispatcher {
    /// Retry and pacing limits for one sink.
    public struct Settings: Sendable {
        public var maxAttempts = 5
        public var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
        /// A service asking for a longer wait than this is waited this long.
        public var maxRetryAfter: Duration = .seconds(120)
        /// How long a send claim lasts (longer than all retries take).
        public var claimTTL: Duration = .seconds(3_600)
        /// How long a sent notice is remembered.
        public var sentTTL: Duration = .seconds(7 * 86_400)
        /// The defaults, as documented on each field.
        public init() {}
    }

    /// What `/status` shows of a sink.
    public struct Health: Sendable, Codable {
        public var sent = 0
        public var failed = 0
        public var duplicates = 0
        public var notRouted = 0
        public var retries = 0
        public var consecutiveFailures = 0
        public var lastError: String?
        public var lastSent: Date?
        /// Seconds between a notice's creation and its handling here, for the last one.
        public var lagSeconds: Double?
    }

    public nonisolated let sink: any NotificationSink
    let route: SinkRoute
    let cache: any HotCache
    let settings: Settings
    let logger: Logger
    let now: @Sendable () -> Date
    let sleep: @Sendable (Duration) async throws -> Void
    private var buckets: [TokenBucket]
    public private(set) var health = Health()

    /// A dispatcher for one sink, with its routes and limits.
    public init(
        sink: any NotificationSink,
        route: SinkRoute,
        cache: any HotCache,
        settings: Settings = .init(),
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.sink = sink
        self.route = route
        self.cache = cache
        self.settings = settings
        self.logger = logger
        self.now = now
        self.sleep = sleep
        let start = now().timeIntervalSince1970
        self.buckets = sink.rateLimits.map { TokenBucket($0, now: start) }
    }

    /// The sink's queue: every alert, trade and order event. `prefix` separates notifier deployments
    /// sharing a broker.
    public static func queue(for sink: String, prefix: String = "notifier") -> QueueSpec {
        QueueSpec(name: "\(prefix).\(sink)", bindings: ["alert.#", "trade.#", "order.#"])
    }

    /// Delivers one notice to this sink, with retries; throws to requeue it.
    public func handle(_ delivery: Delivery) async throws {
        let notice: Notice
        do {
            notice = try NoticeTemplates.notice(from: delivery.body)
        } catch {
            throw MessageRejected("not an alert, trade or order event: \(error)")
        }
        health.lagSeconds = max(0, now().timeIntervalSince(notice.time))
        guard route.accepts(notice) else {
            health.notRouted += 1
            return
        }
        let key = "notified:\(sink.name):\(notice.id)"
        guard await cache.setIfAbsent(key, CachedValue("sending", sourceTime: now()), ttl: settings.claimTTL) else {
            health.duplicates += 1
            Counter(label: "tradebus_notifier_duplicates_total", dimensions: [("sink", sink.name)]).increment()
            return
        }
        var attempt = 0
        while true {
            try await waitForRateLimits()
            do {
                try await sink.send(notice)
                await cache.set(key, CachedValue("sent", sourceTime: now()), ttl: settings.sentTTL)
                health.sent += 1
                health.consecutiveFailures = 0
                health.lastSent = now()
                Counter(label: "tradebus_notifier_sent_total", dimensions: [("sink", sink.name)]).increment()
                return
            } catch {
                attempt += 1
                health.consecutiveFailures += 1
                health.lastError = error.description
                guard error.isRetryable, attempt < settings.maxAttempts else {
                    // Released, so a replay from the dead-letter queue can send it.
                    await cache.remove(key)
                    health.failed += 1
                    Counter(label: "tradebus_notifier_failed_total", dimensions: [("sink", sink.name)]).increment()
                    throw MessageRejected(
                        "\(sink.name) did not take notice \(notice.id) after \(attempt) attempt(s): \(error)"
                    )
                }
                let delay = min(
                    error.retryAfter ?? settings.backoff.delay(attempt: attempt - 1),
                    settings.maxRetryAfter
                )
                health.retries += 1
                Counter(label: "tradebus_notifier_retries_total", dimensions: [("sink", sink.name)]).increment()
                logger.warning(
                    "notification not taken; retrying",
                    metadata: ["sink": "\(sink.name)", "error": "\(error)", "retry_in": "\(delay)"]
                )
                try await sleep(delay)
            }
        }
    }

    private func waitForRateLimits() async throws {
        while true {
            let time = now().timeIntervalSince1970
            var wait = 0.0
            for index in buckets.indices { wait = max(wait, buckets[index].wait(now: time)) }
            if wait == 0 {
                for index in buckets.indices { _ = buckets[index].take(now: time) }
                return
            }
            try await sleep(.milliseconds(Int64(wait * 1000) + 1))
        }
    }
}
