import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dedicated OS thread that owns one blocking connection (a C client handle).
///
/// Blocking C calls must never run on Swift's cooperative thread pool, where they would stall every
/// task. Each adapter connection therefore gets one of these: jobs are queued from async code, run in
/// order on the thread, and their results handed back through continuations.
///
/// A connection that also has to react to its socket (an AMQP consumer, say) installs a
/// ``SocketPump``: between jobs the thread sleeps in `poll(2)` on the socket and on a wake-up pipe, and
/// calls the pump when the socket is readable or the pump's tick is due.
public final class ConnectionThread: Sendable {
    /// Lets a connection do its own socket work on the thread between jobs.
    public protocol SocketPump: AnyObject {
        /// The descriptor to wait on, or nil when not connected.
        func pollDescriptor() -> Int32?
        /// True when the client library has buffered data that must be processed without waiting.
        func hasBufferedInput() -> Bool
        /// Called when the descriptor is readable, data is buffered, or `tickInterval` has passed.
        func pump()
        /// How long the thread may sleep at most (heartbeats, reconnects).
        var tickInterval: Duration { get }
        /// Called after each batch of jobs, before the thread waits: a place to flush coalesced work.
        func jobsDidRun()
    }

    private struct State: ~Copyable {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// True while the thread sleeps in poll(2): only then does an enqueue need to write the wake pipe.
    private let sleeping = Atomic<Bool>(false)
    private let queued = Atomic<Int>(0)
    /// The thread's pthread id, set when it starts; lets `run` tell it is already on this thread.
    private let threadID = Atomic<UInt>(0)
    private let wakeRead: Int32
    private let wakeWrite: Int32
    public let name: String
    /// Safe without a lock: it is read and written only on this connection thread (`install(pump:)` is
    /// documented to be called from a job, and `loop()` runs on the thread).
    nonisolated(unsafe) private var pump: (any SocketPump)?

    /// Starts a thread named `name` (shown by debuggers and `top -H`).
    public init(name: String) {
        var fds: [Int32] = [0, 0]
        let rc = pipe(&fds)
        precondition(rc == 0, "pipe() failed: \(errno)")
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]
        self.name = name
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Installs the socket pump. Call only from a job running on this thread.
    public func install(pump: (any SocketPump)?) {
        self.pump = pump
    }

    /// True when called from this connection thread.
    public var isCurrent: Bool {
        let id = threadID.load(ordering: .acquiring)
        return id != 0 && UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))) == id
    }

    /// Runs `body` on the connection thread and returns its result. Called from a task already
    /// running on this thread (see the `TaskExecutor` conformance), it runs inline with no hop.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if isCurrent { return try body() }
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            let accepted = enqueue {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            if !accepted { continuation.resume(throwing: ConnectionThreadStopped(name: name)) }
        }
    }

    /// Queues `body` without waiting for it. Returns false when the thread has stopped.
    @discardableResult
    public func enqueue(_ body: @escaping @Sendable () -> Void) -> Bool {
        let accepted = state.withLock { state -> Bool in
            if state.stopped { return false }
            state.jobs.append(body)
            return true
        }
        if accepted {
            queued.add(1, ordering: .releasing)
            if sleeping.exchange(false, ordering: .acquiringAndReleasing) { wake() }
        }
        return accepted
    }

    /// Stops the thread after the jobs already queued have run.
    public func stop() {
        state.withLock { $0.stopped = true }
        queued.add(1, ordering: .releasing)
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    private func loop() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        while true {
            let (jobs, stopped) = state.withLock { state -> ([@Sendable () -> Void], Bool) in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                return (jobs, state.stopped)
            }
            if !jobs.isEmpty { queued.subtract(jobs.count, ordering: .relaxed) }
            for job in jobs { job() }
            if !jobs.isEmpty { pump?.jobsDidRun() }
            if stopped && jobs.isEmpty {
                pump = nil
                return
            }
            if !jobs.isEmpty { continue }
            sleeping.store(true, ordering: .sequentiallyConsistent)
            if queued.load(ordering: .sequentiallyConsistent) > 0 {
                sleeping.store(false, ordering: .relaxed)
                continue
            }
            waitForWork()
            sleeping.store(false, ordering: .relaxed)
        }
    }

    private func waitForWork() {
        guard let pump else {
            var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
            _ = poll(&fd, 1, -1)
            drainWakePipe()
            return
        }
        if pump.hasBufferedInput() {
            pump.pump()
            return
        }
        var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if let socket = pump.pollDescriptor() {
            fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0))
        }
        let tick = pump.tickInterval.components
        let timeoutMs = Int32(clamping: tick.seconds * 1000 + tick.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&fds, nfds_t(fds.count), max(timeoutMs, 1))
        if fds[0].revents != 0 { drainWakePipe() }
        if ready == 0 || (fds.count > 1 && fds[1].revents != 0) {
            pump.pump()
        }
    }
}

/// The connection thread was stopped before the job could run.
public struct ConnectionThreadStopped: Error, CustomStringConvertible {
    public let name: String
    public var description: String { "connection thread '\(name)' has stopped; the connection is closed" }
}

/// A task that prefers this executor (`withTaskExecutorPreference(thread) { ... }`) runs on the
/// connection thread itself, so its calls to the connection run inline instead of hopping threads
/// twice per call. For tasks that talk mostly to one connection.
extension ConnectionThread: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        enqueue { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}
