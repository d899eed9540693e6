import Foundation
import Synchronization

/// Progress of a replay, after a candle.
public struct ReplayProgress: Sendable {
    public var candles: Int
    public var total: Int
    public var time: Date
    /// Signals the indicators gave so far, and decisions made on them (or replayed).
    public var signals: Int
    public var decisions: Int
    public var equity: Money
    public var openPositions: Int
    /// Decisions the risk gateway refused so far (a normal part of trading, counted, not logged).
    public var refusals: Int

    /// A `ReplayProgress` with the fields given.
    public init(
        candles: Int,
        total: Int,
        time: Date,
        signals: Int,
        decisions: Int,
        equity: Money,
        openPositions: Int,
        refusals: Int = 0
    ) {
        self.refusals = refusals
        self.candles = candles
        self.total = total
        self.time = time
        self.signals = signals
        self.decisions = decisions
        self.equity = equity
        self.openPositions = openPositions
    }
}

/// What a replay did: the one result of `tradebus run --data` (the embedded services) and
/// `tradebus backtest` (``Backtester``).
public struct ReplayOutcome: Sendable {
    public var candles: Int
    /// The closed trades, by entry time then id.
    public var trades: [TradeRecord]
    /// Equity after each candle, the initial capital first.
    public var equity: [Double]
    /// Each candle's close time.
    public var times: [Date]
    /// Signals the indicators gave (on every timeframe).
    public var signals: Int
    /// Decisions made (HOLD included), or replayed from a record.
    public var decisions: Int
    public var elapsedSeconds: Double
    /// What the models of those decisions cost (nothing for the rules analyst).
    public var llmCost = 0.0
    /// Why the models may have known the data's future, when the run was allowed to go on anyway.
    public var lookAhead: String?

    /// A `ReplayOutcome` with the fields given.
    public init(
        candles: Int,
        trades: [TradeRecord],
        equity: [Double],
        times: [Date],
        signals: Int,
        decisions: Int,
        elapsedSeconds: Double
    ) {
        self.candles = candles
        self.trades = trades
        self.equity = equity
        self.times = times
        self.signals = signals
        self.decisions = decisions
        self.elapsedSeconds = elapsedSeconds
    }
}

/// The backtester: the services' own core types (``IndicatorSet``, ``Signal``, ``RulesAnalyst``
/// with the framework check, ``RiskGateway``, ``TradingHalts`` and ``PaperExchange``) called directly,
/// one candle at a time, with no bus, no JSON, no store and no task hop between them.
///
/// It takes the embedded system's steps in the embedded system's order, so on the same candles and
/// configuration it makes the same trades, with the same ids, times and prices (the parity tests hold
/// it to that, on every shared data file and with every stop policy):
/// 1. the paper venue trades on the candle: it fills what the last decisions ordered at the open, then
///    takes stops and targets (the executor's `observe`), and the fills and closes are booked as the
///    executor books them (an entry fill opens the position and places its stop and target);
/// 2. the candle updates the indicators, and from 1m candles the 5m, 15m, 1h and 4h ones, whose
///    snapshots replace the latest of their interval (the indicator worker);
/// 3. each signal, in the order the indicator worker publishes them, is decided on the latest fresh
///    snapshots (the analyst), and each decision goes through the executor's steps: a HOLD goes no
///    further, an opposing decision closes the position, anything else goes through the risk gateway
///    to an order (an entry already on its way counts as the position it will be).
///
/// What the services add around those steps (the record, the messages, idempotency, recovery) has no
/// effect on a replay's trades, and is not here. The equity curve is worked out in Double arithmetic
/// while a position is open (``PaperExchange/estimatedEquity(balance:)``); trades, PnL and fees are
/// the paper venue's exact decimals.
public struct Backtester: Sendable {
    /// The risk limits, breakers, stop policy and costs of a backtest.
    public struct Settings: Sendable {
        public var initialCapital: Money = 10_000
        public var paper = PaperExchange.Settings()
        /// The gateway's limits. A replay has no second venue: no reference price is asked for.
        public var limits = RiskLimits()
        public var halts = TradingHalts.Limits()
        public var policy = StopPolicy()
        /// An opposing decision closes the open position (and opens nothing).
        public var closeOnOpposite = true
        public var framework = TradingFramework()
        /// The timeframes the analyst is shown besides the signal's (ANALYSIS_INTERVALS).
        public var analysisIntervals = ["5m", "15m", "1h", "4h"]
        /// MAX_SNAPSHOT_AGE_SECONDS.
        public var maxSnapshotAge: TimeInterval = 120
        /// The defaults, as documented on each field.
        public init() {}
    }

