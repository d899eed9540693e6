import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// A venue that fails on command, around the paper venue: lost responses, unreachable, partial and
/// duplicated fills.
final class FlakyVenue: Venue {
    enum Fault: Sendable { case none, loseResponse, unreachable }
    let paper: PaperVenue
    let fault = Mutex(Fault.none)
    let extraEvents = Mutex<[VenueEvent]>([])
    let submitted = Mutex(0)
    /// Holds the next account reading when armed.
    let accountPause = Pause()
    /// The quantity of every stop the executor asked for.
    let placedStops = Collector<Money>()
    /// Off when the test makes fills up itself: the paper venue then has no position to protect.
    let forwardProtection = Mutex(true)
    var name: String { "paper" }
    var isLive: Bool { false }

    init(_ paper: PaperVenue) { self.paper = paper }

    func filters(symbol: String) async throws(VenueError) -> ExchangeFilters { try await paper.filters(symbol: symbol) }
    func account() async throws(VenueError) -> (equity: Money, availableMargin: Money) {
        if fault.withLock({ $0 }) == .unreachable { throw VenueError(.unreachable, "test: down") }
        await accountPause.hold()
        return try await paper.account()
    }
    func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder {
        switch fault.withLock({ $0 }) {
        case .unreachable: throw VenueError(.unreachable, "test: down")
        case .loseResponse:
            submitted.withLock { $0 += 1 }
            _ = try await paper.submit(request)
            throw VenueError(.outcomeUnknown, "test: the answer was lost")
        case .none:
            submitted.withLock { $0 += 1 }
            return try await paper.submit(request)
        }
    }
    func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder? {
        if fault.withLock({ $0 }) == .unreachable { throw VenueError(.unreachable, "test: down") }
        return try await paper.order(clientOrderID: clientOrderID, symbol: symbol)
    }
    func positions() async throws(VenueError) -> [VenuePosition] {
        if fault.withLock({ $0 }) == .unreachable { throw VenueError(.unreachable, "test: down") }
        return try await paper.positions()
    }
    func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError) {
        placedStops.append(stop.quantity)
        guard forwardProtection.withLock({ $0 }) else { return }
        try await paper.placeStop(symbol: symbol, stop)
    }
    func cancelStop(symbol: String, clientID: String) async throws(VenueError) {
        try await paper.cancelStop(symbol: symbol, clientID: clientID)
    }
    func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder] {
        try await paper.workingStops(symbol: symbol)
    }
    func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError) {
        guard forwardProtection.withLock({ $0 }) else { return }
        try await paper.placeTarget(symbol: symbol, side: side, price: price, clientID: clientID)
    }
    func finishCandle(symbol: String) async throws(VenueError) { try await paper.finishCandle(symbol: symbol) }
    func events() async throws(VenueError) -> [VenueEvent] { extraEvents.withLock { $0 } + (try await paper.events()) }
    func acknowledgeEvents(_ count: Int) async throws(VenueError) {
        let extra = extraEvents.withLock { events in
            let n = min(count, events.count)
            events.removeFirst(n)
            return n
        }
        try await paper.acknowledgeEvents(count - extra)
    }
    func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError) {
        try await paper.observe(symbol: symbol, candle: candle, time: time, atr: atr, funding: funding, mark: mark)
    }
    func price(symbol: String) async throws(VenueError) -> Money? { try await paper.price(symbol: symbol) }
    func resume(_ state: VenueResume) async throws(VenueError) {
        if fault.withLock({ $0 }) == .unreachable { throw VenueError(.unreachable, "test: down") }
    }
}

/// The executor on the paper venue, a SQLite store and the in-process bus: one order per decision,
/// crashes at every step, lost responses, partial and duplicated fills.
@Suite("Executor (paper venue, in process)")
struct TradeExecutorTests {
    static let t0 = Date(timeIntervalSince1970: 1_767_225_600)

    struct World {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("executor-\(UUID().uuidString)")
        let store: SQLTradeStore
        let bus = InProcessBus()
        let cache = LocalCache()
        let clock = ManualClock(TradeExecutorTests.t0)
        let events = Collector<String>()
        var consumer: RunningConsumer?

        init() async throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            store = .sqlite(path: directory.appendingPathComponent("store.sqlite").path)
            try await store.migrate()
            try await bus.declare(QueueSpec(name: "events", bindings: ["order.#", "trade.#", "alert.#"]))
            let events = self.events
            consumer = RunningConsumer.start(bus, queue: "events") { events.append($0.routingKey) }
        }

        var statePath: String { directory.appendingPathComponent("paper.json").path }

        /// A venue process that outlives executors: the same state file each time.
        func venue() throws -> FlakyVenue {
            var settings = PaperExchange.Settings()
            settings.filters = ExchangeFilters(
                tickSize: 0.1,
                stepSize: 0.001,
                minQuantity: 0.001,
                maxQuantity: 1_000,
                minNotional: 5
            )
            settings.slippageFraction = 0
            return FlakyVenue(try PaperVenue(balance: 10_000, settings: settings, path: statePath))
        }

        /// A fresh executor (after a crash, a new one), reconciled.
        /// `store`: another store in front of the world's (one that fails on command).
        func executor(
            _ venue: FlakyVenue,
            store: (any TradeStore)? = nil,
            reconcile: Bool = true,
            policy: StopPolicy = StopPolicy(),
            maxLosses: Int = 3
        ) async throws -> TradeExecutor {
            var settings = TradeExecutor.Settings()
            settings.limits.requireReferencePrice = false
            settings.policy = policy
            settings.halts.maxConsecutiveLosses = maxLosses
            let clock = self.clock
            let executor = TradeExecutor(
                venue: venue,
                store: store ?? self.store,
                bus: bus,
                cache: cache,
                settings: settings,
                source: "test",
                logger: Logger(label: "test"),
                now: clock.now
            )
            if reconcile { try await executor.reconcile() }
            return executor
        }

