import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore
import TradingServices
import Venues

/// The live executor against the local Binance server with each fault the execution kernel must
/// survive. The invariant is what is asserted: every open position has a working reduce-only stop
/// for its whole quantity at the exchange, or has been flattened; one order per decision.
@Suite("Hostile venue: the live executor on Binance under faults (local exchange server)")
struct HostileVenueTests {
    typealias World = BinanceWorld

    @Test("a stop refused because it would trigger at once (-2021): flattened at market, reduce-only; the trade says stop_refused; a critical alert")
    func stopRefused() async throws {
        let world = try await World()
        try await world.bus.declare(QueueSpec(name: "test.alerts", bindings: ["alert.critical.stop_refused"]))
        let executor = try await world.executor()
        world.server.failNextAlgoOrders([.refuse(-2021, "Order would immediately trigger.")])
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        try await executor.processVenueEvents()
        #expect(world.server.position("BTCUSDT") == 0)
        #expect(try await world.store.openPositions().isEmpty)
        let trade = try #require(try await world.store.trades(since: nil).first)
        #expect(trade.exitReason == "stop_refused")
        #expect(try await world.bus.messageCount("test.alerts") == 1)
        await world.server.stop()
    }

    @Test("an entry that fills in part and then expires: the stop covers the filled quantity")
    func partialFillThenExpiry() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.partialThenExpire(0.4)])
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        let held = world.server.position("BTCUSDT")
        #expect(held > 0)
        #expect(world.stops.map(\.quantity) == [held], "\(world.stops) for \(held)")
        #expect(try await world.store.openPositions().first?.quantity == held)
        await world.server.stop()
    }

    @Test("a restart meets seven days of trade history and no stored cursor: nothing old is recorded, no position opened again")
    func restartWithHistory() async throws {
        let world = try await World()
        world.server.seedHistory("BTCUSDT", roundTrips: 5, daysAgo: 3)
        let executor = try await world.executor()
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        let fills = try await world.store.latestFills(venue: "binance", symbol: "BTCUSDT", limit: 100)
        #expect(fills.count == 1, "only our own entry: \(fills.map(\.clientOrderID))")
        let restarted = try await world.executor()
        try await restarted.processVenueEvents()
        #expect(try await world.store.latestFills(venue: "binance", symbol: "BTCUSDT", limit: 100).count == 1)
        #expect(try await world.store.openPositions().count == 1)
        #expect(try await world.store.trades(since: nil).isEmpty)
        #expect(world.protected)
        await world.server.stop()
    }

    @Test("a stop cancelled by hand at the venue is placed again on the next poll, without a restart")
    func stopCancelledByHand() async throws {
        let world = try await World()
        let executor = try await world.executor()
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        #expect(world.protected && world.stops.count == 1)
        world.server.cancelOpenOrders("BTCUSDT")
        #expect(!world.protected)
        try await executor.processVenueEvents()
        #expect(world.protected && world.stops.count == 1 && world.stops.first?.trigger == 98_000)
        await world.server.stop()
    }

    @Test("the stop's answer is lost after the exchange accepted it: found in the venue's list, never placed twice")
    func stopAnswerLost() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextAlgoOrders([.lostAfterCreate])
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        try await executor.processVenueEvents()
        #expect(world.protected)
        #expect(world.stops.count == 1, "\(world.stops)")
        await world.server.stop()
    }

    @Test("stops that keep failing (503): retried, and the position is flattened once the protection timeout passes")
    func stopsKeepFailing() async throws {
        let world = try await World()
        let (executor, _) = try await world.restart { $0.kernel.stopProtectionTimeout = 1 }
        world.server.failNextAlgoOrders(Array(repeating: .unavailable, count: 50))
        _ = try await executor.execute(world.intent(), correlationID: "c")
        let deadline = ContinuousClock.now + .seconds(10)
        while world.server.position("BTCUSDT") != 0, ContinuousClock.now < deadline {
            try await executor.processVenueEvents()
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(world.server.position("BTCUSDT") == 0)
        try await executor.processVenueEvents()
        #expect(try await world.store.trades(since: nil).first?.exitReason == "stop_timeout")
        await world.server.stop()
    }

    @Test("the exchange refuses conditional orders on /fapi/v1/order (-4120): the executor never uses it for stops")
    func oldEndpointRefused() async throws {
        let world = try await World()
        let executor = try await world.executor()
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        #expect(world.protected)
        #expect(world.server.orders.filter { $0.type != "MARKET" }.allSatisfy { ["STOP_MARKET", "TAKE_PROFIT_MARKET"].contains($0.type) })
        #expect(world.server.openAlgoOrders.count == 2, "the stop and the target, both on the algo-order API")
        await world.server.stop()
    }
}

extension BinanceWorld {
    /// An executor that checks the venue's list of stops on every poll.
    func executor() async throws -> ExecutorService {
        try await restart { $0.kernel.protectionCheckInterval = 0 }.0
    }

    /// Working reduce-only stops at the exchange: quantity and trigger.
    var stops: [(quantity: Decimal?, trigger: Decimal)] { server.openAlgoOrders.filter { $0.type == "STOP_MARKET" }.map { ($0.quantity, $0.trigger) } }

    /// The invariant, read at the exchange.
    var protected: Bool {
        let held = server.position("BTCUSDT")
        return held == 0 || stops.contains { $0.quantity == held.magnitude }
    }
}