    /// Where decisions come from.
    public enum Analyst: Sendable {
        /// The rules analyst on every signal.
        case rules
        /// Decisions an earlier run recorded, each replayed at the candle it was made on.
        case recorded([DecisionRecord])
        /// A leader's recorded fills, copied: each decided at the first candle closing after it.
        case copy(CopyReplay)
    }

    /// A leader's fills to copy in a backtest, and how (``CopyBook``, ``CopyDecision/orders``).
    public struct CopyReplay: Sendable {
        /// The fills, oldest first, each `tid` once (``LeaderFill/read``).
        public var fills: [LeaderFill]
        public var leader: Leader
        public var sizing: CopySizing
        /// Our equity for sizing: the backtest's initial capital unless given.
        public var capital: Money?
        /// The leader's equity, which proportional sizing needs.
        public var leaderEquity: Money?
        public var leverage: Int
        public var targetR: Double
        /// The leader's stop triggers over time; nil: every stop is `MAX_STOP_LOSS_PERCENT` away.
        public var triggers: LeaderTriggers?

        /// A `CopyReplay` with the fields given.
        public init(
            fills: [LeaderFill],
            leader: Leader,
            sizing: CopySizing,
            capital: Money? = nil,
            leaderEquity: Money? = nil,
            leverage: Int = 3,
            targetR: Double = 3,
            triggers: LeaderTriggers? = nil
        ) {
            self.triggers = triggers
            self.fills = fills
            self.leader = leader
            self.sizing = sizing
            self.capital = capital
            self.leaderEquity = leaderEquity
            self.leverage = leverage
            self.targetR = targetR
        }

        /// The fills of `symbol`'s coin (`BTC` for `BTCUSDT`), or all of them when the file has one coin.
        public func fills(of symbol: String) -> [LeaderFill] {
            let coins = Set(fills.map(\.coin))
            if coins.count == 1 { return fills }
            let upper = symbol.uppercased()
            return fills.filter { fill in
                ["", "USDT", "USDC", "USD", "-PERP"].contains { upper == fill.coin.uppercased() + $0 }
            }
        }
    }

    public let settings: Settings
    public let analyst: Analyst

    /// A `Backtester` with the fields given.
    public init(settings: Settings, analyst: Analyst) {
        self.settings = settings
        self.analyst = analyst
    }

    /// Replays `candles` of one symbol, charging `funding`'s settlements to open positions, triggering
    /// stops, targets and liquidation on `marks` (the mark's candle over each candle, by open time:
    /// ``MarkPrices/candles(for:length:)``; the candle's own prices where there is none) and, with
    /// `detail` (lower-timeframe candles of the same period), walking each candle's path in the order
    /// they show (``IntrabarPath``); `progress` is told every `progressEvery` candles and after the last.
    /// With `tradingFrom`, the candles before it only warm the indicators up: no decision made before it
    /// is acted on (a walk-forward test window).
    public func run(
        _ candles: [Candle],
        symbol: String,
        interval: String,
        funding: FundingSchedule? = nil,
        marks: [Int64: Candle]? = nil,
        detail: [Candle]? = nil,
        tradingFrom: Date? = nil,
        progressEvery: Int = 1_000,
        progress: ((ReplayProgress) -> Void)? = nil
    ) throws -> ReplayOutcome {
        guard let length = CandleInterval.milliseconds(interval) else {
            throw BacktestError("interval '\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d")
        }
        let started = ContinuousClock.now
        let parts = detail.map { CandleInterval.group($0, by: length) }
        var run = BacktestRun(settings: settings, symbol: symbol, interval: interval, analyst: analyst)
        run.tradingFrom = tradingFrom
        var equity: [Double] = [settings.initialCapital.doubleValue]
        var times: [Date] = []
        equity.reserveCapacity(candles.count + 1)
        times.reserveCapacity(candles.count)
        for (index, candle) in candles.enumerated() {
            let close = Date(timeIntervalSince1970: Double(candle.openTime + length) / 1000)
            let settlement = funding?.event(
                from: Date(timeIntervalSince1970: Double(candle.openTime) / 1000),
                before: close
            )
            try run.step(
                candle,
                close: close,
                funding: settlement,
                mark: marks?[candle.openTime],
                detail: parts?[candle.openTime]
            )
            equity.append(run.equity)
            times.append(close)
            if let progress, (index + 1) % progressEvery == 0 || index + 1 == candles.count {
                progress(
                    ReplayProgress(
                        candles: index + 1,
                        total: candles.count,
                        time: close,
                        signals: run.signals,
                        decisions: run.decisions,
                        equity: run.exchange.equity,
                        openPositions: run.exchange.positions.count
                    )
                )
            }
        }
        var outcome = ReplayOutcome(
            candles: candles.count,
            trades: run.trades.sorted { ($0.entryTime, $0.id) < ($1.entryTime, $1.id) },
            equity: equity,
            times: times,
            signals: run.signals,
            decisions: run.decisions,
            elapsedSeconds: (ContinuousClock.now - started).timeInterval
        )
        outcome.llmCost = run.llmCost
        return outcome
    }
}

