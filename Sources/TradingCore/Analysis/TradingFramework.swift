import Foundation

/// The trading framework every analyst follows: the rules analyst implements it and the LLM prompt
/// states it. Capital preservation comes first: any red flag means HOLD, and so does a confidence below
/// `minConfidence`.
public struct TradingFramework: Sendable, Hashable, Codable {
    /// MIN_AI_CONFIDENCE: no trade below it.
    public var minConfidence = 0.75
    /// MAX_LEVERAGE: the cap on every leverage below.
    public var maxLeverage = 5
    /// MIN_STOP_LOSS_PERCENT and MAX_STOP_LOSS_PERCENT, as fractions of entry (0.07 is 7 %).
    public var minStopFraction = 0.005
    public var maxStopFraction = 0.07
    /// MIN_REWARD_RISK: take-profit distance over stop distance, at least.
    public var minRewardRisk = 1.5
    /// RSI above or below these is a red flag.
    public var rsiOverbought = 80.0
    public var rsiOversold = 20.0
    /// Volume below this fraction of its 20-candle average is "very low": a red flag.
    public var lowVolumeFraction = 0.5
    /// A price in the middle band of the support–resistance range (0.4–0.6 of it by default) is a red flag.
    public var midRangeBand = 0.1
    /// An entry further than this fraction from the latest price is not believed (an LLM's hallucinated price).
    public var maxEntryDeviation = 0.02

    /// The defaults, as documented on each field.
    public init() {}

    /// Leverage for a regime and confidence, capped by `maxLeverage`: trending 5× at 0.90 and above,
    /// 4× at 0.80, else 3×; ranging at most 3× (2× below 0.80); volatile never trades (a red flag).
    public func leverage(regime: MarketRegime, confidence: Double) -> Int {
        let wanted: Int
        switch regime {
        case .trendingUp, .trendingDown: wanted = confidence >= 0.9 ? 5 : confidence >= 0.8 ? 4 : 3
        case .ranging: wanted = confidence >= 0.8 ? 3 : 2
        case .volatile: wanted = 1
        }
        return max(1, min(wanted, maxLeverage))
    }
}

/// Why an answer cannot be used. Such an answer becomes HOLD and an `alert.warning.analyst_invalid`.
public struct InvalidAnswer: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    /// A `InvalidAnswer` with the field given.
    public init(_ description: String) { self.description = description }
}

extension TradeProposal {
    /// The highest leverage any venue offers (Binance USDⓈ-M, 125×): above it a decision is malformed.
    public static let highestVenueLeverage = 125

    /// What makes this proposal no trade at all, whatever the limits: a confidence outside 0...1, a
    /// leverage outside 1...`maxLeverage`, or for a LONG or SHORT a missing, non-positive or non-finite
    /// price, or a stop or target on the wrong side of entry. Nil when its shape is sound.
    public func shapeDefect(maxLeverage: Int) -> InvalidAnswer? {
        guard confidence.isFinite, (0...1).contains(confidence) else {
            return InvalidAnswer("confidence \(confidence) is not within 0...1")
        }
        guard (1...maxLeverage).contains(leverage) else {
            return InvalidAnswer("leverage \(leverage) is not within 1...\(maxLeverage)")
        }
        if action == .hold { return nil }
        guard let entry, let stop = stopLoss, let target = takeProfit else {
            return InvalidAnswer("a \(action.rawValue) needs entry, stop_loss and take_profit")
        }
        for (name, value) in [("entry", entry), ("stop_loss", stop), ("take_profit", target)]
        where !(value.isFinite && value > 0) {
            return InvalidAnswer("\(name) \(value) is not a positive finite price")
        }
        let long = action == .long
        if long ? !(stop < entry && entry < target) : !(target < entry && entry < stop) {
            return InvalidAnswer(
                "\(action.rawValue) needs \(long ? "stop < entry < take_profit" : "take_profit < entry < stop"); got stop \(stop), entry \(entry), take_profit \(target)"
            )
        }
        return nil
    }
}

