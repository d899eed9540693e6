import Foundation
import TradingCore

/// The versioned analyst prompt shipped with the package (`Prompts/<version>.md`), with the framework's
/// numbers filled in, and the user message: the context as JSON.
public struct AnalystPrompt: Sendable {
    public static let currentVersion = "analyst-v2"
    public let version: String
    public let system: String

    /// Loads `version` from the package's resources.
    public init(version: String = AnalystPrompt.currentVersion, framework: TradingFramework) throws {
        guard
            let url = Bundle.module.url(forResource: version, withExtension: "md", subdirectory: "Prompts")
                ?? Bundle.module.url(forResource: version, withExtension: "md"),
            let template = try? String(contentsOf: url, encoding: .utf8)
        else {
            throw InvalidAnswer("prompt '\(version)' is not shipped with this build")
        }
        self.version = version
        self.system =
            template
            .replacingOccurrences(of: "{{MIN_CONFIDENCE}}", with: "\(framework.minConfidence)")
            .replacingOccurrences(of: "{{MAX_LEVERAGE}}", with: "\(framework.maxLeverage)")
            .replacingOccurrences(of: "{{MIN_STOP}}", with: "\(framework.minStopFraction)")
            .replacingOccurrences(of: "{{MAX_STOP}}", with: "\(framework.maxStopFraction)")
            .replacingOccurrences(of: "{{MIN_REWARD_RISK}}", with: "\(framework.minRewardRisk)")
    }

    /// The question about one symbol: what its state holds, then the state as JSON, keys sorted so the
    /// same inputs give the same text.
    public func user(_ context: AnalysisContext) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Times as a model reads them (2021-11-18T00:00:00Z), not seconds since 2001.
        encoder.dateEncodingStrategy = .iso8601
        let json = (try? encoder.encode(context)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "Symbol: \(context.symbol). Decide for this symbol only.\n"
            + "The state holds \(Self.holdings(context)). It holds nothing else.\nState:\n\(json)"
    }

    /// What a context holds, in words, so the prompt promises no more than that.
    public static func holdings(_ context: AnalysisContext) -> String {
        let others = context.higherTimeframes.map(\.0)
        var parts = [
            "indicators for \(context.interval) (the timeframe asked about)"
                + (others.isEmpty ? "" : " and for \(others.joined(separator: ", "))")
        ]
        parts.append(context.fundingRate == nil ? "no funding rate" : "the funding rate")
        parts.append(context.position == nil ? "no open position" : "the open position")
        parts.append(
            context.recentTrades.isEmpty ? "no recent trades" : "the last \(context.recentTrades.count) closed trades"
        )
        parts.append("today's PnL")
        return parts.joined(separator: ", ")
    }
}
