import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import TradingCore
import Venues

/// Binance's user-data stream against the local server: a listen key kept alive, fills and order
/// updates pushed over its WebSocket, and REST as the fallback for what the stream loses.
@Suite("Binance user-data stream (local server)")
struct BinanceUserStreamTests {
    /// The venue with its stream running (reconnecting as the executor's service does) while `body` runs.
    func withStream(_ server: FakeBinanceFutures, _ body: (BinanceFuturesVenue) async throws -> Void) async throws {
        let venue = BinanceFuturesVenue(
            baseURL: server.baseURL, apiKey: server.apiKey, secret: server.secret, logger: Logger(label: "test"),
            streamURL: server.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/private/ws", listenKeyKeepalive: .milliseconds(500))
        let streaming = Task {
            while !Task.isCancelled {
                try? await venue.streamUserData {}
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { streaming.cancel() }
        #expect(await eventually(timeout: .seconds(5)) { server.streamsOpen == 1 })
        _ = try await venue.events()  // the catch-up by REST
        #expect(await venue.userStreamLive)
        try await body(venue)
    }

    /// Waits until the venue has `count` events pending, and returns them, acknowledged.
    func events(_ venue: BinanceFuturesVenue, count: Int) async throws -> [VenueEvent] {
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

    func fills(_ events: [VenueEvent]) -> [VenueFill] { events.compactMap { if case .fill(let fill) = $0 { fill } else { nil } } }

    @Test("fills come with the stream, not by polling userTrades; sent twice they count once; a lost one is read by REST")
    func fillsComeWithTheStream() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-s1", symbol: "BTCUSDT", side: .buy, quantity: 0.02, leverage: 3, reduceOnly: false))
            let polled = server.requests.filter { $0 == "/fapi/v1/userTrades" }.count  // the new symbol's baseline (limit=1)
            let first = fills(try await events(venue, count: 1))
            #expect(first.map(\.clientOrderID) == ["ten-s1"] && first.first?.fee == Decimal(string: "1")!, "0.05 % of 2,000: \(first)")
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled, "the fill came with the stream")

            // Every event twice: the close is recorded once.
            server.duplicateStreamEvents()
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-s2", symbol: "BTCUSDT", side: .sell, quantity: 0.02, leverage: 3, reduceOnly: true))
            let closing = try await events(venue, count: 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(fills(closing).map(\.clientOrderID) == ["ten-s2"] && closing.count == 2, "one fill and one close: \(closing)")
            #expect(try await venue.events().isEmpty, "nothing twice")
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled)

            // The next fill's events are lost: REST reads it once the stream is late with it.
            server.dropNextStreamEvents(2)
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-s3", symbol: "BTCUSDT", side: .buy, quantity: 0.01, leverage: 3, reduceOnly: false))
            let recovered = fills(try await events(venue, count: 1))
            #expect(recovered.map(\.clientOrderID) == ["ten-s3"])
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count > polled, "read by REST")
            #expect(try await venue.events().isEmpty)
            #expect(server.listenKeyRequests.contains("PUT"), "the listen key is kept alive")
        }
        await server.stop()
    }

    @Test("an expired listen key ends the stream; a new key and connection follow, caught up by REST, and fills come with it again")
    func expiredKeyReconnects() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-e1", symbol: "BTCUSDT", side: .buy, quantity: 0.01, leverage: 3, reduceOnly: false))
            #expect(fills(try await events(venue, count: 1)).count == 1)
            server.expireListenKeys()
            #expect(await eventually(timeout: .seconds(5)) { server.streamsOpened == 2 && server.streamsOpen == 1 })
            #expect(server.listenKeyRequests.filter { $0 == "POST" }.count == 2)
            // A fill while it reconnected would be read by the catch-up; after it, the stream brings them.
            _ = try await venue.events()
            #expect(await venue.userStreamLive)
            let polled = server.requests.filter { $0 == "/fapi/v1/userTrades" }.count
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-e2", symbol: "BTCUSDT", side: .sell, quantity: 0.01, leverage: 3, reduceOnly: true))
            #expect(fills(try await events(venue, count: 2)).map(\.clientOrderID) == ["ten-e2"])
            #expect(server.requests.filter { $0 == "/fapi/v1/userTrades" }.count == polled)
        }
        await server.stop()
    }

    @Test("a stop that triggers is known by its ALGO_UPDATE: its fill closes the position as stop_loss with no order lookup")
    func triggeredStopByStream() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        try await withStream(server) { venue in
            _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-t1", symbol: "BTCUSDT", side: .buy, quantity: 0.01, leverage: 3, reduceOnly: false))
            _ = try await events(venue, count: 1)
            try await venue.placeStop(symbol: "BTCUSDT", ExecutionKernel.StopOrder(clientID: "tsl-t1", side: .sell, quantity: 0.01, trigger: 99_000))
            let lookups = server.requests.filter { $0 == "/fapi/v1/order" || $0 == "/fapi/v1/allAlgoOrders" }.count
            server.moveMarket("BTCUSDT", to: 98_900)
            let closed = try await events(venue, count: 2)
            let close = closed.compactMap { if case .closed(let close) = $0 { close } else { nil } }.first
            #expect(close?.reason == "stop_loss" && fills(closed).first?.clientOrderID == "tsl-t1", "\(closed)")
            #expect(server.requests.filter { $0 == "/fapi/v1/order" || $0 == "/fapi/v1/allAlgoOrders" }.count == lookups)
            #expect(try await venue.workingStops(symbol: "BTCUSDT").isEmpty, "the stop left the list with its update")
        }
        await server.stop()
    }

    @Test("a fee paid in BNB is converted to USDT at BNB's price in the minute of the fill")
    func bnbFees() async throws {
        let server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        server.payFeesInBNB(price: 600)
        let venue = BinanceFuturesVenue(baseURL: server.baseURL, apiKey: server.apiKey, secret: server.secret, logger: Logger(label: "test"))
        _ = try await venue.submit(VenueOrderRequest(clientOrderID: "ten-b1", symbol: "BTCUSDT", side: .buy, quantity: 0.02, leverage: 3, reduceOnly: false))
        // BNB is worth more two minutes later (and now, by its ticker): the fill's own minute counts.
        server.setPrice("BNBUSDT", 650, at: Date().addingTimeInterval(120))
        let fill = try #require(fills(try await venue.events()).first)
        // 1 USDT of commission paid as 1/600 BNB (to eight places), worth 600 USDT a BNB at the fill.
        var bnb = Decimal(1) / 600, rounded = Decimal()
        NSDecimalRound(&rounded, &bnb, 8, .down)  // as the local exchange charges it
        #expect(fill.fee == rounded * 600, "\(fill.fee)")
        await server.stop()
    }
}
