import Foundation

/// Long, short or stand aside.
public enum TradeAction: String, Sendable, Codable, CaseIterable {
    case long = "LONG"
    case short = "SHORT"
    case hold = "HOLD"
}

/// The side of an order or fill.
public enum OrderSide: String, Sendable, Codable, CaseIterable {
    case buy = "BUY"
    case sell = "SELL"
}

/// The side of a position.
public enum PositionSide: String, Sendable, Codable, CaseIterable {
    case long = "LONG"
    case short = "SHORT"
}

/// An analyst's decision as recorded: what was asked, what came back, and what was decided.
public struct DecisionRecord: Sendable, Hashable, Codable {
    public var id: String
    public var correlationID: String
    public var symbol: String
    public var action: TradeAction
    public var confidence: Double
    public var leverage: Int
    public var entry: Money?
    public var stopLoss: Money?
    public var takeProfit: Money?
    public var reasoning: String
    public var provider: String
    public var model: String
    public var promptVersion: String
    /// The close time of the last candle the inputs saw: what a backtest replays point in time.
    public var candleTime: Date
    public var createdAt: Date
    public var prompt: String?
    public var reply: String?
    /// What the executor did with it, once it has.
    public var outcome: DecisionOutcome?
    /// What asking the models cost, USD, from their token usage and the price table (0 for rules).
    public var llmCost: Double = 0
    /// How the models were asked and answered.
    public var usage: LLMUsage?

    /// A `DecisionRecord` with the fields given.
    public init(
        id: String,
        correlationID: String,
        symbol: String,
        action: TradeAction,
        confidence: Double,
        leverage: Int,
        entry: Money?,
        stopLoss: Money?,
        takeProfit: Money?,
        reasoning: String,
        provider: String,
        model: String,
        promptVersion: String,
        candleTime: Date,
        createdAt: Date,
        prompt: String? = nil,
        reply: String? = nil,
        outcome: DecisionOutcome? = nil
    ) {
        self.id = id
        self.correlationID = correlationID
        self.symbol = symbol
        self.action = action
        self.confidence = confidence
        self.leverage = leverage
        self.entry = entry
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.reasoning = reasoning
        self.provider = provider
        self.model = model
        self.promptVersion = promptVersion
        self.candleTime = candleTime
        self.createdAt = createdAt
        self.prompt = prompt
        self.reply = reply
        self.outcome = outcome
    }
}

/// How a decision's models were asked and answered: tokens, time, the output constraint each reply
/// took, what the grounding gate found, and why any answer was refused.
public struct LLMUsage: Sendable, Hashable, Codable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var latencyMs: Int
    public var attempts: Int
    public var outputModes: [String]
    public var grounding: [String]
    public var refusals: [String]
    /// Set when the decision was made in a replay allowed to ask a model about its own past.
    public var lookAhead: String?
    /// How the context was disguised from the model (`--anonymise`): the mapping.
    public var anonymisation: String?

    /// A `LLMUsage` with the fields given.
    public init(
        inputTokens: Int,
        outputTokens: Int,
        latencyMs: Int,
        attempts: Int,
        outputModes: [String],
        grounding: [String],
        refusals: [String],
        lookAhead: String? = nil,
        anonymisation: String? = nil
    ) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.latencyMs = latencyMs
        self.attempts = attempts
        self.outputModes = outputModes
        self.grounding = grounding
        self.refusals = refusals
        self.lookAhead = lookAhead
        self.anonymisation = anonymisation
    }

    enum CodingKeys: String, CodingKey {
        case attempts, grounding, refusals
        case lookAhead = "lookahead"
        case anonymisation = "anonymised"
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case latencyMs = "latency_ms"
        case outputModes = "output_modes"
    }
}

/// What the models cost over a period, beside how many decisions there were.
public struct LLMSpend: Sendable, Hashable {
    public var cost: Double
    public var decisions: Int
    /// Decisions a model was asked for (not the rules analyst's).
    public var modelDecisions: Int
    /// Decisions made in a replay allowed to ask a model about its own past.
    public var lookAheadDecisions: Int
    /// A `LLMSpend` with the fields given.
    public init(cost: Double, decisions: Int, modelDecisions: Int, lookAheadDecisions: Int = 0) {
        self.cost = cost
        self.decisions = decisions
        self.modelDecisions = modelDecisions
        self.lookAheadDecisions = lookAheadDecisions
    }
}

