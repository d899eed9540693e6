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
