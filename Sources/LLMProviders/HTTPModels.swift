import AsyncHTTPClient
import Foundation
import HTTPSupport
import Synchronization
import TradingCore

/// One POST of JSON to a provider, its failures sorted into ``ModelCallError``.
struct JSONPost: Sendable {
    let caller: HTTPCaller

    init(http: HTTPClient) { caller = HTTPCaller(http: http) }

    func send(
        url: String,
        headers: [(String, String)],
        body: [String: JSONValue],
        timeout: Duration
    ) async throws(ModelCallError) -> [UInt8] {
        let data: Data
        do { data = try JSONEncoder().encode(body) } catch {
            throw ModelCallError(.connection("cannot encode the request: \(error)"))
        }
        let answer: HTTPAnswer
        do {
            answer = try await caller.post(
                url,
                headers: [("Content-Type", "application/json")] + headers,
                body: Array(data),
                timeout: timeout
            )
        } catch {
            switch error.code {
            case .timeout: throw ModelCallError(.timeout)
            case .connection: throw ModelCallError(.connection(error.detail))
            }
        }
        guard (200..<300).contains(answer.status) else {
            throw ModelCallError(
                .http(
                    status: answer.status,
                    body: String(decoding: answer.body.prefix(2_000), as: UTF8.self),
                    retryAfter: answer.header("Retry-After")
                )
            )
        }
        return answer.body
    }
}

/// The strongest output constraint a server has accepted, remembered for its later requests: a server
/// that refused a JSON schema is not sent one again.
final class OutputModeMemory: Sendable {
    private let mode: Mutex<OutputMode>
    init(_ initial: OutputMode) { mode = Mutex(initial) }
    var current: OutputMode { mode.withLock { $0 } }
    /// Steps down from `from` to `to`, unless another request already did.
    func stepDown(from: OutputMode, to: OutputMode) { mode.withLock { if $0 == from { $0 = to } } }
}

extension ModelCallError {
    /// An HTTP 400, 422 or 500 that names `parameter`: the server does not take that request parameter.
    /// (llama-cpp-python's server answers an unknown `response_format` type with a 500 naming it.)
    func refusesParameter(_ parameter: String) -> Bool {
        guard case .http(let status, let body, _) = code, [400, 422, 500].contains(status) else { return false }
        return body.contains(parameter)
    }
}

/// The conversation a request makes: the question, and for a repair the refused answer and why.
func conversation(_ request: ModelRequest) -> [JSONValue] {
    var messages: [JSONValue] = [.object(["role": .string("user"), "content": .string(request.user)])]
    if let repair = request.repair {
        messages.append(.object(["role": .string("assistant"), "content": .string(repair.reply)]))
        messages.append(.object(["role": .string("user"), "content": .string(repair.instruction)]))
    }
    return messages
}

/// The OpenAI-compatible Chat Completions API (`POST {base}/chat/completions`): OpenAI, OpenRouter, xAI,
/// DeepSeek, and local llama.cpp, vLLM and Ollama servers.
///
/// The answer is constrained to the request's schema where the server can: `response_format` with a
/// strict `json_schema` first; a server that refuses it (an HTTP 400, 422 or 500 naming `response_format`) is
/// asked with `json_object` (carrying the schema too, which llama-cpp-python's server enforces), and one
/// that refuses that gets free text. The step down is remembered for this model.
public struct OpenAIChatModel: LanguageModel {
    public let provider = "openai"
    public let model: String
    let baseURL: String
    let apiKey: String?
    let post: JSONPost
    let mode = OutputModeMemory(.jsonSchema)

    /// A model behind an OpenAI-compatible chat-completions endpoint.
    public init(
        baseURL: String = "https://api.openai.com/v1",
        model: String,
        apiKey: String?,
        http: HTTPClient = .shared
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.apiKey = apiKey
        self.post = JSONPost(http: http)
    }

