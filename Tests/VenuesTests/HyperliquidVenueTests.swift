import Foundation
import Hyperliquid
import Logging
import TestSupport
import Testing
import TradingCore
import TradingServices
import Venues

/// The live executor on the local Hyperliquid server, which checks every signature and order rule.
/// The invariant is what is asserted: every open position has a reduce-only stop for all of it at the
/// venue, or has been flattened; one order per decision; nothing recorded twice.
@Suite("Hyperliquid: the live executor on the local Hyperliquid server (signatures checked, faults)")
struct HyperliquidVenueTests {
    typealias World = HyperliquidWorld

    @Test(
        "a decision becomes one signed IOC order (cloid from the decision id, isolated leverage first) and its reduce-only trigger stop; sent again, no second order"
    )
    func decisionToOrder() async throws {
        let world = try await World()
        let executor = try await world.executor()
        let intent = world.intent("one")
        _ = try await executor.execute(intent, correlationID: "c")
        for _ in 0..<2 { try await executor.processVenueEvents() }
        let entry = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        #expect(world.server.entryCloids == [HyperliquidAction.cloid(entry)])
        let held = world.server.held("BTCUSDT")
        #expect(held > 0 && world.protected, "held \(held), stops \(world.stops)")
        #expect(world.stops.map(\.trigger) == [98_000])
        let requests = world.server.requests
        #expect(requests.firstIndex(of: "exchange:updateLeverage")! < requests.firstIndex(of: "exchange:order")!)
        let position = try #require(try await world.store.openPositions().first)
        #expect(position.quantity == held && position.stopLoss == 98_000)
        // The target is the position's own take-profit, for whatever it holds.
        #expect(world.server.triggers.contains { $0.tpsl == "tp" && $0.positionTpsl && $0.trigger == 104_000 })
        _ = try await executor.execute(intent, correlationID: "c")
        try await executor.processVenueEvents()
        #expect(world.server.entryCloids.count == 1, "one order per decision")
        let fills = try await world.store.latestFills(venue: "hyperliquid", symbol: "BTCUSDT", limit: 10)
        #expect(fills.count == 1 && fills.first?.clientOrderID == entry)
        await world.server.stop()
    }

