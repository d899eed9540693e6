import Foundation
import Logging

/// The settings every worker shares.
public struct RuntimeSettings: Sendable {
    public var worker: String
    public var instance: String
    public var httpHost: String
    public var httpPort: Int
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// How long a graceful shutdown may take before work is cancelled.
    public var shutdownGrace: Duration
    /// How often the worker says on the bus that it is alive (`heartbeat.<worker>`).
    public var heartbeat: Duration

    /// Reads `HTTP_HOST`, `HTTP_PORT`, `LOG_LEVEL`, `LOG_FORMAT`, `SHUTDOWN_GRACE_SECONDS` and
    /// `HEARTBEAT_SECONDS`.
    public init(worker: String, defaultPort: Int, config: SettingsReader) throws {
        self.worker = worker
        self.instance = "\(worker)@\(ProcessInfo.processInfo.hostName)"
        self.httpHost = try config.string("HTTP_HOST", default: "0.0.0.0", help: "health/metrics endpoint address")!
        self.httpPort = try config.int(
            "HTTP_PORT",
            default: defaultPort,
            range: 0...65535,
            help: "health/metrics endpoint port; 0 picks a free one"
        )
        let level = try config.choice(
            "LOG_LEVEL",
            default: "info",
            allowed: Logger.Level.allCases.map(\.rawValue),
            help: "log level"
        )
        self.logLevel = Logger.Level(rawValue: level)!
        self.logFormat = LogFormat(
            rawValue: try config.choice(
                "LOG_FORMAT",
                default: "text",
                allowed: ["text", "json"],
                help: "text or JSON lines"
            )
        )!
        let grace = try config.int("SHUTDOWN_GRACE_SECONDS", default: 10, range: 1...600, help: "drain time on SIGTERM")
        self.shutdownGrace = .seconds(grace)
        self.heartbeat = .seconds(
            try config.int("HEARTBEAT_SECONDS", default: 10, range: 1...300, help: "how often it says it is alive")
        )
    }
}
