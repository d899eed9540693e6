import Foundation
import Logging
import Notifiers
import ServiceLifecycle
import TradingCore
import TradingServices

/// notifier's configuration: which sinks are on (a sink whose variables are unset is off), and what
/// each one gets.
public struct NotifierConfiguration: Sendable {
    public var sinks: [any NotificationSink]
    public var routes: [String: SinkRoute]
    public var delivery: SinkDispatcher.Settings
    /// UTC hour of the daily summary; nil: off (it needs DATABASE_URL).
    public var summaryHour: Int?
    /// Queue names are `<prefix>.<sink>`.
    public var queuePrefix: String

    /// Reads and checks the notifier's keys; a bad one stops it at start, naming the key.
    public static func read(_ config: SettingsReader, logger: Logger) throws -> NotifierConfiguration {
        var sinks: [any NotificationSink] = []
        let token = try config.string("TELEGRAM_BOT_TOKEN", secret: true, help: "Telegram bot token")
        let chat = try config.string("TELEGRAM_CHAT_ID", secret: true, help: "Telegram chat id")
        switch (token, chat) {
        case (let token?, let chat?):
            let base = try config.string(
                "TELEGRAM_API_BASE_URL",
                default: "https://api.telegram.org",
                help: "Bot API base"
            )!
            sinks.append(TelegramSink(apiBase: base, token: token, chatID: chat))
        case (nil, nil): break
        case (nil, _): throw ConfigError(key: "TELEGRAM_BOT_TOKEN", message: "is required when TELEGRAM_CHAT_ID is set")
        case (_, nil): throw ConfigError(key: "TELEGRAM_CHAT_ID", message: "is required when TELEGRAM_BOT_TOKEN is set")
        }
        if let url = try config.string("DISCORD_WEBHOOK_URL", secret: true, help: "Discord webhook") {
            try requireHTTP(url, key: "DISCORD_WEBHOOK_URL")
            sinks.append(DiscordSink(webhookURL: url))
        }
        if let url = try config.string("SLACK_WEBHOOK_URL", secret: true, help: "Slack incoming webhook") {
            try requireHTTP(url, key: "SLACK_WEBHOOK_URL")
            sinks.append(SlackSink(webhookURL: url))
        }
        if let url = try config.string("NOTIFY_WEBHOOK_URL", secret: true, help: "generic JSON webhook") {
            try requireHTTP(url, key: "NOTIFY_WEBHOOK_URL")
            sinks.append(
                WebhookSink(
                    url: url,
                    secret: try config.string("NOTIFY_WEBHOOK_SECRET", secret: true, help: "HMAC-SHA256 key")
                )
            )
        }
        if try config.bool("NOTIFY_LOG", default: true, help: "the log sink") { sinks.append(LogSink(logger: logger)) }

        let minimum = try config.choice(
            "NOTIFY_MIN_SEVERITY",
            default: "info",
            allowed: ["info", "warning", "critical"],
            help: "least severity sent"
        )
        var routes = Dictionary(
            uniqueKeysWithValues: sinks.map { ($0.name, SinkRoute(minSeverity: AlertSeverity(rawValue: minimum)!)) }
        )
        let routeText = try config.string(
            "NOTIFY_ROUTES",
            default: "",
            help: "sink:severity[:kinds];... overrides per sink"
        )!
        do {
            for (sink, route) in try SinkRoute.parse(routeText) {
                guard routes[sink] != nil else {
                    throw ConfigError(
                        key: "NOTIFY_ROUTES",
                        message:
                            "names '\(sink)', which is not an enabled sink (\(routes.keys.sorted().joined(separator: ", ")))"
                    )
                }
                routes[sink] = route
            }
        } catch let error as RouteSyntaxError {
            throw ConfigError(key: "NOTIFY_ROUTES", message: error.description)
        }
        var delivery = SinkDispatcher.Settings()
        delivery.maxAttempts = try config.int(
            "NOTIFY_MAX_ATTEMPTS",
            default: 5,
            range: 1...50,
            help: "attempts per notice and sink"
        )
        delivery.maxRetryAfter = .seconds(
            try config.int(
                "NOTIFY_MAX_RETRY_AFTER_SECONDS",
                default: 120,
                range: 1...3_600,
                help: "cap on a service's Retry-After"
            )
        )
        let hour = try config.int(
            "NOTIFY_DAILY_SUMMARY_HOUR",
            default: -1,
            range: -1...23,
            help: "UTC hour of the daily summary; -1: off"
        )
        if hour >= 0, try config.string("DATABASE_URL", help: "the store the summary reads") == nil {
            throw ConfigError(key: "DATABASE_URL", message: "is required when NOTIFY_DAILY_SUMMARY_HOUR is set")
        }
        let prefix = try config.string(
            "NOTIFIER_QUEUE_PREFIX",
            default: "notifier",
            help: "queue names are <prefix>.<sink>"
        )!
        guard !prefix.isEmpty, prefix.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
        else {
            throw ConfigError(
                key: "NOTIFIER_QUEUE_PREFIX",
                message: "'\(prefix)' may hold only letters, digits, '-', '_' and '.'"
            )
        }
        return NotifierConfiguration(
            sinks: sinks,
            routes: routes,
            delivery: delivery,
            summaryHour: hour >= 0 ? hour : nil,
            queuePrefix: prefix
        )
    }