    @Test("an action signed by another key is refused by the server as an unknown wallet; nothing is made")
    func wrongKey() async throws {
        let world = try await World()
        let stranger = HyperliquidPerpsVenue(
            baseURL: world.server.baseURL,
            account: World.account,
            key: try AgentKey(hex: Hex.string(Keccak256.hash("someone else"))),
            mainnet: false,
            logger: Logger(label: "test")
        )
        await #expect {
            _ = try await stranger.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-x",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.001,
                    leverage: 3,
                    reduceOnly: false
                )
            )
        } throws: { error in
            "\(error)".contains("does not exist")
        }
        // Signed for mainnet, sent to testnet: another signer, refused the same way.
        let mainnet = HyperliquidPerpsVenue(
            baseURL: world.server.baseURL,
            account: World.account,
            key: World.agentKey,
            mainnet: true,
            logger: Logger(label: "test")
        )
        await #expect(throws: VenueError.self) {
            _ = try await mainnet.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-y",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.001,
                    leverage: 3,
                    reduceOnly: false
                )
            )
        }
        #expect(world.server.held("BTCUSDT") == 0 && world.server.entryCloids.isEmpty)
        await world.server.stop()
    }

    @Test(
        "the mark already past the stop when it is placed: refused as would-trigger, flattened reduce-only; the trade says stop_refused"
    )
    func stopRefused() async throws {
        let world = try await World()
        try await world.bus.declare(QueueSpec(name: "test.alerts", bindings: ["alert.critical.stop_refused"]))
        let executor = try await world.executor()
        world.server.failNextOrders([.gapAfterFill(97_500)])
        try await world.enter(executor)
        try await world.expectRefusedAndFlattened(alerts: "test.alerts")
        await world.server.stop()
    }

    @Test("an IOC entry that fills in part: the stop covers what filled")
    func partialFill() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.partial(Money(string: "0.4")!)])
        try await world.enter(executor, polls: 2)
        try await world.expectPartialCovered()
        await world.server.stop()
    }

    @Test("the order's answer is lost (HTTP 502 after it was made): found by cloid, protected, never sent twice")
    func lostAnswer() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.lostAfterCreate])
        try await world.enter(executor, polls: 3)
        #expect(world.server.entryCloids.count == 1)
        #expect(world.server.held("BTCUSDT") > 0 && world.protected, "\(world.stops)")
        #expect(try await world.store.openPositions().count == 1)
        await world.server.stop()
    }

    @Test(
        "resizes against a hostile venue: an add whose answer is lost is found by cloid, sent once, and the stop grows to the total; a reduce that fills in part leaves a stop for exactly the rest; fills listed twice are counted once"
    )
    func resizes() async throws {
        let world = try await World()
        let executor = try await world.executor()
        func decision(_ id: String, scale: Double? = nil) -> OrderIntent {
            var intent = world.intent(id)
            intent.decision.quantity = scale == nil ? 0.01 : nil
            intent.decision.scale = scale
            return intent
        }
        func poll(_ times: Int = 3) async throws { for _ in 0..<times { try await executor.processVenueEvents() } }
        _ = try await executor.execute(decision("open"), correlationID: "c")
        try await poll()
        #expect(world.server.held("BTCUSDT") == Money(string: "0.01")! && world.protected)

        // The add's answer is lost after the venue made it: queried by cloid, never sent again.
        world.server.failNextOrders([.lostAfterCreate])
        let add = decision("add", scale: 2)
        _ = try await executor.execute(add, correlationID: "c")
        try await poll()
        #expect(world.server.entryCloids.count == 2)
        #expect(world.server.held("BTCUSDT") == Money(string: "0.02")!)
        #expect(world.stops.map(\.quantity) == [Money(string: "0.02")!], "\(world.stops)")
        #expect(world.stops.map(\.trigger) == [98_000])
        // The same decision again: nothing sent.
        #expect(try await executor.execute(add, correlationID: "c") == .duplicate)
        #expect(world.server.entryCloids.count == 2)
        let grown = try #require(try await world.store.openPositions().first)
        #expect(grown.quantity == Money(string: "0.02")! && grown.decisionID == "decision:open")
        #expect(try await world.store.openPositions().count == 1)

        // A reduce by half that fills 40 %: the stop covers exactly what is left.
        world.server.failNextOrders([.partial(Money(string: "0.4")!)])
        world.server.duplicateAndReorderFills()
        _ = try await executor.execute(decision("reduce", scale: 0.5), correlationID: "c")
        try await poll()
        #expect(world.server.held("BTCUSDT") == Money(string: "0.016")!)
        #expect(world.stops.map(\.quantity) == [Money(string: "0.016")!], "\(world.stops)")
        #expect(try await world.store.openPositions().first?.quantity == Money(string: "0.016")!)
        let fills = try await world.store.latestFills(venue: "hyperliquid", symbol: "BTCUSDT", limit: 50)
        #expect(Set(fills.map(\.tradeID)).count == fills.count && fills.count == 3, "\(fills.map(\.tradeID))")
        await world.server.stop()
    }

    @Test(
        "the account stream: fills come with it and REST only checks them; each fill once, whichever brings it, twice and reordered on the stream too; a fill the stream loses is read by REST within seconds; a stop cancelled by hand is placed again; a dropped stream leaves REST polling"
    )
    func accountStream() async throws {
        let world = try await World(stream: true)
        let (executor, venue) = try await world.restart { $0.kernel.protectionCheckInterval = 0 }
        let hyperliquid = try #require(venue as? HyperliquidPerpsVenue)
        #expect(venue.hasUserStream)
        let streaming = Task {
            try await venue.streamUserData { try? await executor.processVenueEvents() }
        }
        #expect(await eventually { await hyperliquid.userStreamLive })
        #expect(world.server.streamed.contains { $0.contains(#""type":"orderUpdates","user":"\#(World.account)""#) })
        try await world.enter(executor, polls: 1)
        #expect(await eventually { world.server.held("BTCUSDT") > 0 && world.protected })
        // With the stream live, polls read no fills by REST until the check is due.
        let reads = { world.server.requests.filter { $0 == "info:userFillsByTime" }.count }
        try await executor.processVenueEvents()
        let before = reads()
        for _ in 0..<5 { try await executor.processVenueEvents() }
        #expect(reads() == before)
        // A stop cancelled by hand: the order update says so, and it is placed again.
        world.server.duplicateAndReorderFills()
        world.server.cancelTriggersByHand("BTCUSDT")
        #expect(await eventually { world.protected && !world.stops.isEmpty })
        // The exit's fill is lost on the stream: REST finds it once the positions disagree for 3 s.
        world.server.dropStreamedFills(1)
        var exit = world.intent("exit")
        exit.decision.action = .short
        exit.decision.closeOnly = true
        _ = try await executor.execute(exit, correlationID: "c")
        let closed = await eventually(timeout: .seconds(15)) {
            try? await executor.processVenueEvents()
            return (try? await world.store.openPositions().isEmpty) == true
        }
        #expect(closed)
        let fills = try await world.store.latestFills(venue: "hyperliquid", symbol: "BTCUSDT", limit: 50)
        #expect(Set(fills.map(\.tradeID)).count == fills.count && fills.count == 2, "\(fills.map(\.tradeID))")
        #expect(try await world.store.trades(since: nil).count == 1)
        // The server drops the stream: REST polls again, every poll, until it is back.
        world.server.closeStreams()
        #expect(await eventually { await !hyperliquid.userStreamLive })
        let polled = reads()
        try await executor.processVenueEvents()
        #expect(reads() == polled + 1)
        streaming.cancel()
        _ = await streaming.result
        await world.server.stop()
    }

    @Test("nothing at the slippage bound (IocCancel): the entry expires, no position, no stop")
    func iocCancel() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.refuse("Order could not immediately match against any resting orders. asset=0")])
        try await world.enter(executor)
        #expect(world.server.held("BTCUSDT") == 0 && world.stops.isEmpty)
        #expect(try await world.store.openPositions().isEmpty)
        await world.server.stop()
    }

    @Test(
        "reconciliation: a position opened by hand is adopted (a stop 7 % away), flattened or left alone, by ADOPT_POLICY; one closed by hand is closed in the store",
        arguments: TradeExecutor.AdoptPolicy.allCases
    )
    func handTrades(_ policy: TradeExecutor.AdoptPolicy) async throws {
        let world = try await World()
        try await world.expectHandTradesReconciled(policy)
        await world.server.stop()
    }

    @Test("a position in the store the venue does not hold, no fill to explain it: closed as unknown, with an alert")
    func unexplainedClosed() async throws {
        let world = try await World()
        try await world.expectUnexplainedClosed()
        await world.server.stop()
    }

    @Test("another's fills from days ago on the account are not ours: only our entry is recorded")
    func othersHistory() async throws {
        let world = try await World()
        try await world.expectOthersHistoryIgnored()
        await world.server.stop()
    }

    @Test(
        "fills listed twice and newest first are recorded once; the stop triggered at the venue closes the trade as stop_loss with Hyperliquid's PnL less both fees"
    )
    func duplicatedFillsAndStop() async throws {
        let world = try await World()
        let executor = try await world.executor()
        try await world.enter(executor)
        world.server.duplicateAndReorderFills()
        let held = world.server.held("BTCUSDT")
        world.server.moveMarket("BTCUSDT", to: 97_900)
        for _ in 0..<3 { try await executor.processVenueEvents() }
        #expect(world.server.held("BTCUSDT") == 0)
        let fills = try await world.store.latestFills(venue: "hyperliquid", symbol: "BTCUSDT", limit: 10)
        #expect(fills.count == 2, "\(fills.map(\.tradeID))")
        let trade = try #require(try await world.store.trades(since: nil).first)
        #expect(trade.exitReason == "stop_loss" && trade.quantity == held)
        let fees = fills.reduce(Money(0)) { $0 + $1.fee }
        #expect(trade.pnl == (97_900 - 100_000) * held - fees, "\(trade.pnl)")
        #expect(try await world.store.trades(since: nil).count == 1)
        await world.server.stop()
    }

    @Test("a 429 holds every request back at least 5 s (Hyperliquid gives no Retry-After); the budget shows it")
    func rateLimited() async throws {
        let world = try await World()
        let venue = world.venue(.seconds(5))
        world.server.tooManyRequests(1)
        await #expect {
            _ = try await venue.price(symbol: "BTCUSDT")
        } throws: { error in
            (error as? VenueError)?.code == .unreachable && (error as? VenueError)?.retryAfter == 5
        }
        let before = world.server.requests.count
        await #expect(throws: VenueError.self) { _ = try await venue.price(symbol: "BTCUSDT") }
        #expect(world.server.requests.count == before, "held back, not sent")
        let status = try #require(await venue.rateLimit())
        #expect(status.blockedUntil != nil && status.limit == 960)
        await world.server.stop()
    }
}