/// A replay that cannot start.
public struct BacktestError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// A `BacktestError` with the field given.
    public init(_ description: String) { self.description = description }
}

/// One replay's state, candle by candle.
struct BacktestRun {
    /// One (symbol, interval) stream of the indicator worker.
    struct Stream {
        let interval: String
        /// Whether the analyst is shown this timeframe besides a signal's own.
        let shown: Bool
        var indicators = IndicatorSet()
        var lastOpenTime: Int64?
        /// The latest snapshot (what the hot cache holds for the stream).
        var latest: IndicatorSnapshot?

        /// Adds `candle`, and its signals to `signals` under `index`; false if the candle is not newer than the last one.
        mutating func advance(
            _ candle: Candle,
            index: Int,
            into signals: inout [(stream: Int, openTime: Int64, signal: Signal)]
        ) -> Bool {
            if let last = lastOpenTime, candle.openTime <= last { return false }
            let snapshot = indicators.update(candle)
            if let latest {
                for signal in Signal.detect(previous: latest, current: snapshot) {
                    signals.append((index, candle.openTime, signal))
                }
            }
            lastOpenTime = candle.openTime
            latest = snapshot
            return true
        }
    }

    let settings: Backtester.Settings
    let symbol: String
    let interval: String
    let gateway: RiskGateway
    let rules: RulesAnalyst
    /// Recorded decisions by candle time (ms), in the record's order.
    let recorded: [Int64: [DecisionRecord]]?
    /// A leader's fills still to copy, oldest first, and the book that copies them.
    var copyFills: ArraySlice<LeaderFill> = []
    var copy: Backtester.CopyReplay?
    var copyBook = CopyBook()
    /// Copied decisions waiting: the open half of a flip until its close has filled (as the analyst
    /// waits for the record), a resize until the position's orders have settled (as the executor waits
    /// for a redelivery).
    var copyWaiting: [CopyOrder] = []

    var exchange: PaperExchange
    /// The executor's execution kernel, driven against the paper venue.
    var kernel = ExecutionKernel()
    /// The file's interval first, then (from 1m candles) the aggregator's.
    var streams: [Stream]
    var aggregator = TimeframeAggregator()
    /// The executor's record of each open position: its id and when it opened.
    var opened: [String: (id: String, at: Date)] = [:]
    /// Each position's stop as its policy moves it.
    var managed: [String: ManagedStop] = [:]
    /// Why the kernel flattened a position, for its trade.
    var closeReasons: [String: String] = [:]
    var halts: TradingHalts?
    var trades: [TradeRecord] = []
    var signals = 0
    var decisions = 0
    /// What the replayed decisions' models cost when they were made.
    var llmCost = 0.0
    /// Decisions made before this are not acted on (nil: all are).
    var tradingFrom: Date?
    var now = Date(timeIntervalSince1970: 0)
    /// The paper balance as a Double, worked out again after every venue event.
    var balance: Double
    /// Equity after the last candle, as a Double.
    var equity: Double

