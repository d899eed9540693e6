import Cockpit
import Exchanges
import Foundation
import Logging
import Notifiers
import Synchronization
import TradingCore
import TradingServices

/// The five services in one process over the embedded parts (the in-process bus, the LRU cache and a
/// SQLite or any other store): the indicator worker, the analyst, the executor on the paper venue
/// and, for `tradebus run`, the notifier's log sink. The same service code as the separate workers,
/// wired here instead of over RabbitMQ and Redis. `tradebus run` and `tradebus backtest` both drive it
/// through ``replay(_:symbol:interval:progress:)``, which is what makes their trades the same.
public final class EmbeddedSystem: Sendable {
    /// Where decisions come from.
    public enum Analyst: Sendable {
        /// The configured panel (rules only when no LLM provider is configured).
        case configured
        /// The rules analyst alone, whatever is configured: deterministic, offline.
        case rules
        /// The decisions an earlier run recorded in `store`, each at the candle it was made on.
        case recorded(any TradeStore)
    }

    public let bus = InProcessBus()
    public let cache = LocalCache()
    public let store: any TradeStore
    public let clock: ReplayClock
    public let venue: any Venue
    public let executor: TradeExecutor
    /// The shadow candidate's own paper account (`ANALYST_SHADOW`), recording into `shadowStore`.
    public let shadowExecutor: TradeExecutor?
    public let shadowStore: (any TradeStore)?
    public let initialCapital: Money
    let indicators: IndicatorProcessor
    let analyst: SignalAnalyst?
    let recorded: (any TradeStore)?
    let sinks: [SinkDispatcher]
    let account: String
    let logger: Logger
    /// How long one candle's consequences may take in a replay: the analyst's whole budget for a
    /// decision, and two minutes more.
    let stallTimeout: Duration
    private let consumers = Mutex<[RunningConsumer]>([])

    static let candleQueue = QueueSpec(name: "embedded.indicator-worker.candles", bindings: ["md.candle.#"])
    /// Signals and decisions, counted for the progress line.
    static let tallyQueue = QueueSpec(name: "embedded.tally", bindings: ["sig.#", "decision.#", "order.rejected.#"])
    private let tally = Tally()

    /// Signals and decisions seen on the bus.
    final class Tally: Sendable {
        let signals = Atomic<Int>(0)
        let decisions = Atomic<Int>(0)
        let refusals = Atomic<Int>(0)
    }