/// Where an order is in its life. `intent` is committed before anything is sent to a venue.
public enum OrderStatus: String, Sendable, Codable, CaseIterable {
    case intent = "INTENT"
    case sent = "SENT"
    case accepted = "ACCEPTED"
    case partiallyFilled = "PARTIALLY_FILLED"
    case filled = "FILLED"
    case canceled = "CANCELED"
    case rejected = "REJECTED"
    case expired = "EXPIRED"
    /// Sent, but the venue's answer was lost: query by client id before doing anything else.
    case unknown = "UNKNOWN"

    /// No further fills can come.
    public var isFinal: Bool {
        switch self {
        case .filled, .canceled, .rejected, .expired: true
        default: false
        }
    }

    /// The statuses of an order whose outcome is still open: more fills may come.
    public static let inFlight: Set<OrderStatus> = Set(allCases.filter { !$0.isFinal })
}

/// The kind of order.
public enum OrderType: String, Sendable, Codable, CaseIterable {
    case market = "MARKET"
    case limit = "LIMIT"
    case stopMarket = "STOP_MARKET"
    case takeProfitMarket = "TAKE_PROFIT_MARKET"
}

/// Why an order exists.
public enum OrderPurpose: String, Sendable, Codable, CaseIterable {
    case entry = "ENTRY"
    case stopLoss = "STOP_LOSS"
    case takeProfit = "TAKE_PROFIT"
    case exit = "EXIT"
}

/// An order, keyed by its client order id (derived from the decision id).
public struct OrderRecord: Sendable, Hashable, Codable {
    public var clientOrderID: String
    public var decisionID: String
    public var venue: String
    public var symbol: String
    public var side: OrderSide
    public var type: OrderType
    public var purpose: OrderPurpose
    public var quantity: Money
    public var price: Money?
    public var stopPrice: Money?
    public var reduceOnly: Bool
    public var status: OrderStatus
    public var venueOrderID: String?
    public var createdAt: Date
    public var updatedAt: Date

    /// An `OrderRecord` with the fields given.
    public init(
        clientOrderID: String,
        decisionID: String,
        venue: String,
        symbol: String,
        side: OrderSide,
        type: OrderType,
        purpose: OrderPurpose,
        quantity: Money,
        price: Money? = nil,
        stopPrice: Money? = nil,
        reduceOnly: Bool = false,
        status: OrderStatus = .intent,
        venueOrderID: String? = nil,
        createdAt: Date,
        updatedAt: Date? = nil
    ) {
        self.clientOrderID = clientOrderID
        self.decisionID = decisionID
        self.venue = venue
        self.symbol = symbol
        self.side = side
        self.type = type
        self.purpose = purpose
        self.quantity = quantity
        self.price = price
        self.stopPrice = stopPrice
        self.reduceOnly = reduceOnly
        self.status = status
        self.venueOrderID = venueOrderID
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }
}

/// One execution, keyed by the venue's unique trade id.
public struct FillRecord: Sendable, Hashable, Codable {
    public var venue: String
    public var tradeID: String
    public var clientOrderID: String
    public var symbol: String
    public var side: OrderSide
    public var price: Money
    public var quantity: Money
    public var fee: Money
    public var feeAsset: String
    public var time: Date

    /// A `FillRecord` with the fields given.
    public init(
        venue: String,
        tradeID: String,
        clientOrderID: String,
        symbol: String,
        side: OrderSide,
        price: Money,
        quantity: Money,
        fee: Money,
        feeAsset: String,
        time: Date
    ) {
        self.venue = venue
        self.tradeID = tradeID
        self.clientOrderID = clientOrderID
        self.symbol = symbol
        self.side = side
        self.price = price
        self.quantity = quantity
        self.fee = fee
        self.feeAsset = feeAsset
        self.time = time
    }
}

/// An open (or closed) position with its protective levels.
public struct PositionRecord: Sendable, Hashable, Codable {
    /// Where an order stands at the venue.
    public enum Status: String, Sendable, Codable {
        case open = "OPEN"
        case closed = "CLOSED"
    }

    public var id: String
    public var venue: String
    public var symbol: String
    public var side: PositionSide
    public var quantity: Money
    public var entryPrice: Money
    public var leverage: Int
    public var stopLoss: Money?
    public var takeProfit: Money?
    public var decisionID: String
    public var status: Status
    public var openedAt: Date
    public var updatedAt: Date

