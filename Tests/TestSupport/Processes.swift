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

    public func start() throws { try Command.run(script, ["start", directory, String(port), name]) }
    public func stop() throws { try Command.run(script, ["stop", directory, String(port), name]) }
    public func kill() throws { try Command.run(script, ["kill", directory, String(port), name]) }
}

/// A child process the test controls: signal it, wait for it. Output goes to a log file beside it.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    public let outputPath: String

    public init(executable: String, arguments: [String] = [], environment: [String: String]) throws {
        outputPath = NSTemporaryDirectory() + "tradebus-process-\(UUID().uuidString).log"
        let outputFD = open(outputPath, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        defer { close(outputFD) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            env.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, env)
        guard status == 0 else {
            throw CommandFailed(command: executable, status: status, output: String(cString: strerror(status)))
        }
        self.pid = pid
    }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// The exit code (128 + signal when killed), or throws after `timeout`.
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        throw CommandFailed(command: "pid \(pid)", status: -1, output: "did not exit within \(timeout): \(output)")
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}
