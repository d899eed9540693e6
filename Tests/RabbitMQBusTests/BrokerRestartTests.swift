import Foundation
import RabbitMQBus
import Synchronization
import TestSupport
import Testing
import TradingCore

/// Restarts a broker of the test's own in the middle of a stream.
@Suite("RabbitMQBus across broker restarts", .serialized)
struct BrokerRestartTests {
    /// Publishes a stream, stops the broker partway (cleanly, then by SIGKILL), starts it again, and
    /// checks that every publish that was confirmed is consumed.
    @Test("a broker restart in the middle of a stream loses no confirmed message", arguments: [false, true])
    func restartLosesNoConfirmedMessage(killed: Bool) async throws {
        try await PrivateRabbitMQ.with(port: killed ? 5791 : 5792) { broker in
            try await restart(broker, killed: killed)
        }
    }

    func restart(_ broker: PrivateRabbitMQ, killed: Bool) async throws {
        // A broker's restart on a loaded two-core machine has taken over a minute: the publishes wait for it.
        let bus = RabbitMQBus(
            configuration: .init(
                url: try AMQPURL(broker.url),
                publishTimeout: .seconds(180),
                connectionName: "restart-test"
            )
        )
        let spec = QueueSpec(name: "restart.\(TestServices.uniqueName())", bindings: ["restart.#"])
        try await bus.declare(spec)

        let received = Collector<String>()
        let consumer = RunningConsumer.start(bus, queue: spec.name, options: ConsumerOptions(prefetch: 50)) {
            delivery in
            received.append(delivery.messageID ?? "")
        }
        let confirmed = Collector<String>()
        let failed = Collector<String>()
        let total = 6000
        let publisher = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Eight concurrent publishers, so the confirm window is in use when the broker goes.
                for lane in 0..<8 {
                    group.addTask {
                        for n in stride(from: lane, to: total, by: 8) {
                            let id = "m\(n)"
                            do {
                                try await bus.publish(
                                    OutgoingMessage(
                                        routingKey: "restart.x",
                                        body: Array("{\"n\":\(n)}".utf8),
                                        messageID: id
                                    )
                                )
                                confirmed.append(id)
                            } catch {
                                failed.append("\(id): \(error)")
                            }
                            // Paced (about 7.5 s in all), so the stream is still flowing when the broker goes
                            // down: at 5 ms, a graceful stop on a loaded machine once outlasted it.
                            try await Task.sleep(for: .milliseconds(10))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(await eventually(timeout: .seconds(30)) { confirmed.count >= total / 10 })
        let confirmedBeforeRestart = confirmed.count
        if killed { try await broker.kill() } else { try await broker.stop() }
        try await awaitSayingIfSlow("the private broker to start again (killed: \(killed))") {
            try await broker.start()
        }
        try await awaitSayingIfSlow("the publishes to finish after the broker's restart") { try await publisher.value }
        #expect(confirmedBeforeRestart < total, "the broker went down in the middle of the stream")
        #expect(failed.count == 0, "publishes wait for the broker to return: \(failed.all.prefix(5))")

        let ok = await eventually(timeout: .seconds(60)) { Set(received.all).isSuperset(of: confirmed.all) }
        try await consumer.stop()
        await bus.shutdown()
        let missing = Set(confirmed.all).subtracting(received.all)
        #expect(ok && missing.isEmpty, "confirmed but never consumed: \(missing.sorted().prefix(10))")
        #expect(confirmed.count == total)
    }
}
