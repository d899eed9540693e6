import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// executor: decisions through the risk gateway to the venue.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "Configuration".
let status = await WorkerMain.run(
    worker: "executor",
    defaultPort: 9104,
    summary: "risk gateway, paper or live venue, positions and stops; every order recorded",
    configure: { try ExecutorWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let cache = settings.dependencies.cache!
        let store = settings.dependencies.store!
        let account = settings.executor.settings.account
        let venue = try settings.executor.makeVenue(logger: context.logger)
        // REPLAY_LOCKSTEP: the market's clock, moved by each candle and decision; a watermark after each.
        let lockstep: LockstepProgress? = ReplayLockstep.progress(
            settings.lockstep,
            worker: TradeExecutor.worker,
            bus: bus,
            logger: context.logger
        )
        let now = ReplayLockstep.now(lockstep)
        let executor = TradeExecutor(
            venue: venue,
            store: store,
            bus: bus,
            cache: cache,
            settings: settings.executor.settings,
            source: context.settings.instance,
            logger: context.logger,
            now: now,
            lockstep: lockstep
        )
        try await bus.declare(TradeExecutor.decisionQueue(account: account, shadow: settings.executor.settings.shadow))
        try await bus.declare(
            TradeExecutor.candleQueue(account: account, priceVenue: settings.executor.priceVenue)
        )
        try await bus.declare(TradeExecutor.controlQueue(account: account))
        let holding = ExecutorService.Holding()
        var trading: [any Service] = [
            ReconcileService(
                executor: executor,
                pollEvents: venue.isLive,
                interval: settings.executor.reconcileInterval,
                logger: context.logger
            ),
            ConsumerService(
                bus: bus,
                queue: TradeExecutor.decisionQueue(account: account, shadow: settings.executor.settings.shadow).name,
                options: ConsumerOptions(prefetch: 1, retryDelay: .seconds(1))
            ) {
                try await executor.handleDecision($0)
            },
            ConsumerService(
                bus: bus,
                queue: TradeExecutor.candleQueue(account: account, priceVenue: settings.executor.priceVenue)
                    .name,
                options: ConsumerOptions(prefetch: 64)
            ) {
                try await executor.handleCandle($0)
            },
            ConsumerService(
                bus: bus,
                queue: TradeExecutor.controlQueue(account: account).name,
                options: ConsumerOptions(prefetch: 1)
            ) {
                try await executor.handleControl($0)
            },
        ]
        if venue.hasUserStream {
            trading.append(UserStreamService(venue: venue, executor: executor, logger: context.logger))
        }
        let executorService = ExecutorService(
            store: store,
            name: "executor:\(account)",
            holder: "\(context.settings.instance)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))",
            duration: settings.executor.leaseDuration,
            logger: context.logger,
            active: trading,
            holding: holding
        )
        return WorkerPlan(
            services: [executorService],
            checks: { await settings.dependencies.checks() },
            status: {
                // A standby talks to no venue, not even for its status.
                guard holding.value else {
                    return ["worker": "executor", "venue": venue.name, "account": account, "role": "standby"]
                }
                let (equity, margin) = (try? await venue.account()) ?? (0, 0)
                return [
                    "role": "active",
                    "worker": "executor", "venue": venue.name, "live": "\(venue.isLive)", "account": account,
                    "reconciled": "\(await executor.reconciled)",
                    "equity": "\(equity)", "available_margin": "\(margin)",
                    "mode": await executor.mode.rawValue,
                ]
            },
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