    struct Answer: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable {
                var content: String?
                var refusal: String?
            }
            var message: Message
            var finish_reason: String?
        }
        struct Usage: Decodable {
            var prompt_tokens: Int?
            var completion_tokens: Int?
        }
        var choices: [Choice]
        var usage: Usage?
    }

    public func complete(_ request: ModelRequest) async throws(ModelCallError) -> ModelReply {
        while true {
            let mode = request.schema == nil ? .text : self.mode.current
            do {
                return try await complete(request, mode: mode)
            } catch  where mode != .text && error.refusesParameter("response_format") {
                self.mode.stepDown(from: mode, to: mode == .jsonSchema ? .jsonObject : .text)
            }
        }
    }

    func complete(_ request: ModelRequest, mode: OutputMode) async throws(ModelCallError) -> ModelReply {
        var body: [String: JSONValue] = [
            "model": .string(model), "temperature": .number(0), "max_tokens": .number(Double(request.maxTokens)),
            "messages": .array(
                [.object(["role": .string("system"), "content": .string(request.system)])] + conversation(request)
            ),
        ]
        switch (mode, request.schema) {
        case (.jsonSchema, let schema?):
            body["response_format"] = .object([
                "type": .string("json_schema"),
                "json_schema": .object([
                    "name": .string(AnswerParser.schemaName), "strict": .bool(true), "schema": schema,
                ]),
            ])
        case (.jsonObject, let schema?):
            body["response_format"] = .object(["type": .string("json_object"), "schema": schema])
        default: break
        }
        let bytes = try await post.send(
            url: baseURL + "/chat/completions",
            headers: apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [],
            body: body,
            timeout: request.timeout
        )
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes)), let choice = answer.choices.first
        else {
            return ModelReply(text: String(decoding: bytes.prefix(2_000), as: UTF8.self), outputMode: mode)
        }
        return ModelReply(
            text: choice.message.content ?? "",
            truncated: choice.finish_reason == "length",
            refusal: choice.message.refusal,
            inputTokens: answer.usage?.prompt_tokens ?? 0,
            outputTokens: answer.usage?.completion_tokens ?? 0,
            outputMode: mode
        )
    }
}

/// Anthropic's Messages API (`POST {base}/v1/messages`, `anthropic-version: 2023-06-01`).
///
/// The answer is asked for as a forced call of one tool whose `input_schema` is the request's schema,
/// and read from the `tool_use` block's input. A server that refuses tools (HTTP 400 naming `tool`)
/// gets free text from then on.
public struct AnthropicMessagesModel: LanguageModel {
    public let provider = "anthropic"
    public let model: String
    let baseURL: String
    let apiKey: String?
    let post: JSONPost
    let mode = OutputModeMemory(.tool)

    /// A model behind Anthropic's Messages API.
    public init(
        baseURL: String = "https://api.anthropic.com",
        model: String,
        apiKey: String?,
        http: HTTPClient = .shared
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.apiKey = apiKey
        self.post = JSONPost(http: http)
    }

    struct Answer: Decodable {
        struct Block: Decodable {
            var type: String
            var text: String?
            var name: String?
            var input: JSONValue?
        }
        struct Usage: Decodable {
            var input_tokens: Int?
            var output_tokens: Int?
        }
        var content: [Block]
        var stop_reason: String?
        var usage: Usage?
    }

    public func complete(_ request: ModelRequest) async throws(ModelCallError) -> ModelReply {
        while true {
            let mode = request.schema == nil ? .text : self.mode.current
            do {
                return try await complete(request, mode: mode)
            } catch  where mode == .tool && error.refusesParameter("tool") {
                self.mode.stepDown(from: .tool, to: .text)
            }
        }
    }

    func complete(_ request: ModelRequest, mode: OutputMode) async throws(ModelCallError) -> ModelReply {
        var body: [String: JSONValue] = [
            "model": .string(model), "max_tokens": .number(Double(request.maxTokens)), "temperature": .number(0),
            "system": .string(request.system),
            "messages": .array(conversation(request)),
        ]
        if mode == .tool, let schema = request.schema {
            body["tools"] = .array([
                .object([
                    "name": .string(AnswerParser.schemaName),
                    "description": .string("Record the one trading decision for the symbol asked about."),
                    "input_schema": schema,
                ])
            ])
            body["tool_choice"] = .object(["type": .string("tool"), "name": .string(AnswerParser.schemaName)])
        }
        var headers = [("anthropic-version", "2023-06-01")]
        if let apiKey { headers.append(("x-api-key", apiKey)) }
        let bytes = try await post.send(
            url: baseURL + "/v1/messages",
            headers: headers,
            body: body,
            timeout: request.timeout
        )
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes)) else {
            return ModelReply(text: String(decoding: bytes.prefix(2_000), as: UTF8.self), outputMode: mode)
        }
        let prose = answer.content.compactMap { $0.type == "text" ? $0.text : nil }.joined()
        // The tool call's input is the answer; encoded back to text so one parser reads every reply.
        let call = answer.content.first { $0.type == "tool_use" && $0.name == AnswerParser.schemaName }?.input
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = call.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? prose
        return ModelReply(
            text: text,
            truncated: answer.stop_reason == "max_tokens",
            refusal: answer.stop_reason == "refusal" ? (prose.isEmpty ? "refusal" : prose) : nil,
            inputTokens: answer.usage?.input_tokens ?? 0,
            outputTokens: answer.usage?.output_tokens ?? 0,
            outputMode: call == nil ? .text : .tool
        )
    }
}