        func candle(
            _ executor: TradeExecutor,
            minute: Int,
            open: Double,
            high: Double,
            low: Double,
            close: Double
        ) async throws {
            clock.set(TradeExecutorTests.t0.addingTimeInterval(Double(minute) * 60))
            let candle = Candle(
                openTime: Int64(TradeExecutorTests.t0.timeIntervalSince1970 * 1000) + Int64(minute) * 60_000,
                open: open,
                high: high,
                low: low,
                close: close,
                volume: 10
            )
            try await executor.observe(
                CandlePayload(venue: "paper", symbol: "BTCUSDT", interval: "1m", candle: candle),
                time: clock.date
            )
        }

        func intent(
            _ id: String = UUID().uuidString,
            action: TradeAction = .long,
            stop: Double = 98_000,
            target: Double = 104_000
        ) -> OrderIntent {
            let proposal = TradeProposal(
                action: action,
                confidence: 0.82,
                leverage: 3,
                entry: 100_000,
                stopLoss: action == .long ? stop : 202_000 - stop,
                takeProfit: action == .long ? target : 200_000 - target,
                reasoning: "t"
            )
            return OrderIntent(
                decisionID: "decision:\(id)",
                decision: DecisionPayload(
                    symbol: "BTCUSDT",
                    proposal: proposal,
                    provider: "rules",
                    model: "m",
                    promptVersion: "v",
                    attempts: 0,
                    candleTime: 0,
                    requestID: id
                ),
                decidedAt: clock.date
            )
        }

        /// A reconciled executor on a fresh venue, holding a long entered on minute 0 and filled on minute 1.
        /// A venue and an executor that has seen one quiet candle at 100,000: ready for a decision.
        func readyToTrade(
            store: (any TradeStore)? = nil,
            maxLosses: Int = 3
        ) async throws -> (FlakyVenue, TradeExecutor) {
            let venue = try venue()
            let executor = try await executor(venue, store: store, maxLosses: maxLosses)
            try await candle(executor, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
            return (venue, executor)
        }

        func longOpen(store: (any TradeStore)? = nil, maxLosses: Int = 3) async throws -> (FlakyVenue, TradeExecutor) {
            let (venue, executor) = try await readyToTrade(store: store, maxLosses: maxLosses)
            _ = try await executor.execute(intent(), correlationID: "c")
            try await candle(executor, minute: 1, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
            return (venue, executor)
        }

        /// A fill of the entry order `id` at 100,000, made up by the test (the paper venue never saw it).
        func fill(_ trade: String, _ quantity: Money, order id: String) -> VenueEvent {
            .fill(
                VenueFill(
                    tradeID: trade,
                    clientOrderID: id,
                    symbol: "BTCUSDT",
                    side: .buy,
                    price: 100_000,
                    quantity: quantity,
                    fee: 1,
                    time: TradeExecutorTests.t0
                )
            )
        }

        func stop() async throws { try await consumer?.stop() }
    }

    @Test("a decision becomes one order; the fill opens a protected position; the stop closes it into a trade")
    func lifecycle() async throws {
        let world = try await World()
        let (venue, executor) = try await world.readyToTrade()
        let intent = world.intent()
        #expect(
            try await executor.execute(intent, correlationID: "c")
                == .ordered(clientOrderID: ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry))
        )
        #expect(try await executor.execute(intent, correlationID: "c") == .duplicate)
        let orders = try await world.store.orders(decisionID: intent.decisionID)
        #expect(orders.count == 1 && orders[0].status == .accepted && venue.submitted.withLock { $0 } == 1)
        // The decision keeps every check it passed, with the figures: what the trade's page shows.
        let outcome = try #require(try await world.store.decision(id: intent.decisionID)?.outcome)
        #expect(outcome.status == .ordered && outcome.checks.allSatisfy(\.passed))
        let stop = try #require(outcome.checks.first { $0.check == "stop_distance" })
        #expect(stop.value == "2.00 % (stop 98000)" && stop.limit == "0.50 % to 7.00 %")
        #expect(outcome.checks.contains { $0.check == "reward_risk" && $0.value == "2.00" })

