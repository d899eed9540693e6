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

    @Test("a blocking call on the connection thread leaves the cooperative pool free: the pool unblocks it")
    func blockingStaysOff() async throws {
        let thread = ConnectionThread(name: "test-blocking")
        defer { thread.stop() }
        let semaphore = DispatchSemaphore(value: 0)
        // The job blocks its thread until a task on the pool signals it; were it on the pool, with the
        // pool's threads blocked the signal could never come, and it would give up after 30 s.
        let blocked = Task { try await thread.run { semaphore.wait(timeout: .now() + 30) == .success } }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { try? await Task.sleep(for: .milliseconds(10)) } }
        }
        semaphore.signal()
        #expect(try await blocked.value, "signalled from the pool while the connection thread was blocked")
    }
}
