import Foundation
import ServiceLifecycle
import TradingCore
import TradingServices

/// `ANALYST_PROVIDERS=copy`: the leaders followed on Hyperliquid and how their trades are copied.
public struct CopyConfiguration: Sendable {
    public var settings: CopyAnalyst.Settings
    /// Hyperliquid's WebSocket and REST bases (`HYPERLIQUID_WS_URL`, `HYPERLIQUID_REST_URL`).
    public var webSocketURL: String
    public var restURL: String

    /// Who is followed, and where (`COPY_LEADERS`, `COPY_CAPITAL`, `HYPERLIQUID_WS_URL`,
    /// `HYPERLIQUID_REST_URL`): what the copy analyst, `tradebus leaders` and the cockpit's leader page
    /// share.
    public struct Followed: Sendable {
        public var leaders: [Leader]
        public var capital: Money
        public var webSocketURL: String
        public var restURL: String
    }

    static let leadersHelp = "addresses to follow, each with a weight: 0xabc…:0.5,0xdef…:1"

    /// The leaders followed, or nil when `COPY_LEADERS` is not set; a bad value names its key.
    public static func followed(_ config: SettingsReader) throws -> Followed? {
        guard let text = try config.string("COPY_LEADERS", default: nil, help: leadersHelp), !text.isEmpty else {
            return nil
        }
        let leaders: [Leader]
        do { leaders = try Leader.parse(text) } catch {
            throw ConfigError(key: "COPY_LEADERS", message: error.message)
        }
        let ws = try FeedConfiguration.url(
            config,
            "HYPERLIQUID_WS_URL",
            default: "wss://api.hyperliquid.xyz",
            schemes: ["ws", "wss"]
        )
        let rest = try FeedConfiguration.url(
            config,
            "HYPERLIQUID_REST_URL",
            default: "https://api.hyperliquid.xyz",
            schemes: ["http", "https"]
        )
        let capital = try config.double(
            "COPY_CAPITAL",
            default: 10_000,
            range: 1...1_000_000_000,
            help: "USD our copies are sized against (the executor's account; its gateway caps each)"
        )
        return Followed(leaders: leaders, capital: Money(finite: capital)!, webSocketURL: ws, restURL: rest)
    }

    /// Reads and checks the copy keys; a bad one stops the analyst at start, naming the key.
    public static func read(_ config: SettingsReader, framework: TradingFramework) throws -> CopyConfiguration {
        guard let followed = try followed(config) else {
            _ = try config.required("COPY_LEADERS", help: leadersHelp)
            throw ConfigError(key: "COPY_LEADERS", message: "is empty; \(leadersHelp)")
        }
        let mode = CopySizing.Mode(
            rawValue: try config.choice(
                "COPY_SIZING",
                default: "proportional",
                allowed: CopySizing.Mode.allCases.map(\.rawValue),
                help: "proportional to the leader's equity, a fixed notional, or a fixed risk at the stop"
            )
        )!
        let sizing = CopySizing(
            mode: mode,
            notional: Money(
                finite: try config.double(
                    "COPY_NOTIONAL_USD",
                    default: 1_000,
                    range: 1...10_000_000,
                    help: "fixed_notional: USD per copied position, times the leader's weight"
                )
            )!,
            riskFraction: Money(
                finite: try config.double(
                    "COPY_RISK_PERCENT",
                    default: 0.01,
                    range: 0.0001...0.05,
                    help: "fixed_risk: fraction of COPY_CAPITAL lost at the stop (0.01 = 1 %)"
                )
            )!,
            maxStopFraction: Money(finite: framework.maxStopFraction)!
        )
        return CopyConfiguration(
            settings: CopyAnalyst.Settings(
                leaders: followed.leaders,
                sizing: sizing,
                capital: followed.capital,
                leverage: try config.int(
                    "COPY_LEVERAGE",
                    default: 3,
                    range: 1...framework.maxLeverage,
                    help: "leverage of copied entries, at most MAX_LEVERAGE"
                ),
                targetR: try config.double(
                    "COPY_TARGET_R",
                    default: 3,
                    range: max(framework.minRewardRisk, 0.1)...100,
                    help: "target distance in stop distances; at least MIN_REWARD_RISK"
                ),
                quote: try config.string("COPY_QUOTE", default: "USDT", help: "our symbol is the coin + this")!,
                maxFillAge: try config.double(
                    "COPY_MAX_FILL_AGE_SECONDS",
                    default: 30,
                    range: 0...3_600,
                    help: "fills in the snapshot at start younger than this are copied; older ones are history"
                )
            ),
            webSocketURL: followed.webSocketURL,
            restURL: followed.restURL
        )
    }
}

/// Follows the leaders until shutdown (`ANALYST_PROVIDERS=copy`).
public struct CopyAnalystService: Service {
    public let analyst: CopyAnalyst

    /// A `CopyAnalystService` running `analyst`.
    public init(analyst: CopyAnalyst) { self.analyst = analyst }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await analyst.run() }
    }
}