        try await world.candle(executor, minute: 1, open: 100_000, high: 100_200, low: 99_800, close: 100_100)
        let position = try #require(try await world.store.openPositions().first)
        #expect(
            position.quantity == Money(string: "0.047") && position.stopLoss == 98_000
                && position.takeProfit == 104_000
        )
        #expect(try await venue.positions().first?.stopLoss == 98_000)
        #expect(try await world.store.order(clientOrderID: orders[0].clientOrderID)?.status == .filled)

        try await world.candle(executor, minute: 2, open: 100_000, high: 100_000, low: 97_500, close: 97_800)
        #expect(try await world.store.openPositions().isEmpty)
        let trade = try #require(try await world.store.trades(since: nil).first)
        #expect(
            trade.exitReason == "stop_loss" && trade.exitPrice == 98_000 && trade.pnl < -90 && trade.pnl >= -100
                && trade.fees > 0
        )  // the risk budget, fees included
        #expect(
            await eventually {
                world.events.all.contains("trade.opened.BTCUSDT") && world.events.all.contains("trade.closed.BTCUSDT")
            }
        )
        try await world.stop()
    }

    @Test(
        "the ATR-adaptive stop reads the indicator worker's snapshot (ATR 14) and tightens the stop at the venue and in the store"
    )
    func atrStop() async throws {
        let world = try await World()
        let venue = try world.venue()
        let executor = try await world.executor(venue, policy: StopPolicy(atrMultiple: 2))
        try await world.candle(executor, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await world.candle(executor, minute: 1, open: 100_000, high: 100_200, low: 99_800, close: 100_100)
        #expect(try await world.store.openPositions().first?.stopLoss == 98_000)
        let snapshot = IndicatorSnapshot(openTime: 0, close: 100_100, atr14: 400, volume: 1)
        let envelope = Envelope(
            type: MessageType.indicatorSnapshot,
            time: world.clock.date,
            source: "test",
            payload: SnapshotPayload(symbol: "BTCUSDT", interval: "1m", snapshot: snapshot)
        )
        await world.cache.set(
            SnapshotPayload.cacheKey(symbol: "BTCUSDT", interval: "1m"),
            CachedValue(bytes: Array(try EnvelopeCodec.encode(envelope)), sourceTime: world.clock.date),
            ttl: nil
        )
        try await world.candle(executor, minute: 2, open: 100_100, high: 100_600, low: 100_000, close: 100_500)
        // 100,500 − 2 × 400 = 99,700: tighter than 98,000.
        #expect(try await world.store.openPositions().first?.stopLoss == 99_700)
        #expect(try await venue.positions().first?.stopLoss == 99_700)
        try await world.stop()
    }

    @Test(
        "a loss-run halt holds into the next day and across a restart; an operator's reset clears it, recorded with who, and entries go again"
    )
    func haltHoldsUntilReset() async throws {
        let world = try await World()
        let venue = try world.venue()
        let executor = try await world.executor(venue, maxLosses: 1)
        try await world.candle(executor, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await world.candle(executor, minute: 1, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        // the stop: a loss
        try await world.candle(executor, minute: 2, open: 100_000, high: 100_000, low: 97_500, close: 97_800)
        #expect(try await world.store.circuitBreakerEvents(since: nil).map(\.kind) == ["consecutive_losses"])
        func entry(_ executor: TradeExecutor) async throws -> TradeExecutor.Outcome {
            let intent = world.intent()
            return try await executor.execute(
                OrderIntent(
                    decisionID: intent.decisionID,
                    decision: Self.at(97_800, intent.decision),
                    decidedAt: world.clock.date
                ),
                correlationID: "c"
            )
        }
        try await world.candle(executor, minute: 24 * 60, open: 97_800, high: 97_900, low: 97_700, close: 97_800)
        #expect(try await entry(executor) == .rejected(.halted), "a new day does not clear a loss run")

        // A restart (a new executor on the same store and venue) restores the halt.
        let restarted = try await world.executor(venue, maxLosses: 1)
        #expect(try await entry(restarted) == .rejected(.halted))
        #expect(try await restarted.status().control.breakers?.halt?.kind == .consecutiveLosses)

        let refused = await restarted.control(ControlRequest(command: .resetBreaker, argument: "loss_run", by: "alice"))
        #expect(!refused.ok && refused.message.contains("consecutive_losses"))
        let reply = await restarted.control(
            ControlRequest(command: .resetBreaker, argument: "consecutive_losses", by: "alice")
        )
        #expect(reply.ok && reply.status?.mode == .normal)
        let outcome = try await entry(restarted)
        #expect(outcome != .rejected(.halted))
        let events = try await world.store.circuitBreakerEvents(since: nil)
        #expect(events.map(\.kind).sorted() == ["consecutive_losses", "reset"])
        #expect(events.first { $0.kind == "reset" }?.reason.contains("by alice") == true)
        try await world.stop()
    }

    @Test(
        "operator halt, REDUCING and flatten: entries refused while either holds, exits still go, and flatten closes at market as 'operator'"
    )
    func operatorControl() async throws {
        let world = try await World()
        let (venue, executor) = try await world.longOpen()
        #expect(await executor.control(ControlRequest(command: .halt, by: "bob")).ok)
        #expect(try await executor.execute(world.intent(), correlationID: "c") == .rejected(.halted))
        #expect(await executor.control(ControlRequest(command: .resume, by: "bob")).status?.mode == .normal)
        #expect(
            await executor.control(ControlRequest(command: .reducing, argument: "on", by: "bob")).status?.mode
                == .reducing
        )
        let blocked = world.intent()
        #expect(
            try await executor.execute(
                OrderIntent(
                    decisionID: blocked.decisionID,
                    decision: Self.at(100_000, blocked.decision),
                    decidedAt: world.clock.date
                ),
                correlationID: "c"
            ) == .rejected(.halted)
        )

        let flatten = await executor.control(ControlRequest(command: .flatten, argument: "btcusdt", by: "bob"))
        #expect(flatten.ok && flatten.message.contains("BTCUSDT"))
        try await world.candle(executor, minute: 2, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        #expect(try await venue.positions().isEmpty)
        #expect(try await world.store.trades(since: nil).map(\.exitReason) == ["operator"])
        #expect(
            await !executor.control(ControlRequest(command: .flatten, by: "bob")).ok,
            "flatten names a symbol or all"
        )
        #expect(await !executor.control(ControlRequest(command: .reducing, argument: "maybe", by: "bob")).ok)
        try await world.stop()
    }

    @Test(
        "a breaker trips in the same step as the close that caused it: a decision checked while the close is still being recorded is refused",
        arguments: [false, true]
    )
    func tripInTheSameStep(holdTheCount: Bool) async throws {
        let world = try await World()
        let store = OutageStore(world.store)
        let (venue, executor) = try await world.longOpen(store: store, maxLosses: 1)
        // The stop closes the position at a loss; the executor is held part-way through the close:
        // while reading the equity that the breakers count, or while writing the trade.
        let pause = holdTheCount ? venue.accountPause : store.closePause
        pause.arm()
        let stopped = Task {
            try await world.candle(executor, minute: 2, open: 100_000, high: 100_000, low: 97_500, close: 97_800)
        }
        #expect(await eventually { pause.holding })
        let next = world.intent()
        let decision = Task {
            try await executor.execute(
                OrderIntent(
                    decisionID: next.decisionID,
                    decision: Self.at(97_800, next.decision),
                    decidedAt: world.clock.date
                ),
                correlationID: "c"
            )
        }
        if holdTheCount {
            // The decision waits for the breakers: nothing is sent while they count.
            try await Task.sleep(for: .milliseconds(200))
            #expect(venue.submitted.withLock { $0 } == 1)
            pause.release()
            #expect(try await decision.value == .rejected(.halted))
        } else {
            #expect(try await decision.value == .rejected(.halted))
            pause.release()
        }
        try await stopped.value
        #expect(venue.submitted.withLock { $0 } == 1)
        #expect(try await world.store.trades(since: nil).count == 1)
        #expect(try await world.store.circuitBreakerEvents(since: nil).map(\.kind) == ["consecutive_losses"])
        try await world.stop()
    }

    @Test("a close that fails to commit and comes again is counted by the breakers once")
    func closeCountedOnce() async throws {
        let world = try await World()
        let store = OutageStore(world.store)
        let (_, executor) = try await world.longOpen(store: store, maxLosses: 2)
        store.down.withLock { $0 = true }
        await #expect(throws: StoreError.self) {
            try await world.candle(executor, minute: 2, open: 100_000, high: 100_000, low: 97_500, close: 97_800)
        }
        await #expect(throws: StoreError.self) { try await executor.processVenueEvents() }
        store.down.withLock { $0 = false }
        try await executor.processVenueEvents()
        #expect(try await world.store.trades(since: nil).count == 1)
        // One loss of the two allowed: entries still go.
        #expect(try await world.store.circuitBreakerEvents(since: nil).isEmpty)
        try await world.candle(executor, minute: 3, open: 97_800, high: 97_900, low: 97_700, close: 97_800)
        let next = world.intent()
        let outcome = try await executor.execute(
            OrderIntent(
                decisionID: next.decisionID,
                decision: Self.at(97_800, next.decision),
                decidedAt: world.clock.date
            ),
            correlationID: "c"
        )
        #expect(outcome == .ordered(clientOrderID: ClientOrderID.make(decisionID: next.decisionID, purpose: .entry)))
        try await world.stop()
    }

    @Test(
        "a mismatch reconciliation cannot resolve in three passes (a stop that never stays at the venue) puts the account into REDUCING; entries are refused until it resolves"
    )
    func unresolvedMismatchReduces() async throws {
        let world = try await World()
        try await world.bus.declare(
            QueueSpec(name: "test.reducing", bindings: ["alert.critical.reconciliation_reducing"])
        )
        let (venue, executor) = try await world.longOpen()
        // The stop vanishes at the venue, and every new one is lost on the way.
        venue.forwardProtection.withLock { $0 = false }
        for stop in try await venue.workingStops(symbol: "BTCUSDT") {
            try await venue.paper.cancelStop(symbol: "BTCUSDT", clientID: stop.clientID)
        }
        for pass in 1...3 {
            try await executor.reconcile()
            #expect(await executor.mode == (pass < 3 ? .normal : .reducing), "pass \(pass)")
        }
        #expect(try await executor.lastReconciliation?.unresolved.first?.contains("no stop") == true)
        let blocked = world.intent()
        let decision = OrderIntent(
            decisionID: blocked.decisionID,
            decision: Self.at(100_000, blocked.decision),
            decidedAt: world.clock.date
        )
        #expect(try await executor.execute(decision, correlationID: "c") == .rejected(.halted))
        #expect(try await world.bus.messageCount("test.reducing") == 1)
        #expect(
            try await world.store.accountControl(account: "default")?.reducing?.by == "reconciliation",
            "REDUCING is saved"
        )

        // An operator turns it off: the same mismatch does not turn it on again.
        #expect(
            await executor.control(ControlRequest(command: .reducing, argument: "off", by: "dana")).status?.mode
                == .normal
        )
        try await executor.reconcile()
        #expect(await executor.mode == .normal)

        venue.forwardProtection.withLock { $0 = true }
        try await executor.reconcile()
        #expect(try await venue.workingStops(symbol: "BTCUSDT").count == 1)
        #expect(await executor.mode == .normal, "resolved: REDUCING off")
        try await world.stop()
    }

    /// The same decision, moved to `price` (entry, with the stop and target at the same distances).
    static func at(_ price: Double, _ decision: DecisionPayload) -> DecisionPayload {
        var moved = decision
        let shift = price - (decision.entry ?? price)
        moved.entry = price
        moved.stopLoss = decision.stopLoss.map { $0 + shift }
        moved.takeProfit = decision.takeProfit.map { $0 + shift }
        return moved
    }

    @Test("a refused decision makes no order and publishes order.rejected; redelivered, it stays refused")
    func refused() async throws {
        let world = try await World()
        let (venue, executor) = try await world.readyToTrade()
        let bad = world.intent(stop: 101_000)
        #expect(try await executor.execute(bad, correlationID: "c") == .rejected(.wrongSide))
        #expect(try await executor.execute(bad, correlationID: "c") == .duplicate)
        let outcome = try #require(try await world.store.decision(id: bad.decisionID)?.outcome)
        #expect(outcome.status == .refused && outcome.code == "wrong_side" && outcome.reason?.contains("stop") == true)
        #expect(
            try await world.store.orders(decisionID: bad.decisionID).isEmpty && venue.submitted.withLock { $0 } == 0
        )
        #expect(await eventually { world.events.all.contains("order.rejected.BTCUSDT") })
        try await world.stop()
    }

    @Test("crash after the intent: the redelivered decision sends the committed order, once")
    func crashAfterIntent() async throws {
        let world = try await World()
        let venue = try world.venue()
        let first = try await world.executor(venue)
        try await world.candle(first, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        let intent = world.intent()
        // What a killed executor leaves: the intent row, committed; nothing sent.
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        try await world.store.recordOrder(
            OrderRecord(
                clientOrderID: id,
                decisionID: intent.decisionID,
                venue: "paper",
                symbol: "BTCUSDT",
                side: .buy,
                type: .market,
                purpose: .entry,
                quantity: Money(string: "0.05")!,
                price: 100_000,
                stopPrice: 98_000,
                createdAt: world.clock.date
            )
        )
        let second = try await world.executor(venue)  // restart: reconciliation leaves the unsent intent alone
        #expect(try await world.store.order(clientOrderID: id)?.status == .intent)
        #expect(try await second.execute(intent, correlationID: "c") == .duplicate)  // the redelivery
        let sent = try await venue.paper.order(clientOrderID: id, symbol: "BTCUSDT")
        #expect(sent?.quantity == Money(string: "0.05") && venue.submitted.withLock { $0 } == 1)
        _ = try await second.execute(intent, correlationID: "c")
        let orders = try await world.store.orders(decisionID: intent.decisionID)
        #expect(venue.submitted.withLock { $0 } == 1 && orders.count == 1 && orders[0].status == .accepted)
        // Too late for a stale intent: it expires instead.
        let late = world.intent()
        let lateID = ClientOrderID.make(decisionID: late.decisionID, purpose: .entry)
        try await world.store.recordOrder(
            OrderRecord(
                clientOrderID: lateID,
                decisionID: late.decisionID,
                venue: "paper",
                symbol: "BTCUSDT",
                side: .buy,
                type: .market,
                purpose: .entry,
                quantity: 1,
                createdAt: world.clock.date
            )
        )
        world.clock.set(world.clock.date.addingTimeInterval(600))
        _ = try await second.execute(late, correlationID: "c")
        #expect(
            try await world.store.order(clientOrderID: lateID)?.status == .expired
                && venue.submitted.withLock { $0 } == 1
        )
        try await world.stop()
    }

    @Test("a lost response (and a crash after the send): the order is queried by client id, never sent again")
    func lostResponse() async throws {
        let world = try await World()
        let (venue, executor) = try await world.readyToTrade()
        venue.fault.withLock { $0 = .loseResponse }
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        venue.fault.withLock { $0 = .none }
        let order = try #require(try await world.store.orders(decisionID: intent.decisionID).first)
        #expect(order.status == .accepted && venue.submitted.withLock { $0 } == 1)
        let restarted = try await world.executor(venue)
        _ = try await restarted.execute(intent, correlationID: "c")
        #expect(venue.submitted.withLock { $0 } == 1)
        try await world.candle(restarted, minute: 1, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        #expect(try await world.store.openPositions().count == 1)
        try await world.stop()
    }

    @Test("crash after the fill, before the commit: the venue's events come again and are committed once")
    func crashAfterFill() async throws {
        let world = try await World()
        let venue = try world.venue()
        let first = try await world.executor(venue)
        try await world.candle(first, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        _ = try await first.execute(world.intent(), correlationID: "c")
        // The fill happens at the venue while the executor is down (no one processes the events).
        try await venue.paper.observe(
            symbol: "BTCUSDT",
            candle: Candle(openTime: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000, volume: 1),
            time: TradeExecutorTests.t0.addingTimeInterval(60),
            atr: nil,
            funding: nil,
            mark: nil
        )
        #expect(try await world.store.openPositions().isEmpty)
        let second = try await world.executor(venue)  // reconcile commits them
        #expect(try await world.store.openPositions().count == 1)
        try await second.processVenueEvents()
        let third = try await world.executor(venue)
        _ = third
        #expect(try await world.store.openPositions().count == 1)
        #expect(
            try await world.store.fills(
                clientOrderID: try await world.store.orders(statuses: [.filled]).first!.clientOrderID
            ).count == 1
        )
        try await world.stop()
    }

    @Test("partial and duplicated fills: the position is the sum of the unique fills")
    func partialFills() async throws {
        let world = try await World()
        let (venue, executor) = try await world.readyToTrade()
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        venue.forwardProtection.withLock { $0 = false }
        venue.extraEvents.withLock {
            $0 = [
                world.fill("t1", 0.02, order: id), world.fill("t1", 0.02, order: id), world.fill("t2", 0.01, order: id),
            ]
        }
        try await executor.processVenueEvents()
        // Each entry fill opens or grows the position (an entry may fill in part and expire): it is protected as it fills.
        let partial = try await world.store.order(clientOrderID: id)?.status
        let positions = try await world.store.openPositions()
        #expect(partial == .partiallyFilled && positions.first?.quantity == Money(string: "0.03"))
        venue.extraEvents.withLock { $0 = [world.fill("t3", 0.017, order: id), world.fill("t2", 0.01, order: id)] }
        try await executor.processVenueEvents()
        #expect(try await world.store.order(clientOrderID: id)?.status == .filled)
        #expect(try await world.store.openPositions().first?.quantity == Money(string: "0.047"))
        try await world.stop()
    }

    @Test("an unreachable venue at start: not reconciled, no new orders")
    func unreachableAtStart() async throws {
        let world = try await World()
        let venue = try world.venue()
        venue.fault.withLock { $0 = .unreachable }
        let executor = try await world.executor(venue, reconcile: false)
        await #expect(throws: VenueError.self) { try await executor.reconcile() }
        await #expect(throws: VenueError.self) { try await executor.execute(world.intent(), correlationID: "c") }
        #expect(venue.submitted.withLock { $0 } == 0)
        try await world.stop()
    }

    @Test("an opposing decision closes the position and opens nothing")
    func opposing() async throws {
        let world = try await World()
        let (venue, executor) = try await world.longOpen()
        let outcome = try await executor.execute(world.intent(action: .short), correlationID: "c")
        guard case .closing = outcome else {
            Issue.record("\(outcome)")
            return
        }
        try await world.candle(executor, minute: 2, open: 100_500, high: 100_600, low: 100_400, close: 100_500)
        let storePositions = try await world.store.openPositions()
        let venuePositions = try await venue.positions()
        #expect(storePositions.isEmpty && venuePositions.isEmpty)
        #expect(try await world.store.trades(since: nil).first?.exitReason == "exit")
        try await world.stop()
    }

    @Test(
        "nothing unchecked moves a position: an opposing decision at confidence 0.05 or leverage 1000 closes nothing; a candle with negative prices is refused and liquidates nothing"
    )
    func uncheckedInputs() async throws {
        let world = try await World()
        let (venue, executor) = try await world.longOpen()
        for (confidence, leverage, code) in [(0.05, 3, RiskRejection.Code.lowConfidence), (0.9, 1_000, .leverage)] {
            var intent = world.intent(action: .short)
            intent.decision.confidence = confidence
            intent.decision.leverage = leverage
            #expect(try await executor.execute(intent, correlationID: "c") == .rejected(code))
        }
        var stale = world.intent(action: .short)
        stale.decidedAt = world.clock.date.addingTimeInterval(-3_600)
        #expect(try await executor.execute(stale, correlationID: "c") == .rejected(.stale))
        let negative = Candle(
            openTime: Int64(TradeExecutorTests.t0.timeIntervalSince1970 * 1000) + 120_000,
            open: 100_000,
            high: 100_100,
            low: -5,
            close: 99_000,
            volume: 1
        )
        await #expect(throws: MessageRejected.self) {
            try await executor.observe(
                CandlePayload(venue: "paper", symbol: "BTCUSDT", interval: "1m", candle: negative),
                time: world.clock.date.addingTimeInterval(60)
            )
        }
        #expect(try await venue.positions().count == 1)
        #expect(try await world.store.openPositions().count == 1)
        #expect(try await world.store.trades(since: nil).isEmpty)
        try await world.stop()
    }

    @Test(
        "two decisions on one symbol before the first entry fills: the second is refused as an open position, so the venue gets one order"
    )
    func entryOnItsWay() async throws {
        let world = try await World()
        let (venue, executor) = try await world.readyToTrade()
        let first = world.intent()
        let second = world.intent()
        #expect(
            try await executor.execute(first, correlationID: "c")
                == .ordered(clientOrderID: ClientOrderID.make(decisionID: first.decisionID, purpose: .entry))
        )
        #expect(try await executor.execute(second, correlationID: "c") == .rejected(.positionOpen))
        #expect(venue.submitted.withLock { $0 } == 1)
        try await world.candle(executor, minute: 1, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        let open = try await world.store.openPositions()
        #expect(open.count == 1 && open[0].quantity == Money(string: "0.047"))
        #expect(try await venue.positions().first?.quantity == Money(string: "0.047"))
        // Once filled, a third is refused on the position itself.
        #expect(try await executor.execute(world.intent(), correlationID: "c") == .rejected(.positionOpen))
        try await world.stop()
    }

    @Test("an entry intent older than a decision may be (never sent) does not block the symbol for good")
    func staleIntentDoesNotBlock() async throws {
        let world = try await World()
        let (_, executor) = try await world.readyToTrade()
        let stranded = world.intent()
        #expect(
            try await world.store.recordOrder(
                OrderRecord(
                    clientOrderID: ClientOrderID.make(decisionID: stranded.decisionID, purpose: .entry),
                    decisionID: stranded.decisionID,
                    venue: "paper",
                    symbol: "BTCUSDT",
                    side: .buy,
                    type: .market,
                    purpose: .entry,
                    quantity: 1,
                    createdAt: world.clock.date
                )
            )
        )
        #expect(
            try await executor.execute(world.intent(), correlationID: "c") == .rejected(.positionOpen),
            "a fresh intent counts"
        )
        try await world.candle(executor, minute: 3, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        let fresh = world.intent()
        #expect(
            try await executor.execute(fresh, correlationID: "c")
                == .ordered(clientOrderID: ClientOrderID.make(decisionID: fresh.decisionID, purpose: .entry))
        )
        try await world.stop()
    }

    @Test("two opposing decisions while the position is open: one exit order; the position closes once")
    func exitOnItsWay() async throws {
        let world = try await World()
        let (venue, executor) = try await world.longOpen()
        let first = try await executor.execute(world.intent(action: .short), correlationID: "c")
        let second = try await executor.execute(world.intent(action: .short), correlationID: "c")
        guard case .closing(let exit) = first else {
            Issue.record("\(first)")
            return
        }
        #expect(second == .closing(clientOrderID: exit), "the second names the exit already on its way")
        #expect(venue.submitted.withLock { $0 } == 2, "one entry, one exit")
        try await world.candle(executor, minute: 2, open: 100_500, high: 100_600, low: 100_400, close: 100_500)
        let trades = try await world.store.trades(since: nil)
        #expect(trades.count == 1 && trades[0].exitReason == "exit")
        #expect(try await venue.positions().isEmpty)
        #expect(try await world.store.openPositions().isEmpty)
        try await world.stop()
    }
}

