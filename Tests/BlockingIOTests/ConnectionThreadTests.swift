import BlockingIO
import Foundation
import Synchronization
import Testing

/// The connection thread: blocking work runs on its own thread, in order, never on the cooperative pool.
@Suite("Connection thread")
struct ConnectionThreadTests {
    @Test("jobs run on the connection's own thread, one at a time, in the order queued; errors come back to the caller")
    func ordered() async throws {
        let thread = ConnectionThread(name: "test-connection")
        defer { thread.stop() }
        let order = Mutex<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                #expect(thread.enqueue { order.withLock { $0.append(index) } })
            }
            group.addTask {
                let (current, name) = try await thread.run { (thread.isCurrent, Thread.current.name) }
                #expect(current, "on the thread: \(name ?? "unnamed")")
            }
            try await group.waitForAll()
        }
        #expect(order.withLock { $0 } == Array(0..<100))
        #expect(!thread.isCurrent, "the caller is not on it")
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await thread.run { throw Refused() } }
    }

    @Test("a stopped thread runs what was queued before, then refuses work with ConnectionThreadStopped")
    func stopped() async throws {
        let thread = ConnectionThread(name: "test-stopping")
        let ran = Mutex(0)
        for _ in 0..<10 { thread.enqueue { ran.withLock { $0 += 1 } } }
        thread.stop()
        await #expect(throws: ConnectionThreadStopped.self) { try await thread.run { 1 } }
        #expect(!thread.enqueue {})
        try await Task.sleep(for: .milliseconds(100))
        #expect(ran.withLock { $0 } == 10)
    }

    @Test("a blocking call on the connection thread does not hold up the cooperative pool")
    func blockingStaysOff() async throws {
        let thread = ConnectionThread(name: "test-blocking")
        defer { thread.stop() }
        let blocked = Task { try await thread.run { usleep(300_000) } }
        // Meanwhile plenty of async work runs on the pool (two cores here).
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { try? await Task.sleep(for: .milliseconds(10)) } }
        }
        #expect(ContinuousClock.now - started < .milliseconds(250))
        try await blocked.value
    }
}
