import Synchronization

/// What happens to a delivery once its handler has run.
public enum Settlement: Sendable, Equatable {
    /// Done: remove it from the queue.
    case ack
    /// Put it back for another attempt (or for another consumer, when stopping).
    case requeue
    /// Move it to the dead-letter queue with the reason.
    case deadLetter(reason: String, attempts: Int)
}

/// The consumer semantics both buses share: run handlers with bounded concurrency, count attempts,
/// requeue or dead-letter failures, and stop gracefully (no new work, in-flight work finished and
/// settled). A bus supplies the deliveries and the way to settle them; this type decides.
public enum DeliveryRunner {
    /// Runs until `deliveries` finishes. `stopIntake` is called once, when `control` says stop or the
    /// task is cancelled; the transport must then stop delivering and finish the stream. Deliveries
    /// that arrive after that are requeued untouched.
    public static func run<Token: Sendable>(
        deliveries: AsyncStream<(Delivery, Token)>,
        options: ConsumerOptions,
        control: ConsumerControl?,
        attempts: AttemptCounter,
        stopIntake: @escaping @Sendable () async -> Void,
        settle: @escaping @Sendable (Token, Settlement) async -> Void,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async {
        let stopping = Atomic<Bool>(false)
        let requestStop: @Sendable () async -> Void = {
            if !stopping.exchange(true, ordering: .acquiringAndReleasing) { await stopIntake() }
        }
        // With no control, one that is never stopped: the watcher then waits for cancellation alone.
        let control = control ?? ConsumerControl()
        let watcher = ConsumerControl()
        await withTaskGroup(of: Void.self) { tasks in
            // The watcher, owned by this call: a stop asked through `control`, or the cancellation of
            // the consuming task, stops the intake; what was taken is still finished and settled.
            // `watcher` stops it without a stop of the intake once the deliveries have ended.
            tasks.addTask {
                await withTaskGroup(of: Bool.self) { either in
                    either.addTask {
                        await control.waitForStop()
                        return true
                    }
                    either.addTask {
                        await watcher.waitForStop()
                        return Task.isCancelled
                    }
                    let stop = await either.next() ?? false
                    either.cancelAll()
                    if stop { await requestStop() }
                }
            }
            await consume(
                deliveries,
                options: options,
                attempts: attempts,
                stopping: stopping,
                settle: settle,
                handler: handler
            )
            watcher.stop()
        }
    }

    /// Takes deliveries until the stream ends: in order one at a time, or up to `concurrency` at once.
    /// Once `stopping` is set, what still arrives is requeued.
    static func consume<Token: Sendable>(
        _ deliveries: AsyncStream<(Delivery, Token)>,
        options: ConsumerOptions,
        attempts: AttemptCounter,
        stopping: borrowing Atomic<Bool>,
        settle: @escaping @Sendable (Token, Settlement) async -> Void,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) async {
        if options.concurrency == 1 {
            // In order, one at a time: no child task per message.
            for await (delivery, token) in deliveries {
                if stopping.load(ordering: .acquiring) {
                    await settle(token, .requeue)
                    continue
                }
                await settle(token, await process(delivery, options: options, attempts: attempts, handler: handler))
            }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await (delivery, token) in deliveries {
                if stopping.load(ordering: .acquiring) {
                    await settle(token, .requeue)
                    continue
                }
                if running >= options.concurrency {
                    await group.next()
                    running -= 1
                    // A stop may have come while waiting for a free slot.
                    if stopping.load(ordering: .acquiring) {
                        await settle(token, .requeue)
                        continue
                    }
                }
                running += 1
                group.addTask {
                    let settlement = await process(delivery, options: options, attempts: attempts, handler: handler)
                    await settle(token, settlement)
                }
            }
            await group.waitForAll()
        }
    }

    /// Runs the handler once and decides the settlement.
    static func process(
        _ delivery: Delivery,
        options: ConsumerOptions,
        attempts: AttemptCounter,
        handler: @Sendable (Delivery) async throws -> Void
    ) async -> Settlement {
        var delivery = delivery
        let limit = options.maxMessageBytes ?? ConsumerOptions.defaultMaxMessageBytes
        guard delivery.body.count <= limit else {
            // Unread: a body this size is not one of ours, and decoding it would cost the memory.
            return .deadLetter(
                reason: "message of \(delivery.body.count) bytes; at most \(limit) (MAX_MESSAGE_BYTES)",
                attempts: 1
            )
        }
        let key = attempts.key(for: delivery)
        delivery.attempt = attempts.failures(key) + 1
        do {
            try await handler(delivery)
            attempts.clear(key)
            return .ack
        } catch let rejection as MessageRejected {
            attempts.clear(key)
            return .deadLetter(reason: rejection.reason, attempts: delivery.attempt)
        } catch is CancellationError {
            // Shutting down: not the message's fault, so it does not count as an attempt.
            return .requeue
        } catch {
            if delivery.attempt >= options.maxDeliveries {
                attempts.clear(key)
                return .deadLetter(
                    reason: "handler failed \(delivery.attempt) times; last error: \(error)",
                    attempts: delivery.attempt
                )
            }
            attempts.recordFailure(key)
            try? await Task.sleep(for: options.retryDelay)
            return .requeue
        }
    }
}

/// Counts failed attempts per message within this process, so a message that keeps failing is
/// dead-lettered after `maxDeliveries` attempts even though the broker requeues it each time.
public final class AttemptCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let capacity: Int

    /// A `AttemptCounter` with the fields given.
    public init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The message id, or a digest of the routing key and body when there is none.
    public func key(for delivery: Delivery) -> String {
        if let id = delivery.messageID, !id.isEmpty { return id }
        let hash = StableHash.fnv1a(delivery.body, seed: StableHash.fnv1a(delivery.routingKey.utf8))
        return "body:\(String(hash, radix: 16))"
    }

    /// How many times the message with `key` has failed so far.
    public func failures(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }

    /// Counts one more failure of the message with `key`.
    public func recordFailure(_ key: String) {
        counts.withLock { counts in
            // Entries of messages another consumer finished are never cleared here; keep the map bounded.
            if counts.count >= capacity { counts.removeAll(keepingCapacity: true) }
            counts[key, default: 0] += 1
        }
    }

    /// Forgets the message with `key` (it was settled).
    public func clear(_ key: String) { _ = counts.withLock { $0.removeValue(forKey: key) } }
}

/// A stable 64-bit FNV-1a hash, the same in every process (Swift's `Hasher` is seeded per process).
public enum StableHash {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    /// 64-bit FNV-1a hash of `bytes` (stable across processes, unlike `Hasher`).
    public static func fnv1a<Bytes: Sequence<UInt8>>(_ bytes: Bytes, seed: UInt64 = offsetBasis) -> UInt64 {
        var hash = seed
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