extension TradingFramework {
    /// Checks a proposal against the framework: finite numbers in bounds, the stop on the right side of
    /// entry at a distance within the stop limits, reward to risk, leverage, and an entry near the
    /// price. A HOLD is always acceptable. A trade below `minConfidence` becomes a HOLD (not an error).
    public func check(_ proposal: TradeProposal, price: Double) -> Result<TradeProposal, InvalidAnswer> {
        if let defect = proposal.shapeDefect(maxLeverage: maxLeverage) { return .failure(defect) }
        guard proposal.reasoning.count <= 4_000 else {
            return .failure(InvalidAnswer("reasoning is longer than 4,000 characters"))
        }
        if proposal.action == .hold { return .success(proposal) }
        guard let entry = proposal.entry, let stop = proposal.stopLoss, let target = proposal.takeProfit else {
            return .failure(InvalidAnswer("a \(proposal.action.rawValue) needs entry, stop_loss and take_profit"))
        }
        guard price > 0, abs(entry - price) / price <= maxEntryDeviation else {
            return .failure(
                InvalidAnswer("entry \(entry) is more than \(maxEntryDeviation * 100)% from the price \(price)")
            )
        }
        let risk = abs(entry - stop)
        let reward = abs(target - entry)
        let stopFraction = risk / entry
        guard stopFraction >= minStopFraction - 1e-12, stopFraction <= maxStopFraction + 1e-12 else {
            return .failure(
                InvalidAnswer(
                    "stop distance \(stopFraction) is outside \(minStopFraction)...\(maxStopFraction) of entry"
                )
            )
        }
        guard reward / risk >= minRewardRisk - 1e-12 else {
            return .failure(InvalidAnswer("reward to risk \(reward / risk) is below \(minRewardRisk)"))
        }
        if proposal.confidence < minConfidence {
            return .success(
                .hold(
                    "confidence \(proposal.confidence) is below \(minConfidence): \(proposal.reasoning)",
                    confidence: proposal.confidence
                )
            )
        }
        return .success(proposal)
    }
}

/// The deterministic, offline analyst: the framework as rules. Used by tests and backtests, and as the
/// fallback when every LLM fails.
///
/// The rule, on the primary snapshot (the signal's interval):
/// 1. Direction: LONG when EMA12 > EMA26 and close > SMA20; SHORT when EMA12 < EMA26 and close < SMA20;
///    otherwise HOLD.
/// 2. Red flags force HOLD: RSI above 80 or below 20; volume under half its 20-candle average; price in
///    the middle of the support–resistance range (0.4–0.6 of it); MACD divergence (the histogram against
///    the direction); a volatile regime; a higher timeframe whose EMA12/EMA26 trend opposes the direction.
/// 3. Confidence: 0.75, +0.05 when the regime trends the same way, +0.03 per higher timeframe that
///    agrees, +0.03 when ADX ≥ 30; at most 0.95.
/// 4. Leverage by regime (``TradingFramework/leverage(regime:confidence:)``).
/// 5. Stop beyond the swing level: half an ATR past support (LONG) or resistance (SHORT), or 1.5 ATR
///    from entry when there is no level on that side; then kept within the stop limits. Take-profit at
///    twice the risk (or the minimum reward to risk, if higher).
public struct RulesAnalyst: Sendable {
    public static let name = "rules"
    public static let model = "rules-v1"
    /// The version of what the rules analyst answers to: the framework it implements.
    public static let promptVersion = "framework-v1"
    public var framework: TradingFramework

    /// Whether proposals say why in words. The backtester, which keeps no decision text, turns it off
    /// and saves writing it; what is decided does not change.
    public var explains: Bool

    /// A `RulesAnalyst` with the fields given.
    public init(framework: TradingFramework, explains: Bool = true) {
        self.framework = framework
        self.explains = explains
    }

    /// HOLD, with the reason when the analyst explains.
    private func hold(_ reason: @autoclosure () -> String, confidence: Double = 0) -> TradeProposal {
        .hold(explains ? reason() : "", confidence: confidence)
    }

