import Synchronization
import TradingCore

/// Collects what a test's handler saw, safely across tasks.
public final class Collector<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    public init() {}

    public func append(_ element: Element) { items.withLock { $0.append(element) } }

    public var all: [Element] { items.withLock { $0 } }

    public var count: Int { items.withLock { $0.count } }
}

/// Runs `body` in a child task with a consumer that the test stops at the end.
public struct RunningConsumer: Sendable {
    public let control: ConsumerControl
    public let task: Task<Void, any Error>

    /// Starts consuming `queue` on `bus` in the background.
    public static func start(
        _ bus: any MessageBus, queue: String, options: ConsumerOptions = .init(),
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
