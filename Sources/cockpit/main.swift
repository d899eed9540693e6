import Cockpit
import Foundation
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// cockpit: the operator's JSON API (issue 21) over the store and the executor's control path.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "The cockpit".
let status = await WorkerMain.run(
    worker: "cockpit",
    defaultPort: 9106,
    summary: "the operator's API: status, positions, trades, equity and control, behind tokens",
    configure: { try CockpitWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let store = settings.dependencies.store!
        let account = settings.account
        let instance = context.settings.instance
        let cockpit = CockpitService(
            host: settings.host,
            port: settings.port,
            tokens: settings.tokens,
            store: store,
            control: { request in
                try await ControlClient.send(request, account: account, bus: bus, source: instance)
            },
            logger: context.logger,
            onRunning: { port in context.logger.info("cockpit listening", metadata: ["port": "\(port)"]) }
        )
        return WorkerPlan(
            services: [cockpit],
            checks: { await settings.dependencies.checks() },
            status: { ["worker": "cockpit", "account": account] },
            shutdown: { await settings.dependencies.close() }
        )
    },
    lifecycle: { plan, context in
        // The health endpoint and the cockpit in one ServiceGroup; SIGTERM or SIGINT stops them gracefully.
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
