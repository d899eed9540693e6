import Foundation

/// What an analyst proposes, in the strict schema every analyst answers in:
/// `{action, confidence, leverage, entry, stop_loss, take_profit, reasoning}`.
public struct TradeProposal: Sendable, Hashable, Codable {
    public var action: TradeAction
    public var confidence: Double
    public var leverage: Int
    public var entry: Double?
    public var stopLoss: Double?
    public var takeProfit: Double?
    public var reasoning: String

    /// A `TradeProposal` with the fields given.
    public init(
        action: TradeAction,
        confidence: Double,
        leverage: Int,
        entry: Double?,
        stopLoss: Double?,
        takeProfit: Double?,
        reasoning: String
    ) {
        self.action = action
        self.confidence = confidence
        self.leverage = leverage
        self.entry = entry
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.reasoning = reasoning
    }

    /// Stand aside, saying why.
    public static func hold(_ reasoning: String, confidence: Double = 0) -> TradeProposal {
        TradeProposal(
            action: .hold,
            confidence: confidence,
            leverage: 1,
            entry: nil,
            stopLoss: nil,
            takeProfit: nil,
            reasoning: reasoning
        )
    }

    enum CodingKeys: String, CodingKey {
        case action, confidence, leverage, entry, reasoning
        case stopLoss = "stop_loss"
        case takeProfit = "take_profit"
    }
}

/// `decision.<symbol>`'s payload: the proposal and where it came from. On the wire the proposal's
/// fields sit beside the others, in one flat object.
public struct DecisionPayload: Sendable, Hashable, Codable {
    public var symbol: String
    /// What was decided: the one declaration of the decision's fields.
    public var proposal: TradeProposal
    /// `rules`, `openai`, `anthropic`, or `consensus`.
    public var provider: String
    public var model: String
    public var promptVersion: String
    /// HTTP attempts made (0 for the rules analyst).
    public var attempts: Int
    /// Close time of the last candle the inputs saw (ms since 1970).
    public var candleTime: Int64
    /// The id of the message that asked (a signal, a scan, or a leader's fill).
    public var requestID: String
    /// The size asked for (copy-trading: the leader's position scaled to ours). The risk gateway takes
    /// the smaller of it and the size its own limits allow; nil: the gateway's size.
    public var quantity: Double?
    /// Only closes (copy-trading: a leader's close): the executor closes an open position on the other
    /// side and never opens one; with none open it records the decision as nothing to close.
    public var closeOnly: Bool
    /// Resizes the open position to `scale` times its size (copy-trading: a leader's add or partial
    /// close): above 1 adds on its side, below 1 reduces it; the action names the position's side.
    /// Nil: not a resize. With no position open the executor records it as nothing to resize.
    public var scale: Double?

    /// A `DecisionPayload` with the fields given.
    public init(
        symbol: String,
        proposal: TradeProposal,
        provider: String,
        model: String,
        promptVersion: String,
        attempts: Int,
        candleTime: Int64,
        requestID: String,
        quantity: Double? = nil,
        closeOnly: Bool = false,
        scale: Double? = nil
    ) {
        self.scale = scale
        self.quantity = quantity
        self.closeOnly = closeOnly
        self.symbol = symbol
        self.proposal = proposal
        self.provider = provider
        self.model = model
        self.promptVersion = promptVersion
        self.attempts = attempts
        self.candleTime = candleTime
        self.requestID = requestID
    }

    /// The proposal's fields, read and written through it.
    public var action: TradeAction {
        get { proposal.action }
        set { proposal.action = newValue }
    }
    public var confidence: Double {
        get { proposal.confidence }
        set { proposal.confidence = newValue }
    }
    public var leverage: Int {
        get { proposal.leverage }
        set { proposal.leverage = newValue }
    }
    public var entry: Double? {
        get { proposal.entry }
        set { proposal.entry = newValue }
    }
    public var stopLoss: Double? {
        get { proposal.stopLoss }
        set { proposal.stopLoss = newValue }
    }
    public var takeProfit: Double? {
        get { proposal.takeProfit }
        set { proposal.takeProfit = newValue }
    }
    public var reasoning: String {
        get { proposal.reasoning }
        set { proposal.reasoning = newValue }
    }

    enum CodingKeys: String, CodingKey {
        case symbol, provider, model, attempts, quantity, scale
        case closeOnly = "close_only"
        case promptVersion = "prompt_version"
        case candleTime = "candle_time"
        case requestID = "request_id"
    }

