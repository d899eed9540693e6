import BlockingIO
import Foundation
import Logging
import TradingCore

/// A connection that keeps itself connected: it opens on demand, and after a loss reconnects with
/// exponential backoff and jitter, declaring the topology again before the owner resumes its work.
/// Lives on one `ConnectionThread`; every method runs there.
///
/// `@unchecked Sendable` because references are handed to jobs for the connection's thread: the
/// mutable state (and the rabbitmq-c handle) is only ever touched from inside those jobs, on that one
/// thread, so there is no concurrent access.
class ManagedConnection: ConnectionThread.SocketPump, @unchecked Sendable {
    struct Settings: Sendable {
        var url: AMQPURL
        var connectionName: String
        var heartbeatSeconds = 10
        var connectTimeoutSeconds = 5
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
    }

    let settings: Settings
    let topology: Topology
    let logger: Logger
    let thread: ConnectionThread
    private(set) var connection: AMQPConnection?
    /// Increases with every new connection; delivery tags of an older one are void.
    private(set) var generation = 0
    private var failures = 0
    private var nextAttempt: ContinuousClock.Instant = .now
    private(set) var disconnectedSince: ContinuousClock.Instant? = .now
    var closed = false

    init(settings: Settings, topology: Topology, logger: Logger, thread: ConnectionThread) {
        self.settings = settings
        self.topology = topology
        self.logger = logger
        self.thread = thread
    }

    /// Called once per new connection, after the topology is declared. Throwing counts as a failed
    /// connection attempt.
    func didConnect(_ connection: AMQPConnection) throws {}
    /// Called when the connection is lost.
    func didDisconnect(_ error: any Error) {}
    /// Called for each frame read.
    func handle(_ frame: AMQPFrame) throws {}
    /// Called on every wake-up, connected or not (timeouts, retries).
    func tick() {}

    /// Connects now if not connected; throws the reason it could not.
    @discardableResult
    func connectIfNeeded() throws -> AMQPConnection {
        if let connection, connection.isOpen { return connection }
        let connection = AMQPConnection()
        do {
            try connection.open(
                url: settings.url,
                heartbeatSeconds: settings.heartbeatSeconds,
                connectionName: settings.connectionName,
                timeoutSeconds: settings.connectTimeoutSeconds
            )
            try topology.declareAll(on: connection)
            self.connection = connection
            generation += 1
            try didConnect(connection)
        } catch {
            self.connection = nil
            connection.close()
            failures += 1
            nextAttempt = .now + backoff()
            throw error
        }
        if failures > 0 || generation > 1 {
            logger.info("connected to RabbitMQ", metadata: ["url": "\(settings.url)", "generation": "\(generation)"])
        }
        failures = 0
        disconnectedSince = nil
        return connection
    }

    /// Drops the connection after an error; a reconnect follows after the backoff.
    func connectionLost(_ error: any Error) {
        guard connection != nil else { return }
        logger.warning("RabbitMQ connection lost; reconnecting", metadata: ["error": "\(error)"])
        connection = nil
        disconnectedSince = .now
        failures += 1
        nextAttempt = .now + backoff()
        didDisconnect(error)
    }

    /// Exponential backoff with full jitter, capped.
    private func backoff() -> Duration { settings.backoff.delay(attempt: failures) }

    // MARK: SocketPump

    func pollDescriptor() -> Int32? { connection?.socketDescriptor }

    func hasBufferedInput() -> Bool { connection?.hasBufferedInput ?? false }

    var tickInterval: Duration { connection == nil ? .milliseconds(50) : .seconds(1) }

    func jobsDidRun() {}

    func pump() {
        if closed { return }
        if connection == nil, ContinuousClock.now >= nextAttempt {
            do {
                try connectIfNeeded()
            } catch {
                logger.debug("RabbitMQ reconnect failed", metadata: ["error": "\(error)"])
            }
        }
        if let connection {
            do {
                var read = 0
                while let frame = try connection.nextFrame() {
                    try handle(frame)
                    read += 1
                    if read >= 4096 { break }  // let queued jobs (acks, publishes) run
                }
                connection.releaseBuffers()
            } catch {
                connectionLost(error)
            }
        }
        tick()
    }
}
