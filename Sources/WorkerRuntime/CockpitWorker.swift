import Cockpit
import Foundation

/// cockpit's configuration: where it listens (127.0.0.1 unless told otherwise), its two tokens, and the
/// account whose executor it asks.
public struct CockpitWorkerSettings: Sendable {
    public var dependencies: WorkerDependencies
    public var host: String
    public var port: Int
    public var tokens: CockpitTokens
    public var account: String

    /// Reads and checks them; an invalid value names its key and range.
    public static func read(_ config: SettingsReader) throws -> Self {
        let viewer = try config.string("COCKPIT_VIEWER_TOKEN", secret: true, help: "the viewer's token (reads)")
        let operatorToken = try config.string(
            "COCKPIT_OPERATOR_TOKEN",
            secret: true,
            help: "the operator's token (reads and control)"
        )
        let tokens: CockpitTokens
        do { tokens = try CockpitTokens(viewer: viewer, operator: operatorToken) } catch {
            throw ConfigError(key: error.key, message: error.message)
        }
        return Self(
            dependencies: try WorkerDependencies.configure([.bus, .store], config: config, instance: "cockpit"),
            host: try config.string("COCKPIT_HOST", default: "127.0.0.1", help: "address the cockpit binds")!,
            port: try config.int("COCKPIT_PORT", default: 8090, range: 0...65_535, help: "the cockpit's port"),
            tokens: tokens,
            account: try config.string("EXECUTOR_ACCOUNT", default: "default", help: "the account it shows")!
        )
    }
}
