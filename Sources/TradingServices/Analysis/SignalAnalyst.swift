import Foundation
import Logging
import Metrics
import TradingCore

#if canImport(Glibc)
import Glibc
#endif

/// The ai-analyst's logic. For a signal (`sig.<symbol>.<interval>`) or a scan, it reads the symbol's
/// multi-timeframe snapshots from the hot cache (refusing a stale primary one and leaving stale
/// higher ones out), adds the open position, recent trades and today's PnL from the store and the
/// funding rate where known, asks the ``AnalystPanel``, records the decision with its prompt and
/// replies, and publishes `decision.<symbol>` with the request's correlation id.
///
/// The decision id derives from the request (`decision:<signal id>`), and the store remembers which
/// decisions are published, so a redelivered signal makes no second decision and no second message.
public actor SignalAnalyst {
    /// The analyst's models, prompt, limits and timings.
    public struct Settings: Sendable {
        /// The timeframes read for the context besides the signal's.
        public var intervals = ["5m", "15m", "1h", "4h"]
        /// A snapshot older than its interval plus this is stale.
        public var maxSnapshotAge: TimeInterval = 120
        /// Closed trades shown to the analyst.
        public var recentTrades = 5
        /// A `Settings` with the fields given.
        public init() {}
    }

    /// A candidate beside the panel (`ANALYST_SHADOW`): it decides on the same contexts, its decisions
    /// go to its own store and to `shadow.decision.<symbol>` (a paper account's executor), never to the
    /// live executor; and it decides `canaryPercent` of the live signals instead of the panel.
    public struct Shadow: Sendable {
        public var panel: AnalystPanel
        public var store: any TradeStore
        public var canaryPercent: Double
        /// A `Shadow` with the fields given.
        public init(panel: AnalystPanel, store: any TradeStore, canaryPercent: Double = 0) {
            self.panel = panel
            self.store = store
            self.canaryPercent = canaryPercent
        }

        /// Whether a request goes to the candidate: a stable share of request ids, the same on every analyst.
        func isCanary(_ requestID: String) -> Bool {
            canaryPercent > 0 && Double(StableHash.fnv1a(requestID.utf8) % 10_000) < canaryPercent * 100
        }
    }

    public nonisolated let panel: AnalystPanel
    public nonisolated let shadow: Shadow?
    let bus: any MessageBus
    let cache: any HotCache
    let store: any TradeStore
    let settings: Settings
    let source: String
    let logger: Logger
    let now: @Sendable () -> Date
    /// This analyst's part in a lockstep replay; nil live.
    let lockstep: LockstepProgress?
    /// What this process writes in a publishing lease: its instance and a token of its own, so a lease
    /// left by an earlier process of the same instance (killed, then restarted) is known as dead.
    let leaseHolder: String

    /// The analyst's name in watermarks and work keys.
    public static let worker = "ai-analyst"

    /// A `SignalAnalyst` with the fields given.
    public init(
        panel: AnalystPanel,
        bus: any MessageBus,
        cache: any HotCache,
        store: any TradeStore,
        settings: Settings,
        source: String,
        logger: Logger,
        shadow: Shadow? = nil,
        now: @escaping @Sendable () -> Date = { Date() },
        lockstep: LockstepProgress? = nil
    ) {
        self.lockstep = lockstep
        self.leaseHolder = "\(source)/\(ProcessInfo.processInfo.processIdentifier)/\(UUID().uuidString)"
        self.panel = panel
        self.shadow = shadow
        self.bus = bus
        self.cache = cache
        self.store = store
        self.settings = settings
        self.source = source
        self.logger = logger
        self.now = now
    }

    /// The analysts' input queue: every signal, shared by competing analysts.
    public static let signalQueue = QueueSpec(name: "ai-analyst.signals", bindings: ["sig.#"])

    /// Handles one `signal` delivery; a body that is not one goes to the dead-letter queue.
    public func handle(_ delivery: Delivery) async throws {
        let envelope = try delivery.envelope(SignalPayload.self, expectedType: MessageType.signal, what: "a signal")
        let payload = envelope.payload
        lockstep?.begin(envelope.time)
        // Another analyst's lease on this decision: it is deciding, or it died doing so. Wait until it
        // publishes or its lease runs out (then this one decides), never longer: a signal is not
        // dead-lettered for a lease.
        let patience = ContinuousClock.now + leaseTTL + .seconds(5)
        while true {
            do {
                try await analyse(
                    symbol: payload.symbol,
                    interval: payload.interval,
                    requestID: envelope.id,
                    correlationID: envelope.correlationID,
                    signalSnapshot: payload.signal.snapshot
                )
                break
            } catch let busy as PublishInProgress where ContinuousClock.now < patience {
                logger.debug("waiting for another analyst's lease", metadata: ["decision_id": "\(busy.decisionID)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        if let lockstep {
            let decisionID = "decision:\(envelope.id)"
            let decided = try await store.decision(id: decisionID) != nil
            try await lockstep.finished(
                symbol: payload.symbol,
                candleTime: envelope.time,
                messageID: envelope.id,
                emitted: decided ? [Watermark.key(TradeExecutor.worker, decisionID)] : []
            )
        }
    }

    /// Decides for `symbol` on its latest `interval` snapshot: the periodic scan.
    public func scan(symbol: String, interval: String) async throws {
        guard let primary = await snapshot(symbol: symbol, interval: interval) else { return }
        let requestID = "scan:\(symbol):\(interval):\(primary.openTime)"
        // Competing analysts scan too: only the first to claim this candle decides.
        guard
            await cache.setIfAbsent("claim:\(requestID)", CachedValue(source, sourceTime: now()), ttl: .seconds(3_600))
        else { return }
        try await analyse(
            symbol: symbol,
            interval: interval,
            requestID: requestID,
            correlationID: requestID,
            signalSnapshot: nil
        )
    }

    @discardableResult
    func analyse(
        symbol: String,
        interval: String,
        requestID: String,
        correlationID: String,
        signalSnapshot: IndicatorSnapshot?
    ) async throws -> DecisionPayload? {
        let decisionID = "decision:\(requestID)"
        if let recorded = try await store.decision(id: decisionID) {
            // Decided before (a redelivery, or a second analyst): publish it only if that never happened.
            if try await store.isProcessed(messageID: decisionID, consumer: Self.publishedMarker) {
                // A lockstep replay's candle again (the feed restarted): the executor hears the decision
                // again, drops it as done, and its watermark tells the feed so.
                if lockstep != nil {
                    try await bus.publish(
                        envelope(recorded.payload(requestID: requestID), id: decisionID, correlationID: correlationID),
                        routingKey: RoutingKey.decision(symbol: symbol)
                    )
                }
                return nil
            }
            guard await claimPublishing(decisionID) else {
                // Another analyst is publishing it right now: try again shortly, by when it is marked.
                throw PublishInProgress(decisionID: decisionID)
            }
            try await publish(recorded.payload(requestID: requestID), id: decisionID, correlationID: correlationID)
            return nil
        }
        // Only one analyst decides a request: the lease outlives the longest decision.
        guard await claimPublishing(decisionID) else { throw PublishInProgress(decisionID: decisionID) }
        guard let context = try await context(symbol: symbol, interval: interval, signalSnapshot: signalSnapshot) else {
            return nil
        }
        let canary = shadow?.isCanary(requestID) ?? false
        var verdict: AnalystPanel.Verdict
        if let shadow, canary {
            verdict = await shadow.panel.decide(context)
            verdict.proposal.reasoning = "canary (\(shadow.canaryPercent) %): " + verdict.proposal.reasoning
            Counter(label: "tradebus_analyst_canary_total").increment()
        } else {
            verdict = await panel.decide(context)
        }
        let (payload, record) = decision(
            verdict,
            context: context,
            id: decisionID,
            requestID: requestID,
            correlationID: correlationID
        )
        guard try await store.recordDecision(record) else {
            // Another analyst decided the same request at the same moment: its decision stands and it publishes.
            logger.info("decision already recorded by another analyst", metadata: ["decision_id": "\(decisionID)"])
            return nil
        }
        if !verdict.invalid.isEmpty {
            try await alert(
                AlertPayload(
                    severity: .warning,
                    kind: "analyst_invalid",
                    title: "Analyst answer rejected",
                    message: "\(symbol): \(verdict.invalid.joined(separator: "; ")). Decided HOLD.",
                    symbol: symbol,
                    fields: ["decision_id": .string(decisionID)]
                )
            )
        } else if !verdict.failures.isEmpty && verdict.failures.count == panel.models.count {
            try await alert(
                AlertPayload(
                    severity: .warning,
                    kind: "analyst_failed",
                    title: "Every LLM failed",
                    message: "\(symbol): \(verdict.failures.joined(separator: "; ")). Decided by \(verdict.provider).",
                    symbol: symbol,
                    fields: ["decision_id": .string(decisionID)]
                )
            )
        }
        try await publish(payload, id: decisionID, correlationID: correlationID)
        if lockstep == nil {
            PipelineLatency.record(
                "decision",
                candleClose: Date(timeIntervalSince1970: Double(payload.candleTime) / 1000)
            )
        }
        if let shadow, !canary {
            await decideShadow(
                shadow,
                context: context,
                id: decisionID,
                requestID: requestID,
                correlationID: correlationID
            )
        }
        for due in await panel.spendingAlerts(now: now()) {
            try await alert(
                AlertPayload(
                    severity: due.percent >= 100 ? .critical : .warning,
                    kind: "llm_budget",
                    title: due.percent >= 100
                        ? "LLM spending cap reached" : "LLM spending at \(due.percent) % of the cap",
                    message: String(
                        format: "%.4f of %.2f USD spent today (UTC). %@",
                        due.spent,
                        due.cap,
                        due.percent >= 100
                            ? "Models are not asked again until tomorrow; the rules analyst or HOLD decides."
                            : "Raise LLM_DAILY_BUDGET_USD, or expect the models to stop at the cap."
                    ),
                    symbol: nil,
                    fields: ["percent": .number(Double(due.percent))]
                )
            )
        }
        if let book = panel.models.first?.ledger {
            Gauge(label: "tradebus_llm_budget_used_ratio").record(await book.usedToday)
        }
        Counter(
            label: "tradebus_decisions_total",
            dimensions: [("action", payload.action.rawValue), ("provider", payload.provider)]
        ).increment()
        logger.info(
            "decided",
            metadata: [
                "symbol": "\(symbol)", "action": "\(payload.action.rawValue)", "confidence": "\(payload.confidence)",
                "provider": "\(payload.provider)",
                "attempts": "\(payload.attempts)",
            ]
        )
        return payload
    }

    /// A verdict as the decision published and the record kept: the prompt, every reply, the cost and usage.
    func decision(
        _ verdict: AnalystPanel.Verdict,
        context: AnalysisContext,
        id: String,
        requestID: String,
        correlationID: String
    ) -> (DecisionPayload, DecisionRecord) {
        let payload = DecisionPayload(
            symbol: context.symbol,
            proposal: verdict.proposal,
            provider: verdict.provider,
            model: verdict.model,
            promptVersion: verdict.promptVersion,
            attempts: verdict.attempts,
            candleTime: context.candleTime,
            requestID: requestID
        )
        var record = DecisionRecord(
            id: id,
            correlationID: correlationID,
            payload: payload,
            createdAt: now(),
            prompt: verdict.prompt,
            reply: verdict.replies.isEmpty ? nil : verdict.replies.joined(separator: "\n---\n")
        )
        record.llmCost = verdict.cost
        record.usage = verdict.usage
        return (payload, record)
    }

    /// The shadow candidate's decision on the same context: recorded in its own store and published on
    /// `shadow.decision.<symbol>`. A failure here is logged and counted, and never touches the live decision.
    func decideShadow(
        _ shadow: Shadow,
        context: AnalysisContext,
        id: String,
        requestID: String,
        correlationID: String
    )
        async
    {
        let verdict = await shadow.panel.decide(context)
        let (payload, record) = decision(
            verdict,
            context: context,
            id: id,
            requestID: requestID,
            correlationID: correlationID
        )
        do {
            guard try await shadow.store.recordDecision(record) else { return }
            try await bus.publish(
                envelope(payload, id: id, correlationID: correlationID),
                routingKey: RoutingKey.shadowDecision(symbol: context.symbol)
            )
            Counter(label: "tradebus_shadow_decisions_total", dimensions: [("action", payload.action.rawValue)])
                .increment()
        } catch let failure as BusError where failure.code == .unroutable {
            // No shadow executor is bound: the decision is recorded, and compare still reads it.
            logger.debug("shadow decision not routed: no shadow executor", metadata: ["decision_id": "\(id)"])
        } catch {
            Counter(label: "tradebus_shadow_failures_total").increment()
            logger.warning("shadow decision not recorded", metadata: ["decision_id": "\(id)", "error": "\(error)"])
        }
    }

    /// The context, or nil when the primary snapshot is missing or stale.
    func context(symbol: String, interval: String, signalSnapshot: IndicatorSnapshot?) async throws -> AnalysisContext?
    {
        var latest: [String: IndicatorSnapshot] = [:]
        for other in Set(settings.intervals + [interval]) {
            if let snapshot = await snapshot(symbol: symbol, interval: other) { latest[other] = snapshot }
        }
        let timeframes: [String: IndicatorSnapshot]
        switch AnalysisContext.timeframes(
            latest: latest,
            interval: interval,
            signalSnapshot: signalSnapshot,
            now: now(),
            maxSnapshotAge: settings.maxSnapshotAge
        ) {
        case .success(let shown): timeframes = shown
        case .failure(.missing):
            logger.warning("no snapshot to analyse", metadata: ["symbol": "\(symbol)", "interval": "\(interval)"])
            Counter(label: "tradebus_analyst_refused_total", dimensions: [("reason", "missing")]).increment()
            return nil
        case .failure(.stale):
            logger.warning(
                "snapshot too old; not analysed",
                metadata: [
                    "symbol": "\(symbol)", "interval": "\(interval)", "open_time": "\(latest[interval]?.openTime ?? 0)",
                ]
            )
            Counter(label: "tradebus_analyst_refused_total", dimensions: [("reason", "stale")]).increment()
            return nil
        }

        let positions = try await store.openPositions().filter { $0.symbol == symbol }
        let dayStart = Date(timeIntervalSince1970: (now().timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
        let today = try await store.trades(since: dayStart)
        let recent = try await store.trades(since: now().addingTimeInterval(-7 * 86_400)).filter { $0.symbol == symbol }
            .suffix(settings.recentTrades)
        // The rate the next settlement will charge and its time, from the live premium index
        // (`mark:<symbol>`); without one (a replay), the settlement the funding file put in the cache.
        let premium = await cache.get(MarkUpdate.cacheKey(symbol: symbol)).flatMap { MarkUpdate(cacheValue: $0.bytes) }
        let funding = await cache.get(FundingEvent.cacheKey(symbol: symbol)).flatMap {
            FundingEvent(cacheValue: $0.bytes)
        }
        let live = premium?.fundingRate != nil && premium?.nextFundingTime != nil
        return AnalysisContext(
            symbol: symbol,
            interval: interval,
            timeframes: timeframes,
            fundingRate: live ? premium?.fundingRate?.doubleValue : funding?.rate.doubleValue,
            nextFunding: live ? premium?.nextFundingTime : funding?.time,
            position: positions.first.map {
                AnalysisContext.Position(
                    side: $0.side,
                    entry: $0.entryPrice.doubleValue,
                    quantity: $0.quantity.doubleValue,
                    leverage: $0.leverage
                )
            },
            recentTrades: recent.map {
                AnalysisContext.Trade(side: $0.side, pnl: $0.pnl.doubleValue, exitReason: $0.exitReason)
            },
            todayPnL: today.map(\.pnl.doubleValue).reduce(0, +)
        )
    }

    func snapshot(symbol: String, interval: String) async -> IndicatorSnapshot? {
        guard let value = await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: interval)) else {
            return nil
        }
        return try? EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes).payload.snapshot
    }

    /// Longer than any decision takes (the panel's budget) plus the time to record and publish it.
    var leaseTTL: Duration { panel.decisionBudget + .seconds(30) }

    /// A lease on deciding and publishing a request, so two analysts holding the same signal do not both
    /// publish it; it expires, so a crash between the lease and the publish delays it but loses nothing.
    func claimPublishing(_ decisionID: String) async -> Bool {
        let key = "publishing:\(decisionID)"
        let mine = CachedValue(leaseHolder, sourceTime: now())
        if await cache.setIfAbsent(key, mine, ttl: leaseTTL) { return true }
        // Held by a process of this instance (this host) that is gone: this one is its restart, so the
        // lease is taken over now rather than waited out. A live one (a replica beside this one) is waited for.
        guard let held = await cache.get(key).flatMap({ String(bytes: $0.bytes, encoding: .utf8) }),
            held.hasPrefix(source + "/"), held != leaseHolder,
            let pid = Int32(held.dropFirst(source.count + 1).prefix { $0 != "/" }),
            !Self.isRunning(pid)
        else { return false }
        await cache.set(key, mine, ttl: leaseTTL)
        logger.notice(
            "took over the publishing lease of this instance's previous process",
            metadata: ["decision_id": "\(decisionID)", "previous": "\(held)"]
        )
        return true
    }

    /// Whether a process of this host runs under `pid` (signal 0 checks without sending anything).
    static func isRunning(_ pid: Int32) -> Bool {
        pid == ProcessInfo.processInfo.processIdentifier || kill(pid, 0) == 0 || errno != ESRCH
    }

    /// A decision's message: its id is the decision's, live or shadow.
    func envelope(_ payload: DecisionPayload, id: String, correlationID: String) -> Envelope<DecisionPayload> {
        Envelope(
            id: id,
            type: MessageType.decision,
            time: now(),
            correlationID: correlationID,
            source: source,
            payload: payload
        )
    }

    /// Marks, in the store, decisions already on the bus.
    static let publishedMarker = "ai-analyst.published"

    /// Publishes (confirmed by the broker), then marks it published; a crash in between publishes it
    /// again on redelivery, with the same id, which consumers drop.
    func publish(_ payload: DecisionPayload, id: String, correlationID: String) async throws {
        try await bus.publish(
            envelope(payload, id: id, correlationID: correlationID),
            routingKey: RoutingKey.decision(symbol: payload.symbol)
        )
        try await store.markProcessed(messageID: id, consumer: Self.publishedMarker, at: now())
    }

    func alert(_ payload: AlertPayload) async throws {
        let envelope = Envelope(type: MessageType.alert, time: now(), source: source, payload: payload)
        do {
            try await bus.publish(envelope, routingKey: payload.routingKey)
        } catch let failure as BusError where failure.code == .unroutable {
            logger.warning("alert not routed: no queue bound", metadata: ["kind": "\(payload.kind)"])
        }
    }
}

/// Another analyst holds the lease on publishing this decision; the delivery waits for it.
struct PublishInProgress: Error, CustomStringConvertible {
    var decisionID: String
    var description: String { "another analyst is publishing \(decisionID)" }
}
