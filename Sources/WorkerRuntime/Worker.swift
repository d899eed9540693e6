import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import TradingCore

/// What a worker runs once started.
public struct WorkerPlan: Sendable {
    public var services: [any Service]
    public var checks: HealthService.Checks
    public var status: HealthService.Status
    /// Runs after the services have stopped (close connections, flush).
    public var shutdown: @Sendable () async -> Void
    /// Where the worker's heartbeat goes (`heartbeat.<worker>`); nil: none.
    public var heartbeatBus: (any MessageBus)?

    /// A `WorkerPlan` with the fields given.
    public init(
        services: [any Service],
        checks: @escaping HealthService.Checks,
        status: @escaping HealthService.Status,
        heartbeatBus: (any MessageBus)? = nil,
        shutdown: @escaping @Sendable () async -> Void = {}
    ) {
        self.heartbeatBus = heartbeatBus
        self.services = services
        self.checks = checks
        self.status = status
        self.shutdown = shutdown
    }
}

/// What a worker's start function gets.
public struct WorkerContext: Sendable {
    public let settings: RuntimeSettings
    public let config: SettingsReader
    public let logger: Logger
    /// How long to keep retrying dependencies at start.
    public let startupTimeout: Duration
}

/// The steps every worker executable takes, none of which exits: the command line, the configuration,
/// logging and metrics, the worker's own start, and its lifecycle. Each `main` passes its own
/// configuration, wiring and `ServiceGroup`, and exits with the status this returns.
public enum WorkerMain {
    /// Parses the command line (`--print-config`, `--help`), reads and validates the configuration with
    /// `configure`, builds the worker with `start`, then runs it with `lifecycle` (a `ServiceGroup` that
    /// shuts down gracefully on SIGTERM and SIGINT, see ``serviceGroup(_:context:)``). Returns the exit
    /// status: 0 when it stopped cleanly (or printed help or the configuration), 2 on invalid
    /// configuration, 1 when a dependency cannot be reached or a service failed.
    public static func run<Config: Sendable>(
        worker: String,
        defaultPort: Int,
        summary: String,
        configure: (SettingsReader) throws -> Config,
        start: (Config, WorkerContext) async throws -> WorkerPlan,
        lifecycle: (WorkerPlan, WorkerContext) async throws -> Void
    ) async -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains("--help") || arguments.contains("-h") {
            print(
                "\(worker): \(summary)\n\nUsage: \(worker) [--print-config]\nConfiguration comes from the environment; see README.md."
            )
            return 0
        }
        if let unknown = arguments.first(where: { $0 != "--print-config" }) {
            StandardError.write("\(worker): unknown argument '\(unknown)'; try --help\n")
            return 2
        }
        let config: SettingsReader
        let settings: RuntimeSettings
        let workerConfig: Config
        let startupTimeout: Duration
        do {
            config = try SettingsReader()
            settings = try RuntimeSettings(worker: worker, defaultPort: defaultPort, config: config)
        } catch {
            StandardError.write("\(worker): \(error)\n")
            return 2
        }
        // Logs and metrics first: a metric made before the backend is in place (the bus's and the
        // cache's are made with them, in `configure`) would never be exported.
        let logger = bootstrapObservability(settings)
        do {
            startupTimeout = try WorkerMain.startupTimeout(config)
            workerConfig = try configure(config)
        } catch {
            StandardError.write("\(worker): \(error)\n")
            return 2
        }
        if arguments.contains("--print-config") {
            print(config.printable())
            return 0
        }

