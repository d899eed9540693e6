import BlockingIO
import DequeModule
import Foundation
import Logging
import Metrics
import TradingCore

/// Publishes with confirms over its own connection, keeping a window of unconfirmed messages in
/// flight instead of waiting for each. Unconfirmed messages survive a reconnect: they are published
/// again, in order, on the new connection. A message the broker returns (no queue bound) fails with
/// ``BusError/unroutable(routingKey:)``.
///
/// All state is confined to the connection thread.
/// `@unchecked Sendable` for the reason given on `ManagedConnection`: confined to its thread.
final class Publisher: ManagedConnection, @unchecked Sendable {
    struct Pending {
        var message: OutgoingMessage
        var publishID: UInt64
        var submittedAt: ContinuousClock.Instant
        var returned = false
        var completion: @Sendable (Result<Void, BusError>) -> Void
    }

    let window: Int
    let publishTimeout: Duration
    let confirms: Bool
    private var backlog = Deque<Pending>()
    private var unconfirmed: [UInt64: Pending] = [:]  // by delivery tag on this connection
    private var tagByPublishID: [UInt64: UInt64] = [:]
    private var nextTag: UInt64 = 1
    private var nextPublishID: UInt64 = 1
    private let published = Counter(label: "tradebus_bus_published_total")
    private let failed = Counter(label: "tradebus_bus_publish_failed_total")
    private let reconnects = Counter(label: "tradebus_bus_reconnects_total")

    init(
        settings: Settings,
        topology: Topology,
        logger: Logger,
        thread: ConnectionThread,
        window: Int,
        publishTimeout: Duration,
        confirms: Bool
    ) {
        self.confirms = confirms
        self.window = max(1, window)
        self.publishTimeout = publishTimeout
        super.init(settings: settings, topology: topology, logger: logger, thread: thread)
    }

    /// Queues messages for publishing; each completion runs on the connection thread once the broker
    /// confirmed, returned or refused the message, or the publish timed out.
    func submit(_ messages: [OutgoingMessage], completion: @escaping @Sendable (Int, Result<Void, BusError>) -> Void) {
        let now = ContinuousClock.now
        for (index, message) in messages.enumerated() {
            backlog.append(
                Pending(
                    message: message,
                    publishID: nextPublishID,
                    submittedAt: now,
                    completion: { result in completion(index, result) }
                )
            )
            nextPublishID += 1
        }
        if connection == nil {
            do { try connectIfNeeded() } catch {
                logger.debug("publish waits for RabbitMQ", metadata: ["error": "\(error)"])
            }
        }
        sendBacklog()
    }

    override func didConnect(_ connection: AMQPConnection) throws {
        if confirms { try connection.enableConfirms() }
        nextTag = 1
        sendBacklog()
    }

    override func didDisconnect(_ error: any Error) {
        reconnects.increment()
        // Unconfirmed messages go back to the front of the line, in their original order.
        let resend = unconfirmed.sorted { $0.key < $1.key }.map { entry -> Pending in
            var pending = entry.value
            pending.returned = false
            return pending
        }
        unconfirmed.removeAll()
        tagByPublishID.removeAll()
        for pending in resend.reversed() { backlog.prepend(pending) }
    }

    private func sendBacklog() {
        guard let connection else { return }
        while unconfirmed.count < window, let pending = backlog.first {
            var headers: [(String, AMQPFieldValue)] = [
                (Topology.publishIDHeader, .string(String(pending.publishID))),
                (Topology.shardHeader, .string(pending.message.shardKey ?? pending.message.routingKey)),
            ]
            for (key, value) in pending.message.headers {
                headers.append((key, .string(value)))
            }
            do {
                try connection.publish(
                    exchange: topology.exchange,
                    routingKey: pending.message.routingKey,
                    body: pending.message.body,
                    messageID: pending.message.messageID,
                    correlationID: pending.message.correlationID,
                    headers: headers
                )
            } catch {
                connectionLost(error)
                return
            }
            backlog.removeFirst()
            if !confirms {
                pending.completion(.success(()))
                continue
            }
            unconfirmed[nextTag] = pending
            tagByPublishID[pending.publishID] = nextTag
            nextTag += 1
        }
    }

    override func handle(_ frame: AMQPFrame) throws {
        switch frame {
        case .ack(let tag, let multiple):
            settle(upTo: tag, multiple: multiple) { pending in
                pending.returned ? .failure(.unroutable(routingKey: pending.message.routingKey)) : .success(())
            }
        case .nack(let tag, let multiple):
            settle(upTo: tag, multiple: multiple) { pending in
                .failure(.rejectedByBroker(routingKey: pending.message.routingKey))
            }
        case .returned(_, _, let headers):
            if let id = headers[Topology.publishIDHeader].flatMap(UInt64.init), let tag = tagByPublishID[id] {
                unconfirmed[tag]?.returned = true
            }
        case .closed(let error):
            throw error
        default:
            break
        }
        sendBacklog()
    }

    private func settle(upTo tag: UInt64, multiple: Bool, result: (Pending) -> Result<Void, BusError>) {
        let tags = multiple ? unconfirmed.keys.filter { $0 <= tag }.sorted() : [tag]
        for tag in tags {
            guard let pending = unconfirmed.removeValue(forKey: tag) else { continue }
            tagByPublishID.removeValue(forKey: pending.publishID)
            let outcome = result(pending)
            if case .success = outcome { published.increment() } else { failed.increment() }
            pending.completion(outcome)
        }
    }

    override func tick() {
        // While disconnected, messages that waited longer than the timeout fail rather than hang.
        guard connection == nil, !backlog.isEmpty else { return }
        let deadline = ContinuousClock.now - publishTimeout
        while let first = backlog.first, first.submittedAt < deadline {
            backlog.removeFirst()
            first.completion(
                .failure(
                    .connection("not confirmed within \(publishTimeout): RabbitMQ at \(settings.url) is unreachable")
                )
            )
        }
    }

    /// Fails everything still waiting; called on shutdown.
    func failAll() {
        for pending in backlog { pending.completion(.failure(.closed)) }
        for (_, pending) in unconfirmed { pending.completion(.failure(.closed)) }
        backlog.removeAll()
        unconfirmed.removeAll()
    }

    var inFlight: Int { unconfirmed.count + backlog.count }
}
