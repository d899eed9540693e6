import AsyncHTTPClient
import Foundation
import HTTPSupport
import Logging
import TradingCore

/// An answer that is not a success, as a ``SinkError`` with the wait the service asked for.
func failure(_ answer: HTTPAnswer, retryAfterInBody: Duration? = nil) -> SinkError {
    let header = answer.header("Retry-After").flatMap(Double.init).map { Duration.milliseconds(Int64($0 * 1000)) }
    return SinkError(
        status: answer.status,
        retryAfter: retryAfterInBody ?? header,
        message: String(answer.text.prefix(300))
    )
}

func postJSON(
    _ caller: HTTPCaller,
    _ url: String,
    _ object: [String: JSONValue],
    extraHeaders: [(String, String)] = [],
    timeout: Duration
) async throws(SinkError) -> HTTPAnswer {
    let body: [UInt8]
    do { body = Array(try JSONEncoder().encode(object)) } catch {
        throw SinkError(status: nil, message: "cannot encode: \(error)")
    }
    do {
        return try await caller.post(
            url,
            headers: [("Content-Type", "application/json")] + extraHeaders,
            body: body,
            timeout: timeout
        )
    } catch {
        throw SinkError(status: nil, message: "\(error)")
    }
}

/// Telegram Bot API `sendMessage`, in MarkdownV2. Telegram allows about one message a second per chat
/// and thirty a second in all; a 429 carries `parameters.retry_after`.
public struct TelegramSink: NotificationSink {
    public let name = "telegram"
    public let rateLimits = [RateLimit(count: 1, per: .seconds(1)), RateLimit(count: 30, per: .seconds(1))]
    let apiBase: String
    let token: String
    let chatID: String
    let caller: HTTPCaller
    let timeout: Duration

    /// A Telegram bot sending to one chat.
    public init(
        apiBase: String = "https://api.telegram.org",
        token: String,
        chatID: String,
        http: HTTPClient = .shared,
        timeout: Duration = .seconds(10)
    ) {
        self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
        self.token = token
        self.chatID = chatID
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
    }

    struct Answer: Decodable {
        struct Parameters: Decodable { var retry_after: Double? }
        var ok: Bool
        var description: String?
        var parameters: Parameters?
    }

    public func send(_ notice: Notice) async throws(SinkError) {
        let answer = try await postJSON(
            caller,
            "\(apiBase)/bot\(token)/sendMessage",
            [
                "chat_id": .string(chatID), "text": .string(MarkdownV2.render(notice)),
                "parse_mode": .string("MarkdownV2"),
                "disable_web_page_preview": .bool(true),
            ],
            timeout: timeout
        )
        let decoded = try? JSONDecoder().decode(Answer.self, from: Data(answer.body))
        if (200..<300).contains(answer.status), decoded?.ok ?? true { return }
        let wait = decoded?.parameters?.retry_after.map { Duration.milliseconds(Int64($0 * 1000)) }
        // The token is in the URL: never let it into an error message.
        throw SinkError(
            status: answer.status,
            retryAfter: wait ?? failure(answer).retryAfter,
            message: decoded?.description ?? "Telegram answered \(answer.status)"
        )
    }
}

/// A Discord webhook: one embed per notice. Discord allows 5 requests per 2 s per webhook; a 429 body
/// carries `retry_after` in seconds.
public struct DiscordSink: NotificationSink {
    public let name = "discord"
    public let rateLimits = [RateLimit(count: 5, per: .seconds(2)), RateLimit(count: 30, per: .seconds(60))]
    let url: String
    let caller: HTTPCaller
    let timeout: Duration

    /// A Discord webhook.
    public init(webhookURL: String, http: HTTPClient = .shared, timeout: Duration = .seconds(10)) {
        self.url = webhookURL
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
    }

    public func send(_ notice: Notice) async throws(SinkError) {
        let color: Double =
            notice.severity == .critical ? 0xE0_3131 : notice.severity == .warning ? 0xF2_994A : 0x2F_80ED
        let embed: [String: JSONValue] = [
            "title": .string(String(notice.title.prefix(256))),
            "description": .string(String(notice.lines.joined(separator: "\n").prefix(4_000))),
            "color": .number(color), "timestamp": .string(EnvelopeTime.format(notice.time)),
            "fields": .array(
                notice.fields.prefix(25).map {
                    .object([
                        "name": .string(String($0.0.prefix(256))), "value": .string(String($0.1.prefix(1_024))),
                        "inline": .bool(true),
                    ])
                }
            ),
        ]
        let answer = try await postJSON(
            caller,
            url,
            ["username": .string("TradeBus"), "embeds": .array([.object(embed)])],
            timeout: timeout
        )
        if (200..<300).contains(answer.status) { return }
        struct Limited: Decodable { var retry_after: Double? }
        let wait = (try? JSONDecoder().decode(Limited.self, from: Data(answer.body)))?.retry_after.map {
            Duration.milliseconds(Int64($0 * 1000))
        }
        var error = failure(answer, retryAfterInBody: wait)
        error.message = "Discord answered \(answer.status): \(error.message)"
        throw error
    }
}