/// A store that can go down: every call fails while `down` is set, as Postgres's would.
final class OutageStore: TradeStore {
    let inner: any TradeStore
    let down = Mutex(false)
    /// Fills with these trade ids are refused, as a row the database will not take.
    let refusedTrades = Mutex<Set<String>>([])
    /// Holds the next close being recorded when armed.
    let closePause = Pause()
    /// Holds the next fill being recorded when armed (a hung database).
    let fillPause = Pause()
    init(_ inner: any TradeStore) { self.inner = inner }

    func refuse(_ fill: FillRecord) throws {
        if refusedTrades.withLock({ $0.contains(fill.tradeID) }) {
            throw StoreError(.query, "test: the database refuses fill \(fill.tradeID)")
        }
    }

    func check() throws {
        if down.withLock({ $0 }) { throw StoreError(.connection, "test: the database is down") }
    }

    func migrate() async throws {
        try check()
        try await inner.migrate()
    }
    func recordDecision(_ decision: DecisionRecord) async throws -> Bool {
        try check()
        return try await inner.recordDecision(decision)
    }
    func llmSpend(since: Date?) async throws -> LLMSpend { try await inner.llmSpend(since: since) }
    func decision(id: String) async throws -> DecisionRecord? {
        try check()
        return try await inner.decision(id: id)
    }
    func decisions(symbol: String, candleTimes range: ClosedRange<Date>) async throws -> [DecisionRecord] {
        try check()
        return try await inner.decisions(symbol: symbol, candleTimes: range)
    }
    func recordDecisionOutcome(id: String, _ outcome: DecisionOutcome) async throws -> Bool {
        try check()
        return try await inner.recordDecisionOutcome(id: id, outcome)
    }
    func recentDecisions(limit: Int) async throws -> [DecisionRecord] {
        try check()
        return try await inner.recentDecisions(limit: limit)
    }
    func recordAlert(_ alert: AlertRecord) async throws -> Bool {
        try check()
        return try await inner.recordAlert(alert)
    }
    func recentAlerts(limit: Int) async throws -> [AlertRecord] {
        try check()
        return try await inner.recentAlerts(limit: limit)
    }
    func recordBacktest(_ backtest: BacktestRecord) async throws -> Bool {
        try check()
        return try await inner.recordBacktest(backtest)
    }
    func backtests(limit: Int) async throws -> [BacktestRecord] {
        try check()
        return try await inner.backtests(limit: limit)
    }
    func recordDivergence(_ divergence: DivergenceRecord) async throws -> Bool {
        try check()
        return try await inner.recordDivergence(divergence)
    }
    func divergences(limit: Int) async throws -> [DivergenceRecord] {
        try check()
        return try await inner.divergences(limit: limit)
    }
    func recordOrder(_ order: OrderRecord) async throws -> Bool {
        try check()
        return try await inner.recordOrder(order)
    }
    func updateOrder(clientOrderID: String, status: OrderStatus, venueOrderID: String?, at time: Date) async throws {
        try check()
        try await inner.updateOrder(clientOrderID: clientOrderID, status: status, venueOrderID: venueOrderID, at: time)
    }
    func order(clientOrderID: String) async throws -> OrderRecord? {
        try check()
        return try await inner.order(clientOrderID: clientOrderID)
    }
    func orders(decisionID: String) async throws -> [OrderRecord] {
        try check()
        return try await inner.orders(decisionID: decisionID)
    }
    func orders(statuses: Set<OrderStatus>) async throws -> [OrderRecord] {
        try check()
        return try await inner.orders(statuses: statuses)
    }
    func recordFill(_ fill: FillRecord) async throws -> Bool {
        await fillPause.hold()
        try check()
        try refuse(fill)
        return try await inner.recordFill(fill)
    }
    func latestFills(venue: String, symbol: String, limit: Int) async throws -> [FillRecord] {
        try check()
        return try await inner.latestFills(venue: venue, symbol: symbol, limit: limit)
    }
    func recordFills(_ fills: [FillRecord]) async throws -> Int {
        try check()
        return try await inner.recordFills(fills)
    }
    func fills(clientOrderID: String) async throws -> [FillRecord] {
        try check()
        return try await inner.fills(clientOrderID: clientOrderID)
    }
    func savePosition(_ position: PositionRecord) async throws {
        try check()
        try await inner.savePosition(position)
    }
    func position(id: String) async throws -> PositionRecord? {
        try check()
        return try await inner.position(id: id)
    }
    func openPositions() async throws -> [PositionRecord] {
        try check()
        return try await inner.openPositions()
    }
    func recordTrade(_ trade: TradeRecord) async throws -> Bool {
        try check()
        return try await inner.recordTrade(trade)
    }
    func recordClose(_ close: CloseRecord) async throws -> Bool {
        await closePause.hold()
        try check()
        for fill in close.fills { try refuse(fill) }
        return try await inner.recordClose(close)
    }
    func recordDeadLetter(_ letter: DeadLetterRecord) async throws -> Bool {
        try check()
        return try await inner.recordDeadLetter(letter)
    }
    func deadLetters(since: Date?) async throws -> [DeadLetterRecord] {
        try check()
        return try await inner.deadLetters(since: since)
    }
    func trades(since: Date?) async throws -> [TradeRecord] {
        try check()
        return try await inner.trades(since: since)
    }
    func trade(id: String) async throws -> TradeRecord? {
        try check()
        return try await inner.trade(id: id)
    }
    func acquireLease(_ name: String, holder: String, now: Date, until: Date) async throws -> Bool {
        try check()
        return try await inner.acquireLease(name, holder: holder, now: now, until: until)
    }
    func releaseLease(_ name: String, holder: String) async throws {
        try check()
        try await inner.releaseLease(name, holder: holder)
    }
    func saveAccountControl(account: String, _ control: AccountControl, at time: Date) async throws {
        try check()
        try await inner.saveAccountControl(account: account, control, at: time)
    }
    func accountControl(account: String) async throws -> AccountControl? {
        try check()
        return try await inner.accountControl(account: account)
    }
    func recordControlCommand(_ command: ControlCommandRecord) async throws -> Bool {
        try check()
        return try await inner.recordControlCommand(command)
    }
    func controlCommands(since: Date?) async throws -> [ControlCommandRecord] {
        try check()
        return try await inner.controlCommands(since: since)
    }
    func recordCircuitBreakerEvent(_ event: CircuitBreakerEvent) async throws -> Bool {
        try check()
        return try await inner.recordCircuitBreakerEvent(event)
    }
    func circuitBreakerEvents(since: Date?) async throws -> [CircuitBreakerEvent] {
        try check()
        return try await inner.circuitBreakerEvents(since: since)
    }
    func recordEquitySnapshot(_ snapshot: EquitySnapshot) async throws -> Bool {
        try check()
        return try await inner.recordEquitySnapshot(snapshot)
    }
    func recordEquitySnapshots(_ snapshots: [EquitySnapshot]) async throws -> Int {
        try check()
        return try await inner.recordEquitySnapshots(snapshots)
    }
    func equitySnapshots(since: Date?) async throws -> [EquitySnapshot] {
        try check()
        return try await inner.equitySnapshots(since: since)
    }
    func markProcessed(messageID: String, consumer: String, at time: Date) async throws -> Bool {
        try check()
        return try await inner.markProcessed(messageID: messageID, consumer: consumer, at: time)
    }
    func isProcessed(messageID: String, consumer: String) async throws -> Bool {
        try check()
        return try await inner.isProcessed(messageID: messageID, consumer: consumer)
    }
}

