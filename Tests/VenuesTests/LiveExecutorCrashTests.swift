import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore
import TradingServices
import Venues

/// The crash matrix on a live venue: the executor over the Binance venue and a local Binance server
/// that checks signatures. "A crash" is what a killed process leaves: the store and the exchange as
/// they were, and a new executor and venue (with no memory) that start from them.
@Suite("Executor on the Binance venue: crash matrix (local exchange server)")
struct LiveExecutorCrashTests {
    typealias World = BinanceWorld

    @Test(
        "a decision: isolated margin, leverage, one market order; its fill opens the position with its stop and target at the exchange"
    )
    func lifecycle() async throws {
        let world = try await World()
        let (executor, _) = try await world.restart()
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        #expect(try await executor.execute(intent, correlationID: "c") == .duplicate)
        try await executor.processVenueEvents()
        #expect(world.placed(intent) == 1)
        #expect(
            world.server.requests.contains("/fapi/v1/marginType") && world.server.requests.contains("/fapi/v1/leverage")
        )
        let position = try #require(try await world.store.openPositions().first)
        #expect(
            position.venue == "binance" && position.entryPrice == 100_000 && position.leverage == 3
                && position.stopLoss == 98_000
        )
        #expect(world.openStops == [98_000])
        #expect(
            world.server.orders.contains {
                $0.type == "TAKE_PROFIT_MARKET" && $0.status == "NEW" && $0.stopPrice == 104_000
            }
        )
        await world.server.stop()
    }

    @Test(
        "a symbol the exchange does not list: the decision is refused (order.rejected), not retried, and nothing is sent"
    )
    func unlistedSymbol() async throws {
        let world = try await World()
        let (executor, _) = try await world.restart()
        var intent = world.intent()
        intent.decision.symbol = "NOSUCHUSDT"
        #expect(try await executor.execute(intent, correlationID: "c") == .rejected(.invalidDecision))
        #expect(!world.server.requests.contains("/fapi/v1/order"))
        await world.server.stop()
    }

    @Test("crash after the intent: the restarted executor leaves it; the redelivered decision sends it once")
    func crashAfterIntent() async throws {
        let world = try await World()
        let intent = world.intent()
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        try await world.store.recordOrder(
            OrderRecord(
                clientOrderID: id,
                decisionID: intent.decisionID,
                venue: "binance",
                symbol: "BTCUSDT",
                side: .buy,
                type: .market,
                purpose: .entry,
                quantity: Money(string: "0.05")!,
                price: 100_000,
                stopPrice: 98_000,
                createdAt: Date()
            )
        )
        let (executor, _) = try await world.restart()
        #expect(try await world.store.order(clientOrderID: id)?.status == .intent && world.placed(intent) == 0)
        _ = try await executor.execute(intent, correlationID: "c")
        _ = try await executor.execute(intent, correlationID: "c")
        #expect(world.placed(intent) == 1)
        #expect(try await world.store.order(clientOrderID: id)?.status == .filled)
        await world.server.stop()
    }

    @Test("a lost response (timeout, then -1007): the order is found by client id, never sent again, across a restart")
    func lostResponse() async throws {
        let world = try await World()
        world.server.failNextOrders([.slowAfterCreate(.seconds(5))])
        let (executor, _) = try await world.restart(timeout: .seconds(2))
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        #expect(try await world.store.order(clientOrderID: id)?.status == .filled && world.placed(intent) == 1)

        await world.server.stop()

        let other = try await World()  // one position per symbol: a second decision needs a flat account
        other.server.failNextOrders([.unknownAfterCreate])
        let (second, _) = try await other.restart()
        let intent2 = other.intent()
        _ = try await second.execute(intent2, correlationID: "c")
        let (restarted, _) = try await other.restart()
        _ = try await restarted.execute(intent2, correlationID: "c")
        #expect(other.placed(intent2) == 1)
        #expect(
            try await other.store.order(
                clientOrderID: ClientOrderID.make(decisionID: intent2.decisionID, purpose: .entry)
            )?.status == .filled
        )
        #expect(try await other.store.openPositions().first?.decisionID == intent2.decisionID)
        await other.server.stop()
    }

    @Test(
        "an exchange that is down for an order (503, no order made): the order is settled as never received, not resent"
    )
    func unavailable() async throws {
        let world = try await World()
        world.server.failNextOrders([.unavailable])
        let (executor, _) = try await world.restart()
        let intent = world.intent()
        _ = try await executor.execute(intent, correlationID: "c")
        _ = try await executor.execute(intent, correlationID: "c")
        #expect(world.placed(intent) == 0)
        #expect(
            try await world.store.order(
                clientOrderID: ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
            )?.status == .rejected
        )
        await world.server.stop()
    }

    @Test(
        "crash after the fill, before its commit: the restarted executor commits it once, opens and protects the position once"
    )
    func crashAfterFill() async throws {
        let world = try await World()
        let (first, _) = try await world.restart()
        let intent = world.intent()
        // filled at the exchange; killed before the fill is committed
        _ = try await first.execute(intent, correlationID: "c")
        #expect(try await world.store.openPositions().isEmpty)
        _ = try await world.restart()
        let position = try #require(try await world.store.openPositions().first)
        #expect(position.decisionID == intent.decisionID && position.quantity == Money(string: "0.047"))
        #expect(world.openStops == [98_000])
        let (third, _) = try await world.restart()
        try await third.processVenueEvents()
        let entry = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        #expect(try await world.store.fills(clientOrderID: entry).count == 1 && world.openStops == [98_000])
        #expect(try await world.store.openPositions().count == 1)
        await world.server.stop()
    }

    @Test(
        "the stop fills while the executor is down: the restart records the trade with its reason and PnL, and never re-protects it"
    )
    func stopWhileDown() async throws {
        let world = try await World()
        let (first, _) = try await world.restart()
        _ = try await first.execute(world.intent(), correlationID: "c")
        try await first.processVenueEvents()
        #expect(try await world.store.openPositions().count == 1)
        world.server.moveMarket("BTCUSDT", to: 97_900)  // the stop at the exchange fills; nobody is watching
        _ = try await world.restart()
        #expect(try await world.store.openPositions().isEmpty)
        let trade = try #require(try await world.store.trades(since: nil).first)
        #expect(
            trade.exitReason == "stop_loss" && trade.exitPrice == 97_900 && trade.entryPrice == 100_000
                && trade.pnl < -100
        )
        // The entry's fee was paid before the restart; the trade still counts it, with the exit's.
        let fills = try await world.store.latestFills(venue: "binance", symbol: "BTCUSDT", limit: 10)
        #expect(fills.count == 2 && fills.allSatisfy { $0.fee > 0 })
        let fees = fills.map(\.fee).reduce(0, +)
        #expect(trade.fees == fees, "\(trade.fees) vs \(fees)")
        #expect(trade.pnl == (97_900 - 100_000) * trade.quantity - fees)
        #expect(world.openStops.isEmpty, "a closed trade never gets a new stop")
        await world.server.stop()
    }

    @Test("a protective stop that vanished at the exchange is placed again at the restart")
    func missingStop() async throws {
        let world = try await World()
        let (first, _) = try await world.restart()
        _ = try await first.execute(world.intent(), correlationID: "c")
        try await first.processVenueEvents()
        world.server.cancelOpenOrders("BTCUSDT")
        #expect(world.openStops.isEmpty)
        _ = try await world.restart()
        #expect(world.openStops == [98_000])
        await world.server.stop()
    }

    @Test("an exchange that cannot be reached at start: no reconciliation, so no new order")
    func unreachableAtStart() async throws {
        let world = try await World()
        await world.server.stop()
        let (executor, _) = try await world.restart(timeout: .milliseconds(500), reconcile: false)
        await #expect(throws: VenueError.self) { try await executor.reconcile() }
        await #expect(throws: VenueError.self) { try await executor.execute(world.intent(), correlationID: "c") }
        #expect(try await world.store.orders(statuses: [.intent, .sent]).isEmpty)
    }

    @Test("a trailing stop follows the candles: the stop order at the exchange is replaced, and the store follows")
    func trailingStop() async throws {
        let world = try await World()
        let (executor, _) = try await world.restart {
            $0.policy = StopPolicy(trailingActivationR: 1, trailingCallbackFraction: 0.01)
        }
        _ = try await executor.execute(world.intent(), correlationID: "c")
        try await executor.processVenueEvents()
        // +1R is 102,000: a high of 103,000 activates the trail 1 % behind it, at 101,970.
        let candle = Candle(openTime: 0, open: 100_000, high: 103_000, low: 100_000, close: 102_500, volume: 1)
        world.server.setPrice("BTCUSDT", 102_500)  // the mark price where the candle closed: the new stop is below it
        try await executor.observe(
            CandlePayload(venue: "binance", symbol: "BTCUSDT", interval: "1m", candle: candle),
            time: Date()
        )
        #expect(world.openStops == [101_970])
        #expect(try await world.store.openPositions().first?.stopLoss == 101_970)
        world.server.moveMarket("BTCUSDT", to: 101_900)
        try await executor.processVenueEvents()
        let trade = try #require(try await world.store.trades(since: nil).first)
        // The trade records the stop as placed after the fill, before the trail moved it.
        #expect(trade.exitReason == "trailing_stop" && trade.stopLoss == 98_000, "\(trade)")
        await world.server.stop()
    }
}

extension BinanceWorld {
    /// Orders at the exchange with this client id.
    func placed(_ intent: OrderIntent) -> Int {
        let id = ClientOrderID.make(decisionID: intent.decisionID, purpose: .entry)
        return server.orders.filter { $0.clientID == id }.count
    }

    var openStops: [Money?] {
        server.orders.filter { $0.type == "STOP_MARKET" && $0.status == "NEW" }.map { $0.stopPrice.map(money) }
    }
}
