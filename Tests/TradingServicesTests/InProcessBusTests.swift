import TestSupport
import Testing
import TradingCore
import TradingServices

/// What only the in-process bus can show directly; the shared behaviour is in ContractTests.
@Suite("InProcessBus")
struct InProcessBusTests {
    @Test("competing consumers share a queue and every message is handled once")
    func competingConsumers() async throws {
        let bus = InProcessBus()
        try await bus.declare(QueueSpec(name: "q", bindings: ["x.#"]))
        let a = Collector<Int>()
        let b = Collector<Int>()
        let first = RunningConsumer.start(bus, queue: "q", options: .init(prefetch: 1)) {
            a.append(Int($0.routingKey.dropFirst(2))!)
            try await Task.sleep(for: .milliseconds(5))
        }
        let second = RunningConsumer.start(bus, queue: "q", options: .init(prefetch: 1)) {
            b.append(Int($0.routingKey.dropFirst(2))!)
            try await Task.sleep(for: .milliseconds(5))
        }
        try await bus.publish((0..<40).map { OutgoingMessage(routingKey: "x.\($0)", body: []) })
        // Generous: the whole suite starts at once on two cores, and this waits behind it.
        #expect(await eventually(timeout: .seconds(120)) { a.count + b.count == 40 })
        try await first.stop()
        try await second.stop()
        #expect(Set(a.all).union(b.all) == Set(0..<40))
        #expect(a.count > 0 && b.count > 0)
        #expect(try await bus.messageCount("q") == 0)
    }

    @Test(
        "a queue nobody consumes counts as idle; waitForConsumers returns only once a consumer listens, and then idle means handled"
    )
    func waitForConsumers() async throws {
        let bus = InProcessBus()
        try await bus.declare(QueueSpec(name: "w", bindings: ["w.#"]))
        try await bus.publish(OutgoingMessage(routingKey: "w.1", body: []))
        #expect(await bus.isIdle, "nobody listens: idle, though a message waits")
        #expect(await bus.waitForConsumers(on: ["w"], timeout: .milliseconds(50)) == false, "nobody came: it gives up")
        let waited = Task { await bus.waitForConsumers(on: ["w"], timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        let handled = Collector<String>()
        let release = AsyncStream<Void>.makeStream()
        let consumer = RunningConsumer.start(bus, queue: "w", options: .init(prefetch: 1)) { delivery in
            handled.append(delivery.routingKey)
            if delivery.routingKey == "w.3" { for await _ in release.stream { break } }  // held until released
        }
        #expect(await waited.value)
        try await bus.publish(OutgoingMessage(routingKey: "w.2", body: []))
        #expect(await bus.waitUntilIdle(timeout: .seconds(30)))
        #expect(handled.all == ["w.1", "w.2"])
        // A handler that does not finish: the wait gives up and says what is pending.
        try await bus.publish(OutgoingMessage(routingKey: "w.3", body: []))
        #expect(await bus.waitUntilIdle(timeout: .milliseconds(100)) == false)
        #expect(await bus.pendingWork == "w: 0 waiting, 1 unacknowledged")
        release.continuation.yield()
        #expect(await bus.waitUntilIdle(timeout: .seconds(30)))
        try await consumer.stop()
    }

    @Test("consuming an undeclared queue fails")
    func unknownQueue() async throws {
        await #expect(throws: BusError.unknownQueue("nope")) {
            try await InProcessBus().consume("nope") { _ in }
        }
    }
}
