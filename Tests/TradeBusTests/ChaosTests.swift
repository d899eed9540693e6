import Foundation
import RabbitMQBus
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The executor killed with SIGKILL at random points of a run against the local Binance server, while
/// decisions arrive and the market moves. After every restart: the store agrees with the venue after
/// one reconciliation, no order was sent twice, and no position went without a stop for longer than
/// the protection timeout plus the time the account had no executor at all.
extension MarketDataSystemTests {
    @Suite("Chaos: the executor killed at random points")
    struct ChaosTests {
        let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path
        static let kills = Int(ProcessInfo.processInfo.environment["CHAOS_KILLS"] ?? "") ?? 50
        /// Fresh symbols each run: the local exchange numbers trades from 1, and the store is shared.
        static let symbols: [String] = {
            let run = UUID().uuidString.prefix(4).uppercased().filter(\.isLetter)
            return ["A", "B", "C"].map { "CH\(run)\($0)USDT" }
        }()

        /// Whether the run goes on, and whether the market moves and decisions arrive.
        final class Switches: Sendable {
            private let flags = Mutex((running: true, trading: true))
            var running: Bool { flags.withLock { $0.running } }
            var trading: Bool { flags.withLock { $0.trading } }
            func set(running: Bool) { flags.withLock { $0.running = running } }
            func set(trading: Bool) { flags.withLock { $0.trading = trading } }
        }

        /// What the watcher saw at the exchange: how long each position went without a stop covering it.
        final class Watch: Sendable {
            private let state = Mutex<
                (unprotectedSince: [String: Date], longest: TimeInterval, positionsSeen: Set<String>)
            >(([:], 0, []))
            var longest: TimeInterval { state.withLock { $0.longest } }
            var positionsSeen: Int { state.withLock { $0.positionsSeen.count } }

            func look(_ exchange: FakeBinanceFutures, symbols: [String], now: Date) {
                let stops = exchange.openAlgoOrders.filter { $0.type == "STOP_MARKET" }
                state.withLock { state in
                    for symbol in symbols {
                        let held = exchange.position(symbol)
                        // A position is told apart by its size and side: a new one is a new position.
                        if held != 0 { state.positionsSeen.insert("\(symbol) \(held)") }
                        let covered =
                            held == 0 || stops.contains { $0.symbol == symbol && ($0.quantity ?? 0) >= held.magnitude }
                        if covered {
                            state.unprotectedSince[symbol] = nil
                        } else {
                            let since = state.unprotectedSince[symbol] ?? now
                            state.unprotectedSince[symbol] = since
                            state.longest = max(state.longest, now.timeIntervalSince(since))
                        }
                    }
                }
            }
        }

        // The run prints its figures: kills, restarts checked, positions watched, the longest time
        // without a stop. CHAOS_KILLS sets the number of kills (50).
        @Test(
            "SIGKILL at 50 random points: after each restart store = venue, no order sent twice, no position long without a stop"
        )
        func killAtRandomPoints() async throws {
            let account = TestServices.uniqueName("chaos")
            // A schema of its own in the real Postgres: the run's orders and positions, and only them.
            let schema = "chaos_" + UUID().uuidString.prefix(8).lowercased()
            let shared = try Infrastructure.store(
                try SettingsReader(environment: ["DATABASE_URL": TestServices.databaseURL])
            )
            _ = try await shared.database.withSession { try $0.execute("CREATE SCHEMA \(schema)") }
            await shared.close()
            let databaseURL =
                TestServices.databaseURL + (TestServices.databaseURL.contains("?") ? "&" : "?")
                + "options=-csearch_path%3D\(schema)"
            let exchange = try await FakeBinanceFutures.start()
            for symbol in Self.symbols { exchange.setPrice(symbol, 100) }
            let environment = [
                "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL, "DATABASE_URL": databaseURL,
                "HTTP_PORT": "0",
                "EXECUTOR_ACCOUNT": account, "REQUIRE_REFERENCE_PRICE": "false", "EXECUTOR_PRICE_VENUE": account,
                "USE_PAPER_TRADING": "false",
                "LIVE_VENUE": "binance", "BINANCE_FUTURES_URL": exchange.baseURL, "BINANCE_API_KEY": exchange.apiKey,
                "BINANCE_API_SECRET": exchange.secret,
                "EXECUTOR_LEASE_SECONDS": "3", "STOP_PROTECTION_TIMEOUT_SECONDS": "5", "MAX_CONSECUTIVE_LOSSES": "100",
                "DAILY_LOSS_LIMIT_PERCENT": "1",
                "MAX_DRAWDOWN_PERCENT": "1", "LOG_LEVEL": "info",
            ]
            let bus = RabbitMQBus(
                configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "chaos-test")
            )
            try await bus.connect()
            try await bus.declare(TradeExecutor.decisionQueue(account: account))
            let store = try Infrastructure.store(try SettingsReader(environment: ["DATABASE_URL": databaseURL]))
            try await store.migrate()
            let watch = Watch()
            let switches = Switches()

