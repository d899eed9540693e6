import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// A local Bot API server for the chat bot, answering as Telegram documents
/// (https://core.telegram.org/bots/api): `POST /bot<token>/<method>` with a JSON body, answered
/// `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":…}`. A wrong token gets 401
/// `Unauthorized`, an unknown method 404 `Not Found`, a text over 4096 characters or a callback_data
/// over 64 bytes 400, a callback_query_id it never sent 400 `query is too old…`, and a scripted 429
/// carries `parameters.retry_after`. `getUpdates` long-polls: it answers as soon as an update after
/// `offset` exists, or when `timeout` runs out; a call with a higher offset confirms the earlier ones.
public final class FakeTelegramBot: Sendable {
    /// What the bot sent.
    public struct Sent: Sendable {
        public var method: String
        public var chat: Int64?
        public var text: String?
        /// The inline button's callback_data, if any.
        public var button: String?

        init(method: String, body: [String: Any]) {
            self.method = method
            chat = (body["chat_id"] as? NSNumber)?.int64Value
            text = body["text"] as? String
            let markup = body["reply_markup"] as? [String: Any]
            let rows = markup?["inline_keyboard"] as? [[[String: Any]]]
            button = rows?.first?.first?["callback_data"] as? String
        }
    }

    struct State {
        /// Each pending update's id and JSON.
        var updates: [(id: Int64, json: String)] = []
        var nextUpdate: Int64 = 1
        var nextMessage: Int64 = 100
        var sent: [Sent] = []
        var callbacks: Set<String> = []
        var throttle: [Double] = []
    }

    public let token: String
    private let state = Mutex(State())
    private let server = ServerSlot()

    init(token: String) { self.token = token }

    /// Starts the server for `token`.
    public static func start(token: String) async throws -> FakeTelegramBot {
        let fake = FakeTelegramBot(token: token)
        let router = Router()
        router.post(":path/:method") { request, context in
            try await fake.answer(
                request,
                path: try context.parameters.require("path"),
                method: try context.parameters.require("method")
            )
        }
        fake.server.set(try await LocalServer.start(router, label: "fake-telegram"))
        return fake
    }

    public func stop() async { await server.stop() }
    public var base: String { "http://127.0.0.1:\(server.port)" }

    /// A user in `chat` types `text`.
    public func type(_ text: String, chat: Int64) {
        state.withLock { box in
            let id = box.nextUpdate
            box.nextUpdate += 1
            box.nextMessage += 1
            box.updates.append(
                Self.update(
                    id,
                    [
                        "update_id": id,
                        "message": [
                            "message_id": box.nextMessage, "date": Int(Date().timeIntervalSince1970),
                            "chat": ["id": chat, "type": "private"],
                            "from": ["id": chat, "is_bot": false, "first_name": "Op"],
                            "text": text,
                        ] as [String: Any],
                    ]
                )
            )
        }
    }

    /// A user in `chat` presses the button with `data` under the bot's message `message`.
    public func press(_ data: String, chat: Int64, message: Int64 = 1) {
        state.withLock { box in
            let id = box.nextUpdate
            box.nextUpdate += 1
            let query = "q\(id)"
            box.callbacks.insert(query)
            box.updates.append(
                Self.update(
                    id,
                    [
                        "update_id": id,
                        "callback_query": [
                            "id": query, "chat_instance": "ci", "data": data,
                            "from": ["id": chat, "is_bot": false, "first_name": "Op"],
                            "message": [
                                "message_id": message, "date": Int(Date().timeIntervalSince1970),
                                "chat": ["id": chat, "type": "private"],
                            ] as [String: Any],
                        ] as [String: Any],
                    ]
                )
            )
        }
    }

    static func update(_ id: Int64, _ object: [String: Any]) -> (id: Int64, json: String) {
        (id, String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    /// The next calls answer 429 with `retry_after` (seconds), one per entry.
    public func throttle(_ seconds: [Double]) { state.withLock { $0.throttle += seconds } }

    /// Everything the bot sent, in order (getUpdates excluded).
    public var sent: [Sent] { state.withLock { $0.sent } }

    func answer(_ request: Request, path: String, method: String) async throws -> Response {
        guard path == "bot\(token)" else { return Self.error(401, "Unauthorized") }
        let buffer = try await request.body.collect(upTo: 1 << 20)
        guard let body = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] else {
            return Self.error(400, "Bad Request: the body is not a JSON object")
        }
        if let wait = state.withLock({ $0.throttle.isEmpty ? nil : $0.throttle.removeFirst() }) {
            return Self.json(
                429,
                #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after \#(Int(wait))","parameters":{"retry_after":\#(Int(wait))}}"#
            )
        }
        switch method {
        case "getUpdates":
            let offset = (body["offset"] as? NSNumber)?.int64Value ?? 0
            let timeout = min((body["timeout"] as? NSNumber)?.doubleValue ?? 0, 5)
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let ready = state.withLock { box -> [String] in
                    box.updates.removeAll { $0.id < offset }
                    return box.updates.map(\.json)
                }
                if !ready.isEmpty || Date() >= deadline {
                    return Self.json(200, #"{"ok":true,"result":["# + ready.joined(separator: ",") + "]}")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        case "sendMessage", "answerCallbackQuery", "editMessageText":
            if method == "sendMessage" || method == "editMessageText" {
                guard body["chat_id"] != nil else { return Self.error(400, "Bad Request: chat_id is empty") }
                guard let text = body["text"] as? String, !text.isEmpty else {
                    return Self.error(400, "Bad Request: message text is empty")
                }
                guard text.count <= 4_096 else { return Self.error(400, "Bad Request: message is too long") }
            }
            let sent = Sent(method: method, body: body)
            if let data = sent.button, data.utf8.count > 64 {
                return Self.error(400, "Bad Request: BUTTON_DATA_INVALID")
            }
            if method == "answerCallbackQuery" {
                let known = state.withLock { $0.callbacks.remove(body["callback_query_id"] as? String ?? "") }
                guard known != nil else {
                    return Self.error(
                        400,
                        "Bad Request: query is too old and response timeout expired or query ID is invalid"
                    )
                }
            }
            let id = state.withLock { box -> Int64 in
                box.sent.append(sent)
                box.nextMessage += 1
                return box.nextMessage
            }
            if method == "answerCallbackQuery" { return Self.json(200, #"{"ok":true,"result":true}"#) }
            let chat = (body["chat_id"] as? NSNumber)?.int64Value ?? 0
            return Self.json(
                200,
                #"{"ok":true,"result":{"message_id":\#(method == "editMessageText" ? (body["message_id"] as? NSNumber)?.int64Value ?? id : id),"date":0,"chat":{"id":\#(chat),"type":"private"},"text":"ok"}}"#
            )
        default:
            return Self.error(404, "Not Found")
        }
    }

    static func error(_ code: Int, _ description: String) -> Response {
        json(code, #"{"ok":false,"error_code":\#(code),"description":"\#(description)"}"#)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(
            status: .init(code: status),
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}
