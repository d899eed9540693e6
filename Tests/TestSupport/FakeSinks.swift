import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Local stand-ins for the notification services, answering as each documents: Telegram's
/// `POST /bot<token>/sendMessage` (`{"ok":true}`, or `{"ok":false,"error_code":429,"parameters":{"retry_after":N}}`),
/// a Discord webhook (204, or 429 with `{"retry_after":N}` and Retry-After), a Slack incoming webhook
/// (`ok`, or 429 with Retry-After), and a generic webhook. The test scripts failures per service.
public final class FakeSinks: Sendable {
    public enum Service: String, Sendable { case telegram, discord, slack, webhook }

    /// A scripted failure: the status and, for a 429, the wait asked for (seconds).
    public struct Failure: Sendable {
        public var status: Int
        public var retryAfter: Double?
        public init(status: Int, retryAfter: Double? = nil) {
            self.status = status
            self.retryAfter = retryAfter
        }
    }

    public struct Received: Sendable {
        public var service: Service
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var time: Date
        /// The body as JSON.
        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }
    }

    struct State {
        var scripts: [Service: [Failure]] = [:]
        var received: [Received] = []
    }

    private let state = Mutex(State())
    private let server = ServerSlot()

    public static func start() async throws -> FakeSinks {
        let fake = FakeSinks()
        let router = Router()
        router.post("*/sendMessage") { request, _ in try await fake.answer(.telegram, request) }
        router.post("discord/webhook") { request, _ in try await fake.answer(.discord, request) }
        router.post("slack/webhook") { request, _ in try await fake.answer(.slack, request) }
        router.post("hook") { request, _ in try await fake.answer(.webhook, request) }
        fake.server.set(try await LocalServer.start(router, label: "fake-sinks"))
        return fake
    }

    public func stop() async {
        await server.stop()
    }

    public var base: String { "http://127.0.0.1:\(server.port)" }
    public var telegramBase: String { base }
    public var discordURL: String { base + "/discord/webhook" }
    public var slackURL: String { base + "/slack/webhook" }
    public var webhookURL: String { base + "/hook" }

    public func script(_ service: Service, _ failures: [Failure]) {
        state.withLock { $0.scripts[service, default: []] += failures }
    }
    public func received(_ service: Service) -> [Received] {
        state.withLock { $0.received.filter { $0.service == service } }
    }
    public var all: [Received] { state.withLock { $0.received } }

    func answer(_ service: Service, _ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let failure = state.withLock { state -> Failure? in
            state.received.append(
                Received(
                    service: service,
                    path: request.uri.path,
                    headers: headers,
                    body: String(buffer: body),
                    time: Date()
                )
            )
            guard var script = state.scripts[service], !script.isEmpty else { return nil }
            let next = script.removeFirst()
            state.scripts[service] = script
            return next
        }
        guard let failure else {
            switch service {
            case .telegram: return Self.response(200, #"{"ok":true,"result":{"message_id":1}}"#)
            case .discord: return Response(status: .noContent)
            case .slack: return Self.response(200, "ok", json: false)
            case .webhook: return Self.response(200, "{}")
            }
        }
        var fields: HTTPFields = [:]
        let text: String
        switch service {
        case .telegram:
            text =
                failure.status == 429
                ? #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after \#(Int(failure.retryAfter ?? 1))","parameters":{"retry_after":\#(Int(failure.retryAfter ?? 1))}}"#
                : #"{"ok":false,"error_code":\#(failure.status),"description":"Bad Request: scripted"}"#
        case .discord:
            text =
                failure.status == 429
                ? #"{"message":"You are being rate limited.","retry_after":\#(failure.retryAfter ?? 1),"global":false}"#
                : #"{"message":"scripted","code":0}"#
            if let wait = failure.retryAfter { fields[.retryAfter] = String(Int(wait.rounded(.up))) }
        case .slack:
            text = failure.status == 429 ? "rate_limited" : failure.status >= 500 ? "internal_error" : "invalid_payload"
            if let wait = failure.retryAfter { fields[.retryAfter] = String(Int(wait.rounded(.up))) }
        case .webhook:
            text = "scripted"
            if let wait = failure.retryAfter { fields[.retryAfter] = String(Int(wait.rounded(.up))) }
        }
        fields[.contentType] = service == .slack ? "text/plain" : "application/json"
        return Response(
            status: .init(code: failure.status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }

    static func response(_ status: Int, _ text: String, json: Bool = true) -> Response {
        Response(
            status: .init(code: status),
            headers: [.contentType: json ? "application/json" : "text/plain"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}
