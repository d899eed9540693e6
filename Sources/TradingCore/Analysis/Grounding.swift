import Foundation

/// How strictly an answer's cited figures are held to the context it was sent (`GROUNDING`).
public enum GroundingMode: String, Sendable, Hashable, CaseIterable {
    /// Every cited figure must be in the context, and at least one must be cited.
    case strict
    /// Every cited figure must be in the context; an answer citing none is only counted.
    case enforce
    /// Ungrounded answers are logged and counted, and still trade.
    case warn
    /// No check.
    case off
}

/// The grounding gate: checks the figures an answer cites against the context that was sent.
///
/// - An indicator (`rsi14`, or `1h.rsi14` for another timeframe) must match its value in the context
///   to `tolerance` (relative, and at least 0.005 absolute); without a timeframe, any timeframe's
///   value may match.
/// - A price level (`level`, `support`, `resistance`) must lie within the range of prices the context
///   shows (every timeframe's close, averages, Bollinger bands, support and resistance), widened by
///   `tolerance`.
/// - `fundingRate`, `todayPnL` and `position.entry` must match the context's.
/// - Any other name is not a figure of the context.
public enum Grounding {
    /// What the check found.
    public enum Result: Sendable, Hashable {
        /// Every cited figure is in the context; the count cited.
        case grounded(Int)
        /// The answer cites no figure.
        case uncited
        /// Figures not in the context, each with why.
        case ungrounded([String])

        /// `grounded`, `uncited` or `ungrounded`, for metrics.
        public var label: String {
            switch self {
            case .grounded: "grounded"
            case .uncited: "uncited"
            case .ungrounded: "ungrounded"
            }
        }
    }

    /// Names a model may use for a figure, beside the context's own keys.
    static let aliases = ["rsi": "rsi14", "atr": "atr14", "adx": "adx14", "price": "close", "sma": "sma20"]
    static let levels: Set<String> = ["level", "support", "resistance"]

    /// Checks `citations` against `context`.
    public static func check(_ citations: [Citation], context: AnalysisContext, tolerance: Double = 0.01) -> Result {
        guard !citations.isEmpty else { return .uncited }
        let problems = citations.compactMap { problem($0, context: context, tolerance: tolerance) }
        return problems.isEmpty ? .grounded(citations.count) : .ungrounded(problems)
    }

    /// Why `citation` is not grounded in `context`, or nil when it is.
    static func problem(_ citation: Citation, context: AnalysisContext, tolerance: Double) -> String? {
        let shown = "\(citation.name) \(format(citation.value))"
        guard citation.value.isFinite else { return "\(citation.name) is not a number" }
        var name = citation.name.trimmingCharacters(in: .whitespaces)
        if name.hasPrefix("timeframes.") { name.removeFirst("timeframes.".count) }
        var timeframe: String?
        if let dot = name.firstIndex(of: "."), context.timeframes[String(name[..<dot])] != nil {
            timeframe = String(name[..<dot])
            name = String(name[name.index(after: dot)...])
        }
        let key = aliases[name.lowercased()] ?? name.lowercased()

        if levels.contains(key) {
            let prices = context.timeframes.values.flatMap(\.priceFigures)
            guard let low = prices.min(), let high = prices.max() else { return "\(shown): the state shows no prices" }
            let margin = tolerance * high
            if citation.value >= low - margin && citation.value <= high + margin { return nil }
            return "\(shown) is outside the prices the state shows (\(format(low)) to \(format(high)))"
        }
        let contextual: [String: Double?] = [
            "fundingrate": context.fundingRate, "todaypnl": context.todayPnL, "position.entry": context.position?.entry,
        ]
        if let known = contextual[key] {
            guard let actual = known else { return "\(shown): the state has no \(citation.name)" }
            return matches(citation.value, actual, tolerance) ? nil : "\(shown) cited, the state says \(format(actual))"
        }
        let candidates: [(String, IndicatorSnapshot)] =
            if let timeframe { [(timeframe, context.timeframes[timeframe]!)] } else {
                // The primary timeframe first, so a mismatch names it.
                context.timeframes.sorted {
                    ($0.key == context.interval ? 0 : 1, $0.key) < ($1.key == context.interval ? 0 : 1, $1.key)
                }
                .map { ($0.key, $0.value) }
            }
        guard IndicatorSnapshot.figureNames.contains(key) else {
            return "\"\(citation.name)\" is not a figure of the state"
        }
        var seen: [(String, Double)] = []
        for (interval, snapshot) in candidates {
            guard let actual = snapshot.figures[key] else { continue }
            if matches(citation.value, actual, tolerance) { return nil }
            seen.append((interval, actual))
        }
        guard let first = seen.first else { return "\(shown): the state has no \(citation.name)" }
        return "\(shown) cited, the state says \(format(first.1)) (\(first.0))"
    }

    static func matches(_ cited: Double, _ actual: Double, _ tolerance: Double) -> Bool {
        abs(cited - actual) <= max(tolerance * abs(actual), 0.005)
    }

    static func format(_ value: Double) -> String {
        let text = String(format: "%.6g", value)
        return text
    }
}

extension IndicatorSnapshot {
    /// Every figure of the snapshot by its lowercased JSON key, as a model cites it.
    public var figures: [String: Double] {
        let all: [(String, Double?)] = [
            ("close", close), ("sma20", sma20), ("ema12", ema12), ("ema26", ema26), ("macd", macd),
            ("macdsignal", macdSignal), ("macdhistogram", macdHistogram), ("rsi14", rsi14), ("atr14", atr14),
            ("bollingerupper", bollingerUpper), ("bollingermiddle", bollingerMiddle),
            ("bollingerlower", bollingerLower), ("stochastick", stochasticK), ("stochasticd", stochasticD),
            ("adx14", adx14), ("obv", obv), ("volume", volume), ("volumesma20", volumeSMA20),
            ("resistance", resistance), ("support", support),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }

    /// The snapshot's figures by their JSON keys, as the context shows them to a model.
    public static let figureKeys = [
        "close", "sma20", "ema12", "ema26", "macd", "macdSignal", "macdHistogram", "rsi14", "atr14", "bollingerUpper",
        "bollingerMiddle", "bollingerLower", "stochasticK", "stochasticD", "adx14", "obv", "volume", "volumeSMA20",
        "resistance", "support",
    ]

    /// The names ``figures`` may hold (lowercased keys).
    static let figureNames = Set(figureKeys.map { $0.lowercased() })

    /// The prices the snapshot shows: close, averages, Bollinger bands, support and resistance.
    var priceFigures: [Double] {
        [close, sma20, ema12, ema26, bollingerUpper, bollingerMiddle, bollingerLower, support, resistance]
            .compactMap { $0 }
    }
}
