import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// ai-analyst: signals (and an optional scan) into decisions.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "Configuration".
let status = await WorkerMain.run(
    worker: "ai-analyst",
    defaultPort: 9103,
    summary: "trade decisions from signals (rules, OpenAI-compatible and Anthropic analysts) or copied leaders",
    configure: { try AnalystWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let cache = settings.dependencies.cache!
        let store = settings.dependencies.store!
        // ANALYST_PROVIDERS=copy: decisions from followed leaders' fills on Hyperliquid, not from signals.
        if let copy = settings.copy {
            let analyst = CopyAnalyst(
                source: HyperliquidLeaders(
                    webSocketURL: copy.webSocketURL,
                    restURL: copy.restURL,
                    logger: context.logger
                ),
                bus: bus,
                store: store,
                settings: copy.settings,
                origin: context.settings.instance,
                logger: context.logger
            )
            return WorkerPlan(
                services: [CopyAnalystService(analyst: analyst)],
                checks: { await settings.dependencies.checks() },
                status: {
                    [
                        "worker": "ai-analyst", "analysts": "copy",
                        "leaders": copy.settings.leaders.map(\.address).joined(separator: ","),
                        "copied": "\(await analyst.published)",
                    ]
                },
                heartbeatBus: bus,
                shutdown: { await settings.dependencies.close() }
            )
        }
        try await bus.declare(SignalAnalyst.signalQueue)
        // REPLAY_LOCKSTEP: the market's clock, moved by each signal; a watermark after each.
        let lockstep: LockstepProgress? = ReplayLockstep.progress(
            settings.lockstep,
            worker: SignalAnalyst.worker,
            bus: bus,
            logger: context.logger
        )
        let now = ReplayLockstep.now(lockstep)
        let panel = try settings.analyst.panel(cache: cache, logger: context.logger, now: now)
        // ANALYST_SHADOW: a candidate on the same signals, recorded in SHADOW_DATABASE_URL.
        var shadow: SignalAnalyst.Shadow?
        if let shadowStore = settings.shadowStore,
            let candidate = try settings.analyst.shadowPanel(cache: nil, logger: context.logger)
        {
            try await shadowStore.migrate()
            shadow = SignalAnalyst.Shadow(
                panel: candidate,
                store: shadowStore,
                canaryPercent: settings.analyst.canaryPercent
            )
        }
        let service = SignalAnalyst(
            panel: panel,
            bus: bus,
            cache: cache,
            store: store,
            settings: settings.analyst.service,
            source: context.settings.instance,
            logger: context.logger,
            shadow: shadow,
            now: now,
            lockstep: lockstep
        )
        var services: [any Service] = [
            ConsumerService(
                bus: bus,
                queue: SignalAnalyst.signalQueue.name,
                options: ConsumerOptions(prefetch: settings.analyst.prefetch)
            ) {
                try await service.handle($0)
            }
        ]
        if let every = settings.analyst.scanInterval, let interval = settings.analyst.service.intervals.first {
            services.append(
                ScanService(
                    service: service,
                    symbols: settings.analyst.scanSymbols,
                    interval: interval,
                    every: every,
                    logger: context.logger
                )
            )
        }
        let names = panel.models.map { "\($0.model.provider):\($0.model.model)" }
        return WorkerPlan(
            services: services,
            checks: { await settings.dependencies.checks() },
            status: {
                var status = [
                    "worker": "ai-analyst", "analysts": names.isEmpty ? "rules" : names.joined(separator: ","),
                    "fallback": settings.analyst.rulesFallback ? "rules" : "hold",
                ]
                status[WorkerHeartbeat.llmSpentToday] = String(format: "%.4f", await panel.spentToday)
                for model in panel.models {
                    status["breaker.\(model.model.provider):\(model.model.model)"] =
                        "\(await model.breakerState)"
                }
                return status
            },
            heartbeatBus: bus,
            shutdown: {
                await settings.shadowStore?.close()
                await settings.dependencies.close()
            }
        )
    },
    lifecycle: { plan, context in
        // The health endpoint and the services in one ServiceGroup; SIGTERM or SIGINT stops them gracefully.
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