            try await withThrowingTaskGroup(of: Void.self) { group in
                // The exchange, watched every 50 ms; the market, moving; decisions, arriving.
                group.addTask {
                    while switches.running {
                        watch.look(exchange, symbols: Self.symbols, now: Date())
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var prices = Dictionary(uniqueKeysWithValues: Self.symbols.map { ($0, Decimal(100)) })
                    while switches.running {
                        try await Task.sleep(for: .milliseconds(250))
                        guard switches.trading else { continue }
                        let symbol = Self.symbols.randomElement(using: &generator)!
                        // A step of up to 1.5 %, on the 0.1 tick: now and then through a stop.
                        let step = Decimal(Int.random(in: -15...15, using: &generator)) / 10
                        prices[symbol] = max(50, prices[symbol]! + step)
                        exchange.moveMarket(symbol, to: prices[symbol]!)
                        if Int.random(in: 0..<2, using: &generator) == 0 {
                            let price = (prices[symbol]! as NSDecimalNumber).doubleValue
                            let long = Bool.random(using: &generator)
                            let proposal = TradeProposal(
                                action: long ? .long : .short,
                                confidence: 0.8,
                                leverage: 3,
                                entry: price,
                                stopLoss: long ? price * 0.98 : price * 1.02,
                                takeProfit: long ? price * 1.04 : price * 0.96,
                                reasoning: "chaos"
                            )
                            let decision = Envelope(
                                type: MessageType.decision,
                                time: Date(),
                                source: "chaos",
                                payload: DecisionPayload(
                                    symbol: symbol,
                                    proposal: proposal,
                                    provider: "rules",
                                    model: "m",
                                    promptVersion: "v",
                                    attempts: 0,
                                    candleTime: 0,
                                    requestID: "r"
                                )
                            )
                            let message = OutgoingMessage(
                                routingKey: RoutingKey.decision(symbol: symbol),
                                body: try EnvelopeCodec.encode(decision),
                                messageID: decision.id
                            )
                            try await bus.publish(message)
                        }
                    }
                }
                defer { switches.set(running: false) }
                var checked = 0
                var waitedForBudget = 0
                for kill in 1...Self.kills {
                    let executor = try SpawnedProcess(executable: "\(build)/executor", environment: environment)
                    // Within a minute: 50 restarts in a few minutes spend the exchange's request weight for the
                    // minute, and a restart that cannot read its fills waits (protecting what it holds) until
                    // the weight frees, which is a minute at most.
                    let reconciled = await eventually(timeout: .seconds(65)) {
                        executor.output.contains("reconciled with the venue; orders may go")
                    }
                    #expect(reconciled, "restart \(kill): \(executor.output.suffix(2000))")
                    if executor.output.contains("over our binance request budget") { waitedForBudget += 1 }
                    if kill > 1 {
                        // Store against venue, the market held still: the restart's reconciliation made them agree.
                        switches.set(trading: false)
                        // As long as a restart may wait for the exchange's request weight to free (a minute at most).
                        let agree = await eventually(timeout: .seconds(65)) {
                            guard let open = try? await store.openPositions() else { return false }
                            return Self.symbols.allSatisfy { symbol in
                                let mine = open.first {
                                    $0.symbol == symbol && $0.venue == "binance"
                                        && $0.updatedAt > Date().addingTimeInterval(-3_600)
                                }
                                let signed = mine.map { $0.side == .long ? $0.quantity : -$0.quantity } ?? 0
                                return signed == money(exchange.position(symbol))
                            }
                        }
                        #expect(
                            agree,
                            "restart \(kill): store and venue differ: \(Self.symbols.map { exchange.position($0) }) \(executor.output.suffix(2000))"
                        )
                        checked += 1
                        switches.set(trading: true)
                    }
                    if kill % 10 == 0 {
                        print(
                            "chaos: \(kill) of \(Self.kills) kills, longest without a stop so far \(String(format: "%.2f", watch.longest)) s"
                        )
                    }
                    // Kill it at a random point of its work.
                    try await Task.sleep(for: .milliseconds(Int.random(in: 200...2_000)))
                    executor.signal(SIGKILL)
                    _ = try await executor.waitForExit(timeout: .seconds(10))
                }
                switches.set(running: false)
                try await group.waitForAll()

                // One order per decision: every entry's client id went to the exchange once.
                let entries = exchange.orders.filter { $0.type == "MARKET" && $0.clientID.hasPrefix("ten-") }.map(
                    \.clientID
                )
                let twice = Dictionary(grouping: entries, by: { $0 }).filter { $0.value.count > 1 }.keys
                #expect(twice.isEmpty, "entries sent twice: \(twice.sorted())")
                // A dead executor protects nothing: the bound is the lease (3 s), a start, and the protection timeout (5 s).
                #expect(watch.longest <= 3 + 2 + 5, "a position went \(watch.longest) s without a stop")
                print(
                    "chaos: \(Self.kills) kills, \(checked) restarts checked store = venue, \(waitedForBudget) waited for the request budget, \(watch.positionsSeen) positions watched, \(entries.count) entries, longest without a stop \(String(format: "%.2f", watch.longest)) s"
                )
            }
            await store.close()
            await bus.shutdown()
            await exchange.stop()
        }
    }
}
