import Cockpit
import Foundation
import TradingCore
import TradingServices

/// cockpit's configuration: where it listens (127.0.0.1 unless told otherwise), its two tokens, and the
/// account whose executor it asks.
public struct CockpitWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var host: String
    public var port: Int
    public var tokens: CockpitTokens
    public var account: String
    /// Shards of the indicator workers' candle queue (`INDICATOR_SHARDS`, as the feed-ingester has it).
    public var indicatorShards: Int
    /// Marks the session cookie Secure: set it when TLS is in front and the proxy sends no X-Forwarded-Proto.
    public var secureCookies: Bool
    /// The leaders followed, for the leader page (`COPY_LEADERS`; nil: none).
    public var followed: CopyConfiguration.Followed?

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        let viewer = try config.string("COCKPIT_VIEWER_TOKEN", secret: true, help: "the viewer's token (reads)")
        let operatorToken = try config.string(
            "COCKPIT_OPERATOR_TOKEN",
            secret: true,
            help: "the operator's token (reads and control)"
        )
        let tokens: CockpitTokens
        do { tokens = try CockpitTokens(viewer: viewer, operator: operatorToken) } catch {
            throw ConfigError(key: error.key, message: error.message)
        }
        return Self(
            dependencies: try WorkerDependencies.configure([.bus, .store], config: config, instance: "cockpit"),
            host: try config.string("COCKPIT_HOST", default: "127.0.0.1", help: "address the cockpit binds")!,
            port: try config.int("COCKPIT_PORT", default: 8090, range: 0...65_535, help: "the cockpit's port"),
            tokens: tokens,
            account: try config.string("EXECUTOR_ACCOUNT", default: "default", help: "the account it shows")!,
            indicatorShards: try config.int(
                "INDICATOR_SHARDS",
                default: 1,
                range: 1...256,
                help: "shards of the indicator workers' queue (for the queue depths)"
            ),
            secureCookies: try config.bool(
                "COCKPIT_SECURE_COOKIE",
                default: false,
                help: "mark the session cookie Secure (TLS in front)"
            ),
            followed: try CopyConfiguration.followed(config)
        )
    }
}

/// What the cockpit takes from the bus: every alert, kept in the store once (a shared durable queue, so
/// an alert raised while no cockpit runs is kept when one starts), and trade and order events for the
/// open pages (a queue of this instance's own, gone a while after it stops).
public enum CockpitBusFeed {
    /// Every alert, for the record.
    public static let alertQueue = QueueSpec(name: "cockpit.alerts", bindings: ["alert.#"])

    /// This instance's live events and the workers' heartbeats.
    public static func liveQueue(instance: String) -> QueueSpec {
        QueueSpec(
            name: "cockpit.\(instance).live",
            bindings: ["trade.#", "order.#", "heartbeat.#"],
            expiresAfter: .seconds(300)
        )
    }

    /// The pipeline's queues for `account`, by the names the workers give them, with each one's dead
    /// letters: what the overview counts.
    public static func pipelineQueues(account: String, candles: [String]) -> [String] {
        let work =
            candles + [
                SignalAnalyst.signalQueue.name, TradeExecutor.decisionQueue(account: account).name,
                TradeExecutor.controlQueue(account: account).name, alertQueue.name,
            ]
        let sinks = ["telegram", "discord", "slack", "webhook", "email", "log"].map {
            SinkDispatcher.queue(for: $0).name
        }
        return (work + sinks).flatMap { [$0, QueueSpec.deadLetterQueue(of: $0)] }
    }

    /// The messages waiting in each of `queues` that exists on `bus`.
    public static func depths(_ queues: [String], bus: any MessageBus) async -> [CockpitService.QueueDepth] {
        var depths: [CockpitService.QueueDepth] = []
        for queue in queues {
            if let count = try? await bus.messageCount(queue) {
                depths.append(CockpitService.QueueDepth(name: queue, messages: count))
            }
        }
        return depths
    }

    /// Keeps one alert and shows it live; a message that is not an alert is refused (dead-lettered).
    public static func recordAlert(_ delivery: Delivery, store: any TradeStore, feed: CockpitFeed) async throws {
        let envelope = try delivery.envelope(AlertPayload.self, expectedType: MessageType.alert, what: "an alert")
        let alert = envelope.payload
        try await store.recordAlert(AlertRecord(id: envelope.id, time: envelope.time, alert: alert))
        feed.publish(
            CockpitEvent(
                kind: "alert",
                text: "\(alert.severity.rawValue): \(alert.title)",
                time: envelope.time,
                refresh: alert.severity == .critical
            )
        )
    }

    /// Keeps a worker's heartbeat in `roster`, or shows a trade or order event on the open pages; one it
    /// cannot read is refused (dead-lettered).
    public static func showLive(_ delivery: Delivery, feed: CockpitFeed, roster: WorkerRoster) throws {
        if delivery.routingKey.hasPrefix("heartbeat.") {
            let envelope = try delivery.envelope(
                WorkerHeartbeat.self,
                expectedType: WorkerHeartbeat.messageType,
                what: "a heartbeat"
            )
            roster.record(envelope.payload)
            return
        }
        let notice: Notice
        do { notice = try NoticeTemplates.notice(from: delivery.body) } catch {
            throw MessageRejected("not a trade or order event: \(error)")
        }
        feed.publish(
            CockpitEvent(
                kind: notice.kind,
                text: ([notice.title] + notice.lines).joined(separator: " · "),
                time: notice.time,
                refresh: notice.kind.hasPrefix("trade") || notice.kind == "order_filled"
            )
        )
    }
}
