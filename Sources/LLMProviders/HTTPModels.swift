import AsyncHTTPClient
import Foundation
import HTTPSupport
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

/// The OpenAI-compatible Chat Completions API (`POST {base}/chat/completions`): OpenAI, OpenRouter, xAI,
/// DeepSeek, and local llama.cpp, vLLM and Ollama servers.
public struct OpenAIChatModel: LanguageModel {
    public let provider = "openai"
    public let model: String
    let baseURL: String
    let apiKey: String?
    let post: JSONPost

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
        let body: [String: JSONValue] = [
            "model": .string(model), "temperature": .number(0), "max_tokens": .number(Double(request.maxTokens)),
            "messages": .array([
                .object(["role": .string("system"), "content": .string(request.system)]),
                .object(["role": .string("user"), "content": .string(request.user)]),
            ]),
        ]
        let bytes = try await post.send(
            url: baseURL + "/chat/completions",
            headers: apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [],
            body: body,
            timeout: request.timeout
        )
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes)), let choice = answer.choices.first
        else {
            return ModelReply(text: String(decoding: bytes.prefix(2_000), as: UTF8.self))
        }
        return ModelReply(
            text: choice.message.content ?? "",
            truncated: choice.finish_reason == "length",
            refusal: choice.message.refusal,
            inputTokens: answer.usage?.prompt_tokens ?? 0,
            outputTokens: answer.usage?.completion_tokens ?? 0
        )
    }
}

/// Anthropic's Messages API (`POST {base}/v1/messages`, `anthropic-version: 2023-06-01`).
public struct AnthropicMessagesModel: LanguageModel {
    public let provider = "anthropic"
    public let model: String
    let baseURL: String
    let apiKey: String?
    let post: JSONPost

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
        let body: [String: JSONValue] = [
            "model": .string(model), "max_tokens": .number(Double(request.maxTokens)), "temperature": .number(0),
            "system": .string(request.system),
            "messages": .array([.object(["role": .string("user"), "content": .string(request.user)])]),
        ]
        var headers = [("anthropic-version", "2023-06-01")]
        if let apiKey { headers.append(("x-api-key", apiKey)) }
        let bytes = try await post.send(
            url: baseURL + "/v1/messages",
            headers: headers,
            body: body,
            timeout: request.timeout
        )
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes)) else {
            return ModelReply(text: String(decoding: bytes.prefix(2_000), as: UTF8.self))
        }
        let text = answer.content.compactMap { $0.type == "text" ? $0.text : nil }.joined()
        return ModelReply(
            text: text,
            truncated: answer.stop_reason == "max_tokens",
            refusal: answer.stop_reason == "refusal" ? (text.isEmpty ? "refusal" : text) : nil,
            inputTokens: answer.usage?.input_tokens ?? 0,
            outputTokens: answer.usage?.output_tokens ?? 0
        )
    }
}
