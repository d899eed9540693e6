import Foundation
import Synchronization

/// One thing that happened, as the overview's live list shows it.
public struct CockpitEvent: Sendable, Hashable, Codable {
    /// `trade`, `order`, `alert`, `control`, …
    public var kind: String
    public var text: String
    public var time: Date
    /// Whether the overview's figures changed (a trade, a position, a halt): the page fetches them again.
    public var refresh: Bool

    /// A `CockpitEvent` with the fields given.
    public init(kind: String, text: String, time: Date, refresh: Bool) {
        self.kind = kind
        self.text = text
        self.time = time
        self.refresh = refresh
    }
}

/// Fans live events out to every open page (server-sent events). A page that reads slowly loses its
/// oldest events, never holds up the others; `finish()` ends every stream at shutdown.
public final class CockpitFeed: Sendable {
    struct State {
        var next = 0
        var subscribers: [Int: AsyncStream<CockpitEvent>.Continuation] = [:]
        var finished = false
    }

    private let state = Mutex(State())

    /// A feed with no subscribers.
    public init() {}

    /// Sends `event` to every open page.
    public func publish(_ event: CockpitEvent) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    /// The open pages.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// A stream of the events from now on, until `finish()` or the caller's `unsubscribe`.
    func subscribe() -> (id: Int, events: AsyncStream<CockpitEvent>, own: AsyncStream<CockpitEvent>.Continuation) {
        let (stream, continuation) = AsyncStream.makeStream(
            of: CockpitEvent.self,
            bufferingPolicy: .bufferingNewest(100)
        )
        let id: Int? = state.withLock { state in
            guard !state.finished else { return nil }
            state.next += 1
            state.subscribers[state.next] = continuation
            return state.next
        }
        guard let id else {
            continuation.finish()
            return (0, stream, continuation)
        }
        return (id, stream, continuation)
    }

    func unsubscribe(_ id: Int) {
        state.withLock { $0.subscribers.removeValue(forKey: id) }?.finish()
    }

    /// Ends every stream, and every later one at once: the server is stopping.
    public func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
