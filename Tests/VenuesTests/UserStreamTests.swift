import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import TradingCore
import Venues

/// Polls `venue` until its stream is connected and caught up (`isLive`).
func caughtUp(_ venue: some Venue, _ isLive: @escaping @Sendable () async -> Bool) async -> Bool {
    await eventually(timeout: .seconds(5)) {
        _ = try? await venue.events()
        return await isLive()
    }
}

/// Polls `venue` until it has `count` events pending; returns them, acknowledged.
func events(_ venue: some Venue, count: Int) async throws -> [VenueEvent] {
    var events: [VenueEvent] = []
    let deadline = ContinuousClock.now + .seconds(8)
    while ContinuousClock.now < deadline {
        events = try await venue.events()
        if events.count >= count { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    try await venue.acknowledgeEvents(events.count)
    return events
}

func fills(_ events: [VenueEvent]) -> [VenueFill] {
    events.compactMap { if case .fill(let fill) = $0 { fill } else { nil } }
}

/// Binance's user-data stream against the local server: a listen key kept alive, fills and order
/// updates pushed over its WebSocket, and REST as the fallback for what the stream loses.
@Suite("Binance user-data stream (local server)")
struct BinanceUserStreamTests {
    /// The venue with its stream running (reconnecting as the executor's service does) while `body` runs.
    func withStream(_ server: FakeBinanceFutures, _ body: (BinanceFuturesVenue) async throws -> Void) async throws {
        let venue = BinanceFuturesVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: server.secret,
            logger: Logger(label: "test"),
            streamURL: server.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/private/ws",
            listenKeyKeepalive: .milliseconds(500)
        )
        let streaming = Task {
            while !Task.isCancelled {
                try? await venue.streamUserData {}
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { streaming.cancel() }
        #expect(await live(venue), "the catch-up by REST makes the stream live")
        try await body(venue)
    }

    func live(_ venue: BinanceFuturesVenue) async -> Bool { await caughtUp(venue) { await venue.userStreamLive } }

    @Test(
        "fills come with the stream, not by polling userTrades; sent twice they count once; a lost one is read by REST"
    )
    func fillsComeWithTheStream() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-s1",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.02,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            // the new symbol's baseline (limit=1)
            let polled = server.requests.filter { $0 == "/fapi/v1/userTrades" }.count
            let first = fills(try await events(venue, count: 1))
            #expect(
                first.map(\.clientOrderID) == ["ten-s1"] && first.first?.fee == Money(string: "1")!,
                "0.05 % of 2,000: \(first)"
            )
            #expect(
                server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled,
                "the fill came with the stream"
            )

            // Every event twice: the close is recorded once.
            server.duplicateStreamEvents()
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-s2",
                    symbol: "BTCUSDT",
                    side: .sell,
                    quantity: 0.02,
                    leverage: 3,
                    reduceOnly: true
                )
            )
            let closing = try await events(venue, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(
                fills(closing).map(\.clientOrderID) == ["ten-s2"] && closing.count == 2,
                "one fill and one close: \(closing)"
            )
            #expect(try await venue.events().isEmpty, "nothing twice")
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled)

            // The next fill's events are lost: REST reads it once the stream is late with it.
            server.dropNextStreamEvents(2)
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-s3",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            let recovered = fills(try await events(venue, count: 1))
            #expect(recovered.map(\.clientOrderID) == ["ten-s3"])
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count > polled, "read by REST")
            #expect(try await venue.events().isEmpty)
            #expect(server.listenKeyRequests.contains("PUT"), "the listen key is kept alive")
        }
        await server.stop()
    }

    @Test(
        "an expired listen key ends the stream; a new key and connection follow, caught up by REST, and fills come with it again"
    )
    func expiredKeyReconnects() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-e1",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            #expect(fills(try await events(venue, count: 1)).count == 1)
            server.expireListenKeys()
            #expect(await eventually(timeout: .seconds(5)) { server.streamsOpened == 2 && server.streamsOpen == 1 })
            #expect(server.listenKeyRequests.filter { $0 == "POST" }.count == 2)
            // A fill while it reconnected would be read by the catch-up; after it, the stream brings them.
            #expect(await live(venue))
            let polled = server.requests.filter { $0 == "/fapi/v1/userTrades" }.count
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-e2",
                    symbol: "BTCUSDT",
                    side: .sell,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: true
                )
            )
            #expect(fills(try await events(venue, count: 2)).map(\.clientOrderID) == ["ten-e2"])
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled)
        }
        await server.stop()
    }

    @Test(
        "a stop that triggers is known by its ALGO_UPDATE: its fill closes the position as stop_loss with no order lookup"
    )
    func triggeredStopByStream() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-t1",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            _ = try await events(venue, count: 1)
            try await venue.placeStop(
                symbol: "BTCUSDT",
                ExecutionKernel.StopOrder(clientID: "tsl-t1", side: .sell, quantity: 0.01, trigger: 99_000)
            )
            let lookups = server.requests.filter { $0 == "/fapi/v1/order" || $0 == "/fapi/v1/allAlgoOrders" }.count
            server.moveMarket("BTCUSDT", to: 98_900)
            let closed = try await events(venue, count: 2)
            let close = closed.compactMap { if case .closed(let close) = $0 { close } else { nil } }.first
            #expect(close?.reason == "stop_loss" && fills(closed).first?.clientOrderID == "tsl-t1", "\(closed)")
            #expect(
                server.requests.filter { $0 == "/fapi/v1/order" || $0 == "/fapi/v1/allAlgoOrders" }.count == lookups
            )
            #expect(try await venue.workingStops(symbol: "BTCUSDT").isEmpty, "the stop left the list with its update")
        }
        await server.stop()
    }

    @Test("a fee paid in BNB is converted to USDT at BNB's price in the minute of the fill")
    func bnbFees() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        server.payFeesInBNB(price: 600)
        let venue = BinanceFuturesVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: server.secret,
            logger: Logger(label: "test")
        )
        _ = try await venue.submit(
            VenueOrderRequest(
                clientOrderID: "ten-b1",
                symbol: "BTCUSDT",
                side: .buy,
                quantity: 0.02,
                leverage: 3,
                reduceOnly: false
            )
        )
        // BNB is worth more two minutes later (and now, by its ticker): the fill's own minute counts.
        server.setPrice("BNBUSDT", 650, at: Date().addingTimeInterval(120))
        let fill = try #require(fills(try await venue.events()).first)
        // 1 USDT of commission paid as 1/600 BNB (to eight places), worth 600 USDT a BNB at the fill.
        var bnb = Decimal(1) / 600
        var rounded = Decimal()
        NSDecimalRound(&rounded, &bnb, 8, .down)  // as the local exchange charges it
        #expect(fill.fee == money(rounded * 600), "\(fill.fee)")
        await server.stop()
    }
}