/// A Slack incoming webhook: text plus blocks. Slack allows about one message a second per webhook; a
/// 429 carries `Retry-After`.
public struct SlackSink: NotificationSink {
    public let name = "slack"
    public let rateLimits = [RateLimit(count: 1, per: .seconds(1))]
    let url: String
    let caller: HTTPCaller
    let timeout: Duration

    /// A Slack incoming webhook.
    public init(webhookURL: String, http: HTTPClient = .shared, timeout: Duration = .seconds(10)) {
        self.url = webhookURL
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
    }

    public func send(_ notice: Notice) async throws(SinkError) {
        let fields = notice.fields.prefix(10).map {
            JSONValue.object(["type": .string("mrkdwn"), "text": .string("*\($0.0)*\n\($0.1)")])
        }
        var blocks: [JSONValue] = [
            .object([
                "type": .string("header"),
                "text": .object(["type": .string("plain_text"), "text": .string(String(notice.title.prefix(150)))]),
            ])
        ]
        if !notice.lines.isEmpty {
            blocks.append(
                .object([
                    "type": .string("section"),
                    "text": .object([
                        "type": .string("mrkdwn"),
                        "text": .string(String(notice.lines.joined(separator: "\n").prefix(3_000))),
                    ]),
                ])
            )
        }
        if !fields.isEmpty { blocks.append(.object(["type": .string("section"), "fields": .array(Array(fields))])) }
        let answer = try await postJSON(
            caller,
            url,
            ["text": .string(notice.text), "blocks": .array(blocks)],
            timeout: timeout
        )
        if (200..<300).contains(answer.status) { return }
        var error = failure(answer)
        error.message = "Slack answered \(answer.status): \(error.message)"
        throw error
    }
}

/// A generic JSON webhook: the notice as JSON, signed with HMAC-SHA256 over the exact body with a shared
/// secret, in `X-TradeBus-Signature: sha256=<hex>`; `X-TradeBus-Id` carries the notice id.
public struct WebhookSink: NotificationSink {
    public let name = "webhook"
    public let rateLimits: [RateLimit]
    let url: String
    let secret: String?
    let caller: HTTPCaller
    let timeout: Duration

    /// A webhook of the user's, signed with HMAC-SHA256 when a secret is set.
    public init(
        url: String,
        secret: String?,
        perSecond: Int = 10,
        http: HTTPClient = .shared,
        timeout: Duration = .seconds(10)
    ) {
        self.url = url
        self.secret = secret
        self.rateLimits = [RateLimit(count: perSecond, per: .seconds(1))]
        self.caller = HTTPCaller(http: http)
        self.timeout = timeout
    }

    /// The signature header value of `body`.
    public static func signature(_ body: [UInt8], secret: String) -> String {
        "sha256=" + HMACSigning.sha256Hex(body, secret: secret)
    }

    public func send(_ notice: Notice) async throws(SinkError) {
        let object: [String: JSONValue] = [
            "id": .string(notice.id), "severity": .string(notice.severity.rawValue), "kind": .string(notice.kind),
            "title": .string(notice.title),
            "text": .string(notice.text), "symbol": notice.symbol.map(JSONValue.string) ?? .null,
            "time": .string(EnvelopeTime.format(notice.time)),
            "payload": notice.payload,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body: [UInt8]
        do { body = Array(try encoder.encode(object)) } catch {
            throw SinkError(status: nil, message: "cannot encode: \(error)")
        }
        var headers = [("Content-Type", "application/json"), ("X-TradeBus-Id", notice.id)]
        if let secret { headers.append(("X-TradeBus-Signature", Self.signature(body, secret: secret))) }
        let answer: HTTPAnswer
        do { answer = try await caller.post(url, headers: headers, body: body, timeout: timeout) } catch {
            throw SinkError(status: nil, message: "\(error)")
        }
        if (200..<300).contains(answer.status) { return }
        throw failure(answer)
    }
}

/// The log: every notice at a level matching its severity.
public struct LogSink: NotificationSink {
    public let name = "log"
    public let rateLimits: [RateLimit] = []
    let logger: Logger

    /// A `LogSink` with the field given.
    public init(logger: Logger) { self.logger = logger }

    public func send(_ notice: Notice) async throws(SinkError) {
        // A refusal by the risk gateway is the gateway doing its job: info, not a warning.
        let level: Logger.Level =
            notice.severity == .critical
            ? .critical : notice.severity == .warning && notice.kind != "order_rejected" ? .warning : .info
        logger.log(
            level: level,
            "\(notice.title)",
            metadata: [
                "id": "\(notice.id)", "kind": "\(notice.kind)", "symbol": "\(notice.symbol ?? "-")",
                "text": "\(notice.lines.joined(separator: " "))",
            ]
        )
    }
}