    /// A `PositionRecord` with the fields given.
    public init(
        id: String,
        venue: String,
        symbol: String,
        side: PositionSide,
        quantity: Money,
        entryPrice: Money,
        leverage: Int,
        stopLoss: Money?,
        takeProfit: Money?,
        decisionID: String,
        status: Status = .open,
        openedAt: Date,
        updatedAt: Date? = nil
    ) {
        self.id = id
        self.venue = venue
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.decisionID = decisionID
        self.status = status
        self.openedAt = openedAt
        self.updatedAt = updatedAt ?? openedAt
    }
}

/// A closed round trip with its realised result.
public struct TradeRecord: Sendable, Hashable, Codable {
    public var id: String
    public var positionID: String
    public var symbol: String
    public var side: PositionSide
    public var entryTime: Date
    public var entryPrice: Money
    public var exitTime: Date
    public var exitPrice: Money
    public var quantity: Money
    public var leverage: Int
    public var stopLoss: Money?
    public var takeProfit: Money?
    /// Realised PnL after fees and funding.
    public var pnl: Money
    public var fees: Money
    public var funding: Money
    public var exitReason: String

    /// A `TradeRecord` with the fields given.
    public init(
        id: String,
        positionID: String,
        symbol: String,
        side: PositionSide,
        entryTime: Date,
        entryPrice: Money,
        exitTime: Date,
        exitPrice: Money,
        quantity: Money,
        leverage: Int,
        stopLoss: Money?,
        takeProfit: Money?,
        pnl: Money,
        fees: Money,
        funding: Money,
        exitReason: String
    ) {
        self.id = id
        self.positionID = positionID
        self.symbol = symbol
        self.side = side
        self.entryTime = entryTime
        self.entryPrice = entryPrice
        self.exitTime = exitTime
        self.exitPrice = exitPrice
        self.quantity = quantity
        self.leverage = leverage
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.pnl = pnl
        self.fees = fees
        self.funding = funding
        self.exitReason = exitReason
    }
}

/// A circuit breaker tripping or being reset.
public struct CircuitBreakerEvent: Sendable, Hashable, Codable {
    public var id: String
    /// `daily_loss`, `consecutive_losses`, `max_drawdown` or `reset`.
    public var kind: String
    public var reason: String
    public var equity: Money
    public var time: Date

    /// A `CircuitBreakerEvent` with the fields given.
    public init(id: String, kind: String, reason: String, equity: Money, time: Date) {
        self.id = id
        self.kind = kind
        self.reason = reason
        self.equity = equity
        self.time = time
    }
}

/// Account equity at one moment.
public struct EquitySnapshot: Sendable, Hashable, Codable {
    public var time: Date
    public var equity: Money
    public var balance: Money
    public var unrealizedPnL: Money
    public var openPositions: Int

    /// A `EquitySnapshot` with the fields given.
    public init(time: Date, equity: Money, balance: Money, unrealizedPnL: Money, openPositions: Int) {
        self.time = time
        self.equity = equity
        self.balance = balance
        self.unrealizedPnL = unrealizedPnL
        self.openPositions = openPositions
    }
}

/// Everything a position's close writes, in one transaction (``TradeStore/recordClose(_:)``).
public struct CloseRecord: Sendable, Hashable {
    public var trade: TradeRecord
    /// The position, its status `closed`.
    public var position: PositionRecord
    /// Orders whose status the close settles (the exit, a stop's market order), with that status.
    public var orders: [OrderUpdate]
    /// Fills that belong to the close and are not recorded yet (the closing fill).
    public var fills: [FillRecord]

    /// A change to a recorded order: its status and the venue's id.
    public struct OrderUpdate: Sendable, Hashable {
        public var clientOrderID: String
        public var status: OrderStatus
        public var venueOrderID: String?
        /// A `OrderUpdate` with the fields given.
        public init(clientOrderID: String, status: OrderStatus, venueOrderID: String? = nil) {
            self.clientOrderID = clientOrderID
            self.status = status
            self.venueOrderID = venueOrderID
        }
    }

    /// A `CloseRecord` with the fields given.
    public init(trade: TradeRecord, position: PositionRecord, orders: [OrderUpdate], fills: [FillRecord]) {
        self.trade = trade
        self.position = position
        self.orders = orders
        self.fills = fills
    }
}

