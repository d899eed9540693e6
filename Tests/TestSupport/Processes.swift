import Foundation
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A RabbitMQ node of a test's own, so the test can stop and restart it without disturbing others.
public struct PrivateRabbitMQ: Sendable {
    public let directory: String
    public let port: Int
    public let name: String

    public init(port: Int) {
        self.port = port
        self.name = "test\(port)"
        self.directory = NSTemporaryDirectory() + "tradebus-rabbitmq-\(port)"
    }

    /// guest works on loopback (the node is configured with `loopback_users = none`).
    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/%2f" }

    private var script: String { TestServices.repositoryRoot.appendingPathComponent("scripts/rabbitmq-node").path }

    /// Starts the node on the state it has (messages and queues survive a restart).
    public func start() async throws { try await Command.run(script, ["start", directory, String(port), name]) }
    public func stop() async throws { try await Command.run(script, ["stop", directory, String(port), name]) }
    public func kill() async throws { try await Command.run(script, ["kill", directory, String(port), name]) }

    /// Runs `body` on a node started with no state from an earlier run (a node left over is stopped
    /// first), then stops it and removes its state, also when `body` throws. State left behind grew to
    /// gigabytes over many runs and made each boot, and the recovery after a kill, slower.
    public static func with(port: Int, _ body: (PrivateRabbitMQ) async throws -> Void) async throws {
        let broker = PrivateRabbitMQ(port: port)
        try await broker.stop()
        try? FileManager.default.removeItem(atPath: broker.directory)
        try await broker.start()
        do {
            try await body(broker)
        } catch {
            try? await broker.stop()
            throw error
        }
        try await broker.stop()
        try? FileManager.default.removeItem(atPath: broker.directory)
    }
}

/// A child process the test controls: signal it, wait for it. Output goes to a log file beside it.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    public let outputPath: String

    public init(executable: String, arguments: [String] = [], environment: [String: String]) throws {
        outputPath = NSTemporaryDirectory() + "tradebus-process-\(UUID().uuidString).log"
        pid = try Command.spawn(executable, arguments, environment: environment, outputPath: outputPath)
    }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// The exit code (128 + signal when killed), or throws after `timeout`.
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = Command.wait(pid, blocking: false) { return code }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        throw CommandFailed(command: "pid \(pid)", status: -1, output: "did not exit within \(timeout): \(output)")
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The port of a worker's health endpoint, from its log line "health endpoint listening port=N".
    public func healthPort() throws -> Int {
        guard let range = output.range(of: "health endpoint listening port="),
            let port = Int(output[range.upperBound...].prefix { $0.isNumber })
        else {
            throw CommandFailed(command: "health port", status: 0, output: output)
        }
        return port
    }
}
