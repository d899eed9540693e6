import BlockingIO
import DequeModule
import Foundation
import Logging
import Metrics
import TradingCore

/// One consumer on its own connection: deliveries flow into an `AsyncStream`, settlements come back as
/// jobs on the connection thread. After a reconnect it consumes again; settlements for deliveries of
/// the old connection are dropped, since the broker has already requeued those messages.
///
/// All state is confined to the connection thread.
/// `@unchecked Sendable` for the reason given on `ManagedConnection`: confined to its thread.
final class Consumer: ManagedConnection, @unchecked Sendable {
    struct Token: Sendable {
        var generation: Int
        var deliveryTag: UInt64
        /// Kept for dead-lettering, which publishes a copy.
        var delivery: Delivery
    }

    let queue: String
    let prefetch: Int
    let continuation: AsyncStream<(Delivery, Token)>.Continuation
    private var consumerTag: String?
    private var intakeStopped = false
    private var streamFinished = false
    /// Dead-letter copies awaiting the broker's confirm, by their publish tag, with the original's tag.
    private var deadLetters: [UInt64: UInt64] = [:]
    private var nextPublishTag: UInt64 = 1
    /// Delivery tags in the order received, until settled: acks are coalesced into one
    /// `basic.ack multiple` for the settled prefix.
    private var delivered = Deque<UInt64>()
    private var acked: Set<UInt64> = []
    private var settledOtherwise: Set<UInt64> = []
    private let consumed: Counter
    private let deadLettered: Counter

    init(
        settings: Settings,
        topology: Topology,
        logger: Logger,
        thread: ConnectionThread,
        queue: String,
        prefetch: Int,
        continuation: AsyncStream<(Delivery, Token)>.Continuation
    ) {
        self.queue = queue
        self.prefetch = prefetch
        self.continuation = continuation
        self.consumed = Counter(label: "tradebus_bus_consumed_total", dimensions: [("queue", queue)])
        self.deadLettered = Counter(label: "tradebus_bus_dead_lettered_total", dimensions: [("queue", queue)])
        super.init(settings: settings, topology: topology, logger: logger, thread: thread)
    }

    override func didConnect(_ connection: AMQPConnection) throws {
        deadLetters.removeAll()
        resetAckTracking()
        nextPublishTag = 1
        if intakeStopped {
            finishStream()
            return
        }
        try connection.setPrefetch(prefetch)
        try connection.enableConfirms()
        consumerTag = try connection.consume(queue: queue)
    }

    override func didDisconnect(_ error: any Error) {
        consumerTag = nil
        deadLetters.removeAll()
        resetAckTracking()
        if intakeStopped { finishStream() }
    }

    override func handle(_ frame: AMQPFrame) throws {
        switch frame {
        case .deliver(let tag, let redelivered, let routingKey, let message):
            let delivery = Delivery(
                // A dead-letter queue hands out messages under their original key, as the in-process bus does.
                routingKey: queue.hasSuffix(".dlq")
                    ? (message.headers[DeadLetterHeader.routingKey] ?? routingKey) : routingKey,
                body: message.body,
                messageID: message.messageID,
                correlationID: message.correlationID,
                headers: message.headers,
                redelivered: redelivered
            )
            delivered.append(tag)
            continuation.yield((delivery, Token(generation: generation, deliveryTag: tag, delivery: delivery)))
        case .ack(let tag, let multiple):
            let tags = multiple ? deadLetters.keys.filter { $0 <= tag } : [tag]
            for publishTag in tags {
                if let original = deadLetters.removeValue(forKey: publishTag) {
                    try connection?.ack(original)
                    settledOtherwise.insert(original)
                }
            }
        case .nack(let tag, _):
            // The broker refused the dead-letter copy: keep the original in the queue.
            if let original = deadLetters.removeValue(forKey: tag) {
                try connection?.requeue(original)
                settledOtherwise.insert(original)
            }
        case .cancelledByBroker:
            logger.warning(
                "RabbitMQ cancelled the consumer (queue deleted?); consuming again",
                metadata: ["queue": "\(queue)"]
            )
            throw AMQPError("consumer of \(queue) cancelled by the broker")
        case .closed(let error):
            throw error
        default:
            break
        }
    }

