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
        "attempts", "prompt_version",
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
        "an OpenAI-compatible server: a 429 with Retry-After is retried (attempts 2); an invalid answer is HOLD with exit 0"
    )
    func openAI() async throws {
        let server = try await FakeLLM.start(fallback: "no JSON here")
        server.script([.status(429, retryAfter: "1")])
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)").path
        try "sk-from-file\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let object = try await decision([
            "--provider", "openai", "--base-url", server.openAIBaseURL, "--model", "gpt-test", "--api-key-file",
            keyFile,
        ])
        #expect(
            object["attempts"] as? Int == 2 && object["provider"] as? String == "openai"
                && object["model"] as? String == "gpt-test"
        )
        #expect(object["action"] as? String == "HOLD" && object["prompt_version"] as? String == "analyst-v1")
        #expect((object["reasoning"] as? String)?.contains("invalid") == true)
        #expect(
            server.received.count == 2
                && server.received.allSatisfy { $0.headers["authorization"] == "Bearer sk-from-file" }
        )
        let times = server.received.map(\.time)
        #expect(times[1].timeIntervalSince(times[0]) >= 0.95)
        await server.stop()
    }
}
