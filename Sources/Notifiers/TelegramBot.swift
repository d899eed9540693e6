import AsyncHTTPClient
import Foundation
import HTTPSupport
import TradingCore

/// The Bot API calls the chat bot makes: `getUpdates` (long polling), `sendMessage` (with an inline
/// button), `answerCallbackQuery` and `editMessageText`. Every failure is a ``SinkError`` with the
/// status and, for a 429, the `retry_after` Telegram asks for; the token, which is in the URL, never
/// reaches an error message.
public struct TelegramBotAPI: Sendable {
    /// One incoming update: a message or a button press.
    public struct Update: Sendable, Hashable, Decodable {
        public struct Chat: Sendable, Hashable, Decodable { public var id: Int64 }
        public struct Message: Sendable, Hashable, Decodable {
            public var message_id: Int64
            public var chat: Chat
            public var text: String?
        }
        public struct CallbackQuery: Sendable, Hashable, Decodable {
            public var id: String
            public var message: Message?
            public var data: String?
        }
        public var update_id: Int64
        public var message: Message?
        public var callback_query: CallbackQuery?
    }

    /// Telegram's longest message.
    public static let maxText = 4_096

    let apiBase: String
    let token: String
    let caller: HTTPCaller

    /// A bot at `apiBase` (Telegram's, or a local Bot API server).
    public init(apiBase: String = "https://api.telegram.org", token: String, http: HTTPClient = .shared) {
        self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
        self.token = token
        self.caller = HTTPCaller(http: http)
    }

    struct Answer<Result: Decodable>: Decodable {
        struct Parameters: Decodable { var retry_after: Double? }
        var ok: Bool
        var result: Result?
        var description: String?
        var parameters: Parameters?
    }

    func call<Result: Decodable>(
        _ method: String,
        _ body: [String: JSONValue],
        timeout: Duration = .seconds(10),
        as: Result.Type
    ) async throws(SinkError) -> Result {
        let answer = try await postJSON(caller, "\(apiBase)/bot\(token)/\(method)", body, timeout: timeout)
        let decoded = try? JSONDecoder().decode(Answer<Result>.self, from: Data(answer.body))
        if (200..<300).contains(answer.status), let decoded, decoded.ok, let result = decoded.result { return result }
        throw SinkError(
            status: answer.status,
            retryAfter: decoded?.parameters?.retry_after.map { .milliseconds(Int64($0 * 1000)) },
            message: "\(method): " + (decoded?.description ?? "Telegram answered \(answer.status)")
        )
    }

    /// The updates after `offset` (which confirms the ones before it), waiting up to `wait` seconds.
    public func updates(offset: Int64?, wait: Int) async throws(SinkError) -> [Update] {
        var body: [String: JSONValue] = [
            "timeout": .number(Double(wait)),
            "allowed_updates": .array([.string("message"), .string("callback_query")]),
        ]
        if let offset { body["offset"] = .number(Double(offset)) }
        return try await call("getUpdates", body, timeout: .seconds(Int64(wait) + 10), as: [Update].self)
    }

    struct Sent: Decodable { var message_id: Int64 }

    /// Sends `text` (cut to Telegram's limit) to `chat`, with one inline button when given; returns the
    /// message id.
    @discardableResult
    public func send(
        _ text: String,
        to chat: Int64,
        button: (label: String, data: String)? = nil
    ) async throws(SinkError) -> Int64 {
        var body: [String: JSONValue] = ["chat_id": .number(Double(chat)), "text": .string(Self.cut(text))]
        if let button {
            body["reply_markup"] = .object([
                "inline_keyboard": .array([
                    .array([.object(["text": .string(button.label), "callback_data": .string(button.data)])])
                ])
            ])
        }
        return try await call("sendMessage", body, as: Sent.self).message_id
    }

    /// Stops the button's spinner, with a short notice.
    public func answerButton(_ id: String, text: String) async throws(SinkError) {
        _ = try await call(
            "answerCallbackQuery",
            ["callback_query_id": .string(id), "text": .string(String(text.prefix(200)))],
            as: Bool.self
        )
    }

    /// Replaces a message's text, dropping its button.
    public func edit(_ message: Int64, in chat: Int64, text: String) async throws(SinkError) {
        struct Edited: Decodable {}
        _ = try await call(
            "editMessageText",
            [
                "chat_id": .number(Double(chat)), "message_id": .number(Double(message)),
                "text": .string(Self.cut(text)),
            ],
            as: Edited.self
        )
    }

    static func cut(_ text: String) -> String {
        text.count <= maxText ? text : String(text.prefix(maxText - 1)) + "…"
    }
}
