import Foundation
import Logging
import TestSupport
import Testing
import TradingCore
import Venues

/// The Binance USDⓈ-M venue against a local server that checks every signature.
@Suite("Binance futures venue (local server, signatures checked)")
struct BinanceFuturesVenueTests {
    let logger = Logger(label: "test")

    func venue(_ server: FakeBinanceFutures, secret: String? = nil) -> BinanceFuturesVenue {
        BinanceFuturesVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: secret ?? server.secret,
            logger: logger
        )
    }

    @Test("signed calls pass the server's check; a wrong secret is refused with Binance's -1022")
    func signatures() async throws {
        let server = try await FakeBinanceFutures.start()
        let account = try await venue(server).account()
        // no position yet: all of it is available
        #expect(account.equity == 10_000 && account.availableMargin == 10_000)
        await #expect { try await venue(server, secret: "wrong").account() } throws: { error in
            (error as? VenueError)?.code == .rejected && "\(error)".contains("-1022")
        }
        #expect(
            try await venue(server).filters(symbol: "BTCUSDT")
                == ExchangeFilters(
                    tickSize: 0.1,
                    stepSize: 0.001,
                    minQuantity: 0.001,
                    maxQuantity: 1_000,
                    minNotional: 5
                )
        )
        await server.stop()
    }

    @Test("maintenance margin from the leverage brackets: rate and cum per bracket, read once a day")
    func leverageBrackets() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        let binance = venue(server)
        let tiers = try #require(try await binance.marginTiers(symbol: "BTCUSDT"))
        #expect(
            tiers.maintenanceMargin(notional: 50_000) == 465 && tiers.rate(notional: 5_000) == Money(string: "0.0065")
        )
        #expect(tiers.tiers.last?.notionalCap == nil, "the last bracket covers everything above")
        _ = try await binance.marginTiers(symbol: "BTCUSDT")
        #expect(server.requests.filter { $0 == "/fapi/v1/leverageBracket" }.count == 1, "cached for the day")
        await server.stop()
    }

    @Test("a -1021 (our clock is off) re-syncs the clock from the server and goes through")
    func clockResync() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setClockSkew(millis: 20_000)
        _ = try await venue(server).account()
        #expect(server.requests.filter { $0 == "/fapi/v2/account" }.count == 2)
        await server.stop()
    }

    @Test(
        "a market order with its client id fills; its fill comes back by polling, tied to the client id; the position is there"
    )
    func orderAndFill() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        let binance = venue(server)
        let order = try await binance.submit(
            VenueOrderRequest(
                clientOrderID: "ten-abc",
                symbol: "BTCUSDT",
                side: .buy,
                quantity: 0.05,
                leverage: 3,
                reduceOnly: false
            )
        )
        #expect(order.status == .filled && order.clientOrderID == "ten-abc" && order.averagePrice == 100_000)
        let events = try await binance.events()
        guard case .fill(let fill) = events.first else {
            Issue.record("no fill: \(events)")
            return
        }
        #expect(
            fill.clientOrderID == "ten-abc" && fill.quantity == Money(string: "0.05")
                && fill.tradeID == "binance-BTCUSDT-1"
        )
        try await binance.acknowledgeEvents(events.count)
        #expect(try await binance.events().isEmpty)
        let position = try #require(try await binance.positions().first)
        #expect(position.side == .long && position.quantity == Money(string: "0.05") && position.leverage == 3)
        await server.stop()
    }

    @Test(
        "-1007 (status unknown) is an unknown outcome; the order is then found by client id, and an unknown id is nil"
    )
    func unknownOutcome() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        server.failNextOrders([.unknownAfterCreate])
        let binance = venue(server)
        await #expect {
            try await binance.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-lost",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.05,
                    leverage: 3,
                    reduceOnly: false
                )
            )
        } throws: { error in
            (error as? VenueError)?.code == .outcomeUnknown
        }
        let found = try await binance.order(clientOrderID: "ten-lost", symbol: "BTCUSDT")
        #expect(found?.status == .filled)
        #expect(try await binance.order(clientOrderID: "never-sent", symbol: "BTCUSDT") == nil)
        #expect(server.orders.filter { $0.clientID == "ten-lost" }.count == 1)
        await server.stop()
    }

    @Test(
        "protection on the algo-order API: a reduce-only STOP_MARKET for the quantity, a closePosition TAKE_PROFIT_MARKET, listed, cancelled; -2021 is wouldTrigger"
    )
    func protection() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        let binance = venue(server)
        _ = try await binance.submit(
            VenueOrderRequest(
                clientOrderID: "ten-p",
                symbol: "BTCUSDT",
                side: .buy,
                quantity: 0.05,
                leverage: 3,
                reduceOnly: false
            )
        )
        try await binance.placeStop(
            symbol: "BTCUSDT",
            ExecutionKernel.StopOrder(clientID: "tsl-1", side: .sell, quantity: 0.05, trigger: 98_000)
        )
        try await binance.placeTarget(symbol: "BTCUSDT", side: .sell, price: 104_000, clientID: "ttp-1")
        #expect(server.openAlgoOrders.map(\.clientID).sorted() == ["tsl-1", "ttp-1"])
        // Both trigger on the mark price, as the paper venue's do.
        #expect(server.algoWorkingTypes == ["tsl-1": "MARK_PRICE", "ttp-1": "MARK_PRICE"])
        #expect(
            server.openAlgoOrders.contains {
                $0.type == "STOP_MARKET" && $0.side == "SELL" && $0.quantity == 0.05 && $0.trigger == 98_000
            }
        )
        #expect(
            server.openAlgoOrders.contains {
                $0.type == "TAKE_PROFIT_MARKET" && $0.quantity == nil && $0.trigger == 104_000
            }
        )
        #expect(
            try await binance.workingStops(symbol: "BTCUSDT") == [
                ExecutionKernel.StopOrder(clientID: "tsl-1", side: .sell, quantity: 0.05, trigger: 98_000)
            ]
        )
        try await binance.cancelStop(symbol: "BTCUSDT", clientID: "tsl-1")
        try await binance.cancelStop(symbol: "BTCUSDT", clientID: "tsl-1")  // already gone: not an error
        #expect(try await binance.workingStops(symbol: "BTCUSDT").isEmpty)
        // A stop the mark price has already crossed.
        await #expect {
            try await binance.placeStop(
                symbol: "BTCUSDT",
                ExecutionKernel.StopOrder(clientID: "tsl-2", side: .sell, quantity: 0.05, trigger: 100_500)
            )
        } throws: { error in
            (error as? VenueError)?.code == .wouldTrigger
        }
        await server.stop()
    }

    @Test(
        "a stop at the venue that fills closes the position: the venue reports the close, its reason and PnL after fees"
    )
    func closeByStop() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        let binance = venue(server)
        _ = try await binance.submit(
            VenueOrderRequest(
                clientOrderID: "ten-s",
                symbol: "BTCUSDT",
                side: .buy,
                quantity: 0.05,
                leverage: 3,
                reduceOnly: false
            )
        )
        try await binance.placeStop(
            symbol: "BTCUSDT",
            ExecutionKernel.StopOrder(clientID: "tsl-s", side: .sell, quantity: 0.05, trigger: 98_000)
        )
        try await binance.placeTarget(symbol: "BTCUSDT", side: .sell, price: 104_000, clientID: "ttp-s")
        try await binance.acknowledgeEvents(try await binance.events().count)
        server.moveMarket("BTCUSDT", to: 97_900)
        let events = try await binance.events()
        let closes = events.compactMap { if case .closed(let close) = $0 { return close } else { return nil } }
        let close = try #require(closes.first)
        #expect(
            close.reason == "stop_loss" && close.side == .long && close.exitPrice == 97_900
                && close.entryPrice == 100_000 && close.leverage == 3
        )
        // (97,900 − 100,000) × 0.05 = −105, fees 0.05 % of both sides.
        #expect(close.pnl == Money(-105) - close.fees && close.fees > 0)
        #expect(
            events.contains { if case .fill(let fill) = $0 { fill.clientOrderID == "tsl-s" } else { false } },
            "the triggered order's fill is the stop's"
        )
        #expect(try await binance.positions().isEmpty)
        await server.stop()
    }
}