    init(settings: Backtester.Settings, symbol: String, interval: String, analyst: Backtester.Analyst) {
        self.settings = settings
        self.symbol = symbol
        self.interval = interval
        var limits = settings.limits
        limits.requireReferencePrice = false
        gateway = RiskGateway(limits: limits)
        rules = RulesAnalyst(framework: settings.framework, explains: false)
        if case .recorded(let records) = analyst {
            recorded = Dictionary(grouping: records.filter { $0.symbol == symbol }) {
                Int64(($0.candleTime.timeIntervalSince1970 * 1000).rounded())
            }
        } else {
            recorded = nil
        }
        if case .copy(let replay) = analyst {
            copy = replay
            copyFills = ArraySlice(replay.fills(of: symbol))
        }
        let names = [interval] + (interval == "1m" ? aggregator.intervals : [])
        streams = names.map { Stream(interval: $0, shown: settings.analysisIntervals.contains($0)) }
        exchange = PaperExchange(settings: settings.paper, balance: settings.initialCapital)
        balance = settings.initialCapital.doubleValue
        equity = balance
    }

    // MARK: One candle

    mutating func step(
        _ candle: Candle,
        close: Date,
        funding: FundingEvent? = nil,
        mark: Candle? = nil,
        detail: [Candle]? = nil
    ) throws {
        if let detail, candle.defect == nil {
            // The lower-timeframe candles in turn, as the executor takes them (``IntrabarPath``).
            for part in IntrabarPath.steps(candle: candle, close: close, funding: funding, mark: mark, detail: detail) {
                now = part.time
                try observe(part.candle, time: part.time, funding: part.funding, mark: part.mark)
            }
            now = close
        } else {
            now = close
            try observe(candle, time: close, funding: funding, mark: detail == nil ? mark : nil)
        }
        var signals: [(stream: Int, openTime: Int64, signal: Signal)] = []
        // The indicator worker refuses a defective candle, as the venue did.
        if candle.defect == nil, streams[0].advance(candle, index: 0, into: &signals), streams.count > 1 {
            for output in aggregator.add(candle) {
                guard let index = streams.firstIndex(where: { $0.interval == output.interval }) else { continue }
                _ = streams[index].advance(output.candle, index: index, into: &signals)
            }
        }
        self.signals += signals.count
        if let tradingFrom, close < tradingFrom {
            // Warming up: the indicators have taken the candle; nothing is decided on it.
        } else if let copy {
            // Each fill at the first candle that closes after it.
            let closeMillis = Int64((close.timeIntervalSince1970 * 1000).rounded())
            runCopyWaiting()
            while let fill = copyFills.first, fill.time < closeMillis {
                copyFills.removeFirst()
                decisions += 1
                guard
                    let decision = try? copyBook.take(
                        fill,
                        leader: copy.leader,
                        sizing: copy.sizing,
                        ourEquity: copy.capital ?? settings.initialCapital,
                        leaderEquity: copy.leaderEquity,
                        leaderStop: copy.triggers?.stop(coin: fill.coin, long: fill.endPosition > 0, at: fill.time)
                    )
                else { continue }
                let orders = decision.orders(
                    symbol: symbol,
                    leverage: copy.leverage,
                    targetR: copy.targetR,
                    stopFraction: copy.sizing.maxStopFraction
                )
                // A newer fill says where the leader is now: what waited for an older one goes.
                copyWaiting = orders
                runCopyWaiting(first: true)
            }
        } else if let recorded {
            for record in recorded[Int64((close.timeIntervalSince1970 * 1000).rounded())] ?? [] {
                decisions += 1
                llmCost += record.llmCost
                execute(decisionID: record.id, record.payload(requestID: record.id))
            }
        } else {
            for (stream, openTime, signal) in signals {
                guard var decision = decide(stream: stream, signalSnapshot: signal.snapshot) else { continue }
                decisions += 1
                // A HOLD goes no further than the record, which a backtest does not keep: its id is never needed.
                guard decision.action != .hold else { continue }
                decision.requestID =
                    "sig:\(symbol):\(streams[stream].interval):\(openTime):\(signal.kind.rawValue):\(signal.direction.rawValue)"
                execute(decisionID: "decision:\(decision.requestID)", decision)
            }
        }
        equity = exchange.positions.isEmpty ? balance : exchange.estimatedEquity(balance: balance)
    }