    /// Builds the system from the same configuration keys as the workers (risk limits, analyst,
    /// venue). The paper venue is in memory: a replay always starts from `INITIAL_CAPITAL`.
    /// `allowLiveVenue` (`tradebus run --live` only): with `USE_PAPER_TRADING=false` the executor
    /// sends real orders to `LIVE_VENUE`; a replay or a backtest never does.
    public init(
        config: SettingsReader,
        store: any TradeStore,
        analyst: Analyst,
        notify: Bool,
        logger: Logger,
        allowLiveVenue: Bool = false,
        lookAhead: String? = nil,
        shadowStore: (any TradeStore)? = nil
    ) throws {
        self.store = store
        self.logger = logger
        let clock = ReplayClock()
        self.clock = clock
        let executorConfiguration = try ExecutorConfiguration.read(config)
        if case .live = executorConfiguration.venue, !allowLiveVenue {
            throw ConfigError(
                key: "USE_PAPER_TRADING",
                message:
                    "is false; a replay and a backtest trade on the paper venue only (live orders: tradebus run --live, or the executor)"
            )
        }
        initialCapital = executorConfiguration.initialCapital
        var settings = executorConfiguration.settings
        if !allowLiveVenue {
            // A replay has no second venue to compare prices with; a live run feeds REFERENCE_VENUE's (``runLive``).
            settings.limits.requireReferencePrice = false
            settings.referenceVenue = nil
        }
        referenceVenue = settings.referenceVenue
        account = settings.account
        if case .live = executorConfiguration.venue {
            venue = try executorConfiguration.makeVenue(logger: logger)
        } else {
            venue = try PaperVenue(
                balance: executorConfiguration.initialCapital,
                settings: executorConfiguration.paper,
                path: nil
            )
        }
        executor = TradeExecutor(
            venue: venue,
            store: store,
            bus: bus,
            cache: cache,
            settings: settings,
            source: "tradebus",
            logger: logger,
            now: clock.now
        )
        indicators = IndicatorProcessor(bus: bus, cache: cache, source: "tradebus", logger: logger, savesState: false)
        let analystConfiguration = try AnalystConfiguration.read(config)
        stallTimeout = analystConfiguration.decisionBudget + .seconds(120)
        // ANALYST_SHADOW: the candidate's decisions trade on a paper account of their own.
        let candidate =
            if case .configured = analyst, let shadowStore {
                try analystConfiguration.shadowPanel(cache: nil, logger: logger, now: clock.now)
            } else { AnalystPanel?.none }
        let shadowRoute: SignalAnalyst.Shadow?
        if let candidate, let shadowStore {
            var shadowSettings = settings
            shadowSettings.account = "shadow"
            shadowSettings.shadow = true
            shadowExecutor = TradeExecutor(
                venue: try PaperVenue(
                    balance: executorConfiguration.initialCapital,
                    settings: executorConfiguration.paper,
                    path: nil
                ),
                store: shadowStore,
                bus: bus,
                cache: cache,
                settings: shadowSettings,
                source: "tradebus-shadow",
                logger: logger,
                now: clock.now
            )
            self.shadowStore = shadowStore
            shadowRoute = SignalAnalyst.Shadow(
                panel: candidate,
                store: shadowStore,
                canaryPercent: analystConfiguration.canaryPercent
            )
        } else {
            shadowExecutor = nil
            self.shadowStore = nil
            shadowRoute = nil
        }
        switch analyst {
        case .recorded(let source):
            recorded = source
            self.analyst = nil
        case .configured, .rules:
            recorded = nil
            var panelConfiguration = analystConfiguration
            if case .rules = analyst { panelConfiguration.models = [] }
            panelConfiguration.lookAhead = lookAhead
            let panel = try panelConfiguration.panel(cache: cache, logger: logger, now: clock.now)
            self.analyst = SignalAnalyst(
                panel: panel,
                bus: bus,
                cache: cache,
                store: store,
                settings: analystConfiguration.service,
                source: "tradebus",
                logger: logger,
                shadow: shadowRoute,
                now: clock.now
            )
        }
        sinks =
            notify
            ? [
                SinkDispatcher(
                    sink: LogSink(logger: logger),
                    route: SinkRoute(minSeverity: .info),
                    cache: cache,
                    logger: logger,
                    now: clock.now
                )
            ] : []
    }

