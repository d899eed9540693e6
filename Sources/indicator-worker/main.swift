import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// indicator-worker: one shard of the candle queue; indicators, snapshots and signals.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "Configuration".
let status = await WorkerMain.run(
    worker: "indicator-worker",
    defaultPort: 9102,
    summary: "incremental indicators and signals, sharded by symbol",
    configure: { try IndicatorWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let cache = settings.dependencies.cache!
        let spec = WorkerQueues.indicatorCandles(shards: settings.shards)
        try await bus.declare(spec)
        let processor = IndicatorProcessor(
            bus: bus,
            cache: cache,
            source: context.settings.instance,
            logger: context.logger,
            lockstep: ReplayLockstep.progress(
                settings.lockstep,
                worker: "indicator-worker",
                bus: bus,
                logger: context.logger
            )
        )
        let consumer = ConsumerService(
            bus: bus,
            queue: spec.shard(settings.shard),
            options: ConsumerOptions(prefetch: 256)
        ) {
            try await processor.handle($0)
        }
        return WorkerPlan(
            services: [consumer],
            checks: { await settings.dependencies.checks() },
            status: { ["worker": "indicator-worker", "queue": spec.shard(settings.shard)] },
            heartbeatBus: bus,
            shutdown: { await settings.dependencies.close() }
        )
    },
    lifecycle: { plan, context in
        // The health endpoint and the services in one ServiceGroup; SIGTERM or SIGINT stops them gracefully.
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
