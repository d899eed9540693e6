import Foundation
import TestSupport
import Testing
import TradingCore

/// One contract, two implementations: what every MessageBus must do.
@Suite("MessageBus contract")
struct MessageBusContractTests {
    /// How long a delivery may take to show: the whole suite starts at once on two cores, and the
    /// in-process bus's consumers have waited over 30 s behind it (twice in CI). Passing never waits it.
    static let patience: Duration = .seconds(120)
    struct Payload: Codable, Sendable, Equatable { var n: Int }

    private func message(_ key: String, _ n: Int, shardKey: String? = nil) throws -> OutgoingMessage {
        let envelope = Envelope(type: "test", time: Date(), source: "contract", payload: Payload(n: n))
        return OutgoingMessage(
            routingKey: key,
            body: try EnvelopeCodec.encode(envelope),
            messageID: envelope.id,
            correlationID: envelope.correlationID,
            shardKey: shardKey
        )
    }

    private func number(_ delivery: Delivery) throws -> Int {
        try EnvelopeCodec.decode(Payload.self, from: delivery.body).payload.n
    }

    @Test("messageCount reports the messages waiting, and an undeclared queue is an error", arguments: BusKind.allCases)
    func messageCount(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let queue = TestServices.uniqueName("count")
            try await bus.declare(QueueSpec(name: queue, bindings: ["count.\(queue)"]))
            #expect(try await bus.messageCount(queue) == 0)
            try await bus.publish(
                (0..<3).map { OutgoingMessage(routingKey: "count.\(queue)", body: Array("m\($0)".utf8)) }
            )
            #expect(await eventually(timeout: Self.patience) { (try? await bus.messageCount(queue)) == 3 })
            await #expect(throws: BusError.self) { try await bus.messageCount(TestServices.uniqueName("missing")) }
            // The bus still works after the refused count.
            try await bus.publish(OutgoingMessage(routingKey: "count.\(queue)", body: Array("m3".utf8)))
            #expect(await eventually(timeout: Self.patience) { (try? await bus.messageCount(queue)) == 4 })
        }
    }

    @Test("routes by topic with * and #, in order", arguments: BusKind.allCases)
    func routesByTopic(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            try await bus.declare(QueueSpec(name: "\(id).star", bindings: ["\(id).candle.*"]))
            try await bus.declare(QueueSpec(name: "\(id).hash", bindings: ["\(id).#"]))
            try await bus.publish(message("\(id).candle.btc", 1))
            try await bus.publish(message("\(id).candle.btc.1m", 2))
            try await bus.publish([message("\(id).candle.eth", 3), message("\(id).other", 4)])

            let star = Collector<Int>()
            let hash = Collector<Int>()
            let a = RunningConsumer.start(bus, queue: "\(id).star") { star.append(try number($0)) }
            let b = RunningConsumer.start(bus, queue: "\(id).hash") { hash.append(try number($0)) }
            #expect(await eventually(timeout: Self.patience) { star.count == 2 && hash.count == 4 })
            try await a.stop()
            try await b.stop()
            #expect(star.all == [1, 3])
            #expect(hash.all == [1, 2, 3, 4])
        }
    }

    @Test("an unroutable publish fails", arguments: BusKind.allCases)
    func unroutablePublishFails(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            try await bus.declare(QueueSpec(name: "\(id).q", bindings: ["\(id).bound"]))
            await #expect(throws: BusError.unroutable(routingKey: "\(id).nobody")) {
                try await bus.publish(message("\(id).nobody", 1))
            }
            // A routable message right after still goes through.
            try await bus.publish(message("\(id).bound", 2))
        }
    }

    @Test("a poison message is dead-lettered with its reason while others keep flowing", arguments: BusKind.allCases)
    func poisonGoesToDeadLetterQueue(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"])
            try await bus.declare(spec)
            try await bus.publish(message("\(id).a", 1))
            try await bus.publish(
                OutgoingMessage(routingKey: "\(id).a", body: Array("not json".utf8), messageID: "poison-\(id)")
            )
            try await bus.publish(message("\(id).a", 2))

            let seen = Collector<Int>()
            let consumer = RunningConsumer.start(bus, queue: spec.name) { delivery in
                do {
                    seen.append(try number(delivery))
                } catch let error as EnvelopeError {
                    throw MessageRejected("cannot decode: \(error)")
                }
            }
            let dead = Collector<Delivery>()
            let deadConsumer = RunningConsumer.start(bus, queue: spec.deadLetterQueue) { dead.append($0) }
            #expect(await eventually(timeout: Self.patience) { seen.count == 2 && dead.count == 1 })
            try await consumer.stop()
            try await deadConsumer.stop()
            #expect(seen.all == [1, 2])
            let poison = try #require(dead.all.first)
            #expect(poison.body == Array("not json".utf8))
            #expect(poison.messageID == "poison-\(id)")
            #expect(poison.routingKey == "\(id).a")
            #expect(poison.headers[DeadLetterHeader.reason]?.hasPrefix("cannot decode: notJSON") == true)
            #expect(poison.headers[DeadLetterHeader.queue] == spec.name)
        }
    }

    @Test("a message that keeps failing is dead-lettered after maxDeliveries", arguments: BusKind.allCases)
    func failingMessageIsDeadLetteredAfterAttempts(kind: BusKind) async throws {
        struct Flaky: Error, CustomStringConvertible { var description: String { "downstream unavailable" } }
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"])
            try await bus.declare(spec)
            try await bus.publish(message("\(id).bad", 13))
            try await bus.publish(message("\(id).good", 1))
            let attempts = Collector<Int>()
            let good = Collector<Int>()
            let consumer = RunningConsumer.start(
                bus,
                queue: spec.name,
                options: ConsumerOptions(prefetch: 4, maxDeliveries: 3, retryDelay: .milliseconds(10))
            ) { delivery in
                let n = try number(delivery)
                if n == 13 {
                    attempts.append(delivery.attempt)
                    throw Flaky()
                }
                good.append(n)
            }
            let dead = Collector<Delivery>()
            let deadConsumer = RunningConsumer.start(bus, queue: spec.deadLetterQueue) { dead.append($0) }
            #expect(await eventually(timeout: Self.patience) { dead.count == 1 && good.count == 1 })
            try await consumer.stop()
            try await deadConsumer.stop()
            #expect(attempts.all == [1, 2, 3])
            let letter = try #require(dead.all.first)
            #expect(letter.headers[DeadLetterHeader.attempts] == "3")
            #expect(letter.headers[DeadLetterHeader.reason]?.contains("downstream unavailable") == true)
        }
    }

    @Test("a failed attempt is redelivered and then acknowledged", arguments: BusKind.allCases)
    func failedAttemptIsRedelivered(kind: BusKind) async throws {
        struct Once: Error {}
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"])
            try await bus.declare(spec)
            try await bus.publish(message("\(id).x", 7))
            let seen = Collector<(Int, Bool)>()
            let consumer = RunningConsumer.start(bus, queue: spec.name, options: ConsumerOptions(retryDelay: .zero)) {
                delivery in
                seen.append((delivery.attempt, delivery.redelivered))
                if delivery.attempt == 1 { throw Once() }
            }
            #expect(await eventually(timeout: Self.patience) { seen.count == 2 })
            try await consumer.stop()
            // Acknowledged: a new consumer sees nothing more.
            let again = Collector<Int>()
            let second = RunningConsumer.start(bus, queue: spec.name) { again.append(try number($0)) }
            try await Task.sleep(for: .milliseconds(300))
            try await second.stop()
            #expect(seen.all.map(\.0) == [1, 2])
            #expect(seen.all.map(\.1) == [false, true])
            #expect(again.count == 0)
        }
    }

    @Test("single active consumer: one receives, the standby takes over when it stops", arguments: BusKind.allCases)
    func singleActiveConsumer(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"], singleActiveConsumer: true)
            try await bus.declare(spec)
            let first = Collector<Int>()
            let second = Collector<Int>()
            let a = RunningConsumer.start(bus, queue: spec.name) { first.append(try number($0)) }
            try await Task.sleep(for: .milliseconds(300))
            let b = RunningConsumer.start(bus, queue: spec.name) { second.append(try number($0)) }
            try await Task.sleep(for: .milliseconds(300))
            for n in 1...10 { try await bus.publish(message("\(id).x", n)) }
            #expect(await eventually(timeout: Self.patience) { first.count == 10 })
            #expect(second.count == 0)
            try await a.stop()
            for n in 11...15 { try await bus.publish(message("\(id).x", n)) }
            #expect(await eventually(timeout: Self.patience) { second.count == 5 })
            try await b.stop()
            #expect(second.all == Array(11...15))
        }
    }

    @Test("sharding by key keeps each key on one shard, in order", arguments: BusKind.allCases)
    func shardingByKey(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"], sharding: .byShardKey(count: 3))
            try await bus.declare(spec)
            let symbols = (0..<12).map { "SYM\($0)" }
            var batch: [OutgoingMessage] = []
            for n in 0..<60 {
                let symbol = symbols[n % symbols.count]
                batch.append(try message("\(id).candle.\(symbol)", n, shardKey: symbol))
            }
            try await bus.publish(batch)
            let received = Collector<(shard: Int, key: String, n: Int)>()
            var consumers: [RunningConsumer] = []
            for shard in 0..<3 {
                consumers.append(
                    RunningConsumer.start(bus, queue: spec.shard(shard)) { delivery in
                        received.append(
                            (shard, String(delivery.routingKey.split(separator: ".").last!), try number(delivery))
                        )
                    }
                )
            }
            #expect(await eventually(timeout: Self.patience) { received.count == 60 })
            for consumer in consumers { try await consumer.stop() }
            let byKey = Dictionary(grouping: received.all, by: \.key)
            #expect(byKey.count == 12)
            for (_, items) in byKey {
                #expect(Set(items.map(\.shard)).count == 1)
                #expect(items.map(\.n) == items.map(\.n).sorted())
            }
            #expect(Set(received.all.map(\.shard)).count > 1, "12 keys should spread over more than one shard")
        }
    }

    @Test("stopping drains in-flight work and leaves the rest queued", arguments: BusKind.allCases)
    func gracefulStopDrains(kind: BusKind) async throws {
        try await kind.withBus { bus in
            let id = TestServices.uniqueName()
            let spec = QueueSpec(name: "\(id).q", bindings: ["\(id).#"])
            try await bus.declare(spec)
            try await bus.publish((1...20).map { try message("\(id).x", $0) })
            let started = Collector<Int>()
            let finished = Collector<Int>()
            let consumer = RunningConsumer.start(
                bus,
                queue: spec.name,
                options: ConsumerOptions(prefetch: 10, concurrency: 2)
            ) { delivery in
                let n = try number(delivery)
                started.append(n)
                try await Task.sleep(for: .milliseconds(200))
                finished.append(n)
            }
            #expect(await eventually(timeout: Self.patience) { started.count >= 2 })
            try await consumer.stop()
            #expect(Set(started.all) == Set(finished.all), "every started handler finished")
            let rest = Collector<Int>()
            let second = RunningConsumer.start(bus, queue: spec.name, options: ConsumerOptions(concurrency: 4)) {
                rest.append(try number($0))
            }
            #expect(await eventually(timeout: Self.patience) { finished.count + rest.count == 20 })
            try await second.stop()
            #expect(Set(finished.all).union(rest.all) == Set(1...20))
            #expect(Set(finished.all).isDisjoint(with: rest.all), "finished work was acknowledged, not redelivered")
        }
    }
}