    static func requireHTTP(_ url: String, key: String) throws {
        guard let scheme = URL(string: url)?.scheme, scheme == "https" || scheme == "http",
            URL(string: url)?.host != nil
        else {
            throw ConfigError(key: key, message: "is not an http(s) URL")
        }
    }
}

/// Publishes `alert.info.daily_summary` once a day at the configured UTC hour (one notifier claims it).
public struct DailySummaryService: Service {
    public let hour: Int
    public let store: any TradeStore
    public let bus: any MessageBus
    public let cache: any HotCache
    public let source: String
    public let logger: Logger

    /// A `DailySummaryService` with the fields given.
    public init(
        hour: Int,
        store: any TradeStore,
        bus: any MessageBus,
        cache: any HotCache,
        source: String,
        logger: Logger
    ) {
        self.hour = hour
        self.store = store
        self.bus = bus
        self.cache = cache
        self.source = source
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let now = Date()
                let dayStart = (now.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400
                let due = dayStart + Double(hour) * 3_600
                if now.timeIntervalSince1970 >= due {
                    do { try await publish(dayEnding: Date(timeIntervalSince1970: due)) } catch {
                        logger.error("daily summary failed", metadata: ["error": "\(error)"])
                    }
                }
                let next = now.timeIntervalSince1970 >= due ? due + 86_400 : due
                try await Task.sleep(for: .seconds(min(max(1, next - now.timeIntervalSince1970), 3_600)))
            }
        }
    }

    func publish(dayEnding end: Date) async throws {
        let day = EnvelopeTime.format(end).prefix(10)
        guard
            await cache.setIfAbsent(
                "daily-summary:\(day)",
                CachedValue(source, sourceTime: Date()),
                ttl: .seconds(2 * 86_400)
            )
        else { return }
        let start = end.addingTimeInterval(-86_400)
        let trades = try await store.trades(since: start).filter { $0.exitTime <= end }
        let equity = try await store.equitySnapshots(since: start).map(\.equity.doubleValue)
        var peak = 0.0
        var drawdown = 0.0
        for value in equity {
            peak = max(peak, value)
            if peak > 0 { drawdown = max(drawdown, (peak - value) / peak) }
        }
        let payload = NoticeTemplates.dailySummary(day: String(day), trades: trades, maxDrawdown: drawdown)
        let envelope = Envelope(type: MessageType.alert, time: Date(), source: source, payload: payload)
        try await bus.publish(envelope, routingKey: payload.routingKey)
    }
}
