import Foundation
import Hyperliquid
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore
import TradingServices
import Venues

/// What the live executor's tests start from: a local exchange server (BTCUSDT at 100,000) that
/// checks signatures, a fresh SQLite store, an in-process bus and cache.
struct LiveWorld<Server: Sendable>: Sendable {
    let server: Server
    let store: SQLTradeStore
    let bus = InProcessBus()
    let cache = LocalCache()
    /// A venue with no memory, talking to `server`, with this request timeout.
    let venue: @Sendable (Duration) -> any Venue

    init(server: Server, venue: @escaping @Sendable (Duration) -> any Venue) async throws {
        self.server = server
        self.venue = venue
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "live-executor-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = .sqlite(path: directory.appendingPathComponent("store.sqlite").path)
        try await store.migrate()
    }

    /// A new process: a venue with no memory, and an executor that reconciles before anything else.
    /// `configure` changes its settings (no reference price is required here).
    func restart(
        timeout: Duration = .seconds(5),
        reconcile: Bool = true,
        configure: (inout TradeExecutor.Settings) -> Void = { _ in }
    ) async throws -> (TradeExecutor, any Venue) {
        let venue = venue(timeout)
        var settings = TradeExecutor.Settings()
        settings.limits.requireReferencePrice = false
        configure(&settings)
        let executor = TradeExecutor(
            venue: venue,
            store: store,
            bus: bus,
            cache: cache,
            settings: settings,
            source: "test",
            logger: Logger(label: "test")
        )
        if reconcile { try await executor.reconcile() }
        return (executor, venue)
    }

    /// An executor that checks the venue's list of stops on every poll.
    func executor() async throws -> TradeExecutor {
        try await restart { $0.kernel.protectionCheckInterval = 0 }.0
    }

    /// A long BTCUSDT decision at 100,000, stop 98,000, target 104,000, 3x.
    func intent(_ id: String = UUID().uuidString) -> OrderIntent {
        let proposal = TradeProposal(
            action: .long,
            confidence: 0.82,
            leverage: 3,
            entry: 100_000,
            stopLoss: 98_000,
            takeProfit: 104_000,
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
            decidedAt: Date()
        )
    }
}

typealias BinanceWorld = LiveWorld<FakeBinanceFutures>
typealias BybitWorld = LiveWorld<FakeBybitLinear>

/// What the hostile tests read at either local exchange: the position and the working stops.
protocol LocalExchange: Sendable {
    /// The account's position in `symbol` (signed).
    func held(_ symbol: String) -> Money
    /// Working reduce-only stops: quantity (nil for a close-position order) and trigger.
    var workingStops: [(quantity: Money?, trigger: Money)] { get }
    /// A trader's own round trips on `symbol`, `daysAgo` days back, through no API of ours.
    func seedHistory(_ symbol: String, roundTrips: Int, daysAgo: Double)
    /// A market order placed by hand at the exchange, filled at the mark.
    func tradeByHand(_ symbol: String, buy: Bool, quantity: Money)
    /// The signed requests so far (their paths, or method and path).
    var requests: [String] { get }
    /// Sets a symbol's price (and mark).
    func setMark(_ symbol: String, _ price: Money)
    func stop() async
}

extension FakeBinanceFutures: LocalExchange {
    func held(_ symbol: String) -> Money { money(position(symbol)) }
    func setMark(_ symbol: String, _ price: Money) { setPrice(symbol, price.decimal) }
    var workingStops: [(quantity: Money?, trigger: Money)] {
        openAlgoOrders.filter { $0.type == "STOP_MARKET" }.map { ($0.quantity.map(money), money($0.trigger)) }
    }
    func tradeByHand(_ symbol: String, buy: Bool, quantity: Money) {
        openByHand(symbol, side: buy ? "BUY" : "SELL", quantity: quantity.decimal)
    }
}

extension FakeBybitLinear: LocalExchange {
    func held(_ symbol: String) -> Money { money(position(symbol)) }
    func setMark(_ symbol: String, _ price: Money) { setPrice(symbol, price.decimal) }
    func tradeByHand(_ symbol: String, buy: Bool, quantity: Money) {
        tradeByHand(symbol, buy: buy, quantity: quantity.decimal)
    }
    var workingStops: [(quantity: Money?, trigger: Money)] {
        conditionalOrders.map { (money($0.quantity), money($0.trigger)) }
    }
}

