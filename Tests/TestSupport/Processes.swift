import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to completion and returns its output; throws when it exits non-zero.
///
/// Uses posix_spawn and waitpid rather than Foundation's `Process`, whose wait hangs when the command
/// leaves a daemon behind (redis-server --daemonize, rabbitmq-server) holding an inherited descriptor.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let outputPath = NSTemporaryDirectory() + "tradebus-command-\(UUID().uuidString)"
    let outputFD = open(outputPath, O_CREAT | O_RDWR | O_TRUNC, 0o600)
    guard outputFD >= 0 else { throw CommandFailed(command: executable, status: -1, output: "cannot create \(outputPath)") }
    defer {
        close(outputFD)
        unlink(outputPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
    posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
    // A shell closes every other inherited descriptor, then becomes the command.
    let closeAndExec = #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null; exec "$@""#
    let argv = (["/bin/bash", "-c", closeAndExec, "tradebus-test", executable] + arguments).map { strdup($0) } + [nil]
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        env.forEach { free($0) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, argv, env)
    guard spawned == 0 else {
        throw CommandFailed(command: executable, status: spawned, output: "cannot start: \(String(cString: strerror(spawned)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    guard exitCode == 0 else {
        throw CommandFailed(command: ([executable] + arguments).joined(separator: " "), status: exitCode, output: output)
    }
    return output
}

public struct CommandFailed: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var output: String
    public init(command: String, status: Int32, output: String) {
        self.command = command
        self.status = status
        self.output = output
    }
    public var description: String { "`\(command)` exited \(status): \(output)" }
}

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

    public func start() throws { try runCommand(script, ["start", directory, String(port), name]) }
    public func stop() throws { try runCommand(script, ["stop", directory, String(port), name]) }
    public func kill() throws { try runCommand(script, ["kill", directory, String(port), name]) }
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
