import Foundation
import TradingCore

/// The versioned analyst prompt shipped with the package (`Prompts/<version>.md`), with the framework's
/// numbers filled in, and the user message: the context as JSON.
public struct AnalystPrompt: Sendable {
    public static let currentVersion = "analyst-v1"
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

    /// The question about one symbol: its context as JSON, keys sorted so the same inputs give the same text.
    public func user(_ context: AnalysisContext) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Times as a model reads them (2021-11-18T00:00:00Z), not seconds since 2001.
        encoder.dateEncodingStrategy = .iso8601
        let json = (try? encoder.encode(context)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "Symbol: \(context.symbol). Decide for this symbol only.\nState:\n\(json)"
    }
}
