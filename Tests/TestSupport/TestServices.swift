import Foundation
import WorkerRuntime

/// Where the real servers started by `scripts/services` are: the environment (`AMQP_URL`, `REDIS_URL`,
/// `DATABASE_URL`, as `scripts/test` exports them) or else `.services/credentials.env` of this checkout.
public enum TestServices {
    public static var amqpURL: String { value("AMQP_URL") }
    public static var redisURL: String { value("REDIS_URL") }
    public static var databaseURL: String { value("DATABASE_URL") }

    /// The checkout's root folder.
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    private static func value(_ key: String) -> String {
        if let value = ProcessInfo.processInfo.environment[key], !value.isEmpty { return value }
        if let value = fromServicesScript[key] { return value }
        fatalError("\(key) is not set: run the tests with scripts/test, or start the servers with scripts/services up")
    }

    private static let fromServicesScript: [String: String] = {
        let script = repositoryRoot.appendingPathComponent("scripts/services").path
        guard let output = try? Command.run(script, ["env"]) else { return [:] }
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let text = line.hasPrefix("export ") ? line.dropFirst(7) : line[...]
            guard let equals = text.firstIndex(of: "=") else { continue }
            values[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return values
    }()

    /// A short unique name for queues, keys and rows of one test.
    public static func uniqueName(_ prefix: String = "t") -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// Awaits `body` and, if it is still waiting after `warnAfter`, says so once on stderr, naming `what`.
/// For awaits with no bound of their own (a teardown, a broker's restart): a run that hangs then shows
/// in its log where it hangs, and `scripts/test`'s stall watch still sees the silence that follows.
public func awaitSayingIfSlow<T: Sendable>(
    _ what: String,
    warnAfter: Duration = .seconds(90),
    _ body: () async throws -> T
) async rethrows -> T {
    let warning = Task {
        try await Task.sleep(for: warnAfter)
        FileHandle.standardError.write(Data("⚠︎ still waiting after \(warnAfter) for: \(what)\n".utf8))
    }
    defer { warning.cancel() }
    return try await body()
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. The default is
/// generous: a loaded two-core machine can be slow, and a passing test does not wait for it.
public func eventually(
    timeout: Duration = .seconds(30),
    interval: Duration = .milliseconds(20),
    _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
