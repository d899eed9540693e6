import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import TradingCore
import Venues

/// The Bybit v5 linear venue against a local server that checks every signature.
@Suite("Bybit linear venue (local server, signatures checked)")
struct BybitLinearVenueTests {
    let logger = Logger(label: "test")

    func venue(
        _ server: FakeBybitLinear,
        apiKey: String? = nil,
        secret: String? = nil,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) -> BybitLinearVenue {
        BybitLinearVenue(
            baseURL: server.baseURL,
            apiKey: apiKey ?? server.apiKey,
            secret: secret ?? server.secret,
            logger: logger,
            clock: clock
        )
    }

    func entry(
        _ id: String,
        side: OrderSide = .buy,
        quantity: Money = Money(string: "0.05")!,
        leverage: Int = 3
    ) -> VenueOrderRequest {
        VenueOrderRequest(
            clientOrderID: id,
            symbol: "BTCUSDT",
            side: side,
            quantity: quantity,
            leverage: leverage,
            reduceOnly: false
        )
    }

    func fills(_ events: [VenueEvent]) -> [VenueFill] {
        events.compactMap { if case .fill(let fill) = $0 { fill } else { nil } }
    }
    func closes(_ events: [VenueEvent]) -> [VenueClose] {
        events.compactMap { if case .closed(let close) = $0 { close } else { nil } }
    }

    /// Bybit's taker fee on a fill, as the local server charges it.
    func fee(_ price: Money, _ quantity: Money) -> Money { price * quantity * money(FakeBybitLinear.takerFee) }

