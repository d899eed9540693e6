import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local stand-in for the OpenAI Chat Completions API (`POST /v1/chat/completions`) and Anthropic's
/// Messages API (`POST /v1/messages`), answering in their documented formats, errors included. The test
/// scripts the next answers; when the script is empty it answers `fallback`.
public final class FakeLLM: Sendable {
    public enum Step: Sendable {
        /// A normal answer whose text is `text`; `truncated` sets finish_reason length / stop_reason max_tokens.
        case answer(String, truncated: Bool = false)
        /// OpenAI's `refusal` / Anthropic's `stop_reason: refusal`.
        case refusal(String)
        /// An HTTP error with the provider's error body and an optional Retry-After.
        case status(Int, retryAfter: String? = nil, body: String? = nil)
        /// Waits, then answers; a stop ends the wait, so a test need not sit out a long delay.
        case slow(Duration, String)
    }

    /// A request as received.
    public struct Received: Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var time: Date
    }

    struct State {
        var script: [Step] = []
        var fallback: String
        var received: [Received] = []
        var stopping = false
    }

    private let state: Mutex<State>
    private let server = ServerSlot()

    init(fallback: String) { state = Mutex(State(fallback: fallback)) }

    public static func start(
        fallback: String =
            #"{"action":"HOLD","confidence":0.5,"leverage":1,"entry":null,"stop_loss":null,"take_profit":null,"reasoning":"fake"}"#
    ) async throws -> FakeLLM {
        let fake = FakeLLM(fallback: fallback)
        let router = Router()
        router.post("v1/chat/completions") { request, context in
            try await fake.respond(request, context: context, anthropic: false)
        }
        router.post("v1/messages") { request, context in
            try await fake.respond(request, context: context, anthropic: true)
        }
        fake.server.set(try await LocalServer.start(router, label: "fake-llm"))
        return fake
    }

    public func stop() async {
        state.withLock { $0.stopping = true }
        await server.stop()
    }

    /// Base URLs as each client expects them.
    public var openAIBaseURL: String { "http://127.0.0.1:\(server.port)/v1" }
    public var anthropicBaseURL: String { "http://127.0.0.1:\(server.port)" }

    public func script(_ steps: [Step]) { state.withLock { $0.script += steps } }
    public func setFallback(_ text: String) { state.withLock { $0.fallback = text } }
    public var received: [Received] { state.withLock { $0.received } }

    func respond(_ request: Request, context: some RequestContext, anthropic: Bool) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let step = state.withLock { state -> Step in
            state.received.append(
                Received(path: request.uri.path, headers: headers, body: String(buffer: body), time: Date())
            )
            return state.script.isEmpty ? .answer(state.fallback) : state.script.removeFirst()
        }
        switch step {
        case .answer(let text, let truncated):
            return Self.json(
                anthropic
                    ? Self.anthropic(text, stop: truncated ? "max_tokens" : "end_turn")
                    : Self.openAI(text, finish: truncated ? "length" : "stop")
            )
        case .refusal(let text):
            return Self.json(
                anthropic ? Self.anthropic(text, stop: "refusal") : Self.openAI(nil, finish: "stop", refusal: text)
            )
        case .slow(let delay, let text):
            let until = ContinuousClock.now + delay
            while ContinuousClock.now < until, !state.withLock({ $0.stopping }) {
                try await Task.sleep(for: .milliseconds(50))
            }
            return Self.json(anthropic ? Self.anthropic(text, stop: "end_turn") : Self.openAI(text, finish: "stop"))
        case .status(let status, let retryAfter, let errorBody):
            let text =
                errorBody
                ?? (anthropic
                    ? #"{"type":"error","error":{"type":"\#(status == 529 ? "overloaded_error" : status == 429 ? "rate_limit_error" : "api_error")","message":"scripted \#(status)"}}"#
                    : #"{"error":{"message":"scripted \#(status)","type":"\#(status == 429 ? "rate_limit_exceeded" : "server_error")","code":null}}"#)
            var fields: HTTPFields = [.contentType: "application/json"]
            if let retryAfter { fields[.retryAfter] = retryAfter }
            return Response(
                status: .init(code: status),
                headers: fields,
                body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
    }

    static func json(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    static func openAI(_ text: String?, finish: String, refusal: String? = nil) -> [String: Any] {
        [
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_767_225_600, "model": "fake",
            "choices": [
                [
                    "index": 0,
                    "message": [
                        "role": "assistant", "content": text as Any? ?? NSNull(),
                        "refusal": refusal as Any? ?? NSNull(),
                    ], "finish_reason": finish,
                ]
            ],
            "usage": ["prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980],
        ]
    }

    static func anthropic(_ text: String, stop: String) -> [String: Any] {
        [
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
            "content": [["type": "text", "text": text]], "stop_reason": stop, "stop_sequence": NSNull(),
            "usage": ["input_tokens": 900, "output_tokens": 80],
        ]
    }
}
