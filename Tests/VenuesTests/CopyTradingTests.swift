import Exchanges
import Foundation
import Hyperliquid
import Logging
import TestSupport
import Testing
import TradingCore
import TradingServices
import Venues

/// Copy-trading end to end: a local Hyperliquid plays a recorded leader (its `userFills` stream,
/// `clearinghouseState` and `frontendOpenOrders`); the copy analyst turns each fill into decisions on
/// the bus; the executor takes them through the whole risk gateway to our account on a second local
/// Hyperliquid that checks every signature.
@Suite("Copy-trading (a recorded leader on a local Hyperliquid)")
struct CopyTradingTests {
    static let leader = "0xabcdefabcdefabcdefabcdefabcdefabcdef0001"

    /// The leader's stop trigger, as `frontendOpenOrders` lists it.
    static func stopRow(_ trigger: Money, sells: Bool, size: Money) -> String {
        #"{"coin":"BTC","side":"\#(sells ? "A" : "B")","limitPx":"\#(trigger)","sz":"\#(size)","oid":7001,"timestamp":1767225600000,"triggerCondition":"Price below \#(trigger)","isTrigger":true,"triggerPx":"\#(trigger)","children":[],"isPositionTpsl":false,"reduceOnly":true,"orderType":"Stop Market","origSz":"\#(size)","tif":null,"cloid":null}"#
    }

    struct Copying {
        let world: HyperliquidWorld
        let leaderVenue: FakeExchange
        let analyst: CopyAnalyst
        let tasks: [Task<Void, any Error>]
        var tid: Int64 = 1_000

        /// Plays the leader's next fill (position `from`, buying or selling `size` at `price`) and waits
        /// until our account has taken it (`settled`), returning the seconds it took.
        mutating func play(
            from: Money,
            buy: Bool,
            size: Money,
            price: Money = 100_000,
            settled: @escaping @Sendable () async -> Bool
        ) async -> (fill: LeaderFill, seconds: Double) {
            tid += 1
            let start = Date()
            let fill = LeaderFill(
                coin: "BTC",
                price: price,
                size: size,
                isBuy: buy,
                direction: nil,
                startPosition: from,
                time: Int64(start.timeIntervalSince1970 * 1000),
                tid: tid
            )
            leaderVenue.leaderFill(CopyTradingTests.leader, fill: fill)
            let done = await eventually(timeout: .seconds(20)) { await settled() }
            #expect(done, "fill \(tid) (\(from) \(buy ? "+" : "-")\(size)) was not taken in time")
            return (fill, Date().timeIntervalSince(start))
        }

        func outcome(_ id: String) async throws -> DecisionOutcome? { try await world.store.decision(id: id)?.outcome }

        func stop() async {
            for task in tasks { task.cancel() }
            for task in tasks { _ = await task.result }
            await leaderVenue.stop()
            await world.server.stop()
        }
    }

