import Cockpit
import Exchanges
import Foundation
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// cockpit: the operator's pages and JSON API (issue 21) over the store, the bus's alerts and events, and
// the executor's control path.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "The cockpit".
let status = await WorkerMain.run(
    worker: "cockpit",
    defaultPort: 9106,
    summary: "the operator's pages and API: status, positions, trades, decisions, alerts and control, behind tokens",
    configure: { try CockpitWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let store = settings.dependencies.store!
        let account = settings.account
        let instance = context.settings.instance
        let feed = CockpitFeed()
        let roster = WorkerRoster()
        let live = CockpitBusFeed.liveQueue(instance: instance)
        // The leader page: the leaders followed, read from Hyperliquid at most once a minute.
        let board = settings.followed.map { followed in
            LeaderBoard(
                leaders: followed.leaders,
                source: HyperliquidLeaders(
                    webSocketURL: followed.webSocketURL,
                    restURL: followed.restURL,
                    logger: context.logger
                ),
                store: store,
                capital: followed.capital
            )
        }
        try await bus.declare(CockpitBusFeed.alertQueue)
        try await bus.declare(live)
        let cockpit = try CockpitService(
            host: settings.host,
            port: settings.port,
            tokens: settings.tokens,
            store: store,
            control: { request in
                try await ControlClient.send(
                    request,
                    account: account,
                    bus: bus,
                    timeout: .seconds(5),
                    source: instance
                )
            },
            account: account,
            feed: feed,
            secureCookies: settings.secureCookies,
            queueDepths: {
                let candles = WorkerQueues.indicatorCandles(shards: settings.indicatorShards).queueNames
                return await CockpitBusFeed.depths(
                    CockpitBusFeed.pipelineQueues(account: account, candles: candles),
                    bus: bus
                )
            },
            workers: { roster.current() },
            leaders: { try await board?.reports() ?? [] },
            logger: context.logger,
            onRunning: { port in context.logger.info("cockpit listening", metadata: ["port": "\(port)"]) }
        )
        let alerts = ConsumerService(
            bus: bus,
            queue: CockpitBusFeed.alertQueue.name,
            options: ConsumerOptions(prefetch: 16)
        ) { try await CockpitBusFeed.recordAlert($0, store: store, feed: feed) }
        let events = ConsumerService(bus: bus, queue: live.name, options: ConsumerOptions(prefetch: 64)) {
            try CockpitBusFeed.showLive($0, feed: feed, roster: roster)
        }
        return WorkerPlan(
            services: [cockpit, alerts, events],
            checks: { await settings.dependencies.checks() },
            status: { ["worker": "cockpit", "account": account] },
            heartbeatBus: bus,
            shutdown: { await settings.dependencies.close() }
        )
    },
    lifecycle: { plan, context in
        // The health endpoint and the cockpit in one ServiceGroup; SIGTERM or SIGINT stops them gracefully.
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
