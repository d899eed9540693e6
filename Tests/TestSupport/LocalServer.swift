import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import Synchronization

/// A Hummingbird application on a free loopback port: the base of every local stand-in for an
/// outside service (exchanges, LLM providers, notification services).
public final class LocalServer: Sendable {
    public let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    /// Starts `router` (and `server`, for a WebSocket upgrade) and returns once it listens.
    public static func start<Routes: HTTPResponderBuilder>(
        _ router: Routes,
        server: HTTPServerBuilder = .http1(),
        label: String
    ) async throws -> LocalServer
    where Routes.Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        var bound = 0
        for await port in ports {
            bound = port
            break
        }
        return LocalServer(port: bound, group: group, task: task)
    }

    /// Shuts down gracefully and waits until it has.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
}

/// The running server of a stand-in, set once it listens.
public final class ServerSlot: Sendable {
    private let slot = Mutex<LocalServer?>(nil)
    public init() {}
    public func set(_ server: LocalServer) { slot.withLock { $0 = server } }
    public var port: Int { slot.withLock { $0?.port ?? 0 } }
    public func stop() async { await slot.withLock { $0 }?.stop() }
}
