import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// notifier: alerts, trades and orders to Telegram, Discord, Slack, a webhook and the log; and the Telegram
// bot's commands (/status, /why, /halt …) when TELEGRAM_ALLOWED_CHAT_IDS is set.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "Configuration".
let status = await WorkerMain.run(
    worker: "notifier",
    defaultPort: 9105,
    summary: "alerts and trade events to Telegram, Discord, Slack, webhooks and the log",
    configure: { try NotifierWorkerSettings.read($0) },
    start: { settings, context in
        try await settings.dependencies.connect(context)
        let bus = settings.dependencies.bus!
        let cache = settings.dependencies.cache!
        var services: [any Service] = []
        var workers: [SinkDispatcher] = []
        for sink in settings.notifier.sinks {
            let spec = SinkDispatcher.queue(for: sink.name, prefix: settings.notifier.queuePrefix)
            try await bus.declare(spec)
            let worker = SinkDispatcher(
                sink: sink,
                route: settings.notifier.routes[sink.name]!,
                cache: cache,
                settings: settings.notifier.delivery,
                logger: context.logger
            )
            workers.append(worker)
            services.append(
                ConsumerService(bus: bus, queue: spec.name, options: ConsumerOptions(prefetch: 16)) {
                    try await worker.handle($0)
                }
            )
        }
        if let hour = settings.notifier.summaryHour, let store = settings.dependencies.store {
            services.append(
                DailySummaryService(
                    hour: hour,
                    store: store,
                    bus: bus,
                    cache: cache,
                    source: context.settings.instance,
                    logger: context.logger
                )
            )
        }
        if let bot = settings.notifier.chatBot, let store = settings.dependencies.store {
            let instance = context.settings.instance
            services.append(
                ChatBotService(
                    api: bot.api,
                    allowedChats: bot.allowedChats,
                    store: store,
                    control: { request in
                        try await ControlClient.send(
                            request,
                            account: bot.account,
                            bus: bus,
                            timeout: .seconds(10),
                            source: instance
                        )
                    },
                    logger: context.logger,
                    holder: instance
                )
            )
        }
        let sinkWorkers = workers
        context.logger.info(
            "sinks on",
            metadata: ["sinks": "\(settings.notifier.sinks.map(\.name).joined(separator: ","))"]
        )
        return WorkerPlan(
            services: services,
            checks: { await settings.dependencies.checks() },
            status: {
                var status = ["worker": "notifier"]
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                for worker in sinkWorkers {
                    let health = await worker.health
                    status["sink.\(worker.sink.name)"] =
                        (try? encoder.encode(health)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
                    let queue = SinkDispatcher.queue(for: worker.sink.name, prefix: settings.notifier.queuePrefix)
                        .name
                    status["sink.\(worker.sink.name).queue_waiting"] =
                        (try? await bus.messageCount(queue)).map(String.init) ?? "unknown"
                }
                return status
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
