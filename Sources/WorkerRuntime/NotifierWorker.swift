import Foundation
import Logging
import Notifiers
import SMTPMail
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
    /// The Telegram bot's commands, when `TELEGRAM_ALLOWED_CHAT_IDS` is set.
    public var chatBot: ChatBotSettings?

    /// Who may command the bot, and which account it commands.
    public struct ChatBotSettings: Sendable {
        public var api: TelegramBotAPI
        public var allowedChats: Set<Int64>
        public var account: String
    }

    /// Reads and checks the notifier's keys; a bad one stops it at start, naming the key.
    public static func read(_ config: SettingsReader, logger: Logger) throws -> NotifierConfiguration {
        var sinks: [any NotificationSink] = []
        let token = try config.string("TELEGRAM_BOT_TOKEN", secret: true, help: "Telegram bot token")
        let chat = try config.string("TELEGRAM_CHAT_ID", secret: true, help: "Telegram chat id")
        let base = try config.string(
            "TELEGRAM_API_BASE_URL",
            default: "https://api.telegram.org",
            help: "Bot API base"
        )!
        var chatBot: ChatBotSettings?
        if let list = try config.string(
            "TELEGRAM_ALLOWED_CHAT_IDS",
            help: "comma-separated chat ids whose commands the bot answers"
        ) {
            guard let token else {
                throw ConfigError(
                    key: "TELEGRAM_BOT_TOKEN",
                    message: "is required when TELEGRAM_ALLOWED_CHAT_IDS is set"
                )
            }
            let ids = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let chats = Set(ids.compactMap { Int64($0) })
            guard !ids.isEmpty, chats.count == Set(ids).count else {
                throw ConfigError(
                    key: "TELEGRAM_ALLOWED_CHAT_IDS",
                    message: "must be chat ids (integers, a group's negative), comma-separated; got '\(list)'"
                )
            }
            if try config.string("DATABASE_URL", help: "the store the bot reads") == nil {
                throw ConfigError(key: "DATABASE_URL", message: "is required when TELEGRAM_ALLOWED_CHAT_IDS is set")
            }
            chatBot = ChatBotSettings(
                api: TelegramBotAPI(apiBase: base, token: token),
                allowedChats: chats,
                account: try config.string("EXECUTOR_ACCOUNT", default: "default", help: "the account it commands")!
            )
        }
        switch (token, chat) {
        case (let token?, let chat?):
            sinks.append(TelegramSink(apiBase: base, token: token, chatID: chat))
        case (nil, nil),
            (_?, nil) where chatBot != nil:
            break
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
        if let email = try emailSettings(config) { sinks.append(EmailSink(settings: email)) }
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
        // Email is for what cannot wait: critical alerts, unless NOTIFY_ROUTES says otherwise.
        if routes["email"] != nil { routes["email"] = SinkRoute(minSeverity: .critical) }
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
            queuePrefix: prefix,
            chatBot: chatBot
        )
    }

    /// The email sink's settings, or nil when `SMTP_URL` is unset.
    static func emailSettings(_ config: SettingsReader) throws -> EmailSettings? {
        guard let url = try config.string("SMTP_URL", help: "smtp://host:587 (STARTTLS) or smtps://host:465") else {
            return nil
        }
        guard let scheme = URL(string: url)?.scheme, scheme == "smtp" || scheme == "smtps",
            URL(string: url)?.host != nil
        else {
            throw ConfigError(key: "SMTP_URL", message: "must be smtp://HOST:PORT or smtps://HOST:PORT, not '\(url)'")
        }
        guard let from = try config.string("SMTP_FROM", help: "the sender's address"), from.contains("@") else {
            throw ConfigError(
                key: "SMTP_FROM",
                message: "is required with SMTP_URL: an address such as bot@example.com"
            )
        }
        let to = (try config.string("SMTP_TO", help: "comma-separated recipients") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !to.isEmpty, to.allSatisfy({ $0.contains("@") && !$0.contains("<") && !$0.contains(">") }) else {
            throw ConfigError(key: "SMTP_TO", message: "is required with SMTP_URL: comma-separated addresses")
        }
        return EmailSettings(
            url: url,
            username: try config.string("SMTP_USERNAME", secret: true, help: "the SMTP login"),
            password: try config.string("SMTP_PASSWORD", secret: true, help: "the SMTP password"),
            caFile: try config.string("SMTP_CA_FILE", help: "PEM certificates the server's is checked against"),
            requireTLS: try config.bool("SMTP_REQUIRE_TLS", default: true, help: "refuse to send without TLS"),
            from: from,
            to: to,
            timeout: .seconds(try config.int("SMTP_TIMEOUT_SECONDS", default: 30, range: 1...300, help: "per message"))
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
