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

    /// Which output constraints the server takes, as servers differ.
    public enum SchemaSupport: Sendable {
        /// OpenAI: `response_format` `json_schema` (strict) and `json_object`; Anthropic: tools.
        case full
        /// llama-cpp-python's server (0.3): `json_object` (with an optional `schema`) only; `json_schema`
        /// fails its request validation, answered as a 500 that names `response_format`.
        case jsonObjectOnly
        /// A server with neither: `response_format` (or Anthropic `tools`) is refused with a 400.
        case none
    }

    /// A request as received.
    public struct Received: Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var time: Date
        /// The request's body, parsed.
        public var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
        }
        /// `response_format.type`, `tool` for a forced Anthropic tool, or `text`.
        public var outputMode: String {
            if let format = json["response_format"] as? [String: Any] { return format["type"] as? String ?? "?" }
            return json["tool_choice"] == nil ? "text" : "tool"
        }
    }

    struct State {
        var script: [Step] = []
        var fallback: String
        var received: [Received] = []
        var stopping = false
        var support = SchemaSupport.full
        var responder: (@Sendable (Received) -> String)?
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
    public func setSchemaSupport(_ support: SchemaSupport) { state.withLock { $0.support = support } }
    /// Answers from the request when the script is empty (instead of the fallback text).
    public func setResponder(_ responder: @escaping @Sendable (Received) -> String) {
        state.withLock { $0.responder = responder }
    }
    public var received: [Received] { state.withLock { $0.received } }

    func respond(_ request: Request, context: some RequestContext, anthropic: Bool) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let received = Received(path: request.uri.path, headers: headers, body: String(buffer: body), time: Date())
        let (step, support) = state.withLock { state -> (Step?, SchemaSupport) in
            state.received.append(received)
            // A refused request does not use up the script.
            if Self.refusal(received.json, anthropic: anthropic, support: state.support) != nil {
                return (nil, state.support)
            }
            if !state.script.isEmpty { return (state.script.removeFirst(), state.support) }
            return (.answer(state.responder?(received) ?? state.fallback), state.support)
        }
        if let (status, text) = Self.refusal(received.json, anthropic: anthropic, support: support) {
            return Response(
                status: .init(code: status),
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
        let forcedTool = anthropic && received.outputMode == "tool"
        switch step! {
        case .answer(let text, let truncated):
            return Self.json(
                anthropic
                    ? Self.anthropic(text, stop: truncated ? "max_tokens" : "end_turn", tool: forcedTool)
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
            return Self.json(
                anthropic ? Self.anthropic(text, stop: "end_turn", tool: forcedTool) : Self.openAI(text, finish: "stop")
            )
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

    /// A Messages answer; with a forced tool, a JSON object answer comes as that tool's `tool_use` block
    /// (`stop_reason: tool_use`), as the API returns it.
    static func anthropic(_ text: String, stop: String, tool: Bool = false) -> [String: Any] {
        var content: [[String: Any]] = [["type": "text", "text": text]]
        var stop = stop
        if tool, stop == "end_turn",
            let input = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        {
            content = [["type": "tool_use", "id": "toolu_fake", "name": "trade_decision", "input": input]]
            stop = "tool_use"
        }
        return [
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
            "content": content, "stop_reason": stop, "stop_sequence": NSNull(),
            "usage": ["input_tokens": 900, "output_tokens": 80],
        ]
    }

    /// The status and body a server of `support` refuses this request with, as the real ones do; nil
    /// when it takes it. OpenAI checks a strict schema: every object closed (`additionalProperties:
    /// false`) with every property required.
    static func refusal(_ body: [String: Any], anthropic: Bool, support: SchemaSupport) -> (Int, String)? {
        if anthropic {
            guard let tools = body["tools"] as? [[String: Any]] else { return nil }
            if support == .none {
                return (
                    400,
                    #"{"type":"error","error":{"type":"invalid_request_error","message":"tools: Extra inputs are not permitted"}}"#
                )
            }
            for tool in tools where (tool["input_schema"] as? [String: Any])?["type"] as? String != "object" {
                return (
                    400,
                    #"{"type":"error","error":{"type":"invalid_request_error","message":"tools.0.custom.input_schema.type: Input should be 'object'"}}"#
                )
            }
            return nil
        }
        guard let format = body["response_format"] as? [String: Any], let type = format["type"] as? String else {
            return nil
        }
        let unsupported =
            #"{"error":{"message":"Invalid parameter: 'response_format' of type '\#(type)' is not supported with this model.","type":"invalid_request_error","param":"response_format","code":null}}"#
        switch (support, type) {
        case (.none, _): return (400, unsupported)
        case (.jsonObjectOnly, "json_schema"):
            return (
                500,
                #"{"error":{"message":"1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions","type":"internal_server_error","param":null,"code":null}}"#
            )
        case (.full, "json_schema"):
            let spec = format["json_schema"] as? [String: Any]
            guard let schema = spec?["schema"] as? [String: Any], spec?["name"] is String else {
                return (
                    400,
                    #"{"error":{"message":"Missing required parameter: 'response_format.json_schema'.","type":"invalid_request_error","param":"response_format.json_schema","code":"missing_required_parameter"}}"#
                )
            }
            if spec?["strict"] as? Bool == true, let problem = strictProblem(schema) {
                return (
                    400,
                    #"{"error":{"message":"Invalid schema for response_format '\#(spec?["name"] ?? "")': \#(problem)","type":"invalid_request_error","param":"response_format","code":null}}"#
                )
            }
            return nil
        default: return nil
        }
    }

    /// Why a schema is not valid under OpenAI's strict mode, or nil.
    static func strictProblem(_ schema: [String: Any]) -> String? {
        if let properties = schema["properties"] as? [String: Any] {
            if schema["additionalProperties"] as? Bool != false {
                return "In context=(), 'additionalProperties' is required to be supplied and to be false."
            }
            let required = Set(schema["required"] as? [String] ?? [])
            if let missing = properties.keys.sorted().first(where: { !required.contains($0) }) {
                return
                    "In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing '\(missing)'."
            }
            for case let child as [String: Any] in properties.values {
                if let problem = strictProblem(child) { return problem }
            }
        }
        if let items = schema["items"] as? [String: Any] { return strictProblem(items) }
        return nil
    }
}

extension FakeLLM {
    /// An analyst that goes LONG at the close it is shown, with a stop 2 % below and a target 4 %
    /// above, citing the close: an answer the framework and the grounding gate accept.
    public static let longAtClose: @Sendable (Received) -> String = { received in
        let messages = received.json["messages"] as? [[String: Any]] ?? []
        let user = messages.last { $0["role"] as? String == "user" }?["content"] as? String ?? ""
        guard let range = user.range(of: #""close":"#) else { return "no close in the question" }
        let number = user[range.upperBound...].prefix { "0123456789.eE-".contains($0) }
        guard let close = Double(number) else { return "no close in the question" }
        return
            #"{"action":"LONG","confidence":0.85,"leverage":2,"entry":\#(close),"stop_loss":\#(close * 0.98),"take_profit":\#(close * 1.04),"reasoning":"shadow candidate","cited":[{"name":"close","value":\#(close)}]}"#
    }
}