@Suite("Executor with the store down")
struct ExecutorStoreOutageTests {
    @Test(
        "while the store is down no new order is sent, the venue's stop still closes the position, and the trade is recorded once it is back"
    )
    func storeDown() async throws {
        let world = try await TradeExecutorTests.World()
        let store = OutageStore(world.store)
        let venue = try world.venue()
        let executor = try await world.executor(venue, store: store)
        try await world.candle(executor, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await world.candle(executor, minute: 1, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        #expect(try await world.store.openPositions().count == 1)

        store.down.withLock { $0 = true }
        await #expect(throws: StoreError.self) { try await executor.execute(world.intent(), correlationID: "c") }
        #expect(venue.submitted.withLock { $0 } == 1)  // nothing new went to the venue
        // The stop lives at the venue: it closes the position even though nothing can be recorded.
        await #expect(throws: StoreError.self) {
            try await world.candle(executor, minute: 2, open: 99_000, high: 99_000, low: 97_000, close: 97_500)
        }
        #expect(try await venue.positions().isEmpty)

        store.down.withLock { $0 = false }
        try await executor.processVenueEvents()
        let trades = try await world.store.trades(since: nil)
        #expect(trades.count == 1 && trades.first?.exitReason == "stop_loss")
        #expect(try await world.store.openPositions().isEmpty)
        #expect(try await world.store.deadLetters(since: nil).isEmpty, "an outage sets nothing aside")
        try await world.stop()
    }

    @Test(
        "a hung database holds up no stop: while the first part of a fill hangs in its commit, the next poll gives the kernel the second part and the stop grows to cover both"
    )
    func hungStoreHoldsNoStop() async throws {
        let world = try await TradeExecutorTests.World()
        let store = OutageStore(world.store)
        let (venue, executor) = try await world.readyToTrade(store: store)
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        venue.forwardProtection.withLock { $0 = false }
        venue.extraEvents.withLock {
            $0 = [world.fill("part-1", 0.02, order: id), world.fill("part-2", 0.027, order: id)]
        }
        store.fillPause.arm()
        let first = Task { try await executor.processVenueEvents() }
        #expect(await eventually { store.fillPause.holding })
        #expect(venue.placedStops.all == [0.02], "the first part is protected before its commit")
        try await executor.processVenueEvents()  // the next poll, while the commit hangs
        #expect(
            venue.placedStops.all.last == Money(string: "0.047"),
            "the stop covers both parts before either is in the store: \(venue.placedStops.all)"
        )
        #expect(try await world.store.openPositions().isEmpty)
        store.fillPause.release()
        try await first.value
        #expect(try await world.store.openPositions().first?.quantity == Money(string: "0.047"))
        try await world.stop()
    }

