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

    @Test(
        "a stop refused because it would trigger at once (-2021): flattened at market, reduce-only; the trade says stop_refused; a critical alert"
    )
    func stopRefused() async throws {
        let world = try await World()
        try await world.bus.declare(QueueSpec(name: "test.alerts", bindings: ["alert.critical.stop_refused"]))
        let executor = try await world.executor()
        world.server.failNextAlgoOrders([.refuse(-2021, "Order would immediately trigger.")])
        try await world.enter(executor)
        try await world.expectRefusedAndFlattened(alerts: "test.alerts")
        await world.server.stop()
    }

    @Test("an entry that fills in part and then expires: the stop covers the filled quantity")
    func partialFillThenExpiry() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.partialThenExpire(0.4)])
        try await world.enter(executor, polls: 1)
        try await world.expectPartialCovered()
        await world.server.stop()
    }

    @Test(
        "reconciliation: a position opened by hand is adopted (a stop 7 % away) or flattened or left alone, by ADOPT_POLICY, with an alert; one closed by hand is closed in the store",
        arguments: TradeExecutor.AdoptPolicy.allCases
    )
    func handTrades(_ policy: TradeExecutor.AdoptPolicy) async throws {
        let world = try await World()
        try await world.expectHandTradesReconciled(policy)
        await world.server.stop()
    }

    @Test(
        "reconciliation: a position open in the store that the exchange does not hold, no fill explaining it, is closed as unknown with an alert"
    )
    func unexplainedClosed() async throws {
        let world = try await World()
        try await world.expectUnexplainedClosed()
        await world.server.stop()
    }

    @Test(
        "a 429 with Retry-After: 2 holds every request back at least 2 s; a 418 stops every request until the ban ends and raises one critical alert"
    )
    func rateLimited() async throws {
        let world = try await World()
        try await world.bus.declare(QueueSpec(name: "banned", bindings: ["alert.critical.venue_banned"]))
        let executor = try await world.executor()
        try await world.enter(executor)
        #expect(world.protected && world.server.held("BTCUSDT") > 0)
        /// Polls as the executor does (errors are its business), for `seconds`.
        func poll(_ seconds: Double) async {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                try? await executor.processVenueEvents()
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        world.server.failNextRequests([.tooManyRequests(retryAfter: 2)])
        let before = world.server.requestTimes.count
        await poll(3)
        let times = world.server.requestTimes.dropFirst(before)
        let refused = try #require(times.first)
        let next = try #require(times.dropFirst().first, "requests go again after the wait")
        #expect(
            next.timeIntervalSince(refused) >= 2,
            "the next request came \(next.timeIntervalSince(refused)) s after the 429"
        )
        #expect(world.server.violations == 0)

        world.server.failNextRequests([.banned(retryAfter: 3)])
        let start = world.server.requestTimes.count
        await poll(2)
        #expect(world.server.requestTimes.count - start == 1, "only the request that met the ban")
        let status = try await executor.status()
        #expect(status.rateLimit?.banned == true && status.rateLimit?.blockedUntil != nil)
        #expect(try await world.bus.messageCount("banned") == 1)
        await poll(2.5)
        #expect(world.server.requestTimes.count - start > 1, "requests go again once the ban ends")
        #expect(world.server.violations == 0 && world.protected)
        #expect(try await world.bus.messageCount("banned") == 1, "one alert per ban")
        await world.server.stop()
    }

    @Test(
        "polling costs the same for 50 open positions as for 1: one positions call per poll, the open orders of every symbol at once"
    )
    func pollingCostIsFlat() async throws {
        let one = try await World().pollingCost(positions: 1)
        let fifty = try await World().pollingCost(positions: 50)
        // At most two positions reads a poll (the poll's own, and a kernel check that finds the last one
        // a second old), whatever the number of symbols; 50 symbols would cost 50 times that per symbol.
        let positionsOne = one["/fapi/v2/positionRisk"] ?? 0
        let positionsFifty = fifty["/fapi/v2/positionRisk"] ?? 0
        #expect(
            positionsOne >= 5 && positionsOne <= 10 && positionsFifty >= 5 && positionsFifty <= 10,
            "\(one) \(fifty)"
        )
        #expect(
            fifty["/fapi/v1/userTrades"] == nil && one["/fapi/v1/userTrades"] == nil,
            "no fills to read: \(one) \(fifty)"
        )
        #expect(
            fifty.values.reduce(0, +) <= one.values.reduce(0, +) + 2,
            "the same cost, give or take a refresh of the cache: \(one) \(fifty)"
        )
        print("polling over 5 s: 1 position \(one), 50 positions \(fifty)")
    }

    @Test(
        "a restart meets seven days of trade history and no stored cursor: nothing old is recorded, no position opened again"
    )
    func restartWithHistory() async throws {
        let world = try await World()
        try await world.expectOthersHistoryIgnored()
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
        while world.server.held("BTCUSDT") != 0, ContinuousClock.now < deadline {
            try await executor.processVenueEvents()
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(world.server.held("BTCUSDT") == 0)
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
        #expect(
            world.server.orders.filter { $0.type != "MARKET" }.allSatisfy {
                ["STOP_MARKET", "TAKE_PROFIT_MARKET"].contains($0.type)
            }
        )
        #expect(world.server.openAlgoOrders.count == 2, "the stop and the target, both on the algo-order API")
        await world.server.stop()
    }
}