    /// The rules analyst's decision on `context`.
    public func decide(_ context: AnalysisContext) -> TradeProposal {
        guard let s = context.primary, let rsi = s.rsi14, let macd = s.macdHistogram, let atr = s.atr14,
            let fast = s.ema12,
            let slow = s.ema26, let sma = s.sma20, let regime = s.regime, let averageVolume = s.volumeSMA20
        else {
            return hold("indicators still warming up on \(context.interval)")
        }
        let price = s.close
        let direction: TradeAction
        if fast > slow && price > sma {
            direction = .long
        } else if fast < slow && price < sma {
            direction = .short
        } else {
            return hold("no trend on \(context.interval): EMA12/EMA26 and SMA20 disagree")
        }
        if rsi > framework.rsiOverbought {
            return hold("red flag: RSI \(rounded(rsi)) is above \(framework.rsiOverbought)")
        }
        if rsi < framework.rsiOversold {
            return hold("red flag: RSI \(rounded(rsi)) is below \(framework.rsiOversold)")
        }
        if s.volume < framework.lowVolumeFraction * averageVolume {
            return hold("red flag: volume is under \(framework.lowVolumeFraction) of its average")
        }
        if let support = s.support, let resistance = s.resistance, support < price, price < resistance {
            let position = (price - support) / (resistance - support)
            if abs(position - 0.5) <= framework.midRangeBand {
                return hold("red flag: price is midway between support \(support) and resistance \(resistance)")
            }
        }
        if (direction == .long && macd < 0) || (direction == .short && macd > 0) {
            return hold(
                "red flag: MACD diverges from the \(direction == .long ? "up" : "down") move (histogram \(rounded(macd)))"
            )
        }
        if regime == .volatile { return hold("red flag: volatile regime") }
        var agreeing = 0
        for (interval, higher) in context.higherTimeframes {
            guard let f = higher.ema12, let w = higher.ema26 else { continue }
            if (direction == .long && f < w) || (direction == .short && f > w) {
                return hold("red flag: \(interval) trends the other way")
            }
            agreeing += 1
        }
        var confidence = 0.75
        if (direction == .long && regime == .trendingUp) || (direction == .short && regime == .trendingDown) {
            confidence += 0.05
        }
        confidence += 0.03 * Double(min(agreeing, 3))
        if let adx = s.adx14, adx >= 30 { confidence += 0.03 }
        confidence = min(confidence, 0.95)
        if confidence < framework.minConfidence {
            return hold("confidence \(rounded(confidence)) is below \(framework.minConfidence)", confidence: confidence)
        }

        let long = direction == .long
        var stop: Double
        if long, let support = s.support, support < price {
            stop = support - 0.5 * atr
        } else if !long, let resistance = s.resistance, resistance > price {
            stop = resistance + 0.5 * atr
        } else {
            stop = long ? price - 1.5 * atr : price + 1.5 * atr
        }
        var risk = abs(price - stop)
        risk = min(max(risk, framework.minStopFraction * price), framework.maxStopFraction * price)
        stop = long ? price - risk : price + risk
        let reward = risk * max(2, framework.minRewardRisk)
        let target = long ? price + reward : price - reward
        let leverage = framework.leverage(regime: regime, confidence: confidence)
        let reason =
            !explains
            ? ""
            : "\(long ? "up" : "down")trend on \(context.interval) (\(regime.rawValue)), RSI \(rounded(rsi)), \(agreeing) higher timeframe(s) agree; stop beyond the swing level"
        return TradeProposal(
            action: direction,
            confidence: confidence,
            leverage: leverage,
            entry: price,
            stopLoss: stop,
            takeProfit: target,
            reasoning: reason
        )
    }

    /// ``decide(_:)`` held to the framework (``TradingFramework/check(_:price:)``) at the context's price:
    /// what the rules analyst answers, a HOLD saying why when its own proposal fails the check.
    public func checkedDecision(_ context: AnalysisContext) -> TradeProposal {
        switch framework.check(decide(context), price: context.price ?? 0) {
        case .success(let checked): checked
        case .failure(let reason): .hold("rules analyst's proposal failed the framework check: \(reason)")
        }
    }

    private func rounded(_ value: Double) -> String { String(format: "%.2f", value) }
}