/// Something that could not be processed, kept with why (a venue event the executor could not commit).
public struct DeadLetterRecord: Sendable, Hashable, Codable {
    public var id: String
    /// Who gave up on it, e.g. `executor.venue_events`.
    public var source: String
    /// What it was, as JSON.
    public var body: String
    public var reason: String
    public var time: Date

    /// A `DeadLetterRecord` with the fields given.
    public init(id: String, source: String, body: String, reason: String, time: Date) {
        self.id = id
        self.source = source
        self.body = body
        self.reason = reason
        self.time = time
    }
}

/// An operator's command to an executor, with who sent it, when, and what came of it.
public struct ControlCommandRecord: Sendable, Hashable, Codable {
    /// The request's id (its correlation id on the bus).
    public var id: String
    public var account: String
    public var command: String
    public var argument: String?
    public var by: String
    public var ok: Bool
    public var result: String
    public var time: Date

    /// A `ControlCommandRecord` with the fields given.
    public init(
        id: String,
        account: String,
        command: String,
        argument: String?,
        by: String,
        ok: Bool,
        result: String,
        time: Date
    ) {
        self.id = id
        self.account = account
        self.command = command
        self.argument = argument
        self.by = by
        self.ok = ok
        self.result = result
        self.time = time
    }
}

/// An alert as it went out on the bus, kept for the cockpit's alerts page.
public struct AlertRecord: Sendable, Hashable, Codable {
    /// The alert's envelope id: the same alert is kept once.
    public var id: String
    public var time: Date
    public var alert: AlertPayload

    /// A `AlertRecord` with the fields given.
    public init(id: String, time: Date, alert: AlertPayload) {
        self.id = id
        self.time = time
        self.alert = alert
    }
}

/// A stored result of `tradebus backtest --save`: what the cockpit's Backtests page lists.
public struct BacktestRecord: Sendable, Equatable, Codable {
    public var id: String
    /// When it ran.
    public var time: Date
    public var symbol: String
    public var interval: String
    /// The candle file, as given.
    public var source: String
    public var report: PerformanceReport
    /// The equity curve, thinned to at most 500 points (the first and last kept).
    public var equity: [Double]

    /// A `BacktestRecord` with the fields given; `equity` is thinned.
    public init(
        id: String,
        time: Date,
        symbol: String,
        interval: String,
        source: String,
        report: PerformanceReport,
        equity: [Double]
    ) {
        self.id = id
        self.time = time
        self.symbol = symbol
        self.interval = interval
        self.source = source
        self.report = report
        self.equity = Self.thinned(equity, to: 500)
    }

    /// At most `count` points of `values`, evenly spaced, the first and last included.
    static func thinned(_ values: [Double], to count: Int) -> [Double] {
        guard values.count > count, count >= 2 else { return values }
        let step = Double(values.count - 1) / Double(count - 1)
        return (0..<count).map { values[Int((Double($0) * step).rounded())] }
    }
}

/// A stored `tradebus diff --save`: where a run and the backtest of the same candles and decisions
/// parted ways, as the cockpit's Backtests page shows it.
public struct DivergenceRecord: Sendable, Equatable, Codable {
    public var id: String
    /// When the comparison ran.
    public var time: Date
    public var symbol: String
    public var interval: String
    public var runTrades: Int
    public var backtestTrades: Int
    /// Trades in both and equal in every column.
    public var identical: Int
    /// Trades that differ, are missing from the run, or are extra in it.
    public var differing: Int
    /// The run's PnL minus the backtest's.
    public var pnlDifference: Money
    /// The PnL difference by cause (`fill_price`, `fee`, `signal_latency`, …).
    public var byCause: [String: Money]
    /// The report as `tradebus diff` prints it, trade by trade.
    public var report: String

    /// A `DivergenceRecord` with the fields given.
    public init(
        id: String,
        time: Date,
        symbol: String,
        interval: String,
        runTrades: Int,
        backtestTrades: Int,
        identical: Int,
        differing: Int,
        pnlDifference: Money,
        byCause: [String: Money],
        report: String
    ) {
        self.id = id
        self.time = time
        self.symbol = symbol
        self.interval = interval
        self.runTrades = runTrades
        self.backtestTrades = backtestTrades
        self.identical = identical
        self.differing = differing
        self.pnlDifference = pnlDifference
        self.byCause = byCause
        self.report = report
    }
}