    @Test(
        "a venue event the store keeps refusing is set aside after three tries (a dead letter with its reason, a critical alert); the events after it are committed"
    )
    func poisonEvent() async throws {
        let world = try await TradeExecutorTests.World()
        try await world.bus.declare(
            QueueSpec(name: "test.dead-letters", bindings: ["alert.critical.venue_event_dead_letter"])
        )
        let store = OutageStore(world.store)
        let venue = try world.venue()
        let executor = try await world.executor(venue, store: store)
        try await world.candle(executor, minute: 0, open: 100_000, high: 100_100, low: 99_900, close: 100_000)
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        venue.forwardProtection.withLock { $0 = false }
        store.refusedTrades.withLock { $0 = ["poison"] }
        venue.extraEvents.withLock {
            $0 = [world.fill("poison", 0.01, order: id), world.fill("good", 0.02, order: id)]
        }
        for attempt in 1...3 {
            if attempt < 3 {
                await #expect(throws: StoreError.self) { try await executor.processVenueEvents() }
            } else {
                try await executor.processVenueEvents()
            }
        }
        let letters = try await world.store.deadLetters(since: nil)
        #expect(
            letters.count == 1 && letters.first?.id == "paper:fill:poison"
                && letters.first?.reason.contains("refuses fill poison") == true
        )
        #expect(try await world.store.fills(clientOrderID: id).map(\.tradeID) == ["good"])
        #expect(try await world.bus.messageCount("test.dead-letters") == 1)
        try await executor.processVenueEvents()  // nothing comes again
        #expect(try await world.store.deadLetters(since: nil).count == 1 && venue.extraEvents.withLock { $0.isEmpty })
        try await world.stop()
    }
}