    public init(from decoder: any Decoder) throws {
        proposal = try TradeProposal(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        symbol = try container.decode(String.self, forKey: .symbol)
        provider = try container.decode(String.self, forKey: .provider)
        model = try container.decode(String.self, forKey: .model)
        promptVersion = try container.decode(String.self, forKey: .promptVersion)
        attempts = try container.decode(Int.self, forKey: .attempts)
        candleTime = try container.decode(Int64.self, forKey: .candleTime)
        requestID = try container.decode(String.self, forKey: .requestID)
        quantity = try container.decodeIfPresent(Double.self, forKey: .quantity)
        closeOnly = try container.decodeIfPresent(Bool.self, forKey: .closeOnly) ?? false
        scale = try container.decodeIfPresent(Double.self, forKey: .scale)
    }

    public func encode(to encoder: any Encoder) throws {
        try proposal.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(symbol, forKey: .symbol)
        try container.encode(provider, forKey: .provider)
        try container.encode(model, forKey: .model)
        try container.encode(promptVersion, forKey: .promptVersion)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(candleTime, forKey: .candleTime)
        try container.encode(requestID, forKey: .requestID)
        try container.encodeIfPresent(quantity, forKey: .quantity)
        if closeOnly { try container.encode(true, forKey: .closeOnly) }
        try container.encodeIfPresent(scale, forKey: .scale)
    }
}

extension MessageType {
    public static let decision = "decision"
}

extension DecisionRecord {
    /// The record of a published decision. A number that is not finite (a decision the risk gateway
    /// will refuse) is recorded as missing, never as a made-up value.
    public init(
        id: String,
        correlationID: String,
        payload d: DecisionPayload,
        createdAt: Date,
        prompt: String? = nil,
        reply: String? = nil
    ) {
        self.init(
            id: id,
            correlationID: correlationID,
            symbol: d.symbol,
            action: d.action,
            confidence: d.confidence.isFinite ? d.confidence : 0,
            leverage: d.leverage,
            entry: d.entry.flatMap(Money.init(finite:)),
            stopLoss: d.stopLoss.flatMap(Money.init(finite:)),
            takeProfit: d.takeProfit.flatMap(Money.init(finite:)),
            reasoning: d.reasoning,
            provider: d.provider,
            model: d.model,
            promptVersion: d.promptVersion,
            candleTime: Date(timeIntervalSince1970: Double(d.candleTime) / 1000),
            createdAt: createdAt,
            prompt: prompt,
            reply: reply
        )
    }

    /// The published form of a recorded decision.
    public func payload(requestID: String) -> DecisionPayload {
        let proposal = TradeProposal(
            action: action,
            confidence: confidence,
            leverage: leverage,
            entry: entry?.doubleValue,
            stopLoss: stopLoss?.doubleValue,
            takeProfit: takeProfit?.doubleValue,
            reasoning: reasoning
        )
        return DecisionPayload(
            symbol: symbol,
            proposal: proposal,
            provider: provider,
            model: model,
            promptVersion: promptVersion,
            attempts: 0,
            candleTime: Int64(candleTime.timeIntervalSince1970 * 1000),
            requestID: requestID
        )
    }
}

/// Everything an analyst is told about one symbol at one moment.
public struct AnalysisContext: Sendable, Hashable, Codable {
    /// An open position, as the analyst sees it.
    public struct Position: Sendable, Hashable, Codable {
        public var side: PositionSide
        public var entry: Double
        public var quantity: Double
        public var leverage: Int
        /// A `Position` with the fields given.
        public init(side: PositionSide, entry: Double, quantity: Double, leverage: Int) {
            self.side = side
            self.entry = entry
            self.quantity = quantity
            self.leverage = leverage
        }
    }

    /// A closed trade, as the analyst sees it.
    public struct Trade: Sendable, Hashable, Codable {
        public var side: PositionSide
        public var pnl: Double
        public var exitReason: String
        /// A `Trade` with the fields given.
        public init(side: PositionSide, pnl: Double, exitReason: String) {
            self.side = side
            self.pnl = pnl
            self.exitReason = exitReason
        }
    }

    public var symbol: String
    /// The interval the question is about (the signal's); its snapshot is the primary one.
    public var interval: String
    /// Snapshots by interval (`5m`, `15m`, `1h`, `4h`, ...), each the latest for its timeframe.
    public var timeframes: [String: IndicatorSnapshot]
    /// The funding rate of the latest or next settlement, where known.
    public var fundingRate: Double?
    /// When that settlement is.
    public var nextFunding: Date?
    public var position: Position?
    public var recentTrades: [Trade]
    public var todayPnL: Double

