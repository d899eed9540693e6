import BlockingIO
import Foundation

/// An async Redis client over one hiredis connection on its own thread. It connects on first use and
/// after a failure connects again on the next call. Every call is bounded by the command timeout.
public final class RedisClient: Sendable {
    public let url: RedisURL
    public let timeout: Duration
    private let thread: ConnectionThread
    private let holder: ConnectionHolder

    /// A client for one Redis server; each command waits at most `timeout`.
    public init(url: RedisURL, timeout: Duration = .milliseconds(50), connectTimeout: Duration = .milliseconds(500)) {
        self.url = url
        self.timeout = timeout
        self.thread = ConnectionThread(name: "redis")
        self.holder = ConnectionHolder(url: url, connectTimeout: connectTimeout, timeout: timeout)
    }

    deinit {
        thread.stop()
    }

    /// The connection's thread as a task executor: a task that prefers it
    /// (`withTaskExecutorPreference(client.executor) { ... }`) makes its calls inline, with no thread hop.
    public var executor: any TaskExecutor { thread }

    /// Runs commands as one pipeline: one round trip for all.
    public func pipeline(_ commands: [[[UInt8]]]) async throws -> [RedisReply] {
        let holder = self.holder
        return try await thread.run { try holder.withConnection { try $0.pipeline(commands) } }
    }

    /// Sends one command and returns Redis's reply (an error reply is a reply, not a throw).
    public func command(_ arguments: [String]) async throws -> RedisReply {
        try await pipeline([arguments.map { Array($0.utf8) }])[0]
    }

    public func get(_ key: String) async throws -> [UInt8]? {
        try await pipeline([[Array("GET".utf8), Array(key.utf8)]])[0].bytes
    }

    public func set(_ key: String, _ value: [UInt8]) async throws {
        let reply = try await pipeline([[Array("SET".utf8), Array(key.utf8), value]])[0]
        if case .error(let message) = reply { throw RedisError(.reply, "SET \(key): \(message)") }
    }

    /// Throws unless Redis answers PONG.
    public func ping() async throws {
        let reply = try await command(["PING"])
        guard reply == .status("PONG") else { throw RedisError(.reply, "PING answered \(reply)") }
    }

    /// Runs a synchronous block with the connection on its thread (for benchmarks of the C path).
    public func withConnectionOnThread<T: Sendable>(
        _ body: @escaping @Sendable (_ command: ([[UInt8]]) throws -> RedisReply) throws -> T
    ) async throws -> T {
        let holder = self.holder
        return try await thread.run {
            try holder.withConnection { connection in try body { try connection.command($0) } }
        }
    }
}

/// Holds the connection of one `RedisClient`.
///
/// `@unchecked Sendable`: `connection` is read and written only inside jobs on the client's single
/// `ConnectionThread`, so it is never touched concurrently.
private final class ConnectionHolder: @unchecked Sendable {
    private let url: RedisURL
    private let connectTimeout: Duration
    private let timeout: Duration
    private var connection: RedisConnection?

    init(url: RedisURL, connectTimeout: Duration, timeout: Duration) {
        self.url = url
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }

    func withConnection<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        let connection =
            try self.connection ?? RedisConnection(url: url, connectTimeout: connectTimeout, timeout: timeout)
        self.connection = connection
        do {
            return try body(connection)
        } catch {
            // After a timeout or a socket error the protocol state is unknown: start afresh next time.
            self.connection = nil
            throw error
        }
    }
}
