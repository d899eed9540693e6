import BlockingIO
import Foundation
import Logging
import Synchronization
import TradingCore

/// ``MessageBus`` over RabbitMQ with rabbitmq-c: one topic exchange, durable queues, persistent
/// messages, publisher confirms with a window, mandatory publishing, manual acks with a prefetch
/// window, dead-letter queues carrying the reason, single active consumer, sharding by key, and
/// reconnection that declares the topology again and republishes what was not confirmed.
///
/// Publishing has one connection; each consumer has its own, each on its own thread.
public final class RabbitMQBus: MessageBus {
    /// Where the broker is, and how publishing confirms and reconnects.
    public struct Configuration: Sendable {
        public var url: AMQPURL
        public var exchange: String
        /// Unconfirmed publishes in flight at once.
        public var confirmWindow: Int
        /// How long a publish may wait for a broker that is down before it fails.
        public var publishTimeout: Duration
        public var heartbeatSeconds: Int
        /// Shown in the management UI: `worker@host`.
        public var connectionName: String
        /// Publisher confirms. Off only to measure what they cost (`tradebus bench bus`): without them a
        /// publish "succeeds" once written to the socket, and a lost message goes unnoticed.
        public var confirms: Bool
        /// Every consumer's size limit, unless its options set one: a larger message is dead-lettered unread.
        public var maxMessageBytes: Int

        /// A `Configuration` with the fields given.
        public init(
            url: AMQPURL,
            exchange: String = RoutingKey.exchange,
            confirmWindow: Int = 512,
            publishTimeout: Duration = .seconds(30),
            heartbeatSeconds: Int = 10,
            connectionName: String = "tradebus@\(ProcessInfo.processInfo.hostName)",
            confirms: Bool = true,
            maxMessageBytes: Int = ConsumerOptions.defaultMaxMessageBytes
        ) {
            self.maxMessageBytes = maxMessageBytes
            self.confirms = confirms
            self.url = url
            self.exchange = exchange
            self.confirmWindow = confirmWindow
            self.publishTimeout = publishTimeout
            self.heartbeatSeconds = heartbeatSeconds
            self.connectionName = connectionName
        }
    }

    public let configuration: Configuration
    private let topology: Topology
    private let logger: Logger
    private let publisherThread: ConnectionThread
    /// Confined to `publisherThread`: used only in jobs running there.
    private let publisher: Publisher
    private let shutDown = Atomic<Bool>(false)

    /// A bus on the broker at `configuration.url`; it connects on first use.
    public init(configuration: Configuration, logger: Logger = Logger(label: "tradebus.rabbitmq")) {
        self.configuration = configuration
        self.logger = logger
        self.topology = Topology(exchange: configuration.exchange)
        self.publisherThread = ConnectionThread(name: "amqp-publisher")
        self.publisher = Publisher(
            settings: Self.settings(configuration, role: "publisher"),
            topology: topology,
            logger: logger,
            thread: publisherThread,
            window: configuration.confirmWindow,
            publishTimeout: configuration.publishTimeout,
            confirms: configuration.confirms
        )
        let publisher = self.publisher
        publisherThread.enqueue { [publisherThread] in publisherThread.install(pump: publisher) }
    }

    private static func settings(_ configuration: Configuration, role: String) -> ManagedConnection.Settings {
        ManagedConnection.Settings(
            url: configuration.url,
            connectionName: "\(configuration.connectionName) \(role)",
            heartbeatSeconds: configuration.heartbeatSeconds
        )
    }

    /// Connects now, so a worker can fail fast at start with the broker's own words.
    public func connect() async throws {
        let publisher = self.publisher
        do {
            try await publisherThread.run {
                try publisher.connectIfNeeded()
                return ()
            }
        } catch {
            throw BusError.connection("\(configuration.url): \(error)")
        }
    }

    /// True while the publishing connection is up.
    public func isConnected() async -> Bool {
        let publisher = self.publisher
        return (try? await publisherThread.run { publisher.connection?.isOpen ?? false }) ?? false
    }

    public func declare(_ spec: QueueSpec) async throws {
        topology.add(spec)
        let topology = self.topology
        try await onPublisherConnection("declaring queue '\(spec.name)'") { try topology.declare(spec, on: $0) }
    }

