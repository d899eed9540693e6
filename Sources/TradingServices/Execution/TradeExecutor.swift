import Foundation
import Logging
import Metrics
import TradingCore

/// The executor's logic: decisions through the risk gateway to the venue, exactly one order per
/// decision, and everything recorded.
///
/// - **Intent first.** The order row (client id derived from the decision id, status `INTENT`) is
///   committed before anything is sent; a decision that already has an order makes none.
/// - **Unknown outcomes** (a timeout, a 5xx) mark the order `UNKNOWN` and query it by client id; it is
///   never sent again blindly.
/// - **Fills** are keyed by the venue's trade id; a position is the sum of its unique fills. Venue
///   events are acknowledged only after they are committed, so a crash replays them.
/// - **Start:** ``reconcile()`` brings the store to the venue's truth (orders by client id, positions,
///   missing stops) before any new order; until it succeeds, decisions wait.
/// - **Store down:** a new order is refused (its intent cannot be committed); stops and exits live at
///   the venue and keep working.
public actor TradeExecutor {
    /// The executor's risk limits, stop policy, account and timings.
    public struct Settings: Sendable {
        public var limits = RiskLimits()
        public var halts = TradingHalts.Limits()
        public var policy = StopPolicy()
        /// An opposing decision closes the open position (and opens nothing).
        public var closeOnOpposite = true
        /// The venue whose latest price (`price:<venue>:<symbol>` in the hot cache) is the reference.
        public var referenceVenue: String?
        /// How old the reference price may be.
        public var referenceMaxAge: TimeInterval = 60
        public var account = "default"
        /// Trades a shadow analyst's decisions (`shadow.decision.#`) on paper, never the live ones.
        public var shadow = false
        /// The execution kernel's timeouts (STOP_PROTECTION_TIMEOUT_SECONDS, ORDER_UNKNOWN_TIMEOUT_SECONDS).
        public var kernel = ExecutionKernel.Settings()
        /// What reconciliation does with a position at the venue that the store does not know.
        public var adoptPolicy = AdoptPolicy.protect
        /// The defaults, as documented on each field.
        public init() {}
    }

    let venue: any Venue
    let store: any TradeStore
    let bus: any MessageBus
    let cache: any HotCache
    let settings: Settings
    let gateway: RiskGateway
    let source: String
    let logger: Logger
    let now: @Sendable () -> Date
    /// The account's breakers, operator halt and REDUCING mode; restored from the store at the first
    /// reconciliation and saved on every change.
    private var control = AccountControl()
    private var controlRestored = false
    private var controlChanged = false
    /// Set while closes fetched from the venue are being counted by the breakers: an entry's check
    /// waits for it, so a trip takes effect in the same step as the close that caused it.
    private var countingCloses = false
    private var waitingForBreakers: [CheckedContinuation<Void, Never>] = []
    /// Closes the breakers have counted that the venue has yet to see acknowledged (a close that comes
    /// again after a failed commit is counted once).
    private var countedCloses: Set<String> = []
    /// Breaker events not yet recorded and announced (the store or the bus was down); tried again each pass.
    private var unrecorded: [(event: CircuitBreakerEvent, alert: AlertPayload)] = []
    /// The life of orders and their positions' stops (``ExecutionKernel``).
    private var kernel: ExecutionKernel
    /// Each position's stop as its policy moves it (trailing, break-even, ATR).
    private var managedStops: [String: ManagedStop] = [:]
    /// Why the kernel closed a position (a flatten's reason), for the trade the venue's close records.
    private var closeReasons: [String: String] = [:]
    public private(set) var reconciled = false
    /// normal, reducing or halted.
    public var mode: AccountControl.Mode { control.mode }
    /// What the last reconciliation found.
    public private(set) var lastReconciliation: ReconciliationReport?
    /// How many passes in a row each reconciliation finding has been seen.
    private var findingPasses: [String: Int] = [:]
    /// Unknown positions left alone under ADOPT_POLICY=ignore (alerted once).
    private var ignored: Set<String> = []
    private var pendingAlerts: [(AlertSeverity, String, String)] = []
    /// The end of the last venue ban alerted.
    private var announcedBan: Date?
    /// Unresolved mismatches an operator acknowledged by turning REDUCING off.
    private var acknowledged: Set<String> = []
    private var processingEvents = false
    /// Venue events that failed to commit, and how often.
    private var failures: [String: Int] = [:]
    private var resumed = false
    /// This executor's part in a lockstep replay; nil live.
    let lockstep: LockstepProgress?
    /// The close of the last candle observed, by symbol: in a lockstep replay a decision waits for its
    /// own candle to reach the venue first, so it trades at that candle's price.
    private var observedThrough: [String: Date] = [:]

    /// The executor's name in watermarks and work keys.
    public static let worker = "executor"

    /// An executor for one account on `venue`, recording in `store` and publishing on `bus`.
    public init(
        venue: any Venue,
        store: any TradeStore,
        bus: any MessageBus,
        cache: any HotCache,
        settings: Settings,
        source: String,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        lockstep: LockstepProgress? = nil
    ) {
        self.lockstep = lockstep
        self.venue = venue
        self.store = store
        self.bus = bus
        self.cache = cache
        self.settings = settings
        self.gateway = RiskGateway(limits: settings.limits)
        self.source = source
        self.logger = logger
        self.now = now
        self.kernel = ExecutionKernel(
            settings: settings.kernel,
            epoch: String(Int(now().timeIntervalSince1970), radix: 36)
        )
    }

    /// The executor's decision queue: one active consumer per account, the others stand by.
    public static func decisionQueue(account: String, shadow: Bool = false) -> QueueSpec {
        QueueSpec(
            name: "executor.\(account).decisions",
            bindings: [shadow ? "shadow.decision.#" : "decision.#"],
            singleActiveConsumer: true
        )
    }

    /// Candles for the paper venue's prices and the trailing stops: those of `priceVenue` (all venues for `*`).
    public static func candleQueue(account: String, priceVenue: String = "*") -> QueueSpec {
        QueueSpec(
            name: priceVenue == "*" ? "executor.\(account).candles" : "executor.\(account).candles.\(priceVenue)",
            bindings: ["md.candle.\(priceVenue).#"],
            singleActiveConsumer: true
        )
    }

    /// `ADOPT_POLICY`: what to do with a position at the venue that the executor did not open.
    public enum AdoptPolicy: String, Sendable, CaseIterable {
        /// Record it as adopted and place a stop `MAX_STOP_LOSS_PERCENT` from its entry.
        case protect
        /// Close it at market.
        case flatten
        /// Leave it alone (an alert says so).
        case ignore
    }

    /// What became of one decision.
    public enum Outcome: Sendable, Equatable {
        case ordered(clientOrderID: String)
        case rejected(RiskRejection.Code)
        case duplicate
        case hold
        case closing(clientOrderID: String)
    }

    // MARK: Decisions

    /// Handles a `decision.*` message: through the risk gateway to one order, recorded before it goes.
    public func handleDecision(_ delivery: Delivery) async throws {
        let envelope = try delivery.envelope(
            DecisionPayload.self,
            expectedType: MessageType.decision,
            what: "a decision"
        )
        // A shape no analyst sends (a forged or corrupted message): dead-lettered with the reason. A
        // sound decision over the account's limits goes on, to be refused by the gateway and recorded.
        if let defect = envelope.payload.proposal.shapeDefect(maxLeverage: TradeProposal.highestVenueLeverage) {
            throw MessageRejected("not a decision an analyst makes: \(defect)")
        }
        if let lockstep {
            lockstep.begin(envelope.time)
            await waitForCandle(symbol: envelope.payload.symbol, closedAt: envelope.time)
        }
        _ = try await execute(
            OrderIntent(decisionID: envelope.id, decision: envelope.payload, decidedAt: envelope.time),
            correlationID: envelope.correlationID
        )
        try await lockstep?.finished(
            symbol: envelope.payload.symbol,
            candleTime: envelope.time,
            messageID: envelope.id,
            emitted: []
        )
    }

    /// Waits (a lockstep replay) until the candle closing at `close` has reached the venue: the decision
    /// and its candle come on different queues. After 30 s it goes on, and says so.
    func waitForCandle(symbol: String, closedAt close: Date) async {
        let patience = ContinuousClock.now + .seconds(30)
        while (observedThrough[symbol] ?? .distantPast) < close {
            guard ContinuousClock.now < patience, (try? await Task.sleep(for: .milliseconds(2))) != nil else {
                logger.warning(
                    "a decision's candle never reached the executor; deciding on the last one seen",
                    metadata: ["symbol": "\(symbol)", "candle_close": "\(close)"]
                )
                return
            }
        }
    }

    /// One decision, start to end (the backtester calls this directly).
    @discardableResult
    public func execute(_ intent: OrderIntent, correlationID: String) async throws -> Outcome {
        guard reconciled else { throw VenueError(.unreachable, "not reconciled with the venue yet; no new orders") }
        let d = intent.decision
        let entryID = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        if let existing = try await store.order(clientOrderID: entryID) {
            try await resume(existing, intent: intent, correlationID: correlationID)
            return .duplicate
        }
        if try await store.isProcessed(messageID: intent.decisionID, consumer: "executor") { return .duplicate }
        // Every decision is in the record, whoever made it (the analyst may use another store).
        try await store.recordDecision(
            DecisionRecord(id: intent.decisionID, correlationID: correlationID, payload: d, createdAt: now())
        )
        if d.action == .hold {
            try await store.recordDecisionOutcome(id: intent.decisionID, DecisionOutcome(status: .hold, time: now()))
            try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
            return .hold
        }
        var positions = try await venuePositionsInStore()
        var inFlight = try await ordersInFlight()
        // A resize waits on any order of ours on the symbol; a close only on an entry with nothing open yet.
        func waitsOnAFill() -> Bool {
            d.scale != nil
                ? inFlight.contains { $0.symbol == d.symbol }
                : d.closeOnly && !positions.contains { $0.symbol == d.symbol }
                    && inFlight.contains { $0.symbol == d.symbol && $0.purpose == .entry }
        }
        if waitsOnAFill() {
            // An order on its way: what there is to close or resize is in its fill. Read it first; still
            // unknown, the decision waits for a redelivery rather than acting on a size about to change.
            try await processVenueEvents()
            positions = try await venuePositionsInStore()
            inFlight = try await ordersInFlight()
            if waitsOnAFill(), let order = inFlight.first(where: { $0.symbol == d.symbol }) {
                throw VenueError(
                    .unreachable,
                    "the order \(order.clientOrderID) on \(d.symbol) is still in flight; the \(d.scale != nil ? "resize" : "close") waits for its fill"
                )
            }
        }
        if d.scale != nil {
            return try await resize(
                intent,
                open: positions.first { $0.symbol == d.symbol },
                correlationID: correlationID
            )
        }
        let open = positions.first(where: { $0.symbol == d.symbol })
        if d.closeOnly, open.map({ ($0.side == .long) == (d.action == .long) }) ?? true {
            // A close with nothing on the other side to close: it never opens one.
            let reason =
                open == nil
                ? "nothing to close: no \(d.symbol) position is open"
                : "nothing to close: the open \(d.symbol) position is on the \(d.action.rawValue) side already"
            try await store.recordDecisionOutcome(
                id: intent.decisionID,
                DecisionOutcome(status: .hold, reason: reason, time: now())
            )
            try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
            return .hold
        }
        if let open, settings.closeOnOpposite || d.closeOnly, (open.side == .long) != (d.action == .long) {
            // An exit moves money too: it passes the gateway's checks for exits first.
            if let rejection = gateway.checkExit(intent, now: now()) {
                return try await reject(intent, rejection, correlationID: correlationID)
            }
            if let exit = inFlight.first(where: { $0.symbol == d.symbol && $0.purpose == .exit }) {
                // Already closing: a second exit would find nothing to reduce.
                try await store.recordDecisionOutcome(
                    id: intent.decisionID,
                    DecisionOutcome(status: .closing, reason: "already closing with \(exit.clientOrderID)", time: now())
                )
                try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
                return .closing(clientOrderID: exit.clientOrderID)
            }
            return try await close(open, decisionID: intent.decisionID, correlationID: correlationID)
        }
        let filters: ExchangeFilters
        let price: Money
        switch try await tradable(d.symbol) {
        case .failure(let refusal): return try await reject(intent, refusal, correlationID: correlationID)
        case .success(let quote): (filters, price) = quote
        }
        // An entry on its way counts as the position it will be: no second one on the same symbol.
        let venueSymbols = Set(try await venue.positions().map(\.symbol))
        let entering = inFlight.filter { $0.purpose == .entry }.map(\.symbol)
        let (market, view) = try await views(
            d.symbol,
            price: price,
            filters: filters,
            openSymbols: venueSymbols.union(positions.map(\.symbol)).union(entering)
        )
        switch gateway.check(intent, market: market, account: view) {
        case .failure(let rejection):
            return try await reject(intent, rejection, correlationID: correlationID)
        case .success(let order):
            let record = OrderRecord(
                clientOrderID: entryID,
                decisionID: intent.decisionID,
                venue: venue.name,
                symbol: d.symbol,
                side: order.side == .long ? .buy : .sell,
                type: .market,
                purpose: .entry,
                quantity: order.quantity,
                price: order.entryPrice,
                stopPrice: order.stopLoss,
                createdAt: now()
            )
            // the intent is committed before anything is sent
            guard try await store.recordOrder(record) else { return .duplicate }
            try await store.recordDecisionOutcome(
                id: intent.decisionID,
                DecisionOutcome(
                    status: .ordered,
                    checks: gateway.report(order, intent: intent, market: market, account: view),
                    time: now()
                )
            )
            // Once it fills, the kernel holds its stop and target to the gateway's rules against the real fill.
            let check = FillCheck(limits: settings.limits, equity: view.equity, filters: filters)
            try await send(
                record,
                leverage: order.leverage,
                target: order.takeProfit,
                check: check,
                correlationID: correlationID
            )
            try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
            return .ordered(clientOrderID: entryID)
        }
    }

    struct Quote {
        var price: Money?
        var filters: ExchangeFilters
    }

    /// This venue's orders whose outcome is open. An intent older than a decision may be is left out:
    /// it will never be sent (its decision, redelivered, expires it).
    func ordersInFlight() async throws -> [OrderRecord] {
        try await store.orders(statuses: OrderStatus.inFlight).filter {
            $0.venue == venue.name
                && ($0.status != .intent || now().timeIntervalSince($0.createdAt) <= settings.limits.maxDecisionAge)
        }
    }

    /// The market and the account as the gateway judges a decision on them, the breakers rolled to the
    /// day and every close fetched so far counted in them: from the return to the check nothing waits,
    /// so a close cannot slip in between the breakers and the decision.
    func views(
        _ symbol: String,
        price: Money,
        filters: ExchangeFilters,
        openSymbols: Set<String>
    ) async throws -> (MarketView, AccountView) {
        let account = try await venue.account()
        let market = MarketView(
            venuePrice: price,
            referencePrice: await referencePrice(symbol),
            filters: filters,
            now: now(),
            marginTiers: await marginTiers(symbol)
        )
        try await rollBreakers(equity: account.equity)
        await breakersCaughtUp()
        let view = AccountView(
            equity: account.equity,
            availableMargin: account.availableMargin,
            openSymbols: openSymbols,
            halt: control.entryBlock
        )
        return (market, view)
    }

    /// The symbol's filters and price at the venue; a refusal (not a failure to retry) when the venue
    /// does not trade it or has no price for it yet. Other failures are thrown: the decision is retried.
    func tradable(_ symbol: String) async throws -> Result<(ExchangeFilters, Money), RiskRejection> {
        switch await venueQuote(symbol) {
        case .success(let quote):
            guard let price = quote.price else {
                return .failure(RiskRejection(.invalidDecision, "the venue has no price for \(symbol) yet"))
            }
            return .success((quote.filters, price))
        case .failure(let error) where error.code == .rejected:
            return .failure(RiskRejection(.invalidDecision, "the venue refuses \(symbol): \(error.message)"))
        case .failure(let error): throw error
        }
    }

    /// The symbol's price and filters at the venue.
    func venueQuote(_ symbol: String) async -> Result<Quote, VenueError> {
        do {
            return .success(
                Quote(price: try await venue.price(symbol: symbol), filters: try await venue.filters(symbol: symbol))
            )
        } catch {
            return .failure(error)
        }
    }

    /// A decision seen before: finish what a crash interrupted, never send twice.
    func resume(_ order: OrderRecord, intent: OrderIntent, correlationID: String) async throws {
        switch order.status {
        case .intent:
            if let known = try await venue.order(clientOrderID: order.clientOrderID, symbol: order.symbol) {
                try await store.updateOrder(
                    clientOrderID: order.clientOrderID,
                    status: known.status,
                    venueOrderID: known.venueOrderID,
                    at: now()
                )
            } else if now().timeIntervalSince(intent.decidedAt) <= settings.limits.maxDecisionAge {
                // Committed but never sent, and still fresh: send it now, under the same client id.
                try await send(order, leverage: intent.decision.leverage, correlationID: correlationID)
            } else {
                try await store.updateOrder(
                    clientOrderID: order.clientOrderID,
                    status: .expired,
                    venueOrderID: nil,
                    at: now()
                )
            }
        case .sent, .unknown:
            try await settleUnknown(order)
        default:
            break
        }
        try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
    }

    func send(
        _ order: OrderRecord,
        leverage: Int,
        target: Money? = nil,
        check: FillCheck? = nil,
        correlationID: String
    ) async throws {
        let request = ExecutionKernel.OrderRequest(
            clientOrderID: order.clientOrderID,
            decisionID: order.decisionID,
            symbol: order.symbol,
            side: order.side,
            quantity: order.quantity,
            leverage: leverage,
            purpose: order.purpose,
            stopLoss: order.stopPrice,
            takeProfit: target,
            check: check
        )
        // The kernel sends each client id once.
        guard kernel.handle(.submit(request), now: now()).contains(.sendOrder(request)) else { return }
        try await store.updateOrder(clientOrderID: order.clientOrderID, status: .sent, venueOrderID: nil, at: now())
        do {
            let placed = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: order.clientOrderID,
                    symbol: order.symbol,
                    side: order.side,
                    quantity: order.quantity,
                    leverage: leverage,
                    reduceOnly: order.reduceOnly
                )
            )
            await drive(.orderStatus(clientOrderID: order.clientOrderID, status: placed.status))
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: placed.status,
                venueOrderID: placed.venueOrderID,
                at: now()
            )
            try await publishOrder(order, status: placed.status, reason: nil, correlationID: correlationID)
            Counter(label: "tradebus_orders_total", dimensions: [("status", placed.status.rawValue.lowercased())])
                .increment()
            if order.purpose == .entry, lockstep == nil,
                let decision = try? await store.decision(id: order.decisionID)
            {
                PipelineLatency.record("order", candleClose: decision.candleTime)
            }
        } catch let error as VenueError where error.code == .rejected {
            await drive(.orderStatus(clientOrderID: order.clientOrderID, status: .rejected))
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: .rejected,
                venueOrderID: nil,
                at: now()
            )
            try await publishOrder(order, status: .rejected, reason: error.message, correlationID: correlationID)
        } catch let error as VenueError {
            // The order may or may not exist: find out by client id; never resend blindly.
            logger.warning(
                "order outcome unknown; querying it",
                metadata: ["client_order_id": "\(order.clientOrderID)", "error": "\(error)"]
            )
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: .unknown,
                venueOrderID: nil,
                at: now()
            )
            var unknown = order
            unknown.status = .unknown
            try await settleUnknown(unknown)
        }
    }

    /// Asks the venue what became of an order whose answer was lost.
    func settleUnknown(_ order: OrderRecord) async throws {
        let known: VenueOrder?
        do {
            known = try await venue.order(clientOrderID: order.clientOrderID, symbol: order.symbol)
        } catch {
            logger.warning(
                "venue unreachable while settling an unknown order; will retry",
                metadata: ["client_order_id": "\(order.clientOrderID)"]
            )
            throw error
        }
        if let known {
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: known.status,
                venueOrderID: known.venueOrderID,
                at: now()
            )
        } else {
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: .rejected,
                venueOrderID: nil,
                at: now()
            )
            logger.warning(
                "the venue never received the order",
                metadata: ["client_order_id": "\(order.clientOrderID)"]
            )
        }
    }

    func close(_ position: PositionRecord, decisionID: String, correlationID: String) async throws -> Outcome {
        let id = ClientOrderID.make(decisionID: decisionID, purpose: .exit)
        let record = OrderRecord(
            clientOrderID: id,
            decisionID: decisionID,
            venue: venue.name,
            symbol: position.symbol,
            side: position.side == .long ? .sell : .buy,
            type: .market,
            purpose: .exit,
            quantity: position.quantity,
            reduceOnly: true,
            createdAt: now()
        )
        guard try await store.recordOrder(record) else { return .duplicate }
        try await store.recordDecisionOutcome(
            id: decisionID,
            DecisionOutcome(
                status: .closing,
                reason: "closes the \(position.side.rawValue) \(position.symbol)",
                time: now()
            )
        )
        try await send(record, leverage: position.leverage, correlationID: correlationID)
        try await store.markProcessed(messageID: decisionID, consumer: "executor", at: now())
        return .closing(clientOrderID: id)
    }

    /// A resize (``DecisionPayload/scale``) of the open position: an add on its side, or a reduce-only
    /// part of it, as the gateway allows (``RiskGateway/checkResize(_:held:market:account:)``). The
    /// kernel resizes the stop once the fill lands (make before break); nothing open, it is recorded as
    /// nothing to resize.
    func resize(_ intent: OrderIntent, open: PositionRecord?, correlationID: String) async throws -> Outcome {
        let d = intent.decision
        func hold(_ reason: String) async throws -> Outcome {
            try await store.recordDecisionOutcome(
                id: intent.decisionID,
                DecisionOutcome(status: .hold, reason: reason, time: now())
            )
            try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
            return .hold
        }
        guard let open else { return try await hold("nothing to resize: no \(d.symbol) position is open") }
        guard !kernel.isClosing(d.symbol) else {
            return try await hold("nothing to resize: the \(d.symbol) position is being closed")
        }
        let filters: ExchangeFilters
        let price: Money
        switch try await tradable(d.symbol) {
        case .failure(let refusal): return try await reject(intent, refusal, correlationID: correlationID)
        case .success(let quote): (filters, price) = quote
        }
        let (market, view) = try await views(d.symbol, price: price, filters: filters, openSymbols: [])
        // The stop the kernel holds the position to now (moved by the policy since the record, perhaps).
        let held = HeldPosition(
            side: open.side,
            quantity: open.quantity,
            averagePrice: open.entryPrice,
            leverage: open.leverage,
            stopLoss: kernel.positions[d.symbol]?.stopPrice ?? open.stopLoss
        )
        let resize: ResizeOrder
        switch gateway.checkResize(intent, held: held, market: market, account: view) {
        case .failure(let rejection): return try await reject(intent, rejection, correlationID: correlationID)
        case .success(let order): resize = order
        }
        let side = open.side.rawValue.lowercased()
        let quantity: Money
        let reason: String
        switch resize {
        case .reduce(_, closesAll: true):
            return try await close(open, decisionID: intent.decisionID, correlationID: correlationID)
        case .reduce(let reduction, closesAll: false):
            quantity = reduction
            reason = "reduces the \(side) \(d.symbol) by \(reduction) of \(open.quantity)"
        case .add(let addition, let risk, let liquidation):
            quantity = addition
            reason =
                "adds \(addition) to the \(side) \(d.symbol) (\(open.quantity) held); \(risk) USD at risk at the stop \(held.stopLoss.map { "\($0)" } ?? "-"), liquidation at \(filters.price(liquidation, toward: price))"
        }
        let adds: Bool = if case .add = resize { true } else { false }
        let record = OrderRecord(
            clientOrderID: ClientOrderID.make(decisionID: intent.decisionID, purpose: adds ? .entry : .exit),
            decisionID: intent.decisionID,
            venue: venue.name,
            symbol: d.symbol,
            side: (open.side == .long) == adds ? .buy : .sell,
            type: .market,
            purpose: adds ? .entry : .exit,
            quantity: quantity,
            price: adds ? price : nil,
            stopPrice: adds ? held.stopLoss : nil,
            reduceOnly: !adds,
            createdAt: now()
        )
        guard try await store.recordOrder(record) else { return .duplicate }
        try await store.recordDecisionOutcome(
            id: intent.decisionID,
            DecisionOutcome(status: record.purpose == .entry ? .ordered : .closing, reason: reason, time: now())
        )
        try await send(record, leverage: open.leverage, correlationID: correlationID)
        try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
        return record.purpose == .entry
            ? .ordered(clientOrderID: record.clientOrderID) : .closing(clientOrderID: record.clientOrderID)
    }

    func reject(_ intent: OrderIntent, _ rejection: RiskRejection, correlationID: String) async throws -> Outcome {
        logger.info(
            "decision refused by the risk gateway",
            metadata: ["decision_id": "\(intent.decisionID)", "reason": "\(rejection)"]
        )
        Counter(label: "tradebus_risk_rejections_total", dimensions: [("code", rejection.code.rawValue)]).increment()
        try await store.recordDecisionOutcome(
            id: intent.decisionID,
            DecisionOutcome(status: .refused, code: rejection.code.rawValue, reason: rejection.message, time: now())
        )
        let d = intent.decision
        let event = OrderEventPayload(
            symbol: d.symbol,
            clientOrderID: ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry),
            side: d.action == .short ? .sell : .buy,
            status: "rejected",
            quantity: 0,
            price: d.entry,
            reason: rejection.description
        )
        try await publish(
            event,
            type: MessageType.order,
            routingKey: RoutingKey.order(status: "rejected", symbol: d.symbol),
            id: "rejected:\(intent.decisionID)",
            correlationID: correlationID
        )
        try await store.markProcessed(messageID: intent.decisionID, consumer: "executor", at: now())
        return .rejected(rejection.code)
    }

    func referencePrice(_ symbol: String) async -> Money? {
        guard let venue = settings.referenceVenue,
            let value = await cache.get(LatestPrice.cacheKey(venue: venue, symbol: symbol)),
            value.isFresh(maxAge: .seconds(settings.referenceMaxAge), now: now())
        else { return nil }
        return Money(string: value.string)
    }

    /// Rolls the breakers to the UTC day: a new day clears the daily-loss breaker (the documented
    /// rule), and the clearing is recorded as an event.
    func rollBreakers(equity: Money) async throws {
        recordEquity(equity)
        var breakers = control.breakers(limits: settings.halts, equity: equity, now: now())
        let cleared = breakers.roll(now: now(), equity: equity)
        control.breakers = breakers
        guard !cleared.isEmpty else { return }
        for halt in cleared {
            logger.notice("circuit breaker cleared by the new UTC day", metadata: ["halt": "\(halt.kind.rawValue)"])
            noteReset(halt, by: "the new UTC day", equity: equity)
        }
        await recordControlChanges()
    }

    /// Returns once no close is being counted by the breakers.
    func breakersCaughtUp() async {
        while countingCloses {
            await withCheckedContinuation { waitingForBreakers.append($0) }
        }
    }

    /// Counts the closes among `events` in the breakers before anything else is done with them.
    /// Entries wait meanwhile; the trips are recorded and announced afterwards.
    func countCloses(_ events: [VenueEvent]) async throws {
        let closes = events.compactMap { event -> VenueClose? in
            guard case .closed(let close) = event, !countedCloses.contains(Self.key(event)) else { return nil }
            return close
        }
        guard !closes.isEmpty else { return }
        countingCloses = true
        defer {
            countingCloses = false
            let waiting = waitingForBreakers
            waitingForBreakers = []
            for waiter in waiting { waiter.resume() }
        }
        // The venue has realised these closes: its equity is the equity after them.
        let equity = try await venue.account().equity
        for close in closes {
            var breakers = control.breakers(limits: settings.halts, equity: equity - close.pnl, now: now())
            for halt in breakers.recordTrade(pnl: close.pnl, equityAfter: equity, now: close.closedAt) {
                logger.critical(
                    "circuit breaker tripped; new entries refused",
                    metadata: ["halt": "\(halt.kind.rawValue)", "reason": "\(halt.reason)"]
                )
                let id = "halt:\(settings.account):\(halt.kind.rawValue):\(Int(halt.since.timeIntervalSince1970))"
                unrecorded.append(
                    (
                        CircuitBreakerEvent(
                            id: id,
                            kind: halt.kind.rawValue,
                            reason: halt.reason,
                            equity: halt.equity,
                            time: halt.since
                        ),
                        AlertPayload(
                            severity: .critical,
                            kind: "circuit_breaker",
                            title: "Trading halted: \(halt.kind.rawValue)",
                            message: halt.reason,
                            fields: ["halt": .string(halt.kind.rawValue)]
                        )
                    )
                )
            }
            control.breakers = breakers
            controlChanged = true
            countedCloses.insert(Self.key(.closed(close)))
        }
    }

    /// A breaker cleared (by the day's rollover or an operator): an event and a notice to record.
    func noteReset(_ halt: TradingHalts.Halt, by: String, equity: Money) {
        let time = now()
        let reason = "\(halt.kind.rawValue) reset by \(by) (tripped \(halt.since): \(halt.reason))"
        unrecorded.append(
            (
                CircuitBreakerEvent(
                    id: "reset:\(settings.account):\(halt.kind.rawValue):\(Int(time.timeIntervalSince1970))",
                    kind: "reset",
                    reason: reason,
                    equity: equity,
                    time: time
                ),
                AlertPayload(
                    severity: .warning,
                    kind: "circuit_breaker_reset",
                    title: "Breaker reset: \(halt.kind.rawValue)",
                    message: reason,
                    fields: ["halt": .string(halt.kind.rawValue)]
                )
            )
        )
        controlChanged = true
    }

    /// The account's equity as a gauge (the dashboard's PnL and drawdown).
    func recordEquity(_ equity: Money) {
        Gauge(label: "tradebus_account_equity", dimensions: [("account", settings.account)])
            .record(equity.doubleValue)
    }

    /// The account's state as gauges, for the alert rules: its mode (0 normal, 1 reducing, 2 halted),
    /// breakers tripped, positions without a stop, and mismatches the last reconciliation left.
    func exportGauges() {
        let account = [("account", settings.account)]
        let mode: Int64 =
            switch control.mode {
            case .normal: 0
            case .reducing: 1
            case .halted: 2
            }
        Gauge(label: "tradebus_account_mode", dimensions: account).record(mode)
        Gauge(label: "tradebus_breakers_tripped", dimensions: account).record(
            Int64(control.breakers?.tripped.count ?? 0)
        )
        let unprotected = kernel.positions.values.filter { $0.quantity > 0 && $0.unprotectedSince != nil }.count
        Gauge(label: "tradebus_positions_unprotected", dimensions: account).record(Int64(unprotected))
        Gauge(label: "tradebus_reconcile_unresolved", dimensions: account).record(
            Int64(lastReconciliation?.unresolved.count ?? 0)
        )
    }

    /// Saves the account's controls if they changed, then records and announces the breaker events
    /// noted so far; what fails waits for the next pass (the halts hold in memory meanwhile).
    func recordControlChanges() async {
        exportGauges()
        if controlChanged {
            do {
                try await store.saveAccountControl(account: settings.account, control, at: now())
                controlChanged = false
            } catch {
                logger.error(
                    "the account's controls were not saved; they hold in memory and are saved again",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        while let (event, alert) = unrecorded.first {
            do {
                try await store.recordCircuitBreakerEvent(event)
                try await publish(
                    alert,
                    type: MessageType.alert,
                    routingKey: RoutingKey.alert(severity: alert.severity.rawValue, kind: alert.kind),
                    id: event.id,
                    correlationID: event.id
                )
                unrecorded.removeFirst()
            } catch {
                logger.error(
                    "a circuit breaker event was not recorded; it is tried again",
                    metadata: ["event": "\(event.id)", "error": "\(error)"]
                )
                return
            }
        }
    }

    // MARK: Prices and venue events

    /// A closed candle: the paper venue trades on it; then the venue's events are committed.
    public func handleCandle(_ delivery: Delivery) async throws {
        let envelope = try delivery.envelope(
            CandlePayload.self,
            expectedType: MessageType.candleClosed,
            what: "a candle"
        )
        lockstep?.begin(envelope.time)
        try await observe(envelope.payload, time: envelope.time)
        let symbol = envelope.payload.symbol
        observedThrough[symbol] = max(observedThrough[symbol] ?? envelope.time, envelope.time)
        try await lockstep?.finished(symbol: symbol, candleTime: envelope.time, messageID: envelope.id, emitted: [])
    }

    /// The funding settlement in the cache (`funding:<symbol>`, a ``FundingEvent/cacheValue``) when it
    /// falls inside the candle `[open, open + interval)`; nil otherwise, or when the value is unreadable.
    func fundingSettlement(in payload: CandlePayload) async -> FundingEvent? {
        guard let value = await cache.get(FundingEvent.cacheKey(symbol: payload.symbol)),
            let event = FundingEvent(cacheValue: value.bytes),
            let length = CandleInterval.milliseconds(payload.interval)
        else { return nil }
        let open = Date(timeIntervalSince1970: Double(payload.candle.openTime) / 1000)
        let close = Date(timeIntervalSince1970: Double(payload.candle.openTime + length) / 1000)
        return event.time >= open && event.time < close ? event : nil
    }

    /// A candle (the backtester calls this directly).
    public func observe(_ payload: CandlePayload, time: Date) async throws {
        // Nothing unchecked moves a position: a candle the indicator worker would refuse fills nothing,
        // triggers nothing and liquidates nothing here either.
        if let defect = payload.candle.defect {
            throw MessageRejected("candle \(payload.symbol) \(payload.candle.openTime) refused: \(defect)")
        }
        // The latest funding settlement the feed (or a replay's funding file) put in the cache, charged
        // by the venue when it falls inside this candle.
        let funding = await fundingSettlement(in: payload)
        // The ATR-adaptive stop reads the indicator worker's latest snapshot of the same stream (the
        // candle before this one in a replay, which observes before the indicators run).
        let atr: Double? =
            if settings.policy.atrMultiple != nil,
                let value = await cache.get(
                    SnapshotPayload.cacheKey(symbol: payload.symbol, interval: payload.interval)
                )
            {
                (try? EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes))?.payload.snapshot.atr14
            } else {
                nil
            }
        // The venue fills at the open; the kernel protects those fills; the venue takes the rest of the
        // candle with that protection in place; then the policy moves the stops for the next candle.
        // With lower-timeframe candles (a replay's `--detail`), each of them in turn (``IntrabarPath``).
        let steps = IntrabarPath.steps(
            candle: payload.candle,
            close: time,
            funding: funding,
            mark: payload.mark,
            detail: payload.detail
        )
        for step in steps {
            try await venue.observe(
                symbol: payload.symbol,
                candle: step.candle,
                time: step.time,
                atr: atr,
                funding: step.funding,
                mark: step.mark
            )
            try await processVenueEvents()
            try await venue.finishCandle(symbol: payload.symbol)
            try await processVenueEvents()
            try await moveManagedStop(symbol: payload.symbol, after: step.candle, atr: atr)
        }
    }

    /// The stop policy (trailing, break-even, ATR) after `candle`: a move goes to the kernel, then the store.
    func moveManagedStop(symbol: String, after candle: Candle, atr: Double?) async throws {
        guard var managed = managedStops[symbol], let high = Money(finite: candle.high),
            let low = Money(finite: candle.low), let close = Money(finite: candle.close)
        else { return }
        let filters = try await venue.filters(symbol: symbol)
        let moved = managed.tighten(
            high: high,
            low: low,
            close: close,
            atr: atr.flatMap(Money.init(finite:)),
            filters: filters
        )
        managedStops[symbol] = managed
        guard let moved else { return }
        await drive(.moveStop(symbol: symbol, price: moved))
        if var position = try await venuePositionsInStore().first(where: { $0.symbol == symbol }) {
            position.stopLoss = moved
            position.updatedAt = now()
            try await store.savePosition(position)
        }
    }

    // MARK: The execution kernel

    /// Feeds the kernel one event and carries out what it asks, feeding back each answer, until it
    /// asks nothing more. Nothing here waits on the store: stops and flattens go out first.
    func drive(_ first: ExecutionKernel.Event) async {
        var events = [first]
        while !events.isEmpty {
            let event = events.removeFirst()
            for action in kernel.handle(event, now: now()) {
                events += await carryOut(action)
            }
        }
    }

    func carryOut(_ action: ExecutionKernel.Action) async -> [ExecutionKernel.Event] {
        switch action {
        case .placeStop(let symbol, let stop):
            do {
                try await venue.placeStop(symbol: symbol, stop)
                logger.info(
                    "stop placed",
                    metadata: ["symbol": "\(symbol)", "quantity": "\(stop.quantity)", "trigger": "\(stop.trigger)"]
                )
                return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .accepted)]
            } catch {
                logger.warning("stop not placed", metadata: ["symbol": "\(symbol)", "error": "\(error)"])
                switch error.code {
                case .wouldTrigger:
                    return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .wouldTrigger(error.message))]
                case .outcomeUnknown:
                    return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .unknown(error.message))]
                default: return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .failed(error.message))]
                }
            }
        case .cancelStop(let symbol, let id):
            do {
                try await venue.cancelStop(symbol: symbol, clientID: id)
                return [.stopCancelled(symbol: symbol, clientID: id)]
            } catch {
                return []  // the next check against the venue's list settles it
            }
        case .flatten(let symbol, let id, let side, let quantity, let reason),
            .reduce(let symbol, let id, let side, let quantity, let reason):
            if case .flatten = action {
                logger.critical(
                    "flattening at market",
                    metadata: ["symbol": "\(symbol)", "quantity": "\(quantity)", "reason": "\(reason)"]
                )
                closeReasons[symbol] = reason
            } else {
                logger.warning(
                    "reducing at market",
                    metadata: ["symbol": "\(symbol)", "quantity": "\(quantity)", "reason": "\(reason)"]
                )
            }
            let record = OrderRecord(
                clientOrderID: id,
                decisionID: id,
                venue: venue.name,
                symbol: symbol,
                side: side,
                type: .market,
                purpose: .exit,
                quantity: quantity,
                reduceOnly: true,
                createdAt: now()
            )
            do {
                let placed = try await venue.submit(
                    VenueOrderRequest(
                        clientOrderID: id,
                        symbol: symbol,
                        side: side,
                        quantity: quantity,
                        leverage: 1,
                        reduceOnly: true
                    )
                )
                await recordFlatten(record, status: placed.status, venueOrderID: placed.venueOrderID)
                return [.orderStatus(clientOrderID: id, status: placed.status)]
            } catch {
                await recordFlatten(record, status: error.code == .rejected ? .rejected : .unknown, venueOrderID: nil)
                return error.code == .rejected
                    ? [.orderStatus(clientOrderID: id, status: .rejected)]
                    : [.orderUnknown(clientOrderID: id, reason: error.message)]
            }
        case .queryOrder(let id, let symbol):
            do {
                return [
                    .orderStatus(
                        clientOrderID: id,
                        status: try await venue.order(clientOrderID: id, symbol: symbol)?.status
                    )
                ]
            } catch {
                return [.orderUnknown(clientOrderID: id, reason: error.message)]
            }
        case .reconcile(let symbol):
            do {
                let held = try await venue.positions().first { $0.symbol == symbol }
                let stops = try await venue.workingStops(symbol: symbol)
                let signed = held.map { $0.side == .long ? $0.quantity : -$0.quantity } ?? 0
                return [.venueSnapshot(symbol: symbol, quantity: signed, stops: Set(stops.map(\.clientID)))]
            } catch {
                return []
            }
        case .alert(let severity, let kind, let symbol, let message):
            await alert(severity, kind: kind, symbol: symbol, message: message)
            return []
        case .sendOrder, .positionChanged, .positionClosed:
            // Entries and exits are sent by ``send(_:leverage:correlationID:)``; positions are recorded from the venue's fills and closes.
            return []
        }
    }

    /// The position's stop from now on moves by the policy, from `stop` at `entry`.
    func manage(_ symbol: String, side: PositionSide, entry: Money, stop: Money) {
        managedStops[symbol] = ManagedStop(
            side: side,
            entry: entry,
            initialStop: stop,
            stop: stop,
            bestPrice: entry,
            policy: settings.policy
        )
    }

    /// Records a flatten order after it went out; a store that fails is said, not hidden (the
    /// venue's fills still close the position, and reconciliation finds the order).
    func recordFlatten(_ record: OrderRecord, status: OrderStatus, venueOrderID: String?) async {
        do {
            try await store.recordOrder(record)
            try await store.updateOrder(
                clientOrderID: record.clientOrderID,
                status: status,
                venueOrderID: venueOrderID,
                at: now()
            )
        } catch {
            logger.error(
                "the flatten order was sent but not recorded",
                metadata: ["client_order_id": "\(record.clientOrderID)", "error": "\(error)"]
            )
        }
    }

    /// Commits the venue's fills, closes and stop moves, then acknowledges them.
    public func processVenueEvents() async throws {
        await watchForBan()
        if reconciled { await drive(.tick) }
        // One pass at a time: a second caller (the poll, a candle) would commit and acknowledge the same
        // events twice. But a pass held up by a slow or hung store holds up nothing at the venue: the
        // kernel still takes every fill (it counts each trade once), so stops go out.
        guard !processingEvents else {
            for case .fill(let fill) in try await venue.events() { await drive(.fill(fill)) }
            return
        }
        processingEvents = true
        defer { processingEvents = false }
        let events = try await venue.events()
        try await countCloses(events)
        await recordControlChanges()
        var index = 0
        // One at a time (a fill with the close it makes is one): each is acknowledged once committed,
        // and one that cannot be committed while the store works is set aside, never holding back the rest.
        while index < events.count {
            let count =
                if case .fill(let fill) = events[index], index + 1 < events.count,
                    case .closed(let close) = events[index + 1],
                    close.symbol == fill.symbol
                { 2 } else { 1 }
            let unit = Array(events[index..<index + count])
            let key = Self.key(unit[0])
            do {
                try await commit(unit)
                failures[key] = nil
            } catch {
                failures[key, default: 0] += 1
                // The store down: everything waits for it, in order. The store up and the same event failing again: poison.
                guard failures[key]! >= Self.attemptsBeforeDeadLetter,
                    (try? await store.isProcessed(messageID: "probe", consumer: "executor")) != nil
                else {
                    logger.error(
                        "a venue event was not committed; it stays at the venue and comes again",
                        metadata: ["event": "\(key)", "error": "\(error)"]
                    )
                    throw error
                }
                try await deadLetter(unit, key: key, reason: "\(error)")
                failures[key] = nil
            }
            try await venue.acknowledgeEvents(count)
            for event in unit { countedCloses.remove(Self.key(event)) }
            index += count
        }
    }

    /// A venue that banned us (Binance 418, Bybit 403) stops every request until the ban ends: nothing
    /// can be placed or cancelled meanwhile, so it is a critical alert, once per ban.
    func watchForBan() async {
        guard let limit = await venue.rateLimit(), limit.banned, let until = limit.blockedUntil, announcedBan != until
        else { return }
        announcedBan = until
        await alert(
            .critical,
            kind: "venue_banned",
            symbol: settings.account,
            message:
                "\(venue.name) banned this IP until \(until): no request goes out (no order, no stop, no cancel) until then; open positions keep the stops already at the venue"
        )
    }

    /// How often an event may fail, with the store working, before it is set aside.
    static let attemptsBeforeDeadLetter = 3

    /// What identifies a venue event: a fill's trade id, a close's symbol and time.
    static func key(_ event: VenueEvent) -> String {
        switch event {
        case .fill(let fill): "fill:\(fill.tradeID)"
        case .closed(let close): "close:\(close.symbol):\(Int(close.closedAt.timeIntervalSince1970 * 1000))"
        }
    }

    /// Sets aside venue events that cannot be committed: a dead-letter record with the reason, and a critical alert.
    func deadLetter(_ events: [VenueEvent], key: String, reason: String) async throws {
        let body = String(decoding: try JSONEncoder().encode(events), as: UTF8.self)
        try await store.recordDeadLetter(
            DeadLetterRecord(
                id: "\(venue.name):\(key)",
                source: "executor.venue_events",
                body: body,
                reason: reason,
                time: now()
            )
        )
        let message =
            "a \(venue.name) event (\(key)) failed \(Self.attemptsBeforeDeadLetter) times and was set aside in dead_letters: \(reason)"
        logger.critical("venue event dead-lettered", metadata: ["event": "\(key)", "reason": "\(reason)"])
        try? await publish(
            AlertPayload(
                severity: .critical,
                kind: "venue_event_dead_letter",
                title: "Venue event set aside",
                message: message
            ),
            type: MessageType.alert,
            routingKey: RoutingKey.alert(severity: "critical", kind: "venue_event_dead_letter"),
            id: "dead-letter:\(key)",
            correlationID: key
        )
    }

    /// Commits fills and closes: a fill and the close it makes in one transaction.
    func commit(_ events: [VenueEvent]) async throws {
        var closing: VenueFill?
        for event in events {
            switch event {
            case .fill(let fill):
                // The kernel first: a stop is placed whatever the store does.
                await drive(.fill(fill))
                if events.count == 2 {
                    closing = fill  // written with its close
                    continue
                }
                try await record(fill)
            case .closed(var close):
                if let reason = closeReasons[close.symbol], close.reason == "exit" { close.reason = reason }
                managedStops[close.symbol]?.settle(&close)
                try await record(close, closingFill: closing)
                closeReasons[close.symbol] = nil
                managedStops[close.symbol] = nil
            }
        }
    }

    func fillRecord(_ fill: VenueFill) -> FillRecord {
        FillRecord(
            venue: venue.name,
            tradeID: fill.tradeID,
            clientOrderID: fill.clientOrderID,
            symbol: fill.symbol,
            side: fill.side,
            price: fill.price,
            quantity: fill.quantity,
            fee: fill.fee,
            feeAsset: "USDT",
            time: fill.time
        )
    }

    func record(_ fill: VenueFill) async throws {
        try await store.recordFill(fillRecord(fill))
        // A fill with no order of ours is a venue-side stop's or target's.
        if let order = try await store.order(clientOrderID: fill.clientOrderID) {
            if order.purpose == .entry, lockstep == nil, let decision = try? await store.decision(id: order.decisionID)
            {
                PipelineLatency.record("fill", candleClose: decision.candleTime)
            }
            let fills = try await store.fills(clientOrderID: order.clientOrderID)
            let filled = fills.reduce(Money(0)) { $0 + $1.quantity }
            let status: OrderStatus = filled >= order.quantity ? .filled : .partiallyFilled
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: status,
                venueOrderID: nil,
                at: now()
            )
            // Every entry fill opens or grows the position (an entry may fill in part and expire); an
            // add (an entry of another decision) grows the one open.
            if order.purpose == .entry,
                var position = try await venuePositionsInStore().first(where: { $0.symbol == fill.symbol }),
                position.decisionID != order.decisionID
            {
                if let held = kernel.positions[fill.symbol], held.decisionID == position.decisionID {
                    position.quantity = held.quantity
                    position.entryPrice = held.averagePrice
                } else {
                    position.entryPrice =
                        (position.entryPrice * position.quantity + fill.price * fill.quantity)
                        / (position.quantity + fill.quantity)
                    position.quantity += fill.quantity
                }
                position.updatedAt = now()
                return try await store.savePosition(position)
            }
            if order.purpose == .entry { return try await open(order, fills: fills) }
        }
        // A fill that reduced the position without closing it (a cut to the risk budget, a partial exit
        // or stop): the record follows the size.
        if let held = kernel.positions[fill.symbol], held.quantity > 0,
            var position = try await venuePositionsInStore().first(where: { $0.symbol == fill.symbol }),
            position.quantity != held.quantity
        {
            position.quantity = held.quantity
            position.updatedAt = now()
            try await store.savePosition(position)
        }
    }

    /// The entry is filled: the position is the sum of its unique fills, protected at the venue.
    func open(_ order: OrderRecord, fills: [FillRecord]) async throws {
        let quantity = fills.reduce(Money(0)) { $0 + $1.quantity }
        // No fill of it in the store (its trade id was already taken by another order's fill): nothing to open.
        guard quantity > 0 else {
            logger.error(
                "an entry's fill is not in the store; the position is left to reconciliation",
                metadata: ["client_order_id": "\(order.clientOrderID)"]
            )
            return
        }
        let average = fills.reduce(Money(0)) { $0 + $1.price * $1.quantity } / quantity
        // The decision carries leverage and target; a decision not in this store (another executor's) opens at 1x with no target.
        let decision = try await store.decision(id: order.decisionID)
        // The venue takes prices on its tick only: the target rounds toward the entry, as the gateway's check did.
        let filters = try await venue.filters(symbol: order.symbol)
        var stop = order.stopPrice
        var target = decision?.takeProfit.map { filters.price($0, toward: average) }
        if let held = kernel.positions[order.symbol], held.decisionID == order.decisionID {
            // The kernel judged them against the fill (``FillCheck``).
            stop = held.stopPrice ?? stop
            target = held.targetPrice ?? target
        }
        try await openWith(
            order,
            quantity: quantity,
            average: average,
            leverage: decision?.leverage ?? 1,
            stop: stop,
            target: target,
            at: fills.map(\.time).min()
        )
    }

    func openWith(
        _ order: OrderRecord,
        quantity: Money,
        average: Money,
        leverage: Int,
        stop: Money?,
        target: Money?,
        at firstFill: Date? = nil
    ) async throws {
        let known = try await store.position(id: "position:\(order.decisionID)")
        let position = PositionRecord(
            id: "position:\(order.decisionID)",
            venue: venue.name,
            symbol: order.symbol,
            side: order.side == .buy ? .long : .short,
            quantity: quantity,
            entryPrice: average,
            leverage: leverage,
            stopLoss: stop,
            takeProfit: target,
            decisionID: order.decisionID,
            // Opened when it first filled, at the venue's time (a paper replay's step, with `--detail`).
            openedAt: known?.openedAt ?? firstFill ?? now()
        )
        try await store.savePosition(position)
        // The kernel placed the stop on the fill; the policy moves it from here; the target goes once.
        if let stop { manage(order.symbol, side: position.side, entry: average, stop: stop) }
        guard known == nil else { return }
        if let target {
            do {
                try await venue.placeTarget(
                    symbol: order.symbol,
                    side: position.side == .long ? .sell : .buy,
                    price: target,
                    clientID: ClientOrderID.make(decisionID: order.decisionID, purpose: .takeProfit)
                )
            } catch {
                logger.warning(
                    "the take-profit was not placed; the stop protects the position",
                    metadata: ["symbol": "\(order.symbol)", "error": "\(error)"]
                )
            }
        }
        let event = TradeEventPayload(
            symbol: order.symbol,
            side: position.side,
            quantity: quantity.doubleValue,
            leverage: leverage,
            entryPrice: average.doubleValue,
            stopLoss: stop?.doubleValue,
            takeProfit: target?.doubleValue,
            decisionID: order.decisionID
        )
        try await publish(
            event,
            type: MessageType.tradeOpened,
            routingKey: RoutingKey.trade("opened", symbol: order.symbol),
            id: "opened:\(position.id)",
            correlationID: order.decisionID
        )
    }

    /// A position the venue closed: the trade, the closed position, its orders' final status and the
    /// closing fill, in one transaction; then the message and the equity (the breakers counted it
    /// when it was fetched, ``countCloses(_:)``).
    func record(_ close: VenueClose, closingFill: VenueFill? = nil) async throws {
        guard var position = try await venuePositionsInStore().first(where: { $0.symbol == close.symbol }) else {
            if let closingFill { try await record(closingFill) }
            logger.warning(
                "the venue closed a position the store does not have open",
                metadata: ["symbol": "\(close.symbol)"]
            )
            return
        }
        position.status = .closed
        position.updatedAt = close.closedAt
        var updates: [CloseRecord.OrderUpdate] = []
        if let closingFill, let order = try await store.order(clientOrderID: closingFill.clientOrderID) {
            let earlier = try await store.fills(clientOrderID: order.clientOrderID).filter {
                $0.tradeID != closingFill.tradeID
            }
            let filled = earlier.reduce(closingFill.quantity) { $0 + $1.quantity }
            updates.append(
                .init(clientOrderID: order.clientOrderID, status: filled >= order.quantity ? .filled : .partiallyFilled)
            )
        }
        // An exit still open (for more than was left) has nothing to reduce: the venue's word on it.
        for order in try await ordersInFlight()
        where order.symbol == close.symbol && order.reduceOnly && order.clientOrderID != closingFill?.clientOrderID {
            if let known = try await venue.order(clientOrderID: order.clientOrderID, symbol: order.symbol),
                known.status.isFinal
            {
                updates.append(
                    .init(clientOrderID: order.clientOrderID, status: known.status, venueOrderID: known.venueOrderID)
                )
            }
        }
        var close = close
        close.stopLoss = close.stopLoss ?? position.stopLoss
        close.takeProfit = close.takeProfit ?? position.takeProfit
        let trade = TradeRecord(close, positionID: position.id, entryTime: position.openedAt)
        try await store.recordClose(
            CloseRecord(
                trade: trade,
                position: position,
                orders: updates,
                fills: closingFill.map { [fillRecord($0)] } ?? []
            )
        )
        let event = TradeEventPayload(
            symbol: close.symbol,
            side: close.side,
            quantity: close.quantity.doubleValue,
            leverage: close.leverage,
            entryPrice: close.entryPrice.doubleValue,
            exitPrice: close.exitPrice.doubleValue,
            stopLoss: close.stopLoss?.doubleValue,
            takeProfit: close.takeProfit?.doubleValue,
            pnl: close.pnl.doubleValue,
            exitReason: close.reason,
            decisionID: position.decisionID
        )
        try await publish(
            event,
            type: MessageType.tradeClosed,
            routingKey: RoutingKey.trade("closed", symbol: close.symbol),
            id: "closed:\(trade.id)",
            correlationID: position.decisionID
        )
        let account = try await venue.account()
        recordEquity(account.equity)
        try await store.recordEquitySnapshot(
            EquitySnapshot(
                time: close.closedAt,
                equity: account.equity,
                balance: account.equity,
                unrealizedPnL: 0,
                openPositions: try await venue.positions().count
            )
        )
    }

    // MARK: Operator control

    /// The executor's control queue: `control.<account>` commands, one active consumer per account.
    public static func controlQueue(account: String) -> QueueSpec {
        QueueSpec(
            name: "executor.\(account).control",
            bindings: [RoutingKey.control(account: account)],
            singleActiveConsumer: true
        )
    }

    /// A command from `control.<account>`: checked, carried out, recorded, and answered on
    /// `control.reply.<request id>`. A malformed one goes to the dead-letter queue with the reason.
    public func handleControl(_ delivery: Delivery) async throws {
        let envelope = try delivery.envelope(
            ControlRequest.self,
            expectedType: MessageType.controlRequest,
            what: "a control request"
        )
        // A redelivered command is answered again, but carried out once.
        let reply: ControlReply
        if let done = try await store.controlCommands(since: envelope.time.addingTimeInterval(-1)).first(where: {
            $0.id == envelope.id
        }) {
            reply = ControlReply(ok: done.ok, message: done.result, status: try await status())
        } else {
            reply = await control(envelope.payload)
            try await store.recordControlCommand(
                ControlCommandRecord(
                    id: envelope.id,
                    account: settings.account,
                    command: envelope.payload.command.rawValue,
                    argument: envelope.payload.argument,
                    by: envelope.payload.by,
                    ok: reply.ok,
                    result: reply.message,
                    time: now()
                )
            )
        }
        try await publish(
            reply,
            type: MessageType.controlReply,
            routingKey: RoutingKey.controlReply(requestID: envelope.id),
            id: "reply:\(envelope.id)",
            correlationID: envelope.id
        )
    }

    /// Carries out one operator command; a refused one says why.
    public func control(_ request: ControlRequest) async -> ControlReply {
        do {
            let request = try request.validated()
            // A status is a read (every cockpit page asks for one); the commands that change something stand out.
            logger.log(
                level: request.command == .status ? .info : .notice,
                "operator command",
                metadata: [
                    "command": "\(request.command.rawValue)", "argument": "\(request.argument ?? "")",
                    "by": "\(request.by)",
                ]
            )
            switch request.command {
            case .status:
                return ControlReply(ok: true, message: "status of \(settings.account)", status: try await status())
            case .flatten:
                let symbols =
                    request.argument == "all"
                    ? Set(try await venue.positions().map(\.symbol)).union(kernel.positions.keys) : [request.argument!]
                var flattened: [String] = []
                for symbol in symbols.sorted() where kernel.positions[symbol].map({ $0.quantity > 0 }) ?? false {
                    await drive(.flatten(symbol: symbol, reason: "operator"))
                    flattened.append(symbol)
                }
                let message =
                    flattened.isEmpty
                    ? "no open position to flatten" : "flattening \(flattened.joined(separator: ", ")) at market"
                return ControlReply(ok: true, message: message, status: try await status())
            default:
                if request.command == .reducing, request.argument == "off", control.reducing?.by == "reconciliation" {
                    acknowledged = Set(lastReconciliation?.unresolved ?? [])
                }
                let equity = try await venue.account().equity
                let (message, cleared) = try control.apply(request, equity: equity, now: now())
                for halt in cleared { noteReset(halt, by: request.by, equity: equity) }
                controlChanged = true
                await recordControlChanges()
                return ControlReply(ok: true, message: message, status: try await status())
            }
        } catch let error as ControlError {
            return ControlReply(ok: false, message: error.message)
        } catch {
            return ControlReply(ok: false, message: "\(request.command.rawValue) failed: \(error)")
        }
    }

    /// The account as this executor sees it: mode, halts, positions with their stops and distance to
    /// liquidation, and the last reconciliation.
    public func status() async throws -> AccountStatus {
        let equity = try? await venue.account().equity
        var positions: [AccountStatus.Position] = []
        // A venue that does not answer (down, or a ban): the positions and stops as the kernel knows them.
        let venuePositions = try? await venue.positions()
        let held =
            venuePositions
            ?? kernel.positions.values.filter { $0.quantity > 0 }.sorted { $0.symbol < $1.symbol }.map {
                VenuePosition(
                    symbol: $0.symbol,
                    side: $0.side,
                    quantity: $0.quantity,
                    entryPrice: $0.averagePrice,
                    leverage: 1,
                    stopLoss: $0.stopPrice,
                    takeProfit: $0.targetPrice,
                    openedAt: now()
                )
            }
        for held in held {
            let stops =
                venuePositions == nil
                ? kernel.positions[held.symbol]?.working ?? [] : try await venue.workingStops(symbol: held.symbol)
            let tiers = await marginTiers(held.symbol)
            let liquidation = RiskGateway.liquidationPrice(
                side: held.side,
                entry: held.entryPrice,
                leverage: Money(held.leverage),
                maintenanceMarginRate: tiers?.rate(notional: held.quantity * held.entryPrice)
                    ?? settings.limits.maintenanceMarginRate
            )
            positions.append(
                AccountStatus.Position(
                    symbol: held.symbol,
                    side: held.side,
                    quantity: held.quantity,
                    entryPrice: held.entryPrice,
                    stopLoss: kernel.positions[held.symbol]?.stopPrice ?? held.stopLoss,
                    workingStops: stops.count,
                    leverage: held.leverage,
                    liquidationPrice: liquidation,
                    liquidationDistance: held.entryPrice > 0
                        ? (held.entryPrice - liquidation).magnitude / held.entryPrice : nil,
                    price: venuePositions == nil ? nil : try? await venue.price(symbol: held.symbol)
                )
            )
        }
        return AccountStatus(
            account: settings.account,
            venue: venue.name,
            control: control,
            equity: equity,
            positions: positions,
            lastReconciliation: lastReconciliation,
            rateLimit: await venue.rateLimit(),
            time: now()
        )
    }

    // MARK: Reconciliation

    /// Brings the store to the venue's truth before any new order: pending venue events, orders whose
    /// outcome is open, positions on one side only, and missing protective stops.
    public func reconcile() async throws {
        if !controlRestored {
            // A restart clears nothing: the breakers, an operator's halt and REDUCING come back as saved.
            if var saved = try await store.accountControl(account: settings.account) {
                saved.breakers?.update(limits: settings.halts)
                control = saved
                if let block = control.entryBlock {
                    logger.warning(
                        "restored the account's controls: entries refused",
                        metadata: ["mode": "\(control.mode.rawValue)", "why": "\(block)"]
                    )
                }
            }
            controlRestored = true
        }
        if !resumed {
            try await venue.resume(resumePoint())
            resumed = true
        }
        do {
            try await processVenueEvents()
        } catch {
            // The venue's fills cannot be read now (its request budget, a ban, the store): the positions
            // it holds get their stops all the same, before this pass fails and entries stay refused.
            await protectWhatTheVenueHolds()
            throw error
        }
        var report = ReconciliationReport(time: now())
        // Mismatches that should be gone by the next pass, if what was done about them worked.
        var lasting: Set<String> = []
        // Orders whose outcome is open and that the kernel is not following (all of them after a restart).
        let inFlight = try await store.orders(statuses: OrderStatus.inFlight).filter { $0.venue == venue.name }
        for order in inFlight where kernel.order(order.clientOrderID) == nil {
            if let known = try await venue.order(clientOrderID: order.clientOrderID, symbol: order.symbol) {
                guard known.status != order.status else { continue }
                try await store.updateOrder(
                    clientOrderID: order.clientOrderID,
                    status: known.status,
                    venueOrderID: known.venueOrderID,
                    at: now()
                )
                report.findings.append(
                    "order \(order.clientOrderID) on \(order.symbol) was \(order.status.rawValue) in the store, \(known.status.rawValue) at the venue"
                )
            } else if order.status != .intent {
                try await store.updateOrder(
                    clientOrderID: order.clientOrderID,
                    status: .rejected,
                    venueOrderID: nil,
                    at: now()
                )
                report.findings.append(
                    "order \(order.clientOrderID) on \(order.symbol) is unknown at the venue: settled as rejected"
                )
            }
            // An intent the venue never saw stays INTENT: its decision, redelivered, sends it if still fresh.
        }
        let venuePositions = try await venue.positions()
        let entering = Set(try await ordersInFlight().map(\.symbol))
        // Open in the store, not at the venue, and no fill explained it (the events above would have closed it).
        for position in try await venuePositionsInStore()
        where !venuePositions.contains(where: { $0.symbol == position.symbol }) {
            // A position the kernel follows may have fills on their way: it waits one pass for them.
            let key = "\(position.symbol): flat at the venue"
            if kernel.positions[position.symbol] != nil, findingPasses[key] == nil {
                lasting.insert(key)
                continue
            }
            try await closeUnexplained(position)
            report.findings.append(
                "\(position.symbol): open in the store, flat at the venue with no fill to explain it; closed as unknown"
            )
        }
        let storeOpen = try await venuePositionsInStore()
        var seen: Set<String> = []
        for held in venuePositions {
            seen.insert(held.symbol)
            let signed = held.side == .long ? held.quantity : -held.quantity
            if var position = storeOpen.first(where: { $0.symbol == held.symbol }) {
                if position.side != held.side || position.quantity != held.quantity {
                    lasting.insert("\(held.symbol): size")
                    // The venue wins: the record follows it, and the kernel resizes the stop.
                    report.findings.append(
                        "\(held.symbol): the store had \(position.side.rawValue) \(position.quantity), the venue holds \(held.side.rawValue) \(held.quantity)"
                    )
                    position.side = held.side
                    position.quantity = held.quantity
                    position.entryPrice = held.entryPrice
                    position.updatedAt = now()
                    try await store.savePosition(position)
                }
                let stops = try await venue.workingStops(symbol: held.symbol)
                if kernel.positions[held.symbol] == nil {
                    // The kernel tracks it again with the stops the venue lists; the right one stays, a missing one is placed.
                    kernel.restore(
                        symbol: held.symbol,
                        side: held.side,
                        quantity: held.quantity,
                        averagePrice: held.entryPrice,
                        stopPrice: position.stopLoss,
                        decisionID: position.decisionID,
                        stops: stops,
                        now: now()
                    )
                    if let stop = position.stopLoss, managedStops[held.symbol] == nil {
                        manage(held.symbol, side: held.side, entry: held.entryPrice, stop: stop)
                    }
                }
                await drive(.venueSnapshot(symbol: held.symbol, quantity: signed, stops: Set(stops.map(\.clientID))))
            } else if !entering.contains(held.symbol),
                kernel.positions[held.symbol].map({ $0.decisionID.hasPrefix("adopted:") }) ?? true
            {
                // Opened by hand, or lost: the adoption policy says what to do with it.
                if let finding = try await adopt(held) { report.findings.append(finding) }
            }
            if !(try await isProtected(held.symbol, quantity: held.quantity)), !ignored.contains(held.symbol) {
                lasting.insert("\(held.symbol): no stop for all of \(held.quantity)")
                report.findings.append("\(held.symbol): \(held.quantity) held with no stop for all of it at the venue")
            }
        }
        ignored.formIntersection(seen)
        conclude(report, lasting: lasting)
        for (severity, kind, message) in pendingAlerts {
            await alert(severity, kind: kind, symbol: settings.account, message: message)
        }
        pendingAlerts = []
        await recordControlChanges()
        reconciled = true
    }

    /// The venue's maintenance-margin tiers for `symbol`; nil (the flat rate) when it cannot say now.
    func marginTiers(_ symbol: String) async -> MarginTiers? {
        do {
            return try await venue.marginTiers(symbol: symbol)
        } catch {
            logger.warning(
                "the venue's margin tiers cannot be read; the flat maintenance rate stands in",
                metadata: ["symbol": "\(symbol)", "error": "\(error)"]
            )
            return nil
        }
    }

    /// Every position the venue holds that the kernel does not follow yet is followed, with the stop
    /// its store record has (or one `MAX_STOP_LOSS_PERCENT` from its entry), and protected now.
    func protectWhatTheVenueHolds() async {
        let held: [VenuePosition]
        do {
            held = try await venue.positions()
        } catch {
            logger.error(
                "the venue's positions cannot be read either; its stops wait for the next pass",
                metadata: ["error": "\(error)"]
            )
            return
        }
        let records = (try? await venuePositionsInStore()) ?? []
        for position in held where kernel.positions[position.symbol] == nil {
            guard let stops = try? await venue.workingStops(symbol: position.symbol) else { continue }
            let record = records.first { $0.symbol == position.symbol && $0.side == position.side }
            var stop = record?.stopLoss
            if stop == nil, let filters = try? await venue.filters(symbol: position.symbol) {
                stop = adoptionStop(position, filters: filters)
            }
            kernel.restore(
                symbol: position.symbol,
                side: position.side,
                quantity: position.quantity,
                averagePrice: position.entryPrice,
                stopPrice: stop,
                decisionID: record?.decisionID ?? "adopted:\(position.symbol):\(Int(now().timeIntervalSince1970))",
                stops: stops,
                now: now()
            )
            logger.warning(
                "the venue's fills cannot be read; protecting what it holds first",
                metadata: ["symbol": "\(position.symbol)"]
            )
            let signed = position.side == .long ? position.quantity : -position.quantity
            await drive(.venueSnapshot(symbol: position.symbol, quantity: signed, stops: Set(stops.map(\.clientID))))
        }
    }

    /// The stop of a position the executor did not open: `MAX_STOP_LOSS_PERCENT` from its entry, on the
    /// tick toward the entry.
    func adoptionStop(_ position: VenuePosition, filters: ExchangeFilters) -> Money {
        let distance = position.entryPrice * settings.limits.maxStopFraction
        return filters.price(
            position.side == .long ? position.entryPrice - distance : position.entryPrice + distance,
            toward: position.entryPrice
        )
    }

    /// Whether the venue lists working stops that cover `quantity` of `symbol`.
    func isProtected(_ symbol: String, quantity: Money) async throws -> Bool {
        try await venue.workingStops(symbol: symbol).reduce(Money(0)) { $0 + $1.quantity } >= quantity
    }

    /// A position at the venue that the store does not know, by `ADOPT_POLICY`: `protect` records it as
    /// adopted and places a stop `MAX_STOP_LOSS_PERCENT` from its entry; `flatten` closes it at market;
    /// `ignore` leaves it alone. Each raises an alert; returns the finding.
    func adopt(_ held: VenuePosition) async throws -> String? {
        let symbol = held.symbol
        switch settings.adoptPolicy {
        case .ignore:
            guard ignored.insert(symbol).inserted else { return nil }
            let message =
                "the venue holds \(held.side.rawValue) \(held.quantity) \(symbol) that the executor did not open; ADOPT_POLICY=ignore leaves it alone, with no stop"
            await alert(.warning, kind: "position_ignored", symbol: symbol, message: message)
            return "\(symbol): unknown position of \(held.quantity) ignored (ADOPT_POLICY=ignore)"
        case .protect, .flatten:
            let stop =
                settings.adoptPolicy == .protect
                ? adoptionStop(held, filters: try await venue.filters(symbol: symbol)) : nil
            let decisionID = "adopted:\(symbol):\(Int(now().timeIntervalSince1970))"
            let position = PositionRecord(
                id: "position:\(decisionID)",
                venue: venue.name,
                symbol: symbol,
                side: held.side,
                quantity: held.quantity,
                entryPrice: held.entryPrice,
                leverage: held.leverage,
                stopLoss: stop,
                takeProfit: nil,
                decisionID: decisionID,
                openedAt: now()
            )
            try await store.savePosition(position)
            try await venue.follow(
                VenuePosition(
                    symbol: symbol,
                    side: held.side,
                    quantity: held.quantity,
                    entryPrice: held.entryPrice,
                    leverage: held.leverage,
                    stopLoss: stop,
                    takeProfit: nil,
                    openedAt: position.openedAt
                )
            )
            let stops = try await venue.workingStops(symbol: symbol)
            kernel.restore(
                symbol: symbol,
                side: held.side,
                quantity: held.quantity,
                averagePrice: held.entryPrice,
                stopPrice: stop,
                decisionID: decisionID,
                stops: stops,
                now: now()
            )
            let signed = held.side == .long ? held.quantity : -held.quantity
            if let stop {
                manage(symbol, side: held.side, entry: held.entryPrice, stop: stop)
                await alert(
                    .warning,
                    kind: "position_adopted",
                    symbol: symbol,
                    message:
                        "the venue holds \(held.side.rawValue) \(held.quantity) \(symbol) that the executor did not open; adopted, with a stop at \(stop)"
                )
                await drive(.venueSnapshot(symbol: symbol, quantity: signed, stops: Set(stops.map(\.clientID))))
                return "\(symbol): unknown position of \(held.quantity) adopted and protected at \(stop)"
            }
            await alert(
                .critical,
                kind: "position_flattened",
                symbol: symbol,
                message:
                    "the venue holds \(held.side.rawValue) \(held.quantity) \(symbol) that the executor did not open; ADOPT_POLICY=flatten closes it at market"
            )
            await drive(.flatten(symbol: symbol, reason: "adopt_flatten"))
            return "\(symbol): unknown position of \(held.quantity) flattened (ADOPT_POLICY=flatten)"
        }
    }

    /// A store position the venue no longer holds, with no fill to explain it: closed as `unknown`, its
    /// PnL estimated at the venue's current price, with a critical alert.
    func closeUnexplained(_ position: PositionRecord) async throws {
        let price = (try? await venue.price(symbol: position.symbol)) ?? nil
        let exit = price ?? position.entryPrice
        let pnl = (position.side == .long ? exit - position.entryPrice : position.entryPrice - exit) * position.quantity
        let close = VenueClose(
            symbol: position.symbol,
            side: position.side,
            quantity: position.quantity,
            entryPrice: position.entryPrice,
            exitPrice: exit,
            openedAt: position.openedAt,
            closedAt: now(),
            reason: "unknown",
            pnl: pnl,
            fees: 0,
            funding: 0,
            leverage: position.leverage,
            stopLoss: position.stopLoss,
            takeProfit: position.takeProfit
        )
        var closed = position
        closed.status = .closed
        closed.updatedAt = now()
        try await store.recordClose(
            CloseRecord(
                trade: TradeRecord(close, positionID: position.id, entryTime: position.openedAt),
                position: closed,
                orders: [],
                fills: []
            )
        )
        managedStops[position.symbol] = nil
        await alert(
            .critical,
            kind: "position_closed_unknown",
            symbol: position.symbol,
            message:
                "\(position.symbol) is open in the store but flat at \(venue.name), and no fill explains it; closed as unknown, PnL estimated at \(exit)"
        )
    }

    /// Mismatches (`lasting`) seen in ``reconciliationPassesBeforeReducing`` passes in a row are
    /// unresolved: the account goes into REDUCING mode (no new entries) with a critical alert, and
    /// leaves it once they resolve.
    func conclude(_ report: ReconciliationReport, lasting: Set<String>) {
        var report = report
        var next: [String: Int] = [:]
        for key in lasting { next[key] = (findingPasses[key] ?? 0) + 1 }
        findingPasses = next
        report.unresolved = next.filter { $0.value >= Self.reconciliationPassesBeforeReducing }.map(\.key).sorted()
        lastReconciliation = report
        if !report.findings.isEmpty {
            Counter(label: "tradebus_reconcile_findings_total", dimensions: [("account", settings.account)])
                .increment(by: report.findings.count)
        }
        defer { exportGauges() }
        if !report.findings.isEmpty {
            logger.warning("reconciliation: the venue wins", metadata: ["findings": "\(report.findings)"])
        }
        // An operator who turned REDUCING off has seen these: only a new one turns it on again.
        acknowledged.formIntersection(report.unresolved)
        if !Set(report.unresolved).subtracting(acknowledged).isEmpty, control.reducing == nil {
            control.reducing = AccountControl.Hold(
                reason: report.unresolved.joined(separator: "; "),
                by: "reconciliation",
                since: now()
            )
            controlChanged = true
            let message =
                "reconciliation could not resolve: \(report.unresolved.joined(separator: "; ")); no new entries until it resolves or an operator resets it"
            pendingAlerts.append((.critical, "reconciliation_reducing", message))
        } else if report.unresolved.isEmpty, control.reducing?.by == "reconciliation" {
            control.reducing = nil
            controlChanged = true
            logger.notice("reconciliation resolved every mismatch; REDUCING mode off")
        }
    }

    /// How many passes in a row a mismatch may survive before it counts as unresolved.
    static let reconciliationPassesBeforeReducing = 3

    /// Logs and publishes an alert; the bus being down loses nothing that matters (it is logged).
    func alert(_ severity: AlertSeverity, kind: String, symbol: String, message: String) async {
        logger.log(
            level: severity == .critical ? .critical : .warning,
            "\(message)",
            metadata: ["symbol": "\(symbol)", "kind": "\(kind)"]
        )
        try? await publish(
            AlertPayload(
                severity: severity,
                kind: kind,
                title: "\(kind.replacingOccurrences(of: "_", with: " ")): \(symbol)",
                message: message,
                symbol: symbol
            ),
            type: MessageType.alert,
            routingKey: RoutingKey.alert(severity: severity.rawValue, kind: kind),
            id: "alert:\(kind):\(symbol):\(UUID().uuidString)",
            correlationID: symbol
        )
    }

    /// The store's open positions at this executor's venue (a store may hold several venues' records).
    func venuePositionsInStore() async throws -> [PositionRecord] {
        try await store.openPositions().filter { $0.venue == venue.name }
    }

    /// Where the store stands, for a live venue starting again: open positions, the newest fills of
    /// every symbol in play, and the symbols of orders whose outcome is open.
    func resumePoint() async throws -> VenueResume {
        let open = try await venuePositionsInStore()
        let pending = try await store.orders(statuses: OrderStatus.inFlight).filter { $0.venue == venue.name }
        // A fill not yet committed may be all the store lacks of a position the venue holds.
        let held = Set(try await venue.positions().map(\.symbol))
        let symbols = held.union(open.map(\.symbol)).union(pending.map(\.symbol))
        var committed: [String: [VenueFill]] = [:]
        for symbol in symbols {
            committed[symbol] = try await store.latestFills(venue: venue.name, symbol: symbol, limit: 20).map(
                VenueFill.init
            )
        }
        var positions: [VenuePosition] = []
        for position in open {
            // The fees of the fills of the decision that opened it, so the trade's fees and PnL count them.
            var fees: Money = 0
            for order in try await store.orders(decisionID: position.decisionID)
            where order.venue == venue.name && order.purpose == .entry {
                fees += try await store.fills(clientOrderID: order.clientOrderID).map(\.fee).reduce(0, +)
            }
            positions.append(
                VenuePosition(
                    symbol: position.symbol,
                    side: position.side,
                    quantity: position.quantity,
                    entryPrice: position.entryPrice,
                    leverage: position.leverage,
                    stopLoss: position.stopLoss,
                    takeProfit: position.takeProfit,
                    openedAt: position.openedAt,
                    fees: fees
                )
            )
        }
        // A symbol with no committed fill reads its history from its oldest recent order (one that
        // filled before a crash has fills still to commit); nothing older is ours.
        var since: [String: Date] = [:]
        let fresh = symbols.filter { committed[$0]?.isEmpty ?? true }
        if !fresh.isEmpty {
            for order in try await store.orders(statuses: Set(OrderStatus.allCases))
            where order.venue == venue.name && fresh.contains(order.symbol)
                && now().timeIntervalSince(order.createdAt) < 7 * 86_400
            {
                since[order.symbol] = min(since[order.symbol] ?? order.createdAt, order.createdAt)
            }
        }
        return VenueResume(
            openPositions: positions,
            committedFills: committed,
            pendingSymbols: symbols,
            pendingSince: since
        )
    }

    // MARK: Publishing

    func publishOrder(_ order: OrderRecord, status: OrderStatus, reason: String?, correlationID: String) async throws {
        let event = OrderEventPayload(
            symbol: order.symbol,
            clientOrderID: order.clientOrderID,
            side: order.side,
            status: status.rawValue.lowercased(),
            quantity: order.quantity.doubleValue,
            price: order.price?.doubleValue,
            reason: reason
        )
        try await publish(
            event,
            type: MessageType.order,
            routingKey: RoutingKey.order(status: status.rawValue.lowercased(), symbol: order.symbol),
            id: "order:\(order.clientOrderID):\(status.rawValue)",
            correlationID: correlationID
        )
    }

    func publish<P: Codable & Sendable>(
        _ payload: P,
        type: String,
        routingKey: String,
        id: String,
        correlationID: String
    ) async throws {
        let envelope = Envelope(
            id: id,
            type: type,
            time: now(),
            correlationID: correlationID,
            source: source,
            payload: payload
        )
        // A shadow account's events stay apart from the live ones (`shadow.trade.…`, `shadow.alert.…`):
        // no notifier or cockpit takes them for the live account's. Control replies go where asked.
        let key = settings.shadow && !routingKey.hasPrefix("control.") ? "shadow." + routingKey : routingKey
        do {
            try await bus.publish(envelope, routingKey: key)
        } catch let failure as BusError where failure.code == .unroutable {
            logger.debug("nobody listens to \(key)")
        }
    }
}