    /// Declares the queues and starts the consumers.
    public func start() async throws {
        try await store.migrate()
        try await bus.declare(Self.candleQueue)
        try await bus.declare(TradeExecutor.decisionQueue(account: account))
        try await bus.declare(Self.tallyQueue)
        var running = [
            RunningConsumer.start(bus, queue: Self.tallyQueue.name, options: ConsumerOptions(prefetch: 64)) {
                [tally] delivery in
                if delivery.routingKey.hasPrefix("sig.") {
                    tally.signals.add(1, ordering: .relaxed)
                } else if delivery.routingKey.hasPrefix("order.") {
                    tally.refusals.add(1, ordering: .relaxed)
                } else {
                    tally.decisions.add(1, ordering: .relaxed)
                }
            },
            RunningConsumer.start(bus, queue: Self.candleQueue.name, options: ConsumerOptions(prefetch: 1)) {
                [indicators] in try await indicators.handle($0)
            },
            RunningConsumer.start(
                bus,
                queue: TradeExecutor.decisionQueue(account: account).name,
                options: ConsumerOptions(prefetch: 1)
            ) { [executor] in
                try await executor.handleDecision($0)
            },
        ]
        if let shadowExecutor, let shadowStore {
            try await shadowStore.migrate()
            let queue = TradeExecutor.decisionQueue(account: "shadow", shadow: true)
            try await bus.declare(queue)
            running.append(
                RunningConsumer.start(bus, queue: queue.name, options: ConsumerOptions(prefetch: 1)) {
                    try await shadowExecutor.handleDecision($0)
                }
            )
        }
        if let analyst {
            try await bus.declare(SignalAnalyst.signalQueue)
            running.append(
                RunningConsumer.start(
                    bus,
                    queue: SignalAnalyst.signalQueue.name,
                    options: ConsumerOptions(prefetch: 1)
                ) { try await analyst.handle($0) }
            )
        }
        for sink in sinks {
            let spec = SinkDispatcher.queue(for: sink.sink.name, prefix: "embedded.notifier")
            try await bus.declare(spec)
            running.append(
                RunningConsumer.start(bus, queue: spec.name, options: ConsumerOptions(prefetch: 16)) {
                    try await sink.handle($0)
                }
            )
        }
        consumers.withLock { $0 = running }
        // Nothing is published before every consumer listens: the bus counts an unheard queue as idle,
        // and a candle's consequences would then run after the next candle (seen on a loaded machine).
        var queues = [
            Self.candleQueue.name, TradeExecutor.decisionQueue(account: account).name, Self.tallyQueue.name,
        ]
        if analyst != nil { queues.append(SignalAnalyst.signalQueue.name) }
        if shadowExecutor != nil { queues.append(TradeExecutor.decisionQueue(account: "shadow", shadow: true).name) }
        queues += sinks.map { SinkDispatcher.queue(for: $0.sink.name, prefix: "embedded.notifier").name }
        guard await bus.waitForConsumers(on: queues, timeout: .seconds(60)) else {
            throw EmbeddedSystemStalled(
                "the embedded consumers did not start within 60 s (\(queues.joined(separator: ", ")))"
            )
        }
        try await executor.reconcile()
        try await shadowExecutor?.reconcile()
    }