/// Bybit's private stream against the local server: authenticated, subscribed to executions, orders
/// and positions; REST reads every symbol at once as the check and the fallback.
@Suite("Bybit private stream (local server)")
struct BybitPrivateStreamTests {
    func withStream(
        _ server: FakeBybitLinear,
        secret: String? = nil,
        _ body: (BybitLinearVenue) async throws -> Void
    ) async throws {
        let venue = BybitLinearVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: secret ?? server.secret,
            logger: Logger(label: "test"),
            streamURL: server.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/v5/private"
        )
        let streaming = Task {
            while !Task.isCancelled {
                try? await venue.streamUserData {}
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { streaming.cancel() }
        try await body(venue)
    }

    func live(_ venue: BybitLinearVenue) async -> Bool { await caughtUp(venue) { await venue.userStreamLive } }

    @Test(
        "executions come with the stream, once each when sent twice; a lost one is read by REST; a stop cancelled by hand leaves the list at once"
    )
    func executionsComeWithTheStream() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            #expect(await live(venue), "the catch-up by REST makes the stream live")
            #expect(server.privateRequests.prefix(2) == ["auth", "subscribe"])
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-y1",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.02,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            let polled = server.requests.filter { $0 == "GET /v5/execution/list" }.count
            #expect(fills(try await events(venue, count: 1)).map(\.clientOrderID) == ["ten-y1"])
            #expect(
                server.requests.filter { $0 == "GET /v5/execution/list" }.count == polled,
                "the fill came with the stream"
            )