    override func tick() {
        if intakeStopped, !streamFinished, !(connection?.hasBufferedInput ?? false) { finishStream() }
    }

    /// Stops taking deliveries: basic.cancel, then the stream finishes once the deliveries already
    /// sent by the broker are handed over.
    func stopIntake() {
        guard !intakeStopped else { return }
        intakeStopped = true
        if let connection, let consumerTag {
            do { try connection.cancel(consumerTag: consumerTag) } catch { connectionLost(error) }
        }
        pump()
        if !(connection?.hasBufferedInput ?? false) { finishStream() }
    }

    private func finishStream() {
        guard !streamFinished else { return }
        streamFinished = true
        continuation.finish()
    }

    /// Acks, requeues or dead-letters one delivery.
    func settle(_ token: Token, _ settlement: Settlement) {
        let delivery = token.delivery
        guard let connection, token.generation == generation else { return }
        do {
            switch settlement {
            case .ack:
                acked.insert(token.deliveryTag)
                consumed.increment()
                if acked.count >= 256 { try flushAcks() }
            case .requeue:
                try connection.requeue(token.deliveryTag)
                settledOtherwise.insert(token.deliveryTag)
            case .deadLetter(let reason, let attempts):
                var headers: [(String, AMQPFieldValue)] = delivery.headers.sorted { $0.key < $1.key }.map {
                    ($0.key, .string($0.value))
                }
                headers.append((DeadLetterHeader.reason, .string(reason)))
                headers.append((DeadLetterHeader.queue, .string(queue)))
                headers.append((DeadLetterHeader.routingKey, .string(delivery.routingKey)))
                headers.append((DeadLetterHeader.attempts, .string(String(attempts))))
                try connection.publish(
                    exchange: Topology.deadLetterExchange,
                    routingKey: queue,
                    body: delivery.body,
                    messageID: delivery.messageID,
                    correlationID: delivery.correlationID,
                    headers: headers
                )
                deadLetters[nextPublishTag] = token.deliveryTag
                deadLettered.increment()
                nextPublishTag += 1
                logger.warning(
                    "message dead-lettered",
                    metadata: [
                        "queue": "\(queue)", "routing_key": "\(delivery.routingKey)", "reason": "\(reason)",
                    ]
                )
            }
        } catch {
            connectionLost(error)
        }
    }

    override func jobsDidRun() {
        do { try flushAcks() } catch { connectionLost(error) }
    }

    /// One `basic.ack multiple` for the longest settled prefix of deliveries; acks beyond a gap (a
    /// message still being handled, or awaiting its dead-letter confirm) go one by one, so the
    /// broker's prefetch window never waits on a slow message.
    private func flushAcks() throws {
        guard let connection, !acked.isEmpty else { return }
        var upTo: UInt64?
        while let first = delivered.first {
            if acked.remove(first) != nil {
                upTo = first
            } else if settledOtherwise.remove(first) == nil {
                break
            }
            delivered.removeFirst()
        }
        if let upTo { try connection.ack(upTo, multiple: true) }
        for tag in acked {
            try connection.ack(tag)
            settledOtherwise.insert(tag)
        }
        acked.removeAll(keepingCapacity: true)
    }

    private func resetAckTracking() {
        delivered.removeAll()
        acked.removeAll()
        settledOtherwise.removeAll()
    }

    func close() {
        // Settlements queued just before closing are in `acked`: send them first.
        do { try flushAcks() } catch {
            logger.warning("acks lost on close; the broker will redeliver", metadata: ["error": "\(error)"])
        }
        closed = true
        finishStream()
        connection?.close()
    }
}
