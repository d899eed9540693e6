import Exchanges
import Foundation
import Logging
import ServiceLifecycle
import TradingCore
import TradingServices
import WorkerRuntime

// feed-ingester: market data (a file, a synthetic walk, or Binance, Bybit or Hyperliquid live) onto the bus.
// Read top to bottom: the configuration (`configure`), the adapters and services (`start`), and the
// ServiceGroup that runs them (`lifecycle`). Configuration: README, "Configuration".
let status = await WorkerMain.run(
    worker: "feed-ingester",
    defaultPort: 9101,
    summary: "market data onto the bus as closed candles",
    configure: { try FeedConfiguration.read($0, instance: "feed-ingester") },
    start: { feed, context in
        try await feed.dependencies.connect(context)
        let bus = feed.dependencies.bus!
        let cache = feed.dependencies.cache!
        try await bus.declare(WorkerQueues.indicatorCandles(shards: feed.shards))
        let output = FeedOutput(
            venue: feed.venue,
            source: context.settings.instance,
            bus: bus,
            cache: cache,
            logger: context.logger,
            record: feed.dependencies.store
        )
        let service: any Service
        var extra: [any Service] = []
        let status: @Sendable () async -> [String: String]
        switch feed.source {
        case .replay(let file, let symbol, let speed):
            let report = StatusValue<ReplayFeed.Report?>(nil)
            // REPLAY_LOCKSTEP: each candle waits for the workers' watermarks, on a queue of this process's own.
            var gate: LockstepGate?
            if let stall = feed.lockstepStall {
                let lockstep = LockstepGate(stallAfter: stall, logger: context.logger)
                let queue = LockstepGate.queue(instance: context.settings.instance, symbol: symbol)
                try await bus.declare(queue)
                extra.append(
                    ConsumerService(bus: bus, queue: queue.name, options: ConsumerOptions(prefetch: 256)) {
                        try await lockstep.handle($0)
                    }
                )
                gate = lockstep
            }
            service = ReplayService(
                feed: ReplayFeed(
                    stream: CandleStreamID(symbol: symbol, interval: feed.interval),
                    speed: speed,
                    output: output
                ),
                file: file,
                report: report,
                gate: gate,
                logger: context.logger
            )
            status = { [gate] in
                var status = ["source": "replay"].merging(report.status) { $1 }
                if let gate { status["lockstep_waiting_for"] = await gate.pending.joined(separator: "; ") }
                return status
            }
        case .synthetic(let symbols, let seed, let candles, let speed, let wallClock):
            let published = StatusValue(0)
            let synthetic = SyntheticService(
                feed: SyntheticFeed(
                    symbols: symbols,
                    interval: feed.interval,
                    seed: seed,
                    candles: candles,
                    speed: speed,
                    wallClock: wallClock,
                    output: output
                ),
                published: published,
                logger: context.logger
            )
            service = synthetic
            status = {
                [
                    "source": "synthetic", "symbols": "\(symbols.count)",
                    "published": "\(synthetic.published.current)",
                ]
            }
        case .live(let symbols, let webSocketURL, let restURL, let staleIntervals):
            let (stream, history) = LiveMarketSources.make(
                venue: feed.venue,
                webSocketURL: webSocketURL,
                restURL: restURL,
                logger: context.logger
            )
            let live = try LiveFeed(
                source: stream,
                history: history,
                funding: history,
                output: output,
                settings: LiveFeed.Settings(
                    streams: symbols.map { CandleStreamID(symbol: $0, interval: feed.interval) },
                    staleIntervals: staleIntervals
                )
            )
            service = LiveFeedService(feed: live)
            status = {
                let counts = await live.counts
                return [
                    "source": feed.venue, "connected": "\(await live.isConnected)",
                    "published": "\(counts.published)",
                    "duplicates": "\(counts.duplicates)", "rejected": "\(counts.rejected)",
                    "gaps": "\(counts.gaps)",
                    "backfilled": "\(counts.backfilled)", "still_missing": "\(counts.stillMissing)",
                    "connections": "\(counts.connections)", "stale_alerts": "\(counts.staleAlerts)",
                    "marks": "\(counts.marks)", "settlements": "\(counts.settlements)",
                ]
            }
        }
        return WorkerPlan(
            services: extra + [service],
            checks: { await feed.dependencies.checks() },
            status: { ["worker": "feed-ingester", "venue": feed.venue].merging(await status()) { $1 } },
            heartbeatBus: bus,
            shutdown: { await feed.dependencies.close() }
        )
    },
    lifecycle: { plan, context in
        // The health endpoint and the services in one ServiceGroup; SIGTERM or SIGINT stops them gracefully.
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