            server.duplicateStreamMessages()
            try await venue.placeStop(
                symbol: "BTCUSDT",
                ExecutionKernel.StopOrder(clientID: "tsl-y1", side: .sell, quantity: 0.02, trigger: 99_000)
            )
            server.moveMarket("BTCUSDT", to: 98_900)
            let closed = try await events(venue, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            let close = closed.compactMap { if case .closed(let close) = $0 { close } else { nil } }
            #expect(
                close.map(\.reason) == ["stop_loss"] && fills(closed).map(\.clientOrderID) == ["tsl-y1"],
                "\(closed)"
            )
            #expect(try await venue.events().isEmpty, "nothing twice")

            // A stop cancelled by hand: the order topic takes it off the list (no REST read).
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-y2",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            _ = try await events(venue, count: 1)
            try await venue.placeStop(
                symbol: "BTCUSDT",
                ExecutionKernel.StopOrder(clientID: "tsl-y2", side: .sell, quantity: 0.01, trigger: 97_000)
            )
            #expect(try await venue.workingStops(symbol: "BTCUSDT").map(\.clientID) == ["tsl-y2"])
            server.cancelConditionalOrdersByHand("BTCUSDT")
            #expect(
                await eventually(timeout: .seconds(2)) {
                    (try? await venue.workingStops(symbol: "BTCUSDT").isEmpty) == true
                }
            )

            // Lost: the execution never comes with the stream; REST reads it once it is late.
            server.dropNextStreamMessages(6)
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-y3",
                    symbol: "BTCUSDT",
                    side: .sell,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: true
                )
            )
            let recovered = try await events(venue, count: 1)
            #expect(fills(recovered).map(\.clientOrderID) == ["ten-y3"])
            #expect(server.requests.filter { $0 == "GET /v5/execution/list" }.count > polled, "read by REST")
        }
        await server.stop()
    }

    @Test("a wrong secret: Bybit refuses the stream's auth and the venue says so; polling carries on")
    func refusedAuth() async throws {
        let server = try await FakeBybitLinear.start()
        let venue = BybitLinearVenue(
            baseURL: server.baseURL,
            apiKey: server.apiKey,
            secret: "wrong",
            logger: Logger(label: "test"),
            streamURL: server.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/v5/private"
        )
        await #expect { try await venue.streamUserData {} } throws: { error in
            (error as? VenueError)?.code == .rejected && "\(error)".contains("Signature verification failed")
        }
        let live = await venue.userStreamLive
        #expect(server.streamsOpened == 0 && !live)
        await server.stop()
    }

    @Test("a dropped connection: a new one, caught up by REST; fills come with it again")
    func reconnects() async throws {
        let server = try await FakeBybitLinear.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            #expect(await live(venue))
            server.dropStreamConnections()
            // A fill while it is down is read by REST.
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-r1",
                    symbol: "BTCUSDT",
                    side: .buy,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: false
                )
            )
            #expect(fills(try await events(venue, count: 1)).map(\.clientOrderID) == ["ten-r1"])
            #expect(await eventually(timeout: .seconds(5)) { server.streamsOpened == 2 && server.streamsOpen == 1 })
            #expect(await live(venue))
            let polled = server.requests.filter { $0 == "GET /v5/execution/list" }.count
            _ = try await venue.submit(
                VenueOrderRequest(
                    clientOrderID: "ten-r2",
                    symbol: "BTCUSDT",
                    side: .sell,
                    quantity: 0.01,
                    leverage: 3,
                    reduceOnly: true
                )
            )
            #expect(fills(try await events(venue, count: 2)).map(\.clientOrderID) == ["ten-r2"])
            #expect(server.requests.filter { $0 == "GET /v5/execution/list" }.count == polled)
        }
        await server.stop()
    }
}