    // MARK: The paper venue (the executor's observe and its booking of venue events)

    /// The venue fills at the candle's open, the kernel protects those fills, the venue takes the rest
    /// of the candle, then the policy moves the stop for the next candle (``TradeExecutor``'s observe).
    mutating func observe(_ candle: Candle, time: Date, funding: FundingEvent?, mark: Candle?) throws {
        guard candle.defect == nil else { return }  // refused, as the executor refuses it: it moves nothing
        try exchange.onCandle(symbol: symbol, candle: candle, time: time, funding: funding, mark: mark)
        // Funding moves the balance with no venue event.
        if funding != nil { balance = exchange.balance.doubleValue }
        if !exchange.queued.isEmpty { commitEvents() }
        exchange.finishCandle(symbol: symbol)
        if !exchange.queued.isEmpty { commitEvents() }
        // The ATR-adaptive stop reads the latest snapshot of the candle's stream: the previous candle's.
        guard settings.policy.isActive, var stop = managed[symbol], let high = Money(finite: candle.high),
            let low = Money(finite: candle.low),
            let close = Money(finite: candle.close)
        else { return }
        let atr = settings.policy.atrMultiple == nil ? nil : streams[0].latest?.atr14.flatMap(Money.init(finite:))
        let moved = stop.tighten(high: high, low: low, close: close, atr: atr, filters: settings.paper.filters)
        managed[symbol] = stop
        if let moved { drive(.moveStop(symbol: symbol, price: moved)) }
    }

    /// Feeds the kernel one event, and the venue's answers to what it asks, until it asks nothing more.
    mutating func drive(_ first: ExecutionKernel.Event) {
        var events = [first]
        while !events.isEmpty {
            for action in kernel.handle(events.removeFirst(), now: now) {
                if case .flatten(let symbol, _, _, _, let reason) = action { closeReasons[symbol] = reason }
                events += exchange.carryOut(action)
            }
        }
    }

    /// Fills and closes, booked as ``TradeExecutor`` books them: the kernel first.
    mutating func commitEvents() {
        for event in exchange.drainEvents() {
            switch event {
            case .fill(let fill):
                drive(.fill(fill))
                book(fill)
            case .closed(var close):
                if let reason = closeReasons.removeValue(forKey: close.symbol), close.reason == "exit" {
                    close.reason = reason
                }
                managed.removeValue(forKey: close.symbol)?.settle(&close)
                book(close)
            }
        }
        balance = exchange.balance.doubleValue
    }

    /// An entry's fill opens or grows the position: its record, its managed stop, and once its target.
    mutating func book(_ fill: VenueFill) {
        guard let order = kernel.orders[fill.clientOrderID], order.request.purpose == .entry,
            let held = kernel.positions[fill.symbol],
            held.decisionID == order.request.decisionID
        else { return }
        let first = opened[fill.symbol] == nil
        if first { opened[fill.symbol] = ("position:\(held.decisionID)", now) }
        if let stop = held.stopPrice {
            managed[fill.symbol] = ManagedStop(
                side: held.side,
                entry: held.averagePrice,
                initialStop: stop,
                stop: stop,
                bestPrice: held.averagePrice,
                policy: settings.policy
            )
        }
        if first, let target = held.targetPrice {
            _ = exchange.placeTarget(
                symbol: fill.symbol,
                side: held.closingSide,
                price: target,
                clientID: ClientOrderID.make(decisionID: held.decisionID, purpose: .takeProfit)
            )
        }
    }

    mutating func book(_ close: VenueClose) {
        guard let position = opened.removeValue(forKey: close.symbol) else { return }
        trades.append(TradeRecord(close, positionID: position.id, entryTime: position.at))
        let equity = exchange.equity
        var current = halts(equity: equity - close.pnl)
        _ = current.recordTrade(pnl: close.pnl, equityAfter: equity, now: close.closedAt)
        halts = current
    }

    mutating func halts(equity: Money) -> TradingHalts {
        if let halts { return halts }
        let fresh = TradingHalts(limits: settings.halts, equity: equity, now: now)
        halts = fresh
        return fresh
    }

    // MARK: The analyst

