import DequeModule
import Foundation
import TradingCore

/// The message bus in memory, with RabbitMQ's semantics: topic bindings with `*` and `#`, unroutable
/// publishes fail, manual ack, requeue with redelivery, dead-letter queues with the reason, single
/// active consumer and sharding by key. The embedded mode (`tradebus run`, backtests) and the tests
/// use it; the contract suite holds it to the same behaviour as ``MessageBus`` over RabbitMQ.
public actor InProcessBus: MessageBus {
    private struct Stored {
        var message: OutgoingMessage
        var headers: [String: String]
        var redelivered: Bool
    }

    private final class QueueState {
        let name: String
        let singleActiveConsumer: Bool
        var ready = Deque<Stored>()
        var consumers: [Int] = []
        var nextConsumer = 0
        init(name: String, singleActiveConsumer: Bool) {
            self.name = name
            self.singleActiveConsumer = singleActiveConsumer
        }
    }

    private struct ConsumerState {
        let queue: String
        let prefetch: Int
        var inFlight = 0
        let continuation: AsyncStream<(Delivery, Int)>.Continuation
    }

    private enum Target: Hashable {
        case queue(String)
        case shards(QueueSpec)
    }

    private var queues: [String: QueueState] = [:]
    private var bindings: [(pattern: TopicPattern, target: Target)] = []
    private var consumers: [Int: ConsumerState] = [:]
    private var unacked: [Int: (queue: String, stored: Stored, consumer: Int)] = [:]
    private var nextTag = 1
    private var nextConsumerID = 1
    private let attempts = AttemptCounter()

    private var idleWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    private var nextWaiter = 0
    private var consumerWaiters: [Int: (queues: [String], continuation: CheckedContinuation<Bool, Never>)] = [:]

    /// An empty bus: no queues, no consumers.
    public init() {}

    /// Every queue empty and every delivery settled: nothing is left to do until the next publish.
    public var isIdle: Bool { unacked.isEmpty && queues.values.allSatisfy { $0.ready.isEmpty || $0.consumers.isEmpty } }

    /// Returns once the bus is idle: the embedded replay lets each candle's consequences (snapshots,
    /// signals, decisions, orders) finish before it sends the next one, so a replay is deterministic.
    /// Queues nobody consumes (dead letters) do not count.
    public func waitUntilIdle() async {
        _ = await waitUntilIdle(timeout: nil)
    }

    /// ``waitUntilIdle()``, giving up after `timeout`: true once idle, false if it timed out.
    public func waitUntilIdle(timeout: Duration?) async -> Bool {
        if isIdle { return true }
        let id = nextWaiter
        nextWaiter += 1
        let timer = timeout.map { expiry(after: $0) { await $0.expireIdleWaiter(id) } }
        let idle = await withCheckedContinuation { idleWaiters[id] = $0 }
        timer?.cancel()
        return idle
    }

    /// A task that calls `expire` after `timeout` unless it is cancelled first. A waiter cancels its
    /// timer once answered, so a replay (one wait per candle) leaves no sleeping tasks behind.
    private func expiry(
        after timeout: Duration,
        _ expire: @escaping @Sendable (InProcessBus) async -> Void
    ) -> Task<Void, Never> {
        Task { [weak self] in
            guard (try? await Task.sleep(for: timeout)) != nil, let self else { return }
            await expire(self)
        }
    }

    private func expireIdleWaiter(_ id: Int) {
        idleWaiters.removeValue(forKey: id)?.resume(returning: false)
    }

    /// What keeps the bus busy: each consumed queue's waiting and unacknowledged messages.
    public var pendingWork: String {
        var unackedByQueue: [String: Int] = [:]
        for entry in unacked.values { unackedByQueue[entry.queue, default: 0] += 1 }
        return queues.values.filter { !$0.consumers.isEmpty && (!$0.ready.isEmpty || unackedByQueue[$0.name] != nil) }
            .map { "\($0.name): \($0.ready.count) waiting, \(unackedByQueue[$0.name] ?? 0) unacknowledged" }.sorted()
            .joined(separator: "; ")
    }

    /// Returns once each of `names` has a consumer. A queue nobody consumes counts as idle, so a replay
    /// waits for its consumers to be listening before it publishes its first candle.
    /// True once they do; false if `timeout` passes first.
    public func waitForConsumers(on names: [String], timeout: Duration) async -> Bool {
        if hasConsumers(names) { return true }
        let id = nextWaiter
        nextWaiter += 1
        let timer = expiry(after: timeout) { await $0.expireConsumerWaiter(id) }
        let started = await withCheckedContinuation { consumerWaiters[id] = (names, $0) }
        timer.cancel()
        return started
    }

    private func expireConsumerWaiter(_ id: Int) {
        consumerWaiters.removeValue(forKey: id)?.continuation.resume(returning: false)
    }

    private func hasConsumers(_ names: [String]) -> Bool {
        names.allSatisfy { !(queues[$0]?.consumers.isEmpty ?? true) }
    }

    private func resumeConsumerWaiters() {
        for (id, waiter) in consumerWaiters where hasConsumers(waiter.queues) {
            consumerWaiters[id] = nil
            waiter.continuation.resume(returning: true)
        }
    }

    private func resumeIdleWaiters() {
        guard !idleWaiters.isEmpty, isIdle else { return }
        let waiters = idleWaiters.values
        idleWaiters.removeAll()
        for waiter in waiters { waiter.resume(returning: true) }
    }

    public func declare(_ spec: QueueSpec) async throws {
        for name in spec.queueNames {
            if queues[name] == nil {
                queues[name] = QueueState(name: name, singleActiveConsumer: spec.singleActiveConsumer)
            }
            let dlq = QueueSpec.deadLetterQueue(of: name)
            if queues[dlq] == nil { queues[dlq] = QueueState(name: dlq, singleActiveConsumer: false) }
        }
        let target: Target = spec.queueNames.count == 1 && spec.sharding == .none ? .queue(spec.name) : .shards(spec)
        for pattern in spec.bindings
        where !bindings.contains(where: { $0.pattern.pattern == pattern && $0.target == target }) {
            bindings.append((TopicPattern(pattern), target))
        }
    }

    public func publish(_ message: OutgoingMessage) async throws {
        try route(message)
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        for message in messages { try route(message) }
    }

    public func messageCount(_ queue: String) async throws -> Int {
        guard let state = queues[queue] else { throw BusError.unknownQueue(queue) }
        return state.ready.count
    }

    private func route(_ message: OutgoingMessage) throws {
        var targets: Set<String> = []
        for binding in bindings where binding.pattern.matches(message.routingKey) {
            switch binding.target {
            case .queue(let name):
                targets.insert(name)
            case .shards(let spec):
                guard case .byShardKey(let count) = spec.sharding else {
                    targets.insert(spec.name)
                    continue
                }
                let key = message.shardKey ?? message.routingKey
                targets.insert(spec.shard(Int(StableHash.fnv1a(key.utf8) % UInt64(count))))
            }
        }
        guard !targets.isEmpty else { throw BusError.unroutable(routingKey: message.routingKey) }
        for name in targets.sorted() {
            enqueue(Stored(message: message, headers: message.headers, redelivered: false), into: name)
        }
    }

    private func enqueue(_ stored: Stored, into name: String) {
        guard let queue = queues[name] else { return }
        queue.ready.append(stored)
        dispatch(queue)
    }

    private func dispatch(_ queue: QueueState) {
        while !queue.ready.isEmpty, let consumerID = nextConsumer(for: queue) {
            let stored = queue.ready.removeFirst()
            let tag = nextTag
            nextTag += 1
            unacked[tag] = (queue.name, stored, consumerID)
            consumers[consumerID]!.inFlight += 1
            let delivery = Delivery(
                routingKey: stored.message.routingKey,
                body: stored.message.body,
                messageID: stored.message.messageID,
                correlationID: stored.message.correlationID,
                headers: stored.headers,
                redelivered: stored.redelivered
            )
            consumers[consumerID]!.continuation.yield((delivery, tag))
        }
    }

    /// Round robin over consumers with room in their prefetch window; only the first consumer when the
    /// queue has a single active consumer.
    private func nextConsumer(for queue: QueueState) -> Int? {
        if queue.singleActiveConsumer {
            guard let active = queue.consumers.first, let state = consumers[active] else { return nil }
            return state.inFlight < state.prefetch ? active : nil
        }
        let count = queue.consumers.count
        for offset in 0..<count {
            let index = (queue.nextConsumer + offset) % count
            let id = queue.consumers[index]
            if let state = consumers[id], state.inFlight < state.prefetch {
                queue.nextConsumer = (index + 1) % count
                return id
            }
        }
        return nil
    }

    public nonisolated func consume(
        _ queue: String,
        options: ConsumerOptions,
        control: ConsumerControl?,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async throws {
        let (stream, continuation) = AsyncStream<(Delivery, Int)>.makeStream()
        let consumerID = try await register(queue: queue, prefetch: options.prefetch, continuation: continuation)
        await DeliveryRunner.run(
            deliveries: stream,
            options: options,
            control: control,
            attempts: attempts,
            stopIntake: { await self.cancel(consumerID) },
            settle: { tag, settlement in await self.settle(tag, settlement) },
            handler: handler
        )
        await cancel(consumerID)
    }

    private func register(
        queue: String,
        prefetch: Int,
        continuation: AsyncStream<(Delivery, Int)>.Continuation
    ) throws -> Int {
        guard let state = queues[queue] else { throw BusError.unknownQueue(queue) }
        let id = nextConsumerID
        nextConsumerID += 1
        consumers[id] = ConsumerState(queue: queue, prefetch: prefetch, continuation: continuation)
        state.consumers.append(id)
        dispatch(state)
        resumeConsumerWaiters()
        return id
    }

    private func cancel(_ consumerID: Int) {
        guard let state = consumers[consumerID], let queue = queues[state.queue] else { return }
        queue.consumers.removeAll { $0 == consumerID }
        state.continuation.finish()
        if state.inFlight == 0 { consumers[consumerID] = nil }
        dispatch(queue)
    }

    private func settle(_ tag: Int, _ settlement: Settlement) {
        guard let entry = unacked.removeValue(forKey: tag) else { return }
        if var consumer = consumers[entry.consumer] {
            consumer.inFlight -= 1
            let cancelled = !(queues[entry.queue]?.consumers.contains(entry.consumer) ?? false)
            consumers[entry.consumer] = cancelled && consumer.inFlight == 0 ? nil : consumer
        }
        guard let queue = queues[entry.queue] else { return }
        switch settlement {
        case .ack:
            break
        case .requeue:
            var stored = entry.stored
            stored.redelivered = true
            queue.ready.prepend(stored)
        case .deadLetter(let reason, let attempts):
            var stored = entry.stored
            stored.headers[DeadLetterHeader.reason] = reason
            stored.headers[DeadLetterHeader.queue] = entry.queue
            stored.headers[DeadLetterHeader.routingKey] = stored.message.routingKey
            stored.headers[DeadLetterHeader.attempts] = String(attempts)
            stored.redelivered = false
            enqueue(stored, into: QueueSpec.deadLetterQueue(of: entry.queue))
        }
        dispatch(queue)
        resumeIdleWaiters()
    }
}