    /// Inputs signed once with Python's `hmac.new(secret, timestamp + key + window + payload, sha256)`.
    @Test("known answer: the X-BAPI-SIGN header of a GET (query string) and of a POST (JSON body)")
    func knownAnswer() {
        let query = "category=linear&symbol=BTCUSDT&orderLinkId=ten-abc"
        let headers = RequestSigning.bybitHeaders(
            timestamp: 1_700_000_000_123,
            apiKey: "bybit-key",
            recvWindow: 5_000,
            payload: query,
            secret: "bybit-secret"
        )
        #expect(headers.map { $0.0 } == ["X-BAPI-API-KEY", "X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW", "X-BAPI-SIGN"])
        #expect(
            headers.map { $0.1 } == [
                "bybit-key", "1700000000123", "5000",
                "99da159a66ed409d01a42f94f15556bc9f189857fde5ac9700ea33a2428dc0cb",
            ]
        )
        let body =
            #"{"category":"linear","orderLinkId":"ten-abc","orderType":"Market","positionIdx":0,"qty":"0.05","reduceOnly":false,"side":"Buy","symbol":"BTCUSDT"}"#
        #expect(
            RequestSigning.bybitSignature(
                timestamp: 1_700_000_000_123,
                apiKey: "bybit-key",
                recvWindow: 5_000,
                payload: body,
                secret: "bybit-secret"
            )
                == "bad85d58e92e36e1f811930aae599b16549f878c656f3489dea5b50d65b21cb5"
        )
        #expect(
            RequestSigning.queryString([("symbol", "BTCUSDT"), ("cursor", "a b&c")])
                == "symbol=BTCUSDT&cursor=a%20b%26c"
        )
    }

    @Test("signed calls pass the server's check; a wrong secret is refused with 10004, a wrong key with 10003")
    func signatures() async throws {
        let server = try await FakeBybitLinear.start()
        let account = try await venue(server).account()
        #expect(account.equity == 10_000 && account.availableMargin == 9_000)
        await #expect { try await venue(server, secret: "wrong").account() } throws: { error in
            (error as? VenueError)?.code == .rejected && "\(error)".contains("10004")
        }
        await #expect { try await venue(server, apiKey: "other-key").account() } throws: { error in
            (error as? VenueError)?.code == .rejected && "\(error)".contains("10003")
        }
        // Only market orders are sent: the largest is maxMktOrderQty, not maxOrderQty.
        #expect(
            try await venue(server).filters(symbol: "BTCUSDT")
                == ExchangeFilters(tickSize: 0.1, stepSize: 0.001, minQuantity: 0.001, maxQuantity: 119, minNotional: 5)
        )
        await #expect { try await venue(server).filters(symbol: "NOPEUSDT") } throws: { error in
            (error as? VenueError)?.code == .rejected
        }
        server.setPrice("BTCUSDT", 100_000)
        #expect(try await venue(server).price(symbol: "BTCUSDT") == 100_000)
        await server.stop()
    }

    @Test(
        "a 10002 (our clock is off, either way) re-syncs the clock from the server and goes through; a clock still off after that is clock_skew"
    )
    func clockResync() async throws {
        let server = try await FakeBybitLinear.start()
        server.setClockSkew(millis: 20_000)
        _ = try await venue(server).account()
        #expect(server.requests.filter { $0 == "GET /v5/account/wallet-balance" }.count == 2)
        server.setClockSkew(millis: -20_000)
        _ = try await venue(server).account()
        #expect(server.requests.filter { $0 == "GET /v5/account/wallet-balance" }.count == 4)
        // A clock that jumps a minute at each reading stays off after the re-sync: one retry, then clock_skew.
        server.setClockSkew(millis: 0)
        let jumping = JumpingClock()
        await #expect { try await venue(server, clock: { jumping.now() }).account() } throws: { error in
            (error as? VenueError)?.code == .clockSkew
        }
        #expect(server.requests.filter { $0 == "GET /v5/account/wallet-balance" }.count == 6)
        await server.stop()
    }

    @Test(
        "maintenance margin from the risk limits: each tier's rate, deductions carried on so the margin is continuous, read once a day"
    )
    func riskLimits() async throws {
        let server = try await FakeBybitLinear.start()
        let bybit = BybitLinearVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: server.secret,
            logger: Logger(label: "test")
        )
        let tiers = try #require(try await bybit.marginTiers(symbol: "BTCUSDT"))
        #expect(tiers.rate(notional: 1_000_000) == Money(string: "0.005"))
        // 3,000,000 is in the second tier (1 %), less the 10,000 that keeps it continuous at 2,000,000.
        #expect(tiers.maintenanceMargin(notional: 3_000_000) == 20_000)
        _ = try await bybit.marginTiers(symbol: "BTCUSDT")
        await server.stop()
    }

    @Test(
        "an entry with its orderLinkId fills; the fill comes back by polling, tied to the orderLinkId; margin, leverage and position are there"
    )
    func orderAndFill() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let bybit = venue(server)
        let order = try await bybit.submit(entry("ten-abc"))
        #expect(order.status == .accepted && order.clientOrderID == "ten-abc" && !order.venueOrderID.isEmpty)
        let margin = server.margin("BTCUSDT")
        #expect(margin.isolated && margin.leverage == 3)
        let events = try await bybit.events()
        let fill = try #require(fills(events).first)
        #expect(
            events.count == 1 && fill.clientOrderID == "ten-abc" && fill.quantity == Money(string: "0.05")
                && fill.price == 100_000 && fill.side == .buy
        )
        #expect(
            fill.tradeID.hasPrefix("bybit-") && fill.tradeID.count > "bybit-".count
                && fill.fee == fee(100_000, Money(string: "0.05")!)
        )
        let known = try #require(try await bybit.order(clientOrderID: "ten-abc", symbol: "BTCUSDT"))
        #expect(
            known.status == .filled && known.venueOrderID == order.venueOrderID && known.averagePrice == 100_000
                && known.filledQuantity == Money(string: "0.05")
        )
        try await bybit.acknowledgeEvents(events.count)
        // The next poll reads the last seconds again and reports nothing twice.
        #expect(try await bybit.events().isEmpty)
        let position = try #require(try await bybit.positions().first)
        #expect(
            position.side == .long && position.quantity == Money(string: "0.05") && position.leverage == 3
                && position.entryPrice == 100_000
        )
        #expect(position.stopLoss == nil && position.takeProfit == nil)
        // A second entry on the symbol does not switch its margin again.
        _ = try await bybit.submit(entry("ten-abd", quantity: Money(string: "0.01")!))
        #expect(server.requests.filter { $0 == "POST /v5/position/switch-isolated" }.count == 1)
        #expect(try await bybit.positions().first?.quantity == Money(string: "0.06"))
        await server.stop()
    }

    @Test(
        "the same orderLinkId sent again (Bybit's 110072) returns the existing order: one order at the server, one fill"
    )
    func duplicate() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let bybit = venue(server)
        let first = try await bybit.submit(entry("ten-dup"))
        let again = try await bybit.submit(entry("ten-dup"))
        #expect(again.venueOrderID == first.venueOrderID && again.clientOrderID == "ten-dup" && again.status == .filled)
        #expect(server.orders.filter { $0.linkID == "ten-dup" }.count == 1)
        #expect(fills(try await bybit.events()).count == 1)
        #expect(try await bybit.positions().first?.quantity == Money(string: "0.05"))
        await server.stop()
    }

    @Test(
        "10016 or HTTP 502 after the create is an unknown outcome; the order is then found by orderLinkId (also once only the history has it); an unknown id is nil"
    )
    func unknownOutcome() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        server.failNextOrders([.unknownAfterCreate, .gatewayErrorAfterCreate])
        let bybit = venue(server)
        for id in ["ten-lost", "ten-502"] {
            await #expect { try await bybit.submit(entry(id)) } throws: { error in
                (error as? VenueError)?.code == .outcomeUnknown
            }
            let found = try await bybit.order(clientOrderID: id, symbol: "BTCUSDT")
            #expect(found?.status == .filled && found?.clientOrderID == id)
            #expect(server.orders.filter { $0.linkID == id }.count == 1)
        }
        #expect(try await bybit.order(clientOrderID: "never-sent", symbol: "BTCUSDT") == nil)
        server.forgetClosedOrders()
        #expect(try await bybit.order(clientOrderID: "ten-lost", symbol: "BTCUSDT")?.status == .filled)
        #expect(server.requests.last == "GET /v5/order/history")
        // The fills of the lost orders still come, tied to their ids.
        #expect(Set(fills(try await bybit.events()).map(\.clientOrderID)) == ["ten-lost", "ten-502"])
        await server.stop()
    }

    @Test(
        "too many visits (10006): unreachable, with Bybit's headers; nothing more is sent until its reset time; an HTTP 403 (the IP ban) stops every request for ten minutes"
    )
    func rateLimits() async throws {
        let server = try await FakeBybitLinear.start()
        server.failNextRequests([.tooManyVisits])
        let bybit = venue(server)
        await #expect { try await bybit.account() } throws: { error in
            (error as? VenueError)?.code == .unreachable && "\(error)".contains("rate limit")
                && "\(error)".contains("left 0")
        }
        let sent = server.requests.count
        await #expect { try await bybit.account() } throws: { "\($0)".contains("not sent") }
        #expect(server.requests.count == sent, "held back until the reset")
        try await Task.sleep(for: .milliseconds(1_100))
        #expect(try await bybit.account().equity == 10_000)

        server.failNextRequests([.ipRateLimited])
        await #expect { try await bybit.account() } throws: { "\($0)".contains("403") }
        let banned = server.requests.count
        await #expect { try await bybit.positions() } throws: { "\($0)".contains("banned") }
        #expect(server.requests.count == banned)
        let status = try #require(await bybit.rateLimit())
        #expect(status.banned && (status.blockedUntil?.timeIntervalSinceNow ?? 0) > 590)
        await server.stop()
    }

    func stop(
        _ id: String,
        _ side: OrderSide = .sell,
        trigger: Money,
        quantity: Money = Money(string: "0.05")!
    ) -> ExecutionKernel.StopOrder {
        ExecutionKernel.StopOrder(clientID: id, side: side, quantity: quantity, trigger: trigger)
    }

    @Test(
        "stops are reduce-only conditional orders (mark price, falling for a long), listed, placed twice as one, cancelled; a trigger already passed is 110093 / 110092, would-trigger"
    )
    func stops() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let bybit = venue(server)
        _ = try await bybit.submit(entry("ten-p"))
        try await bybit.placeStop(symbol: "BTCUSDT", stop("tsl-1", trigger: 98_000))
        try await bybit.placeStop(symbol: "BTCUSDT", stop("tsl-1", trigger: 98_000))  // 110072: the one that exists
        // a second one, before the first goes
        try await bybit.placeStop(symbol: "BTCUSDT", stop("tsl-2", trigger: 99_000))
        #expect(
            try await bybit.workingStops(symbol: "BTCUSDT") == [
                stop("tsl-1", trigger: 98_000), stop("tsl-2", trigger: 99_000),
            ]
        )
        try await bybit.cancelStop(symbol: "BTCUSDT", clientID: "tsl-1")
        try await bybit.cancelStop(symbol: "BTCUSDT", clientID: "tsl-1")  // 110001: already gone is done
        #expect(server.conditionalOrders.map(\.linkID) == ["tsl-2"])
        await #expect { try await bybit.placeStop(symbol: "BTCUSDT", self.stop("tsl-3", trigger: 100_500)) } throws: {
            error in
            (error as? VenueError)?.code == .wouldTrigger && "\(error)".contains("110093")
        }
        // The target is the position's own take-profit, whole position; the stop orders are untouched.
        try await bybit.placeTarget(symbol: "BTCUSDT", side: .sell, price: 104_000, clientID: "ttp-1")
        #expect(server.positions["BTCUSDT"]?.takeProfit == 104_000 && server.positions["BTCUSDT"]?.stopLoss == nil)
        #expect(try await bybit.positions().first?.takeProfit == 104_000)

        _ = try await bybit.submit(
            VenueOrderRequest(
                clientOrderID: "tex-1",
                symbol: "BTCUSDT",
                side: .sell,
                quantity: 0.1,
                leverage: 3,
                reduceOnly: false
            )
        )
        await #expect {
            try await bybit.placeStop(symbol: "BTCUSDT", self.stop("tsl-4", .buy, trigger: 99_500))
        } throws: { error in
            (error as? VenueError)?.code == .wouldTrigger && "\(error)".contains("110092")
        }
        await server.stop()
    }

    @Test(
        "a stop triggered at the server closes the position: the fill is the stop's (its orderLinkId), the close stop_loss, PnL after both fees"
    )
    func closeByStop() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let bybit = venue(server)
        _ = try await bybit.submit(entry("ten-s"))
        try await bybit.placeStop(symbol: "BTCUSDT", stop("tsl-s", trigger: 98_000))
        try await bybit.acknowledgeEvents(try await bybit.events().count)
        server.moveMarket("BTCUSDT", to: 97_900)
        let events = try await bybit.events()
        #expect(events.count == 2)
        let exit = try #require(fills(events).first)
        #expect(exit.side == .sell && exit.price == 97_900 && exit.clientOrderID == "tsl-s")
        let close = try #require(closes(events).first)
        let quantity = Money(string: "0.05")!
        #expect(
            close.reason == "stop_loss" && close.side == .long && close.exitPrice == 97_900
                && close.entryPrice == 100_000 && close.leverage == 3
        )
        #expect(close.quantity == quantity)
        // (97,900 − 100,000) × 0.05 = −105, less the entry's and the exit's taker fees.
        #expect(close.fees == fee(100_000, quantity) + fee(97_900, quantity))
        #expect(close.pnl == Money(-105) - close.fees)
        #expect(try await bybit.positions().isEmpty && server.conditionalOrders.isEmpty)
        await server.stop()
    }

    @Test(
        "a short's take-profit closes with take_profit and a profit; a liquidation (BustTrade) closes with liquidation"
    )
    func targetAndLiquidation() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let bybit = venue(server)
        _ = try await bybit.submit(entry("ten-short", side: .sell))
        try await bybit.placeStop(symbol: "BTCUSDT", stop("tsl-short", .buy, trigger: 102_000))
        try await bybit.placeTarget(symbol: "BTCUSDT", side: .buy, price: 96_000, clientID: "ttp-short")
        server.moveMarket("BTCUSDT", to: 99_000)
        #expect(closes(try await bybit.events()).isEmpty)
        server.moveMarket("BTCUSDT", to: 95_900)
        var events = try await bybit.events()
        let target = try #require(closes(events).first)
        #expect(target.reason == "take_profit" && target.side == .short && target.exitPrice == 95_900)
        #expect(target.pnl == Money(205) - target.fees && target.pnl > 0)
        // Flat: Bybit deactivates the reduce-only stop with nothing left to reduce.
        #expect(server.conditionalOrders.isEmpty)
        try await bybit.acknowledgeEvents(events.count)

        server.setPrice("BTCUSDT", 100_000)
        _ = try await bybit.submit(entry("ten-liq", leverage: 20))
        server.liquidate("BTCUSDT", at: 95_500)
        events = try await bybit.events()
        let liquidation = try #require(closes(events).first)
        #expect(
            liquidation.reason == "liquidation" && liquidation.leverage == 20 && liquidation.exitPrice == 95_500
                && liquidation.pnl < -225
        )
        await server.stop()
    }

    @Test("fills over several pages of the execution list come back once each, oldest first")
    func pages() async throws {
        let server = try await FakeBybitLinear.start()
        server.setExecutionPageSize(2)
        let bybit = venue(server)
        for step in 1...5 {
            server.setPrice("BTCUSDT", Decimal(100_000 + step))
            _ = try await bybit.submit(entry("ten-page-\(step)", quantity: Money(string: "0.01")!))
        }
        let received = fills(try await bybit.events())
        #expect(received.map(\.clientOrderID) == (1...5).map { "ten-page-\($0)" })
        #expect(received.map(\.price) == (1...5).map { Money(100_000 + $0) })
        #expect(server.requests.filter { $0 == "GET /v5/execution/list" }.count == 3)
        await server.stop()
    }

    @Test(
        "after a restart, a new venue seeded from the committed fills and open position reports only the new fill, and the close right"
    )
    func resumeAfterRestart() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        let before = venue(server)
        _ = try await before.submit(entry("ten-r"))
        try await before.placeStop(symbol: "BTCUSDT", stop("tsl-r", trigger: 98_000))
        let committed = fills(try await before.events())
        try await before.acknowledgeEvents(committed.count)
        var open = try #require(try await before.positions().first)
        open.stopLoss = 98_000  // as the store holds it
        #expect(committed.count == 1)

        // The process is gone; meanwhile the stop fills.
        server.moveMarket("BTCUSDT", to: 97_900)
        let after = venue(server)
        try await after.resume(
            VenueResume(openPositions: [open], committedFills: ["BTCUSDT": committed], pendingSymbols: [])
        )
        let events = try await after.events()
        let new = fills(events)
        #expect(new.count == 1 && new.first?.price == 97_900 && new.first?.tradeID != committed.first?.tradeID)
        let close = try #require(closes(events).first)
        let quantity = Money(string: "0.05")!
        // The entry's fee was booked with the entry, before the restart: the close carries the exit's.
        #expect(
            close.reason == "stop_loss" && close.entryPrice == 100_000 && close.quantity == quantity
                && close.leverage == 3 && close.stopLoss == 98_000
        )
        #expect(close.fees == fee(97_900, quantity) && close.pnl == Money(-105) - close.fees)
        try await after.acknowledgeEvents(events.count)
        #expect(try await after.events().isEmpty)

        // A symbol whose order was pending, with nothing committed, reads back from that order's time
        // (here: a minute ago), and without one from now only: never the last week's history.
        let third = venue(server)
        try await third.resume(
            VenueResume(
                openPositions: [],
                committedFills: [:],
                pendingSymbols: ["BTCUSDT"],
                pendingSince: ["BTCUSDT": Date().addingTimeInterval(-60)]
            )
        )
        #expect(fills(try await third.events()).count == 2)
        server.seedHistory("BTCUSDT", roundTrips: 2, daysAgo: 3)
        let fourth = venue(server)
        try await fourth.resume(VenueResume(openPositions: [], committedFills: [:], pendingSymbols: ["BTCUSDT"]))
        #expect(fills(try await fourth.events()).allSatisfy { $0.time > Date().addingTimeInterval(-60) })
        await server.stop()
    }
}

/// A clock that is a minute further on at each reading: no offset keeps up with it.
final class JumpingClock: Sendable {
    private let readings = Mutex(0)

    func now() -> Date {
        let minutes = readings.withLock { count in
            count += 1
            return count
        }
        return Date().addingTimeInterval(Double(minutes) * 60)
    }
}