    /// The rules analyst's decision on a signal, or nil when its snapshot is missing or stale.
    func decide(stream index: Int, signalSnapshot: IndicatorSnapshot) -> DecisionPayload? {
        let interval = streams[index].interval
        var shown: [String: IndicatorSnapshot] = [:]
        for (other, stream) in streams.enumerated() where stream.shown || other == index {
            if let latest = stream.latest { shown[stream.interval] = latest }
        }
        guard
            case .success(let timeframes) = AnalysisContext.timeframes(
                latest: shown,
                interval: interval,
                signalSnapshot: signalSnapshot,
                now: now,
                maxSnapshotAge: settings.maxSnapshotAge
            )
        else { return nil }
        // The rules analyst reads the snapshots only; the services also show it the position and recent trades.
        let context = AnalysisContext(symbol: symbol, interval: interval, timeframes: timeframes)
        return DecisionPayload(
            symbol: symbol,
            proposal: rules.checkedDecision(context),
            provider: RulesAnalyst.name,
            model: RulesAnalyst.model,
            promptVersion: RulesAnalyst.promptVersion,
            attempts: 0,
            candleTime: context.candleTime,
            requestID: ""
        )
    }

    /// Executes the waiting copied decisions whose turn has come, in order: a resize once no order of
    /// ours on the symbol is in flight, a flip's open once flat; `first`: the batch's first decision
    /// (an open or a close) goes at once.
    mutating func runCopyWaiting(first: Bool = false) {
        var first = first
        while let order = copyWaiting.first {
            let ready =
                order.payload.scale != nil
                ? !kernel.hasOrderInFlight(symbol)
                : first || kernel.positions[symbol] == nil && exchange.positions[symbol] == nil
            guard ready else { return }
            copyWaiting.removeFirst()
            first = false
            execute(decisionID: order.id, order.payload)
        }
    }

    // MARK: The executor

    mutating func execute(decisionID: String, _ d: DecisionPayload) {
        if d.action == .hold { return }
        if d.scale != nil { return resize(decisionID: decisionID, d) }
        if let open = kernel.positions[d.symbol], open.quantity > 0, settings.closeOnOpposite || d.closeOnly,
            (open.side == .long) != (d.action == .long)
        {
            // An exit already on its way closes it; a second would find nothing to reduce. An exit
            // passes the gateway's checks for exits first.
            guard !kernel.isClosing(d.symbol),
                gateway.checkExit(OrderIntent(decisionID: decisionID, decision: d, decidedAt: now), now: now) == nil
            else { return }
            drive(
                .submit(
                    ExecutionKernel.OrderRequest(
                        clientOrderID: ClientOrderID.make(decisionID: decisionID, purpose: .exit),
                        decisionID: decisionID,
                        symbol: d.symbol,
                        side: open.closingSide,
                        quantity: open.quantity,
                        leverage: 1,
                        purpose: .exit
                    )
                )
            )
            return
        }
        if d.closeOnly { return }  // nothing on the other side to close: it never opens one
        guard let price = exchange.price(symbol: d.symbol) else { return }
        // An entry on its way counts as the position it will be.
        let open = Set(exchange.positions.keys).union(kernel.positions.keys)
        if open.contains(d.symbol) {
            // The gateway refuses this entry whatever else holds (if no earlier check does, `positionOpen`
            // does), and a backtest keeps no refusal: only the breakers' day roll, which the executor does
            // on every decision, is carried out, and its equity worked out only on a new day.
            if halts?.isNewDay(now) ?? true {
                let equity = exchange.equity
                var current = halts(equity: equity)
                current.roll(now: now, equity: equity)
                halts = current
            }
            return
        }
        let view = accountView(openSymbols: open)
        let market = MarketView(venuePrice: price, referencePrice: nil, filters: settings.paper.filters, now: now)
        guard
            case .success(let order) = gateway.check(
                OrderIntent(decisionID: decisionID, decision: d, decidedAt: now),
                market: market,
                account: view
            )
        else { return }
        drive(
            .submit(
                ExecutionKernel.OrderRequest(
                    clientOrderID: ClientOrderID.make(decisionID: decisionID, purpose: .entry),
                    decisionID: decisionID,
                    symbol: d.symbol,
                    side: order.side == .long ? .buy : .sell,
                    quantity: order.quantity,
                    leverage: d.leverage,
                    purpose: .entry,
                    stopLoss: order.stopLoss,
                    takeProfit: order.takeProfit,
                    check: FillCheck(limits: settings.limits, equity: view.equity, filters: settings.paper.filters)
                )
            )
        )
    }
}

