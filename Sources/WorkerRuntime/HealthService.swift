import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Whether a dependency can be used.
public struct DependencyStatus: Sendable, Codable, Equatable {
    /// `up`, `degraded` (usable, with less: a cache answering from its LRU) or `down`.
    public var state: String
    public var detail: String?

    public static let up = DependencyStatus(state: "up")
    /// Usable, with less.
    public static func degraded(_ detail: String) -> DependencyStatus { .init(state: "degraded", detail: detail) }
    /// Not usable.
    public static func down(_ detail: String) -> DependencyStatus { .init(state: "down", detail: detail) }

    public var isUsable: Bool { state != "down" }
}

/// The worker's small HTTP endpoint: `/health` (the process is alive), `/ready` (its dependencies
/// are reachable; a degraded cache still counts), `/metrics` (Prometheus text) and `/status`
/// (JSON specific to the worker). Runs as the first service of the worker's group, so it stops last.
public struct HealthService: Service {
    /// Each dependency's state, for `/ready`.
    public typealias Checks = @Sendable () async -> [String: DependencyStatus]
    /// The worker's own figures, for `/status`.
    public typealias Status = @Sendable () async -> [String: String]

    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let checks: Checks
    let status: Status
    let logger: Logger
    let onRunning: @Sendable (Int) async -> Void

    /// `onRunning` receives the bound port (useful with port 0).
    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        logger: Logger,
        checks: @escaping Checks,
        status: @escaping Status,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.onRunning = onRunning
        self.host = host
        self.port = port
        self.registry = registry
        self.checks = checks
        self.status = status
        self.logger = logger
    }

    /// Serves until the group shuts down gracefully.
    public func run() async throws {
        try await application().run()
    }

    /// The Hummingbird application behind the endpoint.
    func application() -> some Service {
        let router = Router()
        let checks = self.checks
        let status = self.status
        let registry = self.registry
        router.get("health") { _, _ in
            Self.json(["status": "ok"], status: .ok)
        }
        router.get("ready") { _, _ in
            let results = await checks()
            let ready = results.values.allSatisfy(\.isUsable)
            return Self.json(ReadyBody(ready: ready, dependencies: results), status: ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
        router.get("status") { _, _ in
            Self.json(await status(), status: .ok)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [onRunning] channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    struct ReadyBody: Codable {
        var ready: Bool
        var dependencies: [String: DependencyStatus]
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
