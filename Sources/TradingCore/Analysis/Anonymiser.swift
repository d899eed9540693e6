import Foundation

/// What a model is shown instead of the market it might remember: the symbol hidden, the dates moved by
/// whole weeks (the weekday and time of day kept), and every price rescaled so the latest close is 100.
/// Oscillators (RSI, stochastic, ADX), volumes and USD figures are left as they are. The mapping is
/// kept so the answer's prices come back in the market's units, and it is recorded with the decision.
public struct Anonymisation: Sendable, Hashable, Codable {
    public static let alias = "ASSET"
    /// Where the dates are moved to: the week of 2100-01-04.
    static let target: Int64 = 4_102_704_000

    public var symbol: String
    /// Seconds added to every time shown.
    public var shiftSeconds: Int64
    /// Every price shown is the market's times this.
    public var scale: Double

    /// The mapping for `context`: its latest close becomes 100.
    public init(for context: AnalysisContext) {
        symbol = context.symbol
        let seconds = context.candleTime / 1000
        let week: Int64 = 7 * 86_400
        shiftSeconds = ((Self.target - seconds) / week) * week
        let close = context.price ?? 0
        scale = close > 0 && close.isFinite ? 100 / close : 1
    }

    /// `context` as the model is shown it.
    public func apply(_ context: AnalysisContext) -> AnalysisContext {
        var shown = context
        shown.symbol = Self.alias
        shown.timeframes = context.timeframes.mapValues { snapshot in
            var s = snapshot
            s.openTime = snapshot.openTime + shiftSeconds * 1000
            s.close *= scale
            for path in [
                \IndicatorSnapshot.sma20, \.ema12, \.ema26, \.macd, \.macdSignal, \.macdHistogram, \.atr14,
                \.bollingerUpper, \.bollingerMiddle, \.bollingerLower, \.resistance, \.support,
            ] {
                s[keyPath: path] = snapshot[keyPath: path].map { $0 * scale }
            }
            return s
        }
        shown.nextFunding = context.nextFunding?.addingTimeInterval(Double(shiftSeconds))
        shown.position?.entry *= scale
        return shown
    }

    /// A proposal about the shown context, in the market's prices.
    public func restore(_ proposal: TradeProposal) -> TradeProposal {
        var real = proposal
        real.entry = proposal.entry.map { $0 / scale }
        real.stopLoss = proposal.stopLoss.map { $0 / scale }
        real.takeProfit = proposal.takeProfit.map { $0 / scale }
        return real
    }

    /// The mapping in words, for the record.
    public var description: String {
        "\(symbol) shown as \(Self.alias), times +\(shiftSeconds / 86_400) days, prices ×\(String(format: "%.6g", scale))"
    }
}