extension BacktestRun {
    /// The account as the executor sees it for a decision, the breakers rolled to the day first (as the
    /// executor rolls them on every decision).
    mutating func accountView(openSymbols: Set<String>) -> AccountView {
        let equity = exchange.equity
        var current = halts(equity: equity)
        current.roll(now: now, equity: equity)
        halts = current
        return AccountView(
            equity: equity,
            availableMargin: exchange.availableMargin,
            openSymbols: openSymbols,
            halt: current.halt?.reason
        )
    }

    /// A resize of the open position, as the executor makes it
    /// (``RiskGateway/checkResize(_:held:market:account:)``); nothing open or closing, nothing.
    mutating func resize(decisionID: String, _ d: DecisionPayload) {
        guard let open = kernel.positions[d.symbol], open.quantity > 0, !kernel.isClosing(d.symbol),
            let price = exchange.price(symbol: d.symbol)
        else { return }
        let view = accountView(openSymbols: [])
        let held = HeldPosition(
            side: open.side,
            quantity: open.quantity,
            averagePrice: open.averagePrice,
            leverage: exchange.positions[d.symbol]?.leverage ?? d.leverage,
            stopLoss: open.stopPrice
        )
        let market = MarketView(venuePrice: price, referencePrice: nil, filters: settings.paper.filters, now: now)
        let intent = OrderIntent(decisionID: decisionID, decision: d, decidedAt: now)
        guard case .success(let order) = gateway.checkResize(intent, held: held, market: market, account: view)
        else { return }
        let request: ExecutionKernel.OrderRequest
        switch order {
        case .reduce(let quantity, _):
            request = ExecutionKernel.OrderRequest(
                clientOrderID: ClientOrderID.make(decisionID: decisionID, purpose: .exit),
                decisionID: decisionID,
                symbol: d.symbol,
                side: open.closingSide,
                quantity: quantity,
                leverage: 1,
                purpose: .exit
            )
        case .add(let quantity, _, _):
            request = ExecutionKernel.OrderRequest(
                clientOrderID: ClientOrderID.make(decisionID: decisionID, purpose: .entry),
                decisionID: decisionID,
                symbol: d.symbol,
                side: open.side == .long ? .buy : .sell,
                quantity: quantity,
                leverage: held.leverage,
                purpose: .entry,
                stopLoss: open.stopPrice
            )
        }
        drive(.submit(request))
    }
}

extension Backtester {
    /// Backtests of the same candles under each of `settings` with the rules analyst, `jobs` at once
    /// (one per core by default), in the order of `settings`. Each outcome is turned by `keep` as soon
    /// as its run ends, so a sweep holds only what it ranks; the candles are shared, never copied.
    public static func sweep<T: Sendable>(
        _ settings: [Settings],
        candles: [Candle],
        symbol: String,
        interval: String,
        funding: FundingSchedule? = nil,
        marks: [Int64: Candle]? = nil,
        detail: [Candle]? = nil,
        tradingFrom: Date? = nil,
        jobs: Int? = nil,
        keep: @Sendable (Settings, ReplayOutcome) throws -> T
    ) throws -> [T] {
        let workers = max(1, min(jobs ?? ProcessInfo.processInfo.activeProcessorCount, settings.count))
        let next = Mutex(0)
        let results = Mutex<[Int: Result<T, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let taken: Int? = next.withLock { index in
                    guard index < settings.count else { return nil }
                    defer { index += 1 }
                    return index
                }
                guard let index = taken else { return }
                let result = Result {
                    try keep(
                        settings[index],
                        try Backtester(settings: settings[index], analyst: .rules).run(
                            candles,
                            symbol: symbol,
                            interval: interval,
                            funding: funding,
                            marks: marks,
                            detail: detail,
                            tradingFrom: tradingFrom
                        )
                    )
                }
                results.withLock { $0[index] = result }
            }
        }
        return try results.withLock { all in try settings.indices.map { try all[$0]!.get() } }
    }
}