extension LiveWorld where Server: LocalExchange {
    /// Requests per path over five polls a second apart, with `positions` protected positions open.
    /// The exchange is stopped after.
    func pollingCost(positions count: Int) async throws -> [String: Int] {
        let world = self
        for index in 0..<count {
            world.server.setMark("P\(index)USDT", 100)
            world.server.tradeByHand("P\(index)USDT", buy: true, quantity: 1)
        }
        let (executor, _) = try await world.restart()  // adopts and protects them all
        #expect(world.server.workingStops.count == count)
        let before = world.server.requests.count
        for _ in 0..<5 {
            try await executor.processVenueEvents()
            try await Task.sleep(for: .seconds(1))
        }
        let paths = world.server.requests.dropFirst(before)
        await world.server.stop()
        return Dictionary(grouping: paths, by: { $0 }).mapValues(\.count)
    }

    /// Working reduce-only stops at the exchange: quantity and trigger.
    var stops: [(quantity: Money?, trigger: Money)] { server.workingStops }

    /// The invariant, read at the exchange: flat, or a stop for the whole position.
    var protected: Bool {
        let held = server.held("BTCUSDT")
        return held == 0 || stops.contains { $0.quantity == held.magnitude }
    }

    /// The decision goes out and the venue's answers are taken in `polls` times.
    func enter(_ executor: TradeExecutor, polls: Int = 2) async throws {
        _ = try await executor.execute(intent(), correlationID: "c")
        for _ in 0..<polls { try await executor.processVenueEvents() }
    }

    /// A stop the exchange refused as would-trigger: flat at the exchange and in the store, the trade
    /// says stop_refused, one critical alert (on the queue `alerts`, declared before).
    func expectRefusedAndFlattened(alerts: String) async throws {
        #expect(server.held("BTCUSDT") == 0)
        #expect(try await store.openPositions().isEmpty)
        #expect(try await store.trades(since: nil).first?.exitReason == "stop_refused")
        #expect(try await bus.messageCount(alerts) == 1)
    }

    /// Days of another's trades on the account: an executor that enters, then one started afresh with
    /// no stored cursor, record only their own fill; one position, protected; no trade.
    func expectOthersHistoryIgnored() async throws {
        server.seedHistory("BTCUSDT", roundTrips: 5, daysAgo: 3)
        try await enter(try await executor(), polls: 1)
        let venue = venue(.seconds(5)).name
        let fills = try await store.latestFills(venue: venue, symbol: "BTCUSDT", limit: 100)
        #expect(fills.count == 1, "only our own entry: \(fills.map(\.clientOrderID))")
        try await executor().processVenueEvents()
        #expect(try await store.latestFills(venue: venue, symbol: "BTCUSDT", limit: 100).count == 1)
        #expect(try await store.openPositions().count == 1 && protected)
        #expect(try await store.trades(since: nil).isEmpty)
    }

