import Foundation
import RabbitMQBus
import TestSupport
import Testing
import TradingCore
import TradingServices
import WorkerRuntime
#if canImport(Glibc)
import Glibc
#endif

/// executor as its own process against the real RabbitMQ and Postgres, on the paper venue.
extension MarketDataSystemTests {
@Suite("Executor (process)")
struct ExecutorWorkerTests {
    let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path

    @Test("a decision, delivered twice, becomes one order; the next candle fills it and opens a trade; all of it in Postgres")
    func decisionToTrade() async throws {
        let account = "proctest"
        // Its own price venue: the shared broker carries every test's candles.
        let priceVenue = "proctest"
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("paper-proctest.json").path
        try? FileManager.default.removeItem(atPath: state)
        let environment = [
            "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL, "DATABASE_URL": TestServices.databaseURL, "HTTP_PORT": "0",
            "EXECUTOR_ACCOUNT": account, "PAPER_STATE_FILE": state, "REQUIRE_REFERENCE_PRICE": "false", "INITIAL_CAPITAL": "10000", "EXECUTOR_PRICE_VENUE": priceVenue,
        ]
        let bus = RabbitMQBus(configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "executor-test"))
        try await bus.connect()
        try await bus.declare(ExecutorService.decisionQueue(account: account))
        try await bus.declare(ExecutorService.candleQueue(account: account, priceVenue: priceVenue))
        let symbol = "EX\(UUID().uuidString.prefix(6).uppercased())USDT"
        try await bus.declare(QueueSpec(name: "test.executor.\(symbol)", bindings: ["order.*.\(symbol)", "trade.*.\(symbol)"]))
        let events = Collector<String>()
        let reader = RunningConsumer.start(bus, queue: "test.executor.\(symbol)") { events.append($0.routingKey) }

        let executor = try SpawnedProcess(executable: "\(build)/executor", environment: environment)
        defer { executor.signal(SIGKILL) }
        func candle(_ minute: Int64, _ price: Double) async throws {
            let openTime = (Int64(Date().timeIntervalSince1970) / 60 + minute) * 60_000
            let envelope = Envelope(type: MessageType.candleClosed, time: Date(), source: "test", payload: CandlePayload(
                venue: priceVenue, symbol: symbol, interval: "1m", candle: Candle(openTime: openTime, open: price, high: price + 0.2, low: price - 0.2, close: price, volume: 10)))
            try await bus.publish(envelope, routingKey: RoutingKey.candle(venue: priceVenue, symbol: symbol, interval: "1m"))
        }
        try await candle(0, 100)
        let priced = await eventually(timeout: .seconds(30)) {  // the paper venue has the price
            (FileManager.default.contents(atPath: state).map { String(decoding: $0, as: UTF8.self) } ?? "").contains(symbol)
        }
        #expect(priced, "\(executor.output)")
        let proposal = TradeProposal(action: .long, confidence: 0.82, leverage: 3, entry: 100, stopLoss: 98, takeProfit: 104, reasoning: "test")
        let decision = Envelope(type: MessageType.decision, time: Date(), source: "test", payload: DecisionPayload(
            symbol: symbol, proposal: proposal, provider: "rules", model: "m", promptVersion: "v", attempts: 0, candleTime: 0, requestID: "r"))
        let body = try EnvelopeCodec.encode(decision)
        let message = OutgoingMessage(routingKey: RoutingKey.decision(symbol: symbol), body: body, messageID: decision.id)
        try await bus.publish([message, message])
        #expect(await eventually(timeout: .seconds(30)) { events.all.contains("order.accepted.\(symbol)") }, "\(executor.output)")
        try await candle(1, 100.1)
        #expect(await eventually(timeout: .seconds(30)) { events.all.contains("trade.opened.\(symbol)") }, "\(executor.output)")
        try await reader.stop()
        #expect(events.all.filter { $0 == "order.accepted.\(symbol)" }.count == 1)

        let store = try Infrastructure.store(try ConfigReader(environment: ["DATABASE_URL": TestServices.databaseURL]))
        let orders = try await store.orders(decisionID: decision.id)
        #expect(orders.count == 1 && orders[0].status == .filled)
        let recorded = try await store.decision(id: decision.id)
        #expect(recorded?.symbol == symbol)
        let position = try await store.openPositions().first { $0.symbol == symbol }
        #expect(position?.stopLoss == 98 && position?.takeProfit == 104)
        await store.close()
        executor.signal(SIGTERM)
        #expect(try await executor.waitForExit(timeout: .seconds(30)) == 0)
        await bus.shutdown()
    }

    @Test("invalid executor settings stop it at start with the key named")
    func invalidConfiguration() throws {
        let servers = ["AMQP_URL": "amqp://x", "REDIS_URL": "redis://x", "DATABASE_URL": "sqlite:///tmp/x.sqlite"]
        for (settings, key) in [
            (["USE_PAPER_TRADING": "false"], "USE_PAPER_TRADING"),
            (["RISK_PER_TRADE_PERCENT": "2"], "RISK_PER_TRADE_PERCENT"),
            (["MAX_PRICE_DEVIATION_PERCENT": "abc"], "MAX_PRICE_DEVIATION_PERCENT"),
            (["MAX_LEVERAGE": "0"], "MAX_LEVERAGE"),
            (["INITIAL_CAPITAL": "-5"], "INITIAL_CAPITAL"),
        ] {
            #expect { try Command.run("\(build)/executor", [], environment: servers.merging(settings) { $1 }) } throws: { error in
                guard let failure = error as? CommandFailed else { return false }
                return failure.status == 2 && failure.output.contains(key)
            }
        }
    }
}
}
