/// The message bus port: a topic exchange with durable queues, confirmed publishes and manually
/// acknowledged, at-least-once deliveries. `RabbitMQBus` and `InProcessBus` implement it with the same
/// semantics, checked by one contract suite.
public protocol MessageBus: Sendable {
    /// Declares a queue, its bindings to the exchange and its dead-letter queue. Idempotent. A bus
    /// that reconnects declares again what was declared before.
    func declare(_ queue: QueueSpec) async throws

    /// Publishes one message and returns once the broker has confirmed it. Throws
    /// ``BusError/unroutable(routingKey:)`` when no queue is bound for the key.
    func publish(_ message: OutgoingMessage) async throws

    /// Publishes messages in order, confirmed as a window rather than one round trip each. Returns when
    /// all are confirmed; throws on the first that failed.
    func publish(_ messages: [OutgoingMessage]) async throws

    /// Messages waiting in `queue`, not counting those delivered and not yet acknowledged: the
    /// queue's lag, for `/status` and autoscaling. A queue never declared is ``BusError/unknownQueue(_:)``.
    func messageCount(_ queue: String) async throws -> Int

    /// Consumes `queue` until the task is cancelled or ``ConsumerControl/stop()`` is called, then
    /// finishes the deliveries in flight and returns.
    ///
    /// A handler that returns acks the delivery. One that throws ``MessageRejected`` sends it to the
    /// dead-letter queue at once with the reason; any other error requeues it, and after
    /// `maxDeliveries` attempts it is dead-lettered with the last error as the reason.
    func consume(
        _ queue: String,
        options: ConsumerOptions,
        control: ConsumerControl?,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async throws
}

extension MessageBus {
    public func consume(
        _ queue: String,
        options: ConsumerOptions = .init(),
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async throws {
        try await consume(queue, options: options, control: nil, handler: handler)
    }

    /// Publishes an envelope under `routingKey`, with its id as the message id.
    public func publish<P>(_ envelope: Envelope<P>, routingKey: String, shardKey: String? = nil) async throws {
        try await publish(
            OutgoingMessage(
                routingKey: routingKey,
                body: try EnvelopeCodec.encode(envelope),
                messageID: envelope.id,
                correlationID: envelope.correlationID,
                shardKey: shardKey
            )
        )
    }
}

/// A message to publish.
public struct OutgoingMessage: Sendable, Equatable {
    public var routingKey: String
    public var body: [UInt8]
    /// The envelope id; consumers dedupe by it.
    public var messageID: String?
    public var correlationID: String?
    /// Which shard of a sharded queue gets the message; defaults to the routing key.
    public var shardKey: String?
    /// Extra string headers.
    public var headers: [String: String]

    /// A `OutgoingMessage` with the fields given.
    public init(
        routingKey: String,
        body: [UInt8],
        messageID: String? = nil,
        correlationID: String? = nil,
        shardKey: String? = nil,
        headers: [String: String] = [:]
    ) {
        self.routingKey = routingKey
        self.body = body
        self.messageID = messageID
        self.correlationID = correlationID
        self.shardKey = shardKey
        self.headers = headers
    }
}

/// A message handed to a consumer.
public struct Delivery: Sendable {
    public var routingKey: String
    public var body: [UInt8]
    public var messageID: String?
    public var correlationID: String?
    public var headers: [String: String]
    /// True when the broker delivered this message before (to this or another consumer).
    public var redelivered: Bool
    /// 1 for the first attempt by this consumer process, counting requeues after handler errors.
    public var attempt: Int

    /// A `Delivery` with the fields given.
    public init(
        routingKey: String,
        body: [UInt8],
        messageID: String? = nil,
        correlationID: String? = nil,
        headers: [String: String] = [:],
        redelivered: Bool = false,
        attempt: Int = 1
    ) {
        self.routingKey = routingKey
        self.body = body
        self.messageID = messageID
        self.correlationID = correlationID
        self.headers = headers
        self.redelivered = redelivered
        self.attempt = attempt
    }
}

/// Thrown by a handler to send a message straight to the dead-letter queue: it can never succeed
/// (it cannot be decoded, say). `reason` travels with it in the `x-death-reason` header.
public struct MessageRejected: Error, Sendable, CustomStringConvertible {
    public var reason: String
    /// A `MessageRejected` with the field given.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension Delivery {
    /// The body as an envelope of `type` and `expectedType`. A body that is not one can never succeed:
    /// it is a ``MessageRejected`` ("not <what>: why"), so it goes to the dead-letter queue.
    public func envelope<P>(_ type: P.Type, expectedType: String, what: String) throws(MessageRejected) -> Envelope<P> {
        do {
            return try EnvelopeCodec.decode(type, from: body, expectedType: expectedType)
        } catch {
            throw MessageRejected("not \(what): \(error)")
        }
    }
}

/// A durable queue, its bindings and how it is consumed.
public struct QueueSpec: Sendable, Hashable {
    /// How a queue's messages are spread over consumers.
    public enum Sharding: Sendable, Hashable {
        /// One queue.
        case none
        /// `count` queues `<name>.shard-<i>`; each message goes to the one chosen by its shard key, so a
        /// key's messages stay in order on one shard.
        case byShardKey(count: Int)
    }

    public var name: String
    /// Topic patterns bound to the exchange.
    public var bindings: [String]
    /// Only one consumer receives at a time; the others stand by and take over if it goes.
    public var singleActiveConsumer: Bool
    public var sharding: Sharding
    /// A short-lived queue (a reply queue): the broker deletes it once it has been unused this long,
    /// and it has no dead-letter queue.
    public var expiresAfter: Duration?

