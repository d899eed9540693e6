import BlockingIO
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs external programs (redis-benchmark, psql, scripts).
public enum Command {
    /// Runs a command to completion and returns its output; throws when it exits non-zero.
    @discardableResult
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:]
    ) throws -> String {
        let outputPath = NSTemporaryDirectory() + "tradebus-command-\(UUID().uuidString)"
        defer { unlink(outputPath) }
        let pid = try spawn(executable, arguments, environment: environment, outputPath: outputPath)
        let exitCode = wait(pid)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard exitCode == 0 else {
            throw CommandFailed(
                command: ([executable] + arguments).joined(separator: " "),
                status: exitCode,
                output: output
            )
        }
        return output
    }

    /// Runs a command to completion on a thread of its own, so the wait never blocks Swift's
    /// cooperative pool, and returns its output; throws when it exits non-zero.
    @discardableResult
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:]
    ) async throws -> String {
        try await offload { try run(executable, arguments, environment: environment) }
    }

    /// Runs a blocking `body` on a new thread and returns its result.
    public static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await BlockingIO.offload(body)
    }

    /// Starts a command with stdin from /dev/null and stdout and stderr to `outputPath`, and returns
    /// its pid. Uses posix_spawn rather than Foundation's `Process`, whose wait hangs when the command
    /// leaves a daemon behind (redis-server --daemonize, rabbitmq-server) holding an inherited
    /// descriptor; a shell closes every other inherited descriptor before it becomes the command.
    public static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        outputPath: String
    ) throws -> pid_t {
        let outputFD = open(outputPath, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        guard outputFD >= 0 else {
            throw CommandFailed(command: executable, status: -1, output: "cannot create \(outputPath)")
        }
        defer { close(outputFD) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
        // (No redirection around the loop: bash would keep its saved stderr in a descriptor the loop closes.)
        let closeAndExec = #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && exec {fd}>&-; done; exec "$@""#
        let argv =
            (["/bin/bash", "-c", closeAndExec, "tradebus-command", executable] + arguments).map { strdup($0) } + [nil]
        let env =
            ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [
                nil
            ]
        defer {
            for argument in argv { free(argument) }
            for variable in env { free(variable) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, argv, env)
        guard spawned == 0 else {
            throw CommandFailed(
                command: executable,
                status: spawned,
                output: "cannot start: \(String(cString: strerror(spawned)))"
            )
        }
        return pid
    }

    /// Waits for `pid`; returns its exit code, or 128 + the signal that killed it.
    public static func wait(_ pid: pid_t, blocking: Bool = true) -> Int32? {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
        guard result == pid else { return nil }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Waits for `pid` (blocking); returns its exit code.
    static func wait(_ pid: pid_t) -> Int32 { wait(pid, blocking: true) ?? -1 }
}

/// A command exited non-zero; `output` holds what it printed.
public struct CommandFailed: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var output: String
    /// A `CommandFailed` with the fields given.
    public init(command: String, status: Int32, output: String) {
        self.command = command
        self.status = status
        self.output = output
    }
    public var description: String { "`\(command)` exited \(status): \(output)" }
}
