import Foundation
import TestSupport
import Testing
import WorkerRuntime

/// `tradebus analyze`, as a user runs it.
@Suite("tradebus analyze")
struct AnalyzeCommandTests {
    let tradebus = TestServices.repositoryRoot.appendingPathComponent(".build/debug/tradebus").path
    let file = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/LTCBTC-5m.csv").path
    static let keys: Set<String> = [
        "action", "confidence", "leverage", "entry", "stop_loss", "take_profit", "reasoning", "provider", "model",
        "attempts", "prompt_version", "output_modes", "grounding", "refused", "llm_cost", "tokens", "latency_ms",
        "anonymised",
    ]

    func decision(_ arguments: [String], environment: [String: String] = [:]) async throws -> [String: Any] {
        let output = try await Command.run(tradebus, ["analyze", "--data", file] + arguments, environment: environment)
        let line = try #require(output.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("the rules analyst on a shared file: one JSON object with the contract's keys")
    func rules() async throws {
        let object = try await decision([])
        #expect(Set(object.keys) == Self.keys)
        #expect(
            object["provider"] as? String == "rules" && object["attempts"] as? Int == 0
                && object["prompt_version"] as? String == "framework-v1"
        )
        #expect(["LONG", "SHORT", "HOLD"].contains(object["action"] as? String ?? ""))
    }

    @Test(
        "an OpenAI-compatible server: a 429 with Retry-After is retried; an invalid answer is asked again once, then HOLD with exit 0; --verbose shows the prompt, the replies and why"
    )
    func openAI() async throws {
        let server = try await FakeLLM.start(fallback: "no JSON here")
        server.script([.status(429, retryAfter: "1")])
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)").path
        try "sk-from-file\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let arguments = [
            "analyze", "--data", file, "--provider", "openai", "--base-url", server.openAIBaseURL, "--model",
            "gpt-test", "--api-key-file", keyFile, "--verbose",
        ]
        let output = try await Command.run(tradebus, arguments, environment: [:])
        let line = try #require(output.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        // The 429, the answer, and the one repair.
        #expect(
            object["attempts"] as? Int == 3 && object["provider"] as? String == "openai"
                && object["model"] as? String == "gpt-test"
        )
        #expect(object["action"] as? String == "HOLD" && object["prompt_version"] as? String == "analyst-v2")
        #expect((object["reasoning"] as? String)?.contains("invalid") == true)
        #expect(object["output_modes"] as? [String] == ["openai gpt-test: json_schema"])
        #expect(
            (object["refused"] as? [String])?.first
                == #"openai gpt-test: no JSON object in the reply (it begins "no JSON here")"#
        )
        #expect(
            server.received.count == 3
                && server.received.allSatisfy { $0.headers["authorization"] == "Bearer sk-from-file" }
        )
        for shown in [
            "== prompt (analyst-v2)", "== reply [openai gpt-test, answer, json_schema]\nno JSON here",
            "== reply [openai gpt-test, repair 1, json_schema]", "== refused: openai gpt-test: no JSON object",
        ] {
            #expect(output.contains(shown), "\(shown) not in: \(output)")
        }
        #expect(output.contains("look-ahead warning: gpt-test is not in the cutoff table"), "analyze only warns")
        let times = server.received.map(\.time)
        #expect(times[1].timeIntervalSince(times[0]) >= 0.95)
        await server.stop()
    }
}
