import Foundation

/// The record port: every decision, order, fill, position and trade. Postgres in production, SQLite
/// embedded; one contract suite checks both.
///
/// Writes keyed by an id are idempotent: writing the same id twice leaves one row and returns false
/// the second time. The batch methods take the fast path (COPY, or one transaction of prepared
/// inserts) and skip rows whose id exists.
public protocol TradeStore: Sendable {
    /// Applies the migrations not applied yet. Safe to run from several processes at once.
    func migrate() async throws

    @discardableResult func recordDecision(_ decision: DecisionRecord) async throws -> Bool
    func decision(id: String) async throws -> DecisionRecord?
    /// Decisions for `symbol` whose inputs ended in `range`, oldest first (for replaying them).
    func decisions(symbol: String, candleTimes range: ClosedRange<Date>) async throws -> [DecisionRecord]
    /// Records what the executor did with a decision; a second outcome for the same decision is ignored.
    @discardableResult func recordDecisionOutcome(id: String, _ outcome: DecisionOutcome) async throws -> Bool
    /// The newest decisions first (HOLDs and refusals included), at most `limit`.
    func recentDecisions(limit: Int) async throws -> [DecisionRecord]
    /// What the models of the decisions since `since` (all when nil) cost, and how many decisions there were.
    func llmSpend(since: Date?) async throws -> LLMSpend
    /// Keeps an alert once (by its id).
    @discardableResult func recordAlert(_ alert: AlertRecord) async throws -> Bool
    /// The newest alerts first, at most `limit`.
    func recentAlerts(limit: Int) async throws -> [AlertRecord]
    /// Keeps a backtest's result once (by its id).
    @discardableResult func recordBacktest(_ backtest: BacktestRecord) async throws -> Bool
    /// The newest backtests first, at most `limit`.
    func backtests(limit: Int) async throws -> [BacktestRecord]
    /// Keeps a divergence report once (by its id).
    @discardableResult func recordDivergence(_ divergence: DivergenceRecord) async throws -> Bool
    /// The newest divergence reports first, at most `limit`.
    func divergences(limit: Int) async throws -> [DivergenceRecord]

    /// Records an order before it is sent. False when the client order id exists.
    @discardableResult func recordOrder(_ order: OrderRecord) async throws -> Bool
    func updateOrder(clientOrderID: String, status: OrderStatus, venueOrderID: String?, at time: Date) async throws
    func order(clientOrderID: String) async throws -> OrderRecord?
    func orders(decisionID: String) async throws -> [OrderRecord]
    /// Orders in any of `statuses`, oldest first: what reconciliation looks at.
    func orders(statuses: Set<OrderStatus>) async throws -> [OrderRecord]

    @discardableResult func recordFill(_ fill: FillRecord) async throws -> Bool
    /// Batch path; returns how many rows were new.
    @discardableResult func recordFills(_ fills: [FillRecord]) async throws -> Int
    func fills(clientOrderID: String) async throws -> [FillRecord]
    /// The newest fills of `symbol` at `venue`, newest first: where a live venue resumes after a restart.
    func latestFills(venue: String, symbol: String, limit: Int) async throws -> [FillRecord]

    /// Inserts or replaces the position with this id.
    func savePosition(_ position: PositionRecord) async throws
    func position(id: String) async throws -> PositionRecord?
    func openPositions() async throws -> [PositionRecord]

    @discardableResult func recordTrade(_ trade: TradeRecord) async throws -> Bool
    /// Closes a position in one transaction: the trade, the position (closed), the final status of
    /// its orders and the fills not yet recorded. All of it is written or none; false when the
    /// trade's id exists (the close was recorded before).
    @discardableResult func recordClose(_ close: CloseRecord) async throws -> Bool
    /// Keeps what could not be processed (a venue event, a message), with why; false when its id exists.
    @discardableResult func recordDeadLetter(_ letter: DeadLetterRecord) async throws -> Bool
    func deadLetters(since: Date?) async throws -> [DeadLetterRecord]
    /// Trades that exited at or after `since`, oldest first.
    func trades(since: Date?) async throws -> [TradeRecord]
    /// One trade by its id, nil when there is none.
    func trade(id: String) async throws -> TradeRecord?

    /// Takes or renews the lease `name` for `holder` until `until`: granted when nobody holds it, when
    /// the holder's lease ran out before `now`, or when `holder` already holds it. One holder at a time.
    func acquireLease(_ name: String, holder: String, now: Date, until: Date) async throws -> Bool
    /// Gives the lease up, if `holder` holds it, so a standby need not wait for it to run out.
    func releaseLease(_ name: String, holder: String) async throws
    /// Saves the account's controls (breakers, operator halt, REDUCING) over the last saved.
    func saveAccountControl(account: String, _ control: AccountControl, at time: Date) async throws
    /// The account's controls as last saved, or `nil` if never.
    func accountControl(account: String) async throws -> AccountControl?
    /// Records an operator's command and its result, once per id.
    @discardableResult func recordControlCommand(_ command: ControlCommandRecord) async throws -> Bool
    func controlCommands(since: Date?) async throws -> [ControlCommandRecord]
    @discardableResult func recordCircuitBreakerEvent(_ event: CircuitBreakerEvent) async throws -> Bool
    func circuitBreakerEvents(since: Date?) async throws -> [CircuitBreakerEvent]

    @discardableResult func recordEquitySnapshot(_ snapshot: EquitySnapshot) async throws -> Bool
    /// Batch path; returns how many rows were new.
    @discardableResult func recordEquitySnapshots(_ snapshots: [EquitySnapshot]) async throws -> Int
    func equitySnapshots(since: Date?) async throws -> [EquitySnapshot]

    /// Marks a message as processed by `consumer`; false when it already was. Consumers make their
    /// effect and this mark in one transaction where they can.
    @discardableResult func markProcessed(messageID: String, consumer: String, at time: Date) async throws -> Bool
    func isProcessed(messageID: String, consumer: String) async throws -> Bool
}

/// Why the store failed; `description` says what to do.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of store failure.
    public enum Code: String, Sendable {
        case connection
        case query
        case migration
        case corruptRow
    }

    public var code: Code
    public var detail: String

    /// A `StoreError` with the fields given.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "store \(code.rawValue) error: \(detail)" }
}