    /// A `AnalysisContext` with the fields given.
    public init(
        symbol: String,
        interval: String,
        timeframes: [String: IndicatorSnapshot],
        fundingRate: Double? = nil,
        nextFunding: Date? = nil,
        position: Position? = nil,
        recentTrades: [Trade] = [],
        todayPnL: Double = 0
    ) {
        self.symbol = symbol
        self.interval = interval
        self.timeframes = timeframes
        self.fundingRate = fundingRate
        self.nextFunding = nextFunding
        self.position = position
        self.recentTrades = recentTrades
        self.todayPnL = todayPnL
    }

    /// The snapshot of the interval asked about.
    public var primary: IndicatorSnapshot? { timeframes[interval] }

    /// The latest price the inputs saw.
    public var price: Double? { primary?.close }

    /// Close time (ms) of the primary snapshot's candle.
    public var candleTime: Int64 {
        guard let primary else { return 0 }
        return primary.openTime + (CandleInterval.milliseconds(interval) ?? 0)
    }

    /// Timeframes other than the primary, shortest first.
    public var higherTimeframes: [(String, IndicatorSnapshot)] {
        timeframes.filter { $0.key != interval }
            .sorted { (CandleInterval.milliseconds($0.key) ?? 0) < (CandleInterval.milliseconds($1.key) ?? 0) }
            .map { ($0.key, $0.value) }
    }
}

extension IndicatorSnapshot {
    /// Whether this snapshot of `interval` is too old to decide on at `now`: its candle closed more
    /// than one interval plus `maxAge` ago.
    public func isStale(interval: String, now: Date, maxAge: TimeInterval) -> Bool {
        let length = Double(CandleInterval.milliseconds(interval) ?? 0) / 1000
        let closed = Double(openTime) / 1000 + length
        return now.timeIntervalSince1970 - closed > length + maxAge
    }
}

extension AnalysisContext {
    /// Why there is nothing to decide on.
    public enum Refusal: Error, Sendable, Hashable {
        /// No snapshot of the interval asked about.
        case missing
        /// The snapshot of the interval asked about is stale.
        case stale
    }

    /// The snapshots an analyst is shown for `interval` at `now`, from the latest of each timeframe
    /// (`latest`): for a signal, its own snapshot, and no other timeframe's that closed after it; the
    /// primary must be fresh, and stale others are left out.
    public static func timeframes(
        latest: [String: IndicatorSnapshot],
        interval: String,
        signalSnapshot: IndicatorSnapshot?,
        now: Date,
        maxSnapshotAge: TimeInterval
    ) -> Result<[String: IndicatorSnapshot], Refusal> {
        var timeframes = latest
        if let signalSnapshot, let length = CandleInterval.milliseconds(interval) {
            // A signal is decided on its own candle, never on a newer one (a backlog, or a slow
            // analyst): the primary is the signal's snapshot, and no other timeframe closes after it.
            timeframes[interval] = signalSnapshot
            let close = signalSnapshot.openTime + length
            for (other, snapshot) in timeframes where other != interval {
                if snapshot.openTime + (CandleInterval.milliseconds(other) ?? 0) > close { timeframes[other] = nil }
            }
        }
        guard let primary = timeframes[interval] else { return .failure(.missing) }
        if primary.isStale(interval: interval, now: now, maxAge: maxSnapshotAge) { return .failure(.stale) }
        for (other, snapshot) in timeframes
        where other != interval && snapshot.isStale(interval: other, now: now, maxAge: maxSnapshotAge) {
            timeframes[other] = nil
        }
        return .success(timeframes)
    }

    /// The context after the last of `candles` (closed candles of `interval`, in order): its snapshot,
    /// and from 1m candles also the 5m, 15m, 1h and 4h ones. No position, trades or funding.
    public static func after(_ candles: [Candle], symbol: String, interval: String) -> AnalysisContext {
        var sets: [String: IndicatorSet] = [:]
        var latest: [String: IndicatorSnapshot] = [:]
        var aggregator = TimeframeAggregator()
        for candle in candles {
            latest[interval] = sets[interval, default: IndicatorSet()].update(candle)
            guard interval == "1m" else { continue }
            for output in aggregator.add(candle) {
                latest[output.interval] = sets[output.interval, default: IndicatorSet()].update(output.candle)
            }
        }
        return AnalysisContext(symbol: symbol, interval: interval, timeframes: latest)
    }
}

extension CandleInterval {
    /// The interval of a series: the most common step between open times, by name; nil if none matches.
    public static func detect(_ candles: [Candle]) -> String? {
        var counts: [Int64: Int] = [:]
        for (a, b) in zip(candles, candles.dropFirst()).prefix(500) { counts[b.openTime - a.openTime, default: 0] += 1 }
        guard let step = counts.max(by: { $0.value < $1.value })?.key else { return nil }
        return ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"].first {
            milliseconds($0) == step
        }
    }
}
