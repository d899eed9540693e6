import Foundation
import Logging
import Metrics
import TradingCore

/// Copy-trading as a decision source (`ANALYST_PROVIDERS=copy`): each followed leader's fills, as the
/// venue streams them, become decisions on `decision.<symbol>`, sized by ``CopySizing`` and checked by
/// the executor's whole risk gateway like any other. One decision per leader fill (`copy:<leader>:<tid>`),
/// so a fill delivered twice or out of order never makes a second order.
public actor CopyAnalyst {
    /// How copies are made.
    public struct Settings: Sendable {
        public var leaders: [Leader]
        public var sizing: CopySizing
        /// The capital the copies are sized against (`COPY_CAPITAL`).
        public var capital: Money
        public var leverage: Int
        /// The target's distance in stop distances (`COPY_TARGET_R`).
        public var targetR: Double
        /// Our symbol for a coin: coin + this (`COPY_QUOTE`, `USDT`: BTC → BTCUSDT).
        public var quote: String
        /// Fills in a snapshot younger than this are copied (the executor drops those it has); older
        /// ones are history (`COPY_MAX_FILL_AGE_SECONDS`).
        public var maxFillAge: TimeInterval
        /// How long the open half of a flip waits for the close to show in the record.
        public var flipWait: Duration
        public var reconnect: Backoff

        /// Settings with the fields given.
        public init(
            leaders: [Leader],
            sizing: CopySizing,
            capital: Money,
            leverage: Int = 3,
            targetR: Double = 3,
            quote: String = "USDT",
            maxFillAge: TimeInterval = 30,
            flipWait: Duration = .seconds(30),
            reconnect: Backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
        ) {
            self.leaders = leaders
            self.sizing = sizing
            self.capital = capital
            self.leverage = leverage
            self.targetR = targetR
            self.quote = quote
            self.maxFillAge = maxFillAge
            self.flipWait = flipWait
            self.reconnect = reconnect
        }
    }

    let source: any LeaderSource
    let bus: any MessageBus
    let store: any TradeStore
    let settings: Settings
    let origin: String
    let logger: Logger
    let now: @Sendable () -> Date
    var book = CopyBook()
    /// Seconds from each copied fill to its decision on the bus.
    public private(set) var latencies: [Double] = []
    /// Decisions published.
    public private(set) var published = 0
    let latency = Timer(label: "tradebus_copy_fill_to_decision_seconds")

    /// A copy analyst reading `source`, publishing on `bus`, reading positions from `store`.
    public init(
        source: any LeaderSource,
        bus: any MessageBus,
        store: any TradeStore,
        settings: Settings,
        origin: String,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.source = source
        self.bus = bus
        self.store = store
        self.settings = settings
        self.origin = origin
        self.logger = logger
        self.now = now
    }

    /// Follows the leaders until cancelled, reconnecting with backoff.
    public func run() async throws {
        var attempt = 0
        let leaders = settings.leaders.map(\.address)
        while !Task.isCancelled {
            do {
                try await source.fills(leaders) { batch in try await self.handle(batch) }
                attempt = 0
            } catch is CancellationError {
                return
            } catch {
                logger.warning("the leaders' fill stream failed; reconnecting", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: settings.reconnect.delay(attempt: attempt))
            attempt += 1
        }
    }

    /// One batch of a leader's fills: history remembered, new fills decided in time order.
    public func handle(_ batch: LeaderFillBatch) async throws {
        guard let leader = settings.leaders.first(where: { $0.address == batch.leader }) else { return }
        var account: LeaderAccount?
        // After a reconnect the snapshot holds what came while we were away: copied (the executor drops
        // what it has, and refuses with the reason what is too old). Only at start is it history.
        let atStart = !book.follows(leader.address)
        for fill in batch.fills.sorted(by: { ($0.time, $0.tid) < ($1.time, $1.tid) }) {
            let age = now().timeIntervalSince1970 - Double(fill.time) / 1000
            if batch.snapshot && atStart && age > settings.maxFillAge {
                book.remember(fill, leader: leader)
                continue
            }
            if account == nil { account = try await source.account(leader.address) }
            try await copy(fill, leader: leader, account: account!)
        }
    }

    func copy(_ fill: LeaderFill, leader: Leader, account: LeaderAccount) async throws {
        let symbol = fill.coin + settings.quote
        // The book moves on only once the decisions are on the bus: a fill whose publishing failed is
        // decided again when the stream redelivers it (the executor drops an id it has).
        var book = self.book
        let decision: CopyDecision?
        do {
            decision = try book.take(
                fill,
                leader: leader,
                sizing: settings.sizing,
                ourEquity: settings.capital,
                leaderEquity: account.equity,
                leaderStop: account.stops[fill.coin]
            )
        } catch {
            // Recorded as a HOLD with the reason, on the bus like any decision.
            let hold = DecisionPayload(
                symbol: symbol,
                proposal: .hold("copy not made: \(error.message)"),
                provider: "copy",
                model: leader.address,
                promptVersion: CopyDecision.version,
                attempts: 0,
                candleTime: fill.time,
                requestID: "hyperliquid-fill:\(leader.address):\(fill.tid)"
            )
            try await publish(CopyOrder(id: "copy:\(leader.address):\(fill.tid)", payload: hold), fill: fill)
            self.book = book
            return
        }
        guard let decision else {
            self.book = book
            return
        }
        let orders = decision.orders(
            symbol: symbol,
            leverage: settings.leverage,
            targetR: settings.targetR,
            stopFraction: settings.sizing.maxStopFraction
        )
        for (index, order) in orders.enumerated() {
            if index > 0 { await waitUntilFlat(symbol) }
            try await publish(order, fill: fill)
        }
        self.book = book
    }

    /// The open half of a flip goes once the close shows in the record (or after `flipWait`; then the
    /// executor refuses it, with the reason, if the position is still there).
    func waitUntilFlat(_ symbol: String) async {
        let deadline = ContinuousClock.now + settings.flipWait
        while ContinuousClock.now < deadline {
            let open = (try? await store.openPositions().contains { $0.symbol == symbol }) ?? true
            if !open { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
        logger.warning("the close of a flip has not shown after \(settings.flipWait); sending the open anyway")
    }

    func publish(_ order: CopyOrder, fill: LeaderFill) async throws {
        // Stamped with the fill's time: the gateway's freshness check runs from the leader's fill.
        let envelope = Envelope(
            id: order.id,
            type: MessageType.decision,
            time: Date(timeIntervalSince1970: Double(fill.time) / 1000),
            correlationID: order.id,
            source: origin,
            payload: order.payload
        )
        try await bus.publish(envelope, routingKey: RoutingKey.decision(symbol: order.payload.symbol))
        let seconds = now().timeIntervalSince1970 - Double(fill.time) / 1000
        latencies.append(seconds)
        latency.recordNanoseconds(Int64(max(0, seconds) * 1e9))
        published += 1
        logger.info(
            "copied",
            metadata: [
                "decision_id": "\(order.id)", "action": "\(order.payload.action.rawValue)",
                "symbol": "\(order.payload.symbol)", "quantity": "\(order.payload.quantity.map { "\($0)" } ?? "-")",
            ]
        )
    }
}