    /// The leader on one local Hyperliquid; our account, executor and copy analyst on another.
    static func start() async throws -> Copying {
        let world = try await HyperliquidWorld()
        let leaderVenue = try await FakeExchange.start(.hyperliquid)
        leaderVenue.setLeader(leader, equity: 1_000_000)
        // History from before we followed: remembered, never copied.
        leaderVenue.leaderFill(
            leader,
            fill: LeaderFill(
                coin: "BTC",
                price: 90_000,
                size: 1,
                isBuy: true,
                startPosition: -1,
                time: Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000,
                tid: 999
            ),
            push: false
        )
        let executor = try await world.executor()
        try await world.bus.declare(QueueSpec(name: "decisions", bindings: ["decision.#"]))
        let consumer = Task {
            try await world.bus.consume("decisions", options: ConsumerOptions(prefetch: 1)) { delivery in
                try await executor.handleDecision(delivery)
                try await executor.processVenueEvents()
            }
        }
        let poller = Task {
            while !Task.isCancelled {
                // As the executor polls: within Hyperliquid's budget (a fill read weighs 20 of 1,200 a minute).
                try? await executor.processVenueEvents()
                try await Task.sleep(for: .seconds(1))
            }
        }
        let analyst = CopyAnalyst(
            source: HyperliquidLeaders(
                webSocketURL: leaderVenue.webSocketURL,
                restURL: leaderVenue.restURL,
                logger: Logger(label: "test")
            ),
            bus: world.bus,
            store: world.store,
            settings: CopyAnalyst.Settings(
                leaders: [Leader(address: leader, weight: 1)],
                sizing: CopySizing(mode: .proportional, maxStopFraction: 0.07),
                capital: 10_000,
                leverage: 3,
                reconnect: Backoff(initial: .milliseconds(20), maximum: .milliseconds(200))
            ),
            origin: "test",
            logger: Logger(label: "test")
        )
        let following = Task { try await analyst.run() }
        let subscribed = await eventually {
            leaderVenue.received.contains { $0.contains(#""type":"userFills","user":"\#(leader)""#) }
        }
        #expect(subscribed)
        try await Task.sleep(for: .milliseconds(100))  // the snapshot is in
        return Copying(world: world, leaderVenue: leaderVenue, analyst: analyst, tasks: [consumer, poller, following])
    }

    @Test(
        "open, add, partial close, flip, close: our position follows in proportion with a stop; repeats and reordering make no order; a leader's far stop is refused with its reason"
    )
    func recordedLeader() async throws {
        var copying = try await Self.start()
        let world = copying.world
        let server = world.server
        let store = world.store
        var seconds: [Double] = []

        // Open: the leader buys 2 BTC of 1,000,000 equity, stop at 98,000 → we hold 2 × 10,000 / 1,000,000.
        copying.leaderVenue.setLeader(
            Self.leader,
            equity: 1_000_000,
            openOrders: [Self.stopRow(98_000, sells: true, size: 2)]
        )
        let open = await copying.play(from: 0, buy: true, size: 2) { server.held("BTCUSDT") == Money(string: "0.02")! }
        seconds.append(open.seconds)
        #expect(await eventually { world.protected && world.stops.map(\.trigger) == [98_000] })
        #expect(server.entryCloids.count == 1)
        #expect(await analyst(copying).published == 1)

        // Add: the leader goes from 2 to 3 BTC, so we grow by half, to 0.03, under the same stop resized
        // to the whole position. Partial close: 3 to 1.5, so we halve, to 0.015, and the stop follows.
        let add = await copying.play(from: 2, buy: true, size: 1) { server.held("BTCUSDT") == Money(string: "0.03")! }
        seconds.append(add.seconds)
        #expect(await eventually { world.stops.map(\.quantity) == [Money(string: "0.03")!] })
        #expect(world.stops.map(\.trigger) == [98_000])
        let reduce = await copying.play(from: 3, buy: false, size: 1.5) {
            server.held("BTCUSDT") == Money(string: "0.015")!
        }
        seconds.append(reduce.seconds)
        #expect(await eventually { world.stops.map(\.quantity) == [Money(string: "0.015")!] })
        for id in [1002, 1003] {
            let record = try #require(try await world.store.decision(id: "copy:\(Self.leader):\(id)"))
            #expect(record.action == .long && record.provider == "copy" && record.model == Self.leader)
        }
        #expect(
            try await copying.outcome("copy:\(Self.leader):1002")?.reason?.hasPrefix("adds 0.01 to the long") == true
        )
        #expect(try await copying.outcome("copy:\(Self.leader):1003")?.reason?.hasPrefix("reduces the long") == true)
        // One position in the record, at the venue's size and average.
        #expect(
            await eventually {
                let held = try? await store.openPositions()
                return held?.count == 1 && held?.first?.quantity == Money(string: "0.015")!
                    && held?.first?.decisionID == "copy:\(Self.leader):1001"
            }
        )

        // Repeats and reordering: the open and the add again, the reduce before the add. No order.
        copying.leaderVenue.replayLeaderFills(Self.leader, [reduce.fill, open.fill, add.fill, open.fill])
        try await Task.sleep(for: .milliseconds(300))
        #expect(server.entryCloids.count == 2)  // the open and the add
        #expect(server.held("BTCUSDT") == Money(string: "0.015")!)
        #expect(await analyst(copying).published == 3)

        // Flip: the leader sells 3.5 from 1.5 (now short 2, stop 102,000): we close, then open short.
        copying.leaderVenue.setLeader(
            Self.leader,
            equity: 1_000_000,
            openOrders: [Self.stopRow(102_000, sells: false, size: 2)]
        )
        let flip = await copying.play(from: Money(string: "1.5")!, buy: false, size: Money(string: "3.5")!) {
            server.held("BTCUSDT") == Money(string: "-0.02")!
        }
        seconds.append(flip.seconds)
        #expect(await eventually { world.protected && world.stops.map(\.trigger) == [102_000] })
        let closeHalf = try #require(try await world.store.decision(id: "copy:\(Self.leader):1004:close"))
        #expect(closeHalf.action == .short)

        // Close: the leader buys 2 back; we are flat, and no stop is left working.
        copying.leaderVenue.setLeader(Self.leader, equity: 1_000_000)
        let close = await copying.play(from: -2, buy: true, size: 2) { server.held("BTCUSDT") == 0 }
        seconds.append(close.seconds)
        #expect(await eventually { world.stops.isEmpty })
        #expect(await eventually { (try? await store.openPositions().isEmpty) == true })

        // A close with nothing open never opens one.
        _ = await copying.play(from: -1, buy: true, size: 1) {
            (try? await store.decision(id: "copy:\(Self.leader):1006")?.outcome) != nil
        }
        #expect(try await copying.outcome("copy:\(Self.leader):1006")?.reason?.contains("nothing to close") == true)
        #expect(server.held("BTCUSDT") == 0)

        // Over a risk limit: the leader's stop is 20 % away; the gateway allows 7 %. Refused, with the reason.
        copying.leaderVenue.setLeader(
            Self.leader,
            equity: 1_000_000,
            openOrders: [Self.stopRow(80_000, sells: true, size: 1)]
        )
        _ = await copying.play(from: 0, buy: true, size: 1) {
            (try? await store.decision(id: "copy:\(Self.leader):1007")?.outcome) != nil
        }
        let refused = try #require(try await copying.outcome("copy:\(Self.leader):1007"))
        #expect(refused.status == .refused && refused.code == "stop_distance")
        #expect(server.held("BTCUSDT") == 0 && server.entryCloids.count == 3)

        // The history before we followed (tid 999) made nothing.
        #expect(try await world.store.decision(id: "copy:\(Self.leader):999") == nil)
        let latencies = await copying.analyst.latencies.sorted()
        let ends = seconds.sorted()
        print(
            "copy latency, leader fill → decision on the bus: p50 \(ms(percentile(latencies, 0.5))) ms, p99 \(ms(percentile(latencies, 0.99))) ms (\(latencies.count) decisions); fill → our order filled: p50 \(ms(percentile(ends, 0.5))) ms, p99 \(ms(percentile(ends, 0.99))) ms (\(ends.count) orders)"
        )
        await copying.stop()
    }