    /// Reconciliation with a position opened by hand: `protect` adopts it with a stop 7 % (MAX_STOP_LOSS_PERCENT)
    /// from its entry, `flatten` closes it, `ignore` leaves it alone; each with one alert (queue `alerts`,
    /// declared here). A position then closed by hand is closed in the store as `closed_at_venue`.
    func expectHandTradesReconciled(_ policy: TradeExecutor.AdoptPolicy) async throws {
        try await bus.declare(QueueSpec(name: "alerts", bindings: ["alert.#"]))
        server.tradeByHand("BTCUSDT", buy: true, quantity: Money(string: "0.01")!)
        let (executor, _) = try await restart {
            $0.adoptPolicy = policy
            $0.kernel.protectionCheckInterval = 0
        }
        try await executor.processVenueEvents()
        let findings = try #require(await executor.lastReconciliation).findings
        switch policy {
        case .protect:
            #expect(stops.map(\.quantity) == [Money(string: "0.01")!] && stops.first?.trigger == 93_000, "\(stops)")
            let position = try #require(try await store.openPositions().first)
            #expect(
                position.decisionID.hasPrefix("adopted:BTCUSDT") && position.stopLoss == 93_000
                    && position.quantity == Money(string: "0.01")!
            )
            #expect(findings.contains { $0.contains("adopted and protected at 93000") }, "\(findings)")
            // Closed by hand: the fill closes it in the store, as the venue's doing.
            server.tradeByHand("BTCUSDT", buy: false, quantity: Money(string: "0.01")!)
            try await executor.processVenueEvents()
            #expect(try await store.openPositions().isEmpty)
            #expect(try await store.trades(since: nil).map(\.exitReason) == ["closed_at_venue"])
            try await executor.reconcile()
            #expect(
                server.held("BTCUSDT") == 0 && stops.isEmpty,
                "the stop of a closed position is cancelled: \(stops)"
            )
        case .flatten:
            for _ in 0..<3 where server.held("BTCUSDT") != 0 { try await executor.processVenueEvents() }
            #expect(server.held("BTCUSDT") == 0)
            #expect(try await store.trades(since: nil).map(\.exitReason) == ["adopt_flatten"])
        case .ignore:
            let open = try await store.openPositions()
            #expect(server.held("BTCUSDT") == Money(string: "0.01")! && stops.isEmpty && open.isEmpty)
            try await executor.reconcile()
            #expect(await executor.mode == .normal, "an ignored position is no mismatch")
        }
        let alerts = Collector<String>()
        let reader = RunningConsumer.start(bus, queue: "alerts") { alerts.append($0.routingKey) }
        #expect(await eventually(timeout: .seconds(2)) { alerts.count >= 1 })
        try await reader.stop()
        let expected = [
            "protect": "alert.warning.position_adopted", "flatten": "alert.critical.position_flattened",
            "ignore": "alert.warning.position_ignored",
        ]
        #expect(alerts.all == [expected[policy.rawValue]!], "one alert for the unknown position")
    }

    /// A position open in the store that the exchange does not hold, with no fill to explain it (a
    /// store restored from an old backup): reconciliation closes it as `unknown`, PnL estimated at the
    /// exchange's price, with a critical alert.
    func expectUnexplainedClosed() async throws {
        try await bus.declare(QueueSpec(name: "unknown", bindings: ["alert.critical.position_closed_unknown"]))
        let name = venue(.seconds(5)).name
        try await store.savePosition(
            PositionRecord(
                id: "position:old",
                venue: name,
                symbol: "BTCUSDT",
                side: .long,
                quantity: Money(string: "0.01")!,
                entryPrice: 99_000,
                leverage: 3,
                stopLoss: 97_000,
                takeProfit: nil,
                decisionID: "decision:old",
                openedAt: Date().addingTimeInterval(-86_400)
            )
        )
        let (executor, _) = try await restart()
        #expect(try await store.openPositions().isEmpty)
        let trade = try #require(try await store.trades(since: nil).first)
        #expect(trade.exitReason == "unknown" && trade.exitPrice == 100_000 && trade.pnl == 10)
        #expect(try await bus.messageCount("unknown") == 1)
        #expect(await executor.lastReconciliation?.findings.first?.contains("closed as unknown") == true)
    }

    /// An entry that filled in part: the stop, in the store and at the exchange, covers what filled.
    func expectPartialCovered() async throws {
        let held = server.held("BTCUSDT")
        #expect(held > 0 && held < Money(string: "0.047")!)
        #expect(stops.map(\.quantity) == [held], "\(stops) for \(held)")
        #expect(try await store.openPositions().first?.quantity == held)
    }
}

extension LiveWorld where Server == FakeBinanceFutures {
    init() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await self.init(server: server) { timeout in
            BinanceFuturesVenue(
                baseURL: server.baseURL,
                apiKey: server.apiKey,
                secret: server.secret,
                timeout: timeout,
                logger: Logger(label: "test")
            )
        }
    }
}

extension LiveWorld where Server == FakeBybitLinear {
    init() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        try await self.init(server: server) { timeout in
            BybitLinearVenue(
                baseURL: server.baseURL,
                apiKey: server.apiKey,
                secret: server.secret,
                timeout: timeout,
                logger: Logger(label: "test")
            )
        }
    }
}

typealias HyperliquidWorld = LiveWorld<FakeHyperliquid>

extension FakeHyperliquid: LocalExchange {
    func held(_ symbol: String) -> Money { position(symbol) }
    func tradeByHand(_ symbol: String, buy: Bool, quantity: Money) { tradeByHand(symbol, buy: buy, size: quantity) }
    var workingStops: [(quantity: Money?, trigger: Money)] {
        triggers.filter { $0.tpsl == "sl" }.map { ($0.size, $0.trigger) }
    }
}

extension LiveWorld where Server == FakeHyperliquid {
    /// The agent key of these tests: made from a phrase, holding nothing.
    static var agentKey: AgentKey { try! AgentKey(hex: Hex.string(Keccak256.hash("tradebus test agent"))) }
    static let account = "0x1111111111111111111111111111111111111111"

    /// `stream`: the venue follows the account's stream (`userFills`, `orderUpdates`) on the server's `/ws`.
    init(stream: Bool = false) async throws {
        let key = Self.agentKey
        let server = try await FakeHyperliquid.start(account: Self.account, agent: key.address)
        server.setMark("BTC", 100_000)
        try await self.init(server: server) { timeout in
            HyperliquidPerpsVenue(
                baseURL: server.baseURL,
                account: Self.account,
                key: key,
                mainnet: false,
                timeout: timeout,
                logger: Logger(label: "test"),
                streamURL: stream ? server.streamURL : nil
            )
        }
    }
}
