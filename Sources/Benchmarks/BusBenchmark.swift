import Foundation
import RabbitMQBus
import Synchronization
import TradingCore

/// `tradebus bench bus`: persistent messages through RabbitMQ, published with a confirm window,
/// one confirm at a time, and without confirms, each consumed with manual acks.
public enum BusBenchmark {
    public static func run(url: AMQPURL, messages: Int, oneAtATime: Int) async throws -> BenchReport {
        var report = BenchReport(benchmark: "bus")
        let windowed = try await stream(url: url, messages: messages, window: 512, confirms: true, publishers: 4)
        report.add(BenchFigure("publish, confirm window 512 (persistent)", windowed.publishRate, "msg/s"))
        report.add(BenchFigure("publish + consume end to end, confirm window 512", windowed.endToEndRate, "msg/s"))
        report.add(BenchFigure("latency p50, publish to handler, at full load", windowed.p50 * 1000, "ms"))
        report.add(BenchFigure("latency p99, publish to handler, at full load", windowed.p99 * 1000, "ms"))

        let single = try await stream(
            url: url,
            messages: oneAtATime,
            window: 1,
            confirms: true,
            publishers: 1,
            batch: 1
        )
        report.add(BenchFigure("publish, one confirm at a time (window 1)", single.publishRate, "msg/s"))

        let none = try await stream(url: url, messages: messages, window: 512, confirms: false, publishers: 4)
        report.add(BenchFigure("publish, no confirms", none.publishRate, "msg/s"))
        report.add(BenchFigure("publish + consume end to end, no confirms", none.endToEndRate, "msg/s"))

        let windowRatio = windowed.publishRate / single.publishRate
        let cost = 1 - windowed.endToEndRate / none.endToEndRate
        report.add(BenchFigure("confirm window vs one at a time", windowRatio, "x"))
        report.add(BenchFigure("cost of confirms vs none (end to end)", cost * 100, "%"))
        report.goal(
            "20k msg/s or more published and consumed with confirms (\(Int(windowed.endToEndRate)))",
            met: windowed.endToEndRate >= 20_000
        )
        report.goal(
            "confirm window 10x or more than one at a time (\(String(format: "%.1f", windowRatio))x)",
            met: windowRatio >= 10
        )
        report.goal("confirms cost 25% or less (\(String(format: "%.1f", cost * 100))%)", met: cost <= 0.25)
        return report
    }

    struct StreamResult {
        var publishRate: Double
        var endToEndRate: Double
        var p50: Double
        var p99: Double
    }

    /// Publishes `messages` of 200 bytes from `publishers` tasks in batches, while one consumer acks
    /// each and records its latency from the timestamp in the body.
    static func stream(
        url: AMQPURL,
        messages: Int,
        window: Int,
        confirms: Bool,
        publishers: Int,
        batch: Int = 256
    ) async throws -> StreamResult {
        let bus = RabbitMQBus(
            configuration: .init(url: url, confirmWindow: window, connectionName: "tradebus-bench", confirms: confirms)
        )
        return try await using(
            bus,
            close: { await $0.shutdown() },
            body: { try await stream($0, messages: messages, publishers: publishers, batch: batch) }
        )
    }

    static func stream(_ bus: RabbitMQBus, messages: Int, publishers: Int, batch: Int) async throws -> StreamResult {
        let name = "bench.\(UUID().uuidString.prefix(8).lowercased())"
        try await bus.declare(QueueSpec(name: name, bindings: ["\(name).#"]))

        /// What the consumer saw, shared with the publishing side.
        final class Tally: Sendable {
            let latencies = Mutex<[Double]>([])
            let received = Atomic<Int>(0)
        }
        let tally = Tally()
        let done = AsyncStream<Void>.makeStream()
        let control = ConsumerControl()
        // The consumer is a child of this call: a failed publish cancels it, and it is awaited.
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await bus.consume(name, options: ConsumerOptions(prefetch: 1000, concurrency: 1), control: control)
                {
                    delivery in
                    let sent = delivery.body.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    let latency = Double(monotonicNanos() &- sent) / 1e9
                    tally.latencies.withLock { $0.append(latency) }
                    if tally.received.add(1, ordering: .relaxed).newValue == messages { done.continuation.yield() }
                }
            }
            let padding = [UInt8](repeating: UInt8(ascii: "x"), count: 192)
            let start = ContinuousClock.now
            let publishSeconds = try await seconds {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lane in 0..<publishers {
                        group.addTask {
                            var index = lane
                            while index < messages {
                                var chunk: [OutgoingMessage] = []
                                while chunk.count < batch && index < messages {
                                    var body = withUnsafeBytes(of: monotonicNanos()) { Array($0) }
                                    body += padding
                                    chunk.append(
                                        OutgoingMessage(routingKey: "\(name).x", body: body, messageID: "m\(index)")
                                    )
                                    index += publishers
                                }
                                try await bus.publish(chunk)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            for await _ in done.stream { break }
            let total = ContinuousClock.now - start
            control.stop()
            try await tasks.waitForAll()
            let sorted = tally.latencies.withLock { $0.sorted() }
            let totalSeconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
            return StreamResult(
                publishRate: Double(messages) / publishSeconds,
                endToEndRate: Double(messages) / totalSeconds,
                p50: percentile(sorted, 50),
                p99: percentile(sorted, 99)
            )
        }
    }
}
