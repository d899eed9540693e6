import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import TradingCore

/// What a worker runs once started.
public struct WorkerPlan: Sendable {
    public var services: [any Service]
    public var checks: HealthServer.Checks
    public var status: HealthServer.Status
    /// Runs after the services have stopped (close connections, flush).
    public var shutdown: @Sendable () async -> Void

    public init(
        services: [any Service], checks: @escaping HealthServer.Checks, status: @escaping HealthServer.Status,
        shutdown: @escaping @Sendable () async -> Void = {}
    ) {
        self.services = services
        self.checks = checks
        self.status = status
        self.shutdown = shutdown
    }
}

/// What a worker's start function gets.
public struct WorkerContext: Sendable {
    public let settings: RuntimeSettings
    public let config: ConfigReader
    public let logger: Logger
    /// How long to keep retrying dependencies at start.
    public let startupTimeout: Duration
}

/// Runs a worker executable: command line, configuration, logging, metrics, health endpoint and
/// lifecycle, so each `main` only wires its adapters into its service.
public enum WorkerMain {
    /// Parses the command line (`--print-config`, `--help`), reads and validates the configuration with
    /// `configure`, then starts with `start` and runs until SIGTERM or SIGINT, draining within the grace
    /// period. Exits 2 on invalid configuration and 1 when a dependency cannot be reached.
    public static func run<Config: Sendable>(
        worker: String, defaultPort: Int, summary: String,
        configure: (ConfigReader) throws -> Config,
        start: (Config, WorkerContext) async throws -> WorkerPlan
    ) async -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains("--help") || arguments.contains("-h") {
            print("\(worker): \(summary)\n\nUsage: \(worker) [--print-config]\nConfiguration comes from the environment; see README.md.")
            exit(0)
        }
        if let unknown = arguments.first(where: { $0 != "--print-config" }) {
            StandardError.write("\(worker): unknown argument '\(unknown)'; try --help\n")
            exit(2)
        }
        let config: ConfigReader
        let settings: RuntimeSettings
        let workerConfig: Config
        let startupTimeout: Duration
        do {
            config = try ConfigReader()
            settings = try RuntimeSettings(worker: worker, defaultPort: defaultPort, config: config)
            startupTimeout = .seconds(try config.int("STARTUP_TIMEOUT_SECONDS", default: 60, range: 0...3600, help: "how long to wait for servers at start"))
            workerConfig = try configure(config)
        } catch {
            StandardError.write("\(worker): \(error)\n")
            exit(2)
        }
        if arguments.contains("--print-config") {
            print(config.printable())
            exit(0)
        }

        let logger = bootstrapObservability(settings)
        let context = WorkerContext(settings: settings, config: config, logger: logger, startupTimeout: startupTimeout)
        let plan: WorkerPlan
        do {
            plan = try await start(workerConfig, context)
        } catch let error as ConfigError {
            logger.critical("\(error)")
            exit(2)
        } catch {
            logger.critical("cannot start: \(error)")
            exit(1)
        }
        do {
            try await runServices(plan, settings: settings, logger: logger)
            await plan.shutdown()
            logger.info("stopped")
            exit(0)
        } catch {
            await plan.shutdown()
            logger.critical("stopped on error: \(error)")
            exit(1)
        }
    }

    /// The Prometheus registry every worker's metrics go to.
    public static let registry = PrometheusCollectorRegistry()

    /// Installs the log handler and the Prometheus metrics factory; returns the worker's logger.
    public static func bootstrapObservability(_ settings: RuntimeSettings) -> Logger {
        let processID = "\(settings.worker)-\(UUID().uuidString.prefix(8).lowercased())"
        LoggingSystem.bootstrap { label in
            TradeBusLogHandler(label: label, level: settings.logLevel, format: settings.logFormat, processCorrelationID: processID)
        }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return Logger(label: settings.worker)
    }

    /// Runs the plan's services with the health server in one ServiceGroup that shuts down gracefully
    /// on SIGTERM and SIGINT. The health server is first, so it is the last to stop.
    public static func runServices(_ plan: WorkerPlan, settings: RuntimeSettings, logger: Logger) async throws {
        let health = HealthServer(
            host: settings.httpHost, port: settings.httpPort, registry: registry, logger: logger, checks: plan.checks,
            status: plan.status)
        let app = health.application { port in logger.info("health endpoint listening", metadata: ["port": "\(port)"]) }
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: app)] + plan.services.map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = settings.shutdownGrace
        configuration.maximumCancellationDuration = .seconds(5)
        logger.info("started", metadata: ["instance": "\(settings.instance)"])
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// Consumes a queue until graceful shutdown: then it stops taking messages, finishes and acks the
/// work in flight, and returns. Each handler runs with the message's correlation id on its log lines.
public struct ConsumerService: Service {
    let bus: any MessageBus
    let queue: String
    let options: ConsumerOptions
    let handler: @Sendable (Delivery) async throws -> Void

    public init(bus: any MessageBus, queue: String, options: ConsumerOptions, handler: @escaping @Sendable (Delivery) async throws -> Void) {
        self.bus = bus
        self.queue = queue
        self.options = options
        self.handler = handler
    }

    public func run() async throws {
        let control = ConsumerControl()
        let handler = self.handler
        try await withGracefulShutdownHandler {
            try await bus.consume(queue, options: options, control: control) { delivery in
                try await CorrelationID.with(delivery.correlationID ?? delivery.messageID) { try await handler(delivery) }
            }
        } onGracefulShutdown: {
            control.stop()
        }
    }
}

/// Keeps a worker whose processing arrives in a later release up until shutdown, so it can report
/// health and say what it does not do yet. It does nothing else.
public struct IdleService: Service {
    let logger: Logger
    let notYet: String

    public init(logger: Logger, notYet: String) {
        self.logger = logger
        self.notYet = notYet
    }

    public func run() async throws {
        logger.warning("this build does not \(notYet) yet; it only connects and reports health")
        try? await gracefulShutdown()
    }
}