    func analyst(_ copying: Copying) -> CopyAnalyst { copying.analyst }

    func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    func ms(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1000) }
}

/// Following on Hyperliquid, trading on Binance: the deviation guard compares our venue's price with the
/// leader's venue (`REFERENCE_VENUE=hyperliquid`), at its boundary.
@Suite("Copy-trading across venues: the deviation guard at its boundary")
struct CrossVenueCopyTests {
    @Test(
        "Binance at the limit from Hyperliquid's price passes; a hair above is refused with the reason",
        arguments: [("100500", true), ("100500.1", false), ("99500", true), ("99499.9", false)]
    )
    func boundary(binance: String, passes: Bool) async throws {
        let world = try await BinanceWorld()
        let price = Money(string: binance)!
        world.server.setMark("BTCUSDT", price)
        let (executor, _) = try await world.restart { settings in
            settings.referenceVenue = "hyperliquid"
            settings.limits.requireReferencePrice = true
            settings.limits.maxPriceDeviationFraction = 0.005
        }
        // The leader's venue's latest price, as its feed writes it.
        let hyperliquid = FeedOutput(
            venue: "hyperliquid",
            source: "test",
            bus: world.bus,
            cache: world.cache,
            logger: Logger(label: "test")
        )
        await hyperliquid.setLatestPrice(symbol: "BTCUSDT", price: 100_000, time: Date())
        var book = CopyBook()
        let leader = Leader(address: CopyTradingTests.leader, weight: 1)
        let fill = LeaderFill(
            coin: "BTC",
            price: price,
            size: 2,
            isBuy: true,
            startPosition: 0,
            time: Int64(Date().timeIntervalSince1970 * 1000),
            tid: 77
        )
        let decision = try #require(
            try book.take(
                fill,
                leader: leader,
                sizing: CopySizing(mode: .proportional),
                ourEquity: 10_000,
                leaderEquity: 1_000_000,
                leaderStop: price * Money(string: "0.98")!
            )
        )
        let order = try #require(
            decision.orders(symbol: "BTCUSDT", leverage: 3, targetR: 3, stopFraction: 0.07).first
        )
        let outcome = try await executor.execute(
            OrderIntent(decisionID: order.id, decision: order.payload, decidedAt: Date()),
            correlationID: order.id
        )
        let recorded = try #require(try await world.store.decision(id: order.id)?.outcome)
        if passes {
            #expect(outcome == .ordered(clientOrderID: ClientOrderID.make(decisionID: order.id, purpose: .entry)))
            #expect(recorded.status == .ordered)
        } else {
            #expect(outcome == .rejected(.priceDeviation))
            #expect(recorded.status == .refused && recorded.code == "price_deviation")
            #expect(recorded.reason?.contains("from the reference 100000") == true, "\(recorded.reason ?? "")")
        }
        await world.server.stop()
    }
}