    /// Runs `body` with the publisher's connection, on its thread; a failure drops the connection (a
    /// broker error closes the channel) so the next call starts afresh.
    private func onPublisherConnection<T: Sendable>(
        _ what: String,
        _ body: @escaping @Sendable (AMQPConnection) throws -> T
    ) async throws -> T {
        let publisher = self.publisher
        do {
            return try await publisherThread.run {
                let connection = try publisher.connectIfNeeded()
                do {
                    return try body(connection)
                } catch {
                    publisher.connectionLost(error)
                    throw error
                }
            }
        } catch let error as BusError {
            throw error
        } catch {
            throw BusError.connection("\(what): \(error)")
        }
    }

    public func publish(_ message: OutgoingMessage) async throws {
        try await publish([message])
    }

    public func messageCount(_ queue: String) async throws -> Int {
        do {
            return try await onPublisherConnection("counting messages in '\(queue)'") { try $0.messageCount(queue) }
        } catch let failure as BusError where failure.code == .connection && failure.message.contains("404") {
            throw BusError.unknownQueue(queue)
        }
    }

    /// Drops every ready message of `queue` (a benchmark's leftovers); returns how many.
    public func purge(_ queue: String) async throws -> Int {
        try await onPublisherConnection("purging '\(queue)'") { try $0.purge(queue) }
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        if messages.isEmpty { return }
        guard !shutDown.load(ordering: .relaxed) else { throw BusError.closed }
        let publisher = self.publisher
        let tracker = BatchTracker(count: messages.count)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            tracker.continuation = continuation
            let accepted = publisherThread.enqueue {
                publisher.submit(messages) { _, result in tracker.complete(result) }
            }
            if !accepted { tracker.complete(.failure(.closed)) }
        }
    }

    public func consume(
        _ queue: String,
        options: ConsumerOptions,
        control: ConsumerControl?,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async throws {
        guard !shutDown.load(ordering: .relaxed) else { throw BusError.closed }
        let thread = ConnectionThread(name: "amqp-consumer")
        let (stream, continuation) = AsyncStream<(Delivery, Consumer.Token)>.makeStream()
        let consumer = Consumer(
            settings: Self.settings(configuration, role: "consumer \(queue)"),
            topology: topology,
            logger: logger,
            thread: thread,
            queue: queue,
            prefetch: options.prefetch,
            continuation: continuation
        )
        do {
            try await thread.run {
                try consumer.connectIfNeeded()
                thread.install(pump: consumer)
            }
        } catch {
            thread.stop()
            throw BusError.connection("consuming '\(queue)': \(error)")
        }
        var options = options
        options.maxMessageBytes = options.maxMessageBytes ?? configuration.maxMessageBytes
        await DeliveryRunner.run(
            deliveries: stream,
            options: options,
            control: control,
            attempts: AttemptCounter(),
            stopIntake: { _ = try? await thread.run { consumer.stopIntake() } },
            settle: { token, settlement in thread.enqueue { consumer.settle(token, settlement) } },
            handler: handler
        )
        _ = try? await thread.run {
            consumer.close()
            thread.install(pump: nil)
        }
        thread.stop()
    }

    /// Waits for unconfirmed publishes (up to `timeout`), then closes the publishing connection.
    public func shutdown(timeout: Duration = .seconds(5)) async {
        guard !shutDown.exchange(true, ordering: .relaxed) else { return }
        let publisher = self.publisher
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, (try? await publisherThread.run { publisher.inFlight }) ?? 0 > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        _ = try? await publisherThread.run { [publisherThread] in
            publisher.failAll()
            publisher.closed = true
            publisher.connection?.close()
            publisherThread.install(pump: nil)
        }
        publisherThread.stop()
    }
}

/// Resumes one continuation when every message of a batch is settled, with the first failure if any.
private final class BatchTracker: Sendable {
    private struct State {
        var remaining: Int
        var failure: BusError?
        var continuation: CheckedContinuation<Void, any Error>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(remaining: count))
    }

    var continuation: CheckedContinuation<Void, any Error>? {
        get { state.withLock { $0.continuation } }
        set { state.withLock { $0.continuation = newValue } }
    }

    func complete(_ result: Result<Void, BusError>) {
        let finished = state.withLock { state -> (CheckedContinuation<Void, any Error>, BusError?)? in
            if case .failure(let error) = result, state.failure == nil { state.failure = error }
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            return (continuation, state.failure)
        }
        guard let (continuation, failure) = finished else { return }
        if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
    }
}