    /// Live market data instead of a file: `venue`'s WebSocket klines (with REST backfill) for
    /// `symbols` go on the bus, where the indicator worker and the executor take them, as the separate
    /// workers do; runs until cancelled. The URLs come from the feed-ingester's keys
    /// (`BINANCE_WS_URL`, `BINANCE_REST_URL`, `BYBIT_WS_URL`, `BYBIT_REST_URL`).
    public func runLive(venue: String, symbols: [String], interval: String, config: SettingsReader) async throws {
        let feed = try liveFeed(venue: venue, symbols: symbols, interval: interval, config: config, bus: bus)
        // The deviation guard's reference: REFERENCE_VENUE's prices into the cache (its candles go nowhere).
        var reference: LiveFeed?
        if let referenceVenue, referenceVenue != venue {
            let discard = InProcessBus()
            try await discard.declare(QueueSpec(name: "reference.discard", bindings: ["#"]))
            consumers.withLock { $0.append(RunningConsumer.start(discard, queue: "reference.discard") { _ in }) }
            reference = try liveFeed(
                venue: referenceVenue,
                symbols: symbols,
                interval: interval,
                config: config,
                bus: discard
            )
        }
        let candles = TradeExecutor.candleQueue(account: account, priceVenue: venue)
        try await bus.declare(candles)
        let consumer = RunningConsumer.start(bus, queue: candles.name, options: ConsumerOptions(prefetch: 64)) {
            [executor] in try await executor.handleCandle($0)
        }
        consumers.withLock { $0.append(consumer) }
        guard await bus.waitForConsumers(on: [candles.name], timeout: .seconds(60)) else {
            throw EmbeddedSystemStalled("the executor's candle consumer did not start within 60 s")
        }
        liveFeed.withLock { $0 = feed }
        try await withThrowingDiscardingTaskGroup { group in
            if let reference { group.addTask { try await reference.run() } }
            if self.venue.hasUserStream {
                // Its private stream brings them at once, as in the executor worker; the polling below is the fallback.
                group.addTask { [executor, logger, venue = self.venue] in
                    try await UserStreamService(venue: venue, executor: executor, logger: logger).run()
                }
            }
            if self.venue.isLive {
                // A live venue's fills and closes come on its own time: poll them, as the executor worker does.
                group.addTask { [executor, logger] in
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(1))
                        do { try await executor.processVenueEvents() } catch {
                            logger.error("venue events not committed; will retry", metadata: ["error": "\(error)"])
                        }
                    }
                }
            }
            try await feed.run()
        }
    }

    private let liveFeed = Mutex<LiveFeed?>(nil)
    /// REFERENCE_VENUE in a live run (a replay has none).
    let referenceVenue: String?

    /// `venue`'s WebSocket klines with REST backfill, from the feed-ingester's keys, onto `bus`.
    func liveFeed(
        venue: String,
        symbols: [String],
        interval: String,
        config: SettingsReader,
        bus: any MessageBus
    ) throws -> LiveFeed {
        var environment = [
            "FEED_SOURCE": venue, "FEED_SYMBOLS": symbols.joined(separator: ","), "FEED_INTERVAL": interval,
        ]
        for key in ["\(venue.uppercased())_WS_URL", "\(venue.uppercased())_REST_URL", "FEED_STALE_INTERVALS"] {
            if let value = try config.string(key) { environment[key] = value }
        }
        let feedConfiguration = try FeedConfiguration.read(
            try SettingsReader(
                environment: environment.merging(["AMQP_URL": "amqp://embedded", "REDIS_URL": "redis://embedded"]) {
                    $1
                }
            ),
            instance: "tradebus",
            recordsMarket: false
        )
        guard case .live(let symbols, let webSocketURL, let restURL, let staleIntervals) = feedConfiguration.source
        else {
            throw ConfigError(key: "--venue", message: "'\(venue)' is not binance, bybit or hyperliquid")
        }
        let (stream, history) = LiveMarketSources.make(
            venue: venue,
            webSocketURL: webSocketURL,
            restURL: restURL,
            logger: logger
        )
        // The run's store keeps the candles and settlements it traded on, for `tradebus diff --run`.
        return try LiveFeed(
            source: stream,
            history: history,
            funding: history,
            output: FeedOutput(
                venue: venue,
                source: "tradebus",
                bus: bus,
                cache: cache,
                logger: logger,
                record: store as? any MarketRecord
            ),
            settings: LiveFeed.Settings(
                streams: symbols.map { CandleStreamID(symbol: $0, interval: interval) },
                staleIntervals: staleIntervals
            )
        )
    }

    /// Candles the live feed has published so far.
    public var liveCandles: Int {
        get async {
            guard let feed = liveFeed.withLock({ $0 }) else { return 0 }
            return await feed.counts.published
        }
    }

    /// Stops the consumers once their deliveries are done.
    /// The cockpit over this run (`tradebus run --dashboard`): the run's store, its executor's control
    /// path on the in-process bus, and its alerts and trade events live. Call after ``start()``.
    public func cockpit(
        host: String,
        port: Int,
        tokens: CockpitTokens,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void
    ) async throws -> CockpitService {
        let feed = CockpitFeed()
        let control = TradeExecutor.controlQueue(account: account)
        let live = CockpitBusFeed.liveQueue(instance: "tradebus")
        for spec in [control, CockpitBusFeed.alertQueue, live] { try await bus.declare(spec) }
        let running = [
            RunningConsumer.start(bus, queue: control.name) { [executor] in try await executor.handleControl($0) },
            RunningConsumer.start(bus, queue: CockpitBusFeed.alertQueue.name) { [store] in
                try await CockpitBusFeed.recordAlert($0, store: store, feed: feed)
            },
            RunningConsumer.start(bus, queue: live.name) {
                try CockpitBusFeed.showLive($0, feed: feed, roster: WorkerRoster())
            },
        ]
        consumers.withLock { $0 += running }
        let names = [control.name, CockpitBusFeed.alertQueue.name, live.name]
        guard await bus.waitForConsumers(on: names, timeout: .seconds(60)) else {
            throw EmbeddedSystemStalled("the cockpit's consumers did not start within 60 s")
        }
        return try CockpitService(
            host: host,
            port: port,
            tokens: tokens,
            store: store,
            control: { [bus, account] request in
                try await ControlClient.send(
                    request,
                    account: account,
                    bus: bus,
                    timeout: .seconds(5),
                    source: "tradebus-cockpit"
                )
            },
            account: account,
            feed: feed,
            queueDepths: { [bus, account] in
                await CockpitBusFeed.depths(
                    CockpitBusFeed.pipelineQueues(account: account, candles: [Self.candleQueue.name]),
                    bus: bus
                )
            },
            workers: { [analyst] in
                // The five services share this process: one heartbeat stands for them all.
                var figures: [String: String] = [:]
                if let panel = analyst?.panel {
                    figures[WorkerHeartbeat.llmSpentToday] = String(format: "%.4f", await panel.spentToday)
                }
                return [
                    WorkerHeartbeat(
                        worker: "tradebus run",
                        instance: "all five services in this process",
                        state: "up",
                        dependencies: [:],
                        figures: figures,
                        time: Date(),
                        interval: 10
                    )
                ]
            },
            logger: logger,
            onRunning: onRunning
        )
    }

    public func stop() async {
        let running = consumers.withLock { $0 }
        for consumer in running { try? await consumer.stop() }
    }

    /// Replays `candles` of one symbol, one at a time, in a fixed order that makes the run
    /// deterministic: the clock moves to the candle's close; the paper venue trades on the candle
    /// (filling what the previous candle's decision ordered, then stops and targets); the candle goes
    /// on the bus, to the indicators, the signals, the analyst and the executor; the next candle waits
    /// until all of that is done.
    public func replay(
        _ candles: [Candle],
        symbol: String,
        interval: String,
        funding: FundingSchedule? = nil,
        marks: [Int64: Candle]? = nil,
        detail: [Candle]? = nil,
        pace: Double? = nil,
        progress: (@Sendable (ReplayProgress) -> Void)? = nil
    ) async throws -> ReplayOutcome {
        guard let length = CandleInterval.milliseconds(interval) else {
            throw ConfigError(key: "--interval", message: "'\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        let started = ContinuousClock.now
        let parts = detail.map { CandleInterval.group($0, by: length) }
        var equity = [initialCapital.doubleValue]
        var times: [Date] = []
        var decisions = 0
        var recordedCost = 0.0
        let venueName = "replay"
        for (index, candle) in candles.enumerated() {
            try Task.checkCancellation()
            if let pace { try await Task.sleep(for: .seconds(1 / pace)) }
            let close = Date(timeIntervalSince1970: Double(candle.openTime + length) / 1000)
            clock.set(close)
            // The lower-timeframe candles and the mark ride with the candle to the executor's paper venue
            // (`--detail`, `--mark`).
            let payload = CandlePayload(
                venue: venueName,
                symbol: symbol,
                interval: interval,
                candle: candle,
                detail: parts?[candle.openTime],
                mark: marks?[candle.openTime]
            )
            // A settlement of the funding file inside this candle goes where the feed-ingester puts a live
            // one, so the executor and the analyst read it as they would live.
            let open = Date(timeIntervalSince1970: Double(candle.openTime) / 1000)
            if let settlement = funding?.event(from: open, before: close) {
                let value = CachedValue(bytes: settlement.cacheValue, sourceTime: settlement.time)
                await cache.set(FundingEvent.cacheKey(symbol: symbol), value, ttl: nil)
            }
            try await executor.observe(payload, time: close)
            try await shadowExecutor?.observe(payload, time: close)
            let envelope = Envelope(
                id: "candle:\(venueName):\(symbol):\(interval):\(candle.openTime)",
                type: MessageType.candleClosed,
                time: close,
                correlationID: "candle:\(symbol):\(candle.openTime)",
                source: "tradebus",
                payload: payload
            )
            try await bus.publish(
                envelope,
                routingKey: RoutingKey.candle(venue: venueName, symbol: symbol, interval: interval)
            )
            if let recorded {
                for decision in try await recorded.decisions(symbol: symbol, candleTimes: close...close) {
                    decisions += 1
                    recordedCost += decision.llmCost
                    let payload = decision.payload(requestID: decision.id)
                    let message = Envelope(
                        id: decision.id,
                        type: MessageType.decision,
                        time: close,
                        correlationID: decision.correlationID,
                        source: "recorded",
                        payload: payload
                    )
                    try await bus.publish(message, routingKey: RoutingKey.decision(symbol: symbol))
                }
            }
            guard await bus.waitUntilIdle(timeout: stallTimeout) else {
                throw EmbeddedSystemStalled(
                    "candle \(index + 1) of \(candles.count) (\(close)) was not done after \(stallTimeout): \(await bus.pendingWork). Nothing waits that long on its own; this is a bug, please report it"
                )
            }
            let account = try await venue.account()
            equity.append(account.equity.doubleValue)
            times.append(close)
            if let progress {
                progress(
                    ReplayProgress(
                        candles: index + 1,
                        total: candles.count,
                        time: close,
                        signals: tally.signals.load(ordering: .relaxed),
                        decisions: tally.decisions.load(ordering: .relaxed),
                        equity: account.equity,
                        openPositions: try await venue.positions().count,
                        refusals: tally.refusals.load(ordering: .relaxed)
                    )
                )
            }
        }
        let trades = try await store.trades(since: nil).filter { $0.symbol == symbol }.sorted {
            ($0.entryTime, $0.id) < ($1.entryTime, $1.id)
        }
        if recorded == nil {
            decisions = try await store.decisions(
                symbol: symbol,
                candleTimes: Date(timeIntervalSince1970: 0)...Date.distantFuture
            ).count
        }
        var outcome = ReplayOutcome(
            candles: candles.count,
            trades: trades,
            equity: equity,
            times: times,
            signals: tally.signals.load(ordering: .relaxed),
            decisions: decisions,
            elapsedSeconds: (ContinuousClock.now - started).timeInterval
        )
        outcome.llmCost = recordedCost + (try await store.llmSpend(since: nil).cost)
        return outcome
    }
}

extension Backtester.Settings {
    /// The backtester's settings from the workers' keys, read as ``EmbeddedSystem`` reads them, so a
    /// backtest is bounded by the same risk limits, circuit breakers and stop policy as the executor
    /// and decides as the analyst does. A backtest trades on paper only: `USE_PAPER_TRADING=false` is
    /// refused, naming the key.
    public static func read(_ config: SettingsReader) throws -> Backtester.Settings {
        let executor = try ExecutorConfiguration.read(config)
        if case .live = executor.venue {
            throw ConfigError(
                key: "USE_PAPER_TRADING",
                message:
                    "is false; a replay and a backtest trade on the paper venue only (live orders: tradebus run --live, or the executor)"
            )
        }
        let analyst = try AnalystConfiguration.read(config)
        var settings = Backtester.Settings()
        settings.initialCapital = executor.initialCapital
        settings.paper = executor.paper
        settings.limits = executor.settings.limits
        settings.halts = executor.settings.halts
        settings.policy = executor.settings.policy
        settings.closeOnOpposite = executor.settings.closeOnOpposite
        settings.framework = analyst.framework
        settings.analysisIntervals = analyst.service.intervals
        settings.maxSnapshotAge = analyst.service.maxSnapshotAge
        return settings
    }
}

/// The embedded system stopped making progress; says what was still waiting.
public struct EmbeddedSystemStalled: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