    /// A `QueueSpec` with the fields given.
    public init(
        name: String,
        bindings: [String],
        singleActiveConsumer: Bool = false,
        sharding: Sharding = .none,
        expiresAfter: Duration? = nil
    ) {
        self.name = name
        self.bindings = bindings
        self.singleActiveConsumer = singleActiveConsumer
        self.sharding = sharding
        self.expiresAfter = expiresAfter
    }

    /// The dead-letter queue of this queue.
    public var deadLetterQueue: String { Self.deadLetterQueue(of: name) }

    /// The dead-letter queue of `queue`.
    public static func deadLetterQueue(of queue: String) -> String { "\(queue).dlq" }

    /// The name of shard `index`.
    public func shard(_ index: Int) -> String { "\(name).shard-\(index)" }

    /// Every queue this spec creates, but the dead-letter queues.
    public var queueNames: [String] {
        switch sharding {
        case .none: [name]
        case .byShardKey(let count): (0..<count).map(shard)
        }
    }
}

/// How a consumer takes messages.
public struct ConsumerOptions: Sendable, Hashable {
    /// Unacknowledged deliveries the broker may have in flight to this consumer.
    public var prefetch: Int
    /// Handlers running at once; 1 keeps the queue's order.
    public var concurrency: Int
    /// Attempts before a failing message is dead-lettered.
    public var maxDeliveries: Int
    /// Pause before a failed message is requeued, so a failing dependency is not hammered.
    public var retryDelay: Duration
    /// A larger body goes to the dead-letter queue unread (`MAX_MESSAGE_BYTES`); nil: the bus's limit.
    public var maxMessageBytes: Int?

    /// The limit when nothing sets one: far above any message TradeBus sends (a candle with its
    /// lower-timeframe detail is a few kB), far below what would cost a worker its memory.
    public static let defaultMaxMessageBytes = 1_048_576

    /// Consumer settings: prefetch, concurrency, and how failures are retried and dead-lettered.
    public init(
        prefetch: Int = 64,
        concurrency: Int = 1,
        maxDeliveries: Int = 5,
        retryDelay: Duration = .milliseconds(100),
        maxMessageBytes: Int? = nil
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.prefetch = max(1, prefetch)
        self.concurrency = max(1, min(concurrency, self.prefetch))
        self.maxDeliveries = max(1, maxDeliveries)
        self.retryDelay = retryDelay
    }
}

/// Lets the owner of a consumer stop it gracefully: no new deliveries, the ones in flight finish and
/// are acknowledged, then `consume` returns.
public final class ConsumerControl: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    /// A control that has not been stopped.
    public init() {
        (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the consumer to stop taking messages and drain.
    public func stop() {
        continuation.yield()
        continuation.finish()
    }

    /// Returns when `stop()` has been called (or the waiting task is cancelled).
    public func waitForStop() async {
        for await _ in stream { return }
    }
}

/// Failures of the bus itself: a ``Code`` to act on, and a message that says what failed and what to do.
public struct BusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Equatable {
        /// No queue is bound for the key: the broker returned the message (mandatory publish).
        case unroutable
        /// The broker refused the message (basic.nack).
        case rejectedByBroker = "rejected_by_broker"
        /// The queue was never declared.
        case unknownQueue = "unknown_queue"
        /// The bus was shut down.
        case closed
        /// Connecting, declaring or publishing failed.
        case connection
    }

    public var code: Code
    public var message: String

    /// A `BusError` with the fields given.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// No queue is bound for `routingKey`.
    public static func unroutable(routingKey: String) -> BusError {
        BusError(
            .unroutable,
            "no queue is bound for routing key '\(routingKey)'; declare a queue first or check the key"
        )
    }

    /// The broker refused the message for `routingKey`.
    public static func rejectedByBroker(routingKey: String) -> BusError {
        BusError(.rejectedByBroker, "the broker refused the message for '\(routingKey)' (basic.nack); publish it again")
    }

    /// `name` was never declared.
    public static func unknownQueue(_ name: String) -> BusError {
        BusError(.unknownQueue, "queue '\(name)' was not declared; declare it before consuming or counting it")
    }

    /// The bus was shut down.
    public static let closed = BusError(.closed, "the bus is closed; connect a new one")

    /// Connecting, declaring or publishing failed; `detail` says what the broker or socket said.
    public static func connection(_ detail: String) -> BusError {
        BusError(.connection, "broker connection failed: \(detail); check AMQP_URL and that RabbitMQ is up")
    }

    public var description: String { message }
}

/// Header names the bus sets on dead-lettered messages.
public enum DeadLetterHeader {
    /// Why the message was dead-lettered.
    public static let reason = "x-death-reason"
    /// The queue it was dead-lettered from.
    public static let queue = "x-death-queue"
    /// Its original routing key.
    public static let routingKey = "x-original-routing-key"
    /// How many attempts were made.
    public static let attempts = "x-death-attempts"
}

/// A consumer running in the background until it is stopped (the embedded system, tests).
public struct RunningConsumer: Sendable {
    public let control: ConsumerControl
    public let task: Task<Void, any Error>

    /// Starts consuming `queue` on `bus` in the background.
    public static func start(
        _ bus: any MessageBus,
        queue: String,
        options: ConsumerOptions = .init(),
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) -> RunningConsumer {
        let control = ConsumerControl()
        let task = Task { try await bus.consume(queue, options: options, control: control, handler: handler) }
        return RunningConsumer(control: control, task: task)
    }

    /// Stops gracefully and waits for the consumer to return.
    public func stop() async throws {
        control.stop()
        try await task.value
    }
}