        let context = WorkerContext(settings: settings, config: config, logger: logger, startupTimeout: startupTimeout)
        let plan: WorkerPlan
        do {
            plan = try await start(workerConfig, context)
        } catch let error as ConfigError {
            logger.critical("\(error)")
            return 2
        } catch {
            logger.critical("cannot start: \(error)")
            return 1
        }
        do {
            logger.info("started", metadata: ["instance": "\(settings.instance)"])
            try await lifecycle(plan, context)
            await plan.shutdown()
            logger.info("stopped")
            return 0
        } catch {
            await plan.shutdown()
            logger.critical("stopped on error: \(error)")
            return 1
        }
    }

    /// `STARTUP_TIMEOUT_SECONDS`: how long a worker waits for its servers at start.
    public static func startupTimeout(_ config: SettingsReader) throws -> Duration {
        .seconds(
            try config.int(
                "STARTUP_TIMEOUT_SECONDS",
                default: 60,
                range: 0...3600,
                help: "how long to wait for servers at start"
            )
        )
    }

    /// The Prometheus registry every worker's metrics go to.
    public static let registry = PrometheusCollectorRegistry()

    /// Installs the log handler and the Prometheus metrics factory; returns the worker's logger.
    public static func bootstrapObservability(_ settings: RuntimeSettings) -> Logger {
        let processID = "\(settings.worker)-\(UUID().uuidString.prefix(8).lowercased())"
        LoggingSystem.bootstrap { label in
            TradeBusLogHandler(
                label: label,
                level: settings.logLevel,
                format: settings.logFormat,
                processCorrelationID: processID
            )
        }
        MetricsSystem.bootstrap(DescribedMetricsFactory(registry: registry))
        return Logger(label: settings.worker)
    }

    /// The configuration of a worker's `ServiceGroup`: the health server first (so it is the last to
    /// stop), then the plan's services, any of which ending or failing shuts the group down gracefully;
    /// SIGTERM and SIGINT start a graceful shutdown that may take `SHUTDOWN_GRACE_SECONDS`.
    public static func serviceGroup(_ plan: WorkerPlan, context: WorkerContext) -> ServiceGroupConfiguration {
        let logger = context.logger
        let settings = context.settings
        let health = HealthService(
            host: settings.httpHost,
            port: settings.httpPort,
            registry: registry,
            logger: logger,
            checks: plan.checks,
            status: plan.status
        ) { port in logger.info("health endpoint listening", metadata: ["port": "\(port)"]) }
        var heartbeat: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let bus = plan.heartbeatBus {
            heartbeat.append(
                .init(
                    service: HeartbeatService(
                        bus: bus,
                        worker: settings.worker,
                        instance: "\(settings.instance)#\(ProcessInfo.processInfo.processIdentifier)",
                        interval: settings.heartbeat,
                        checks: plan.checks,
                        status: plan.status,
                        logger: logger
                    )
                )
            )
        }
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: health)] + heartbeat
                + plan.services.map {
                    .init(
                        service: $0,
                        successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup
                    )
                },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = settings.shutdownGrace
        configuration.maximumCancellationDuration = .seconds(5)
        return configuration
    }
}

/// Says on the bus, every `interval`, that the worker is alive, with its dependencies' states and its
/// own figures (``WorkerHeartbeat``). Nobody listening (no cockpit) is not an error; the bus being down
/// is the health check's business, not this one's.
public struct HeartbeatService: Service {
    let bus: any MessageBus
    let worker: String
    let instance: String
    let interval: Duration
    let checks: HealthService.Checks
    let status: HealthService.Status
    let logger: Logger

    /// A `HeartbeatService` with the fields given.
    public init(
        bus: any MessageBus,
        worker: String,
        instance: String,
        interval: Duration,
        checks: @escaping HealthService.Checks,
        status: @escaping HealthService.Status,
        logger: Logger
    ) {
        self.bus = bus
        self.worker = worker
        self.instance = instance
        self.interval = interval
        self.checks = checks
        self.status = status
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var sequence = 0
                while true {
                    sequence += 1
                    await beat(sequence)
                    try await Task.sleep(for: interval)
                }
            }
        } catch is CancellationError {}
    }

    func beat(_ sequence: Int) async {
        let dependencies = await checks()
        let states = dependencies.mapValues(\.state)
        let state =
            states.values.contains("down") ? "down" : states.values.contains("degraded") ? "degraded" : "up"
        let heartbeat = WorkerHeartbeat(
            worker: worker,
            instance: instance,
            state: state,
            dependencies: dependencies.mapValues { $0.state == "up" ? "up" : "\($0.state): \($0.detail ?? "")" },
            figures: await status(),
            time: Date(),
            interval: interval.timeInterval
        )
        let id = "heartbeat:\(instance):\(sequence)"
        do {
            try await bus.publish(
                Envelope(
                    id: id,
                    type: WorkerHeartbeat.messageType,
                    time: heartbeat.time,
                    correlationID: id,
                    source: instance,
                    payload: heartbeat
                ),
                routingKey: heartbeat.routingKey
            )
        } catch let error as BusError where error.code == .unroutable {
            // No cockpit listens: nothing to say it to.
        } catch {
            logger.debug("heartbeat not sent", metadata: ["error": "\(error)"])
        }
    }
}

/// Consumes a queue until graceful shutdown: then it stops taking messages, finishes and acks the
/// work in flight, and returns. Each handler runs with the message's correlation id on its log lines.
public struct ConsumerService: Service {
    let bus: any MessageBus
    let queue: String
    let options: ConsumerOptions
    let handler: @Sendable (Delivery) async throws -> Void

    /// A `ConsumerService` with the fields given.
    public init(
        bus: any MessageBus,
        queue: String,
        options: ConsumerOptions,
        handler: @escaping @Sendable (Delivery) async throws -> Void
    ) {
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
                try await CorrelationID.with(delivery.correlationID ?? delivery.messageID) {
                    try await handler(delivery)
                }
            }
        } onGracefulShutdown: {
            control.stop()
        }
    }
}
