import CHiredis
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `redis://[:password@]host[:port][/db]`, as in REDIS_URL.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int

    /// A `RedisURL` with the fields given.
    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
    }

    /// Parses a Redis URL; the error names what is wrong.
    public init(_ text: String) throws {
        guard let components = URLComponents(string: text), components.scheme == "redis" else {
            throw RedisError(
                .configuration,
                "'\(text.replacingOccurrences(of: #":[^:@/]*@"#, with: ":***@", options: .regularExpression))' is not a redis:// URL (rediss is not supported)"
            )
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisError(.configuration, "REDIS_URL has no host")
        }
        self.host = host
        self.port = components.port ?? 6379
        let password = components.password?.removingPercentEncoding
        self.password = (password?.isEmpty ?? true) ? nil : password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard path.isEmpty || Int(path) != nil else {
            throw RedisError(.configuration, "REDIS_URL database '\(path)' is not a number")
        }
        self.database = Int(path) ?? 0
    }

    public var description: String { "redis://\(password == nil ? "" : ":***@")\(host):\(port)/\(database)" }
}

/// A Redis failure: a ``Code`` to act on, and what failed.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable {
        /// `REDIS_URL` is not usable: fix the setting.
        case configuration
        /// No connection, or it broke (timeouts included): the cache answers from its LRU meanwhile.
        case connection
        /// Redis answered with an error (a refused AUTH, a wrong command).
        case reply
    }

    public var code: Code
    /// What failed.
    public var message: String

    /// A failure of kind `code`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A Redis reply, copied out of hiredis.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case null
    case array([RedisReply])
    case error(String)

    public var bytes: [UInt8]? {
        if case .string(let bytes) = self { return bytes }
        return nil
    }
}

/// One hiredis blocking connection. Not thread-safe: it belongs to one `ConnectionThread`, and all
/// calls happen there. Owns the `redisContext` and frees it in `deinit`; no other type touches hiredis.
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects, authenticates and selects the database; every later read or write times out after
    /// `timeout`, which leaves the connection unusable (drop it and connect again).
    init(url: RedisURL, connectTimeout: Duration, timeout: Duration) throws {
        guard let context = redisConnectWithTimeout(url.host, Int32(url.port), Self.timeval(connectTimeout)) else {
            throw RedisError(.connection, "cannot allocate a hiredis context")
        }
        self.context = context
        if context.pointee.err != 0 {
            throw RedisError(.connection, "cannot connect to \(url.host):\(url.port): \(errorText)")
        }
        _ = redisSetTimeout(context, Self.timeval(timeout))
        if let password = url.password {
            if case .error(let message) = try command(["AUTH", password]) {
                throw RedisError(.reply, "AUTH failed: \(message)")
            }
        }
        if url.database != 0 {
            if case .error(let message) = try command(["SELECT", String(url.database)]) {
                throw RedisError(.reply, "SELECT failed: \(message)")
            }
        }
    }

    deinit {
        redisFree(context)
    }

    private var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// True when a read or write failed and the connection must be replaced.
    var isBroken: Bool { context.pointee.err != 0 }

    func command(_ arguments: [String]) throws -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    /// Sends one command and waits for its reply.
    func command(_ arguments: [[UInt8]]) throws -> RedisReply {
        try pipeline([arguments])[0]
    }

    /// Sends all commands, then reads all replies: one round trip. A single command goes through
    /// `redisCommandArgv` (hiredis's `redisCommand` is variadic, which Swift cannot call).
    func pipeline(_ commands: [[[UInt8]]]) throws -> [RedisReply] {
        if commands.count == 1 {
            let raw = Self.withArgv(commands[0]) { count, argv, lengths in
                redisCommandArgv(context, count, argv, lengths)
            }
            guard let raw else { throw RedisError(.connection, "command failed: \(errorText)") }
            defer { freeReplyObject(raw) }
            return [Self.copy(raw.assumingMemoryBound(to: redisReply.self))]
        }
        // All commands' arguments laid out in one buffer: one allocation per pipeline, not per command.
        let allArguments = commands.flatMap { $0 }
        try Self.withArgv(allArguments) { _, argv, lengths in
            var offset = 0
            for arguments in commands {
                guard
                    redisAppendCommandArgv(context, Int32(arguments.count), argv + offset, lengths + offset) == REDIS_OK
                else {
                    throw RedisError(.connection, "writing a command failed: \(errorText)")
                }
                offset += arguments.count
            }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw RedisError(.connection, "reading a reply failed: \(errorText)")
            }
            defer { freeReplyObject(raw) }
            replies.append(Self.copy(raw.assumingMemoryBound(to: redisReply.self)))
        }
        return replies
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        func text() -> [UInt8] {
            guard let pointer = value.str, value.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: value.len))
        }
        switch value.type {
        case REDIS_REPLY_STRING: return .string(text())
        case REDIS_REPLY_STATUS: return .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int(value.integer))
        case REDIS_REPLY_ARRAY:
            guard let elements = value.element else { return .array([]) }
            return .array((0..<value.elements).map { elements[$0].map(copy) ?? .null })
        default: return .null
        }
    }

    /// Lays the arguments out as C argv/argvlen arrays for the duration of `body`.
    private static func withArgv<R>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) throws -> R
    ) rethrows -> R {
        let total = arguments.reduce(0) { $0 + $1.count }
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: max(total, 1))
        let argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: arguments.count)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: arguments.count)
        defer {
            buffer.deallocate()
            argv.deallocate()
            lengths.deallocate()
        }
        var offset = 0
        for (index, argument) in arguments.enumerated() {
            argument.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { (buffer + offset).update(from: base, count: source.count) }
            }
            argv[index] = UnsafeRawPointer(buffer + offset).assumingMemoryBound(to: CChar.self)
            lengths[index] = argument.count
            offset += argument.count
        }
        return try body(Int32(arguments.count), argv, lengths)
    }

    static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