extension HostileVenueTests {
    @Test(
        "an entry filled in three trades, listed twice each and newest first: each fill recorded once, one position, one stop for all of it"
    )
    func duplicatedAndReorderedFills() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.duplicateAndReorderTrades()
        world.server.failNextOrders([.fillsInParts(3)])
        try await world.enter(executor)
        let held = world.server.held("BTCUSDT")
        let fills = try await world.store.latestFills(venue: "binance", symbol: "BTCUSDT", limit: 100)
        #expect(fills.count == 3 && Set(fills.map(\.tradeID)).count == 3)
        #expect(try await world.store.openPositions().map(\.quantity) == [held])
        #expect(world.protected && world.stops.count == 1, "\(world.stops) for \(held)")
        await world.server.stop()
    }
}

/// The live executor against the local Bybit server with the same faults: conditional stops refused
/// (110093), partial fills cancelled, a restart meeting days of another's history, stops cancelled by
/// hand, a lost answer, duplicated and reordered executions. The invariant is asserted at the exchange.
@Suite("Hostile venue: the live executor on Bybit under faults (local exchange server)")
struct BybitHostileVenueTests {
    typealias World = BybitWorld

    @Test(
        "polling costs the same for 50 open positions as for 1: one execution list for every symbol, the conditional orders of all at once"
    )
    func pollingCostIsFlat() async throws {
        let one = try await World().pollingCost(positions: 1)
        let fifty = try await World().pollingCost(positions: 50)
        // One execution list a poll for all symbols; the conditional orders at most every ten seconds.
        #expect(one["GET /v5/execution/list"] == 5 && fifty["GET /v5/execution/list"] == 5, "\(one) \(fifty)")
        #expect(
            (fifty["GET /v5/order/realtime"] ?? 0) <= 1 && (one["GET /v5/order/realtime"] ?? 0) <= 1,
            "\(one) \(fifty)"
        )
        #expect(fifty.values.reduce(0, +) <= one.values.reduce(0, +) + 1, "the same cost: \(one) \(fifty)")
        print("Bybit polling over 5 s: 1 position \(one), 50 positions \(fifty)")
    }

    @Test(
        "the mark gaps past the stop before it is placed (110093): flattened at market, reduce-only; the trade says stop_refused; a critical alert"
    )
    func stopRefused() async throws {
        let world = try await World()
        try await world.bus.declare(QueueSpec(name: "test.alerts", bindings: ["alert.critical.stop_refused"]))
        let executor = try await world.executor()
        world.server.gapAfterNextFill(to: 97_500)
        try await world.enter(executor)
        try await world.expectRefusedAndFlattened(alerts: "test.alerts")
        await world.server.stop()
    }

    @Test("an entry that fills in part and the rest is cancelled: the stop covers the filled quantity")
    func partialFillThenCancel() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.failNextOrders([.partialThenCancel(0.4)])
        try await world.enter(executor, polls: 1)
        try await world.expectPartialCovered()
        await world.server.stop()
    }

    @Test(
        "reconciliation: a position opened by hand is adopted (a stop 7 % away) or flattened or left alone, by ADOPT_POLICY, with an alert; one closed by hand is closed in the store",
        arguments: TradeExecutor.AdoptPolicy.allCases
    )
    func handTrades(_ policy: TradeExecutor.AdoptPolicy) async throws {
        let world = try await World()
        try await world.expectHandTradesReconciled(policy)
        await world.server.stop()
    }

    @Test(
        "reconciliation: a position open in the store that the exchange does not hold, no fill explaining it, is closed as unknown with an alert"
    )
    func unexplainedClosed() async throws {
        let world = try await World()
        try await world.expectUnexplainedClosed()
        await world.server.stop()
    }

    @Test(
        "a restart meets days of another's executions and no stored cursor: nothing old is recorded, no position opened again"
    )
    func restartWithHistory() async throws {
        let world = try await World()
        try await world.expectOthersHistoryIgnored()
        await world.server.stop()
    }

    @Test(
        "a stop cancelled by hand is placed again on the next poll; the lost answer of an accepted stop is settled from the list, never placed twice"
    )
    func stopCancelledAndLost() async throws {
        let world = try await World()
        let executor = try await world.executor()
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        #expect(world.protected && world.stops.count == 1)
        world.server.cancelConditionalOrdersByHand("BTCUSDT")
        #expect(!world.protected)
        world.server.failNextOrders([.unknownAfterCreate])  // the replacement is placed, its answer lost
        try await executor.processVenueEvents()
        try await executor.processVenueEvents()
        #expect(world.protected && world.stops.count == 1 && world.stops.first?.trigger == 98_000, "\(world.stops)")
        await world.server.stop()
    }

    @Test(
        "an entry filled in three executions, listed twice each and oldest first: each recorded once, one stop for all of it; the stop's fill closes it as stop_loss"
    )
    func duplicatedAndReorderedFills() async throws {
        let world = try await World()
        let executor = try await world.executor()
        world.server.duplicateAndReorderExecutions()
        world.server.failNextOrders([.fillsInParts(3)])
        try await world.enter(executor)
        let held = world.server.held("BTCUSDT")
        #expect(try await world.store.latestFills(venue: "bybit", symbol: "BTCUSDT", limit: 100).count == 3)
        #expect(try await world.store.openPositions().map(\.quantity) == [held])
        #expect(world.protected && world.stops.count == 1)
        world.server.moveMarket("BTCUSDT", to: 97_900)
        try await executor.processVenueEvents()
        try await executor.processVenueEvents()
        #expect(try await world.store.trades(since: nil).map(\.exitReason) == ["stop_loss"])
        #expect(try await world.store.openPositions().isEmpty && world.server.held("BTCUSDT") == 0)
        await world.server.stop()
    }
}
