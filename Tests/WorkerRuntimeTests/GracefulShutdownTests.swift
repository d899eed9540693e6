import Foundation
import RabbitMQBus
import TestSupport
import Testing
import TradingCore

#if canImport(Glibc)
import Glibc
#endif

/// Starts the drain probe (a real worker process) and sends it SIGTERM while it is busy.
@Suite("Graceful shutdown")
struct GracefulShutdownTests {
    @Test("SIGTERM drains in-flight work: it finishes, is acked, and the rest stays queued")
    func sigtermDrainsInFlightWork() async throws {
        let queue = "drain.\(TestServices.uniqueName())"
        let bus = RabbitMQBus(
            configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "drain-test")
        )
        defer { Task { await bus.shutdown() } }
        try await bus.declare(QueueSpec(name: queue, bindings: ["\(queue).#"]))
        let total = 30
        try await bus.publish(
            (0..<total).map { OutgoingMessage(routingKey: "\(queue).x", body: Array("{}".utf8), messageID: "m\($0)") }
        )

        let log = NSTemporaryDirectory() + "drain-\(UUID().uuidString).log"
        let probe = try SpawnedProcess(
            executable: TestServices.repositoryRoot.appendingPathComponent(".build/debug/drain-probe").path,
            environment: [
                "AMQP_URL": TestServices.amqpURL, "PROBE_QUEUE": queue, "PROBE_DELAY_MS": "4000", "PROBE_LOG": log,
                "HTTP_PORT": "0", "SHUTDOWN_GRACE_SECONDS": "20",
            ]
        )
        @Sendable func lines(_ prefix: String) -> [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
                .filter { $0.hasPrefix(prefix + " ") }.map { String($0.dropFirst(prefix.count + 1)) }
        }
        #expect(await eventually(timeout: .seconds(30)) { lines("start").count >= 3 })
        let startedBeforeSignal = Set(lines("start"))
        #expect(lines("done").isEmpty, "the signal arrives while work is in flight")
        probe.signal(SIGTERM)
        let status = try await probe.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "exits cleanly after draining")

        let started = Set(lines("start"))
        let done = Set(lines("done"))
        #expect(started == startedBeforeSignal, "no new work taken after SIGTERM")
        #expect(done == started, "every started message finished before exit")

        // What finished was acked: only the others are still in the queue.
        let remaining = Collector<String>()
        let consumer = RunningConsumer.start(bus, queue: queue) { remaining.append($0.messageID ?? "") }
        #expect(await eventually { remaining.count == total - done.count })
        try await Task.sleep(for: .milliseconds(300))
        try await consumer.stop()
        #expect(Set(remaining.all).isDisjoint(with: done))
        #expect(Set(remaining.all).union(done) == Set((0..<total).map { "m\($0)" }))
    }
}
