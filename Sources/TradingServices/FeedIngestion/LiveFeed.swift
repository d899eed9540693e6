import Foundation
import Logging
import Metrics
import TradingCore

/// Live market data from an exchange onto the bus. It keeps one connection up (reconnecting with
/// backoff and jitter), publishes each closed candle once and in order per stream, fills gaps from
/// REST (after a reconnect, and whenever a candle arrives after a missing one), drops duplicates and
/// late candles, never publishes an invalid candle, writes the latest price to the hot cache, and
/// raises `alert.warning.feed_stale` when a stream has been silent for `staleIntervals` intervals.
///
/// A stream's position advances only once its candles are on the bus: if publishing fails, the
/// connection is dropped and the candles come back from REST after the reconnect.
///
/// Mark prices and funding: each premium-index update goes to the cache (`mark:<symbol>`) and into the
/// symbol's ``MarkMinutes``, so each closed candle carries the mark's candle over it. When the next
/// funding time moves on, the settlement at the old one has happened: it is recorded at the rate and
/// mark the stream last gave before it (`funding:<symbol>` and the record), and REST's history, read at
/// start (``Settings/fundingLookback``) and at each settlement from the last one it confirmed, replaces
/// it with the venue's own figures. The funding interval is the venue's (``FundingHistory``).
public actor LiveFeed {
    /// The streams to follow and how to reconnect and backfill.
    public struct Settings: Sendable {
        public var streams: [CandleStreamID]
        /// A stream silent for this many of its intervals raises `alert.warning.feed_stale`.
        public var staleIntervals: Double
        public var reconnect: Backoff
        /// How often the stale check runs.
        public var watchdogPeriod: Duration
        /// How far back funding history is read at start.
        public var fundingLookback: Duration

        /// A `Settings` with the fields given.
        public init(
            streams: [CandleStreamID],
            staleIntervals: Double = 3,
            reconnect: Backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30)),
            watchdogPeriod: Duration = .seconds(1),
            fundingLookback: Duration = .seconds(7 * 86_400)
        ) {
            self.streams = streams
            self.staleIntervals = staleIntervals
            self.reconnect = reconnect
            self.watchdogPeriod = watchdogPeriod
            self.fundingLookback = fundingLookback
        }
    }

    /// What the feed has done so far, for `/status` and tests.
    public struct Counts: Sendable, Equatable {
        public var published = 0
        public var duplicates = 0
        public var rejected = 0
        public var gaps = 0
        public var backfilled = 0
        /// Candles still missing after asking REST: reported, never invented.
        public var stillMissing = 0
        public var connections = 0
        public var staleAlerts = 0
        /// Premium-index updates taken in, and funding settlements recorded (from the stream and REST).
        public var marks = 0
        public var settlements = 0
    }

    /// A symbol's mark prices and funding as the feed follows them.
    struct MarkState {
        var latest: MarkUpdate?
        var minutes = MarkMinutes()
        /// The newest settlement REST has confirmed.
        var confirmed: Date?
    }

    struct StreamState {
        var sequencer: CandleSequencer
        var lastData: Date
        var stale = false
        var length: Int64 { sequencer.intervalMilliseconds }
    }

    let source: any KlineStream
    let history: any KlineHistory
    let funding: (any FundingHistory)?
    let output: FeedOutput
    let settings: Settings
    let now: @Sendable () -> Date
    private var states: [CandleStreamID: StreamState] = [:]
    private var connectedThisSession = false
    private var marks: [String: MarkState] = [:]
    /// The latest price last written per symbol, and when: a trade and the candle update it makes
    /// (Hyperliquid sends both) write it once.
    private var latestWritten: [String: (price: Double, at: Date)] = [:]
    public private(set) var counts = Counts()
    public private(set) var isConnected = false
    /// Each symbol's funding interval, as the venue gave it at start.
    public private(set) var fundingIntervals: [String: Duration] = [:]

    /// A feed of `stream`'s closed candles, backfilled from `history`, with funding history from
    /// `funding`, out through `output`.
    public init(
        source: any KlineStream,
        history: any KlineHistory,
        funding: (any FundingHistory)? = nil,
        output: FeedOutput,
        settings: Settings,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.source = source
        self.history = history
        self.funding = funding
        self.output = output
        self.settings = settings
        self.now = now
        let start = now()
        for stream in settings.streams {
            guard let length = CandleInterval.milliseconds(stream.interval) else {
                throw ExchangeMessageError(
                    "interval '\(stream.interval)' of \(stream.symbol) is not one of 1m, 5m, 15m, 1h, 4h, 1d"
                )
            }
            states[stream] = StreamState(sequencer: CandleSequencer(intervalMilliseconds: length), lastData: start)
        }
    }

    /// Runs until cancelled: the funding history first, then the connection (reconnecting as needed)
    /// and the stale watchdog.
    public func run() async throws {
        await readFundingHistory()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.watchStaleness() }
            try await self.keepConnected()
        }
    }

    // MARK: Connection

    private func keepConnected() async throws {
        var attempt = 0
        while !Task.isCancelled {
            connectedThisSession = false
            do {
                try await source.session(settings.streams) { event in try await self.receive(event) }
                output.logger.warning("\(source.venue) ended the connection; reconnecting")
            } catch {
                if Task.isCancelled { return }
                output.logger.warning(
                    "\(source.venue) connection failed; reconnecting",
                    metadata: ["error": "\(error)"]
                )
            }
            isConnected = false
            Counter(label: "tradebus_feed_disconnects_total", dimensions: [("venue", source.venue)]).increment()
            if connectedThisSession { attempt = 0 }
            let delay = settings.reconnect.delay(attempt: attempt)
            attempt += 1
            try await Task.sleep(for: delay)
        }
    }

    private func receive(_ event: KlineStreamEvent) async throws {
        switch event {
        case .connected:
            connectedThisSession = true
            isConnected = true
            counts.connections += 1
            output.logger.info(
                "connected to \(source.venue)",
                metadata: ["streams": "\(settings.streams.count)", "connection": "\(counts.connections)"]
            )
            if counts.connections > 1 { try await catchUp() }
        case .update(let update):
            try await handle(update)
        case .mark(let update):
            await handle(update)
        case .trade(let symbol, let price, _):
            guard price > 0 else { return }
            await setLatestPrice(symbol, price.doubleValue)
        }
    }

    /// Writes the latest price seen now, unless the same price was written within the last second
    /// (its stamp is then fresh enough for every reader's age check).
    private func setLatestPrice(_ symbol: String, _ price: Double) async {
        let time = now()
        if let last = latestWritten[symbol], last.price == price, time.timeIntervalSince(last.at) < 1 { return }
        latestWritten[symbol] = (price, time)
        await output.setLatestPrice(symbol: symbol, price: price, time: time)
    }

    private func handle(_ update: KlineUpdate) async throws {
        let id = CandleStreamID(symbol: update.symbol.uppercased(), interval: update.interval)
        guard var state = states[id] else {
            output.logger.debug("update for a stream not subscribed", metadata: ["stream": "\(id)"])
            return
        }
        state.lastData = now()
        if state.stale {
            state.stale = false
            output.logger.info("\(source.venue) \(id) has data again")
        }
        states[id] = state
        if update.closed {
            try await accept(update.candle, of: id)
        } else if update.candle.defect == nil {
            await setLatestPrice(id.symbol, update.candle.close)
        }
    }

    // MARK: Candles

    /// One closed candle from the stream: published in order, after any candles missing before it.
    private func accept(_ candle: Candle, of id: CandleStreamID) async throws {
        guard var sequencer = states[id]?.sequencer else { return }
        switch sequencer.accept(candle) {
        case .accepted:
            try await publish([candle], of: id, advancing: sequencer)
        case .acceptedAfterGap(_, let from, let missing):
            counts.gaps += 1
            Counter(label: "tradebus_feed_gaps_total", dimensions: [("venue", source.venue)]).increment()
            output.logger.info(
                "gap before a candle; filling it from REST",
                metadata: ["stream": "\(id)", "from": "\(from)", "missing": "\(missing)"]
            )
            let fill = await backfill(id, from: from, through: candle.openTime - sequencer.intervalMilliseconds)
            try await publish(fill + [candle], of: id, advancing: sequencer)
        case .duplicate, .stale:
            counts.duplicates += 1
            Counter(label: "tradebus_feed_duplicates_total", dimensions: [("venue", source.venue)]).increment()
        case .rejected(let defect):
            counts.rejected += 1
            try await output.reportInvalid(candle, of: id, defect: defect)
        }
    }

    /// After a reconnect: every closed candle each stream missed while the connection was down.
    private func catchUp() async throws {
        let nowMillis = Int64(now().timeIntervalSince1970 * 1000)
        for id in settings.streams {
            guard var sequencer = states[id]?.sequencer, let last = sequencer.lastOpenTime else { continue }
            let length = sequencer.intervalMilliseconds
            let newestClosed = nowMillis / length * length - length
            guard newestClosed > last else { continue }
            let fill = await backfill(id, from: last + length, through: newestClosed)
            for candle in fill { _ = sequencer.accept(candle) }
            try await publish(fill, of: id, advancing: sequencer)
        }
    }

    /// The valid candles REST has for `from...through`, in order; whatever is still missing is reported.
    private func backfill(_ id: CandleStreamID, from: Int64, through: Int64) async -> [Candle] {
        guard let length = states[id]?.length, through >= from else { return [] }
        let wanted = Int((through - from) / length) + 1
        var candles: [Candle] = []
        var failure: String?
        do {
            var next = from
            for candle in try await history.candles(id, from: from, through: through).sorted(by: {
                $0.openTime < $1.openTime
            })
            where candle.openTime >= next && candle.openTime <= through {
                if let defect = candle.defect {
                    counts.rejected += 1
                    try? await output.reportInvalid(candle, of: id, defect: defect)
                    continue
                }
                candles.append(candle)
                next = candle.openTime + 1
            }
        } catch {
            failure = "\(error)"
        }
        counts.backfilled += candles.count
        Counter(label: "tradebus_feed_backfilled_candles_total", dimensions: [("venue", source.venue)]).increment(
            by: candles.count
        )
        let missing = wanted - candles.count
        if missing > 0 {
            counts.stillMissing += missing
            Counter(label: "tradebus_feed_missing_candles_total", dimensions: [("venue", source.venue)]).increment(
                by: missing
            )
            let reason = failure.map { "REST failed: \($0)" } ?? "REST has no such candles"
            output.logger.warning(
                "candles still missing after backfill; none invented",
                metadata: ["stream": "\(id)", "missing": "\(missing)", "reason": "\(reason)"]
            )
            do {
                try await output.alert(
                    AlertPayload(
                        severity: .warning,
                        kind: "feed_gap",
                        title: "Candles missing",
                        message:
                            "\(source.venue) \(id): \(missing) of \(wanted) candles from \(from) could not be filled (\(reason)); none were invented",
                        symbol: id.symbol,
                        fields: ["from": .number(Double(from)), "missing": .number(Double(missing))]
                    )
                )
            } catch {
                output.logger.error("could not publish the feed_gap alert", metadata: ["error": "\(error)"])
            }
        }
        return candles
    }

    private func publish(_ candles: [Candle], of id: CandleStreamID, advancing sequencer: CandleSequencer) async throws
    {
        guard let last = candles.last else {
            states[id]?.sequencer = sequencer
            return
        }
        let length = sequencer.intervalMilliseconds
        let minutes = marks[id.symbol]?.minutes
        try await output.bus.publish(
            candles.map {
                try output.message(
                    $0,
                    of: id,
                    intervalMilliseconds: length,
                    mark: minutes?.candle(openTime: $0.openTime, length: length)
                )
            }
        )
        states[id]?.sequencer = sequencer
        await output.recordCandles(candles, of: id)
        counts.published += candles.count
        Counter(label: "tradebus_feed_candles_total", dimensions: [("venue", source.venue)]).increment(
            by: candles.count
        )
        Gauge(label: "tradebus_feed_last_candle_seconds", dimensions: [("venue", source.venue)]).record(
            FeedOutput.closeTime(last, intervalMilliseconds: length).timeIntervalSince1970
        )
        await output.setLatestPrice(
            symbol: id.symbol,
            price: last.close,
            time: FeedOutput.closeTime(last, intervalMilliseconds: length)
        )
    }

    // MARK: Mark prices and funding

    /// A premium-index update: cached, kept by the minute, and a settlement recorded when the next
    /// funding time moved on.
    private func handle(_ update: MarkUpdate) async {
        let symbol = update.symbol.uppercased()
        guard settings.streams.contains(where: { $0.symbol == symbol }) else { return }
        var state = marks[symbol] ?? MarkState()
        let previous = state.latest
        var merged = update.merged(into: previous)
        merged.symbol = symbol
        state.latest = merged
        if let price = merged.markPrice?.doubleValue {
            state.minutes.observe(price, at: Int64((update.time.timeIntervalSince1970 * 1000).rounded()))
        }
        marks[symbol] = state
        counts.marks += 1
        await output.setMark(merged)
        guard let settled = previous?.nextFundingTime, let next = merged.nextFundingTime, next > settled,
            settled <= update.time, let rate = previous?.fundingRate
        else { return }
        // The settlement at `settled` happened at the rate the stream gave last before it.
        output.logger.info(
            "funding settled",
            metadata: ["symbol": "\(symbol)", "time": "\(settled)", "rate": "\(rate)"]
        )
        await output.recordFunding(
            symbol: symbol,
            [FundingEvent(time: settled, rate: rate, markPrice: previous?.markPrice)]
        )
        counts.settlements += 1
        await confirmFunding(symbol, through: settled)
    }

    /// At start: each symbol's funding interval and its settlements over ``Settings/fundingLookback``.
    private func readFundingHistory() async {
        guard let funding else { return }
        let end = now()
        let start = end.addingTimeInterval(-Double(settings.fundingLookback.components.seconds))
        for symbol in Set(settings.streams.map(\.symbol)).sorted() {
            do {
                if let interval = try await funding.fundingInterval(symbol: symbol) {
                    fundingIntervals[symbol] = interval
                }
            } catch {
                output.logger.warning(
                    "the funding interval could not be read",
                    metadata: ["symbol": "\(symbol)", "error": "\(error)"]
                )
            }
            marks[symbol, default: MarkState()].confirmed = start
            await confirmFunding(symbol, through: end)
        }
        output.logger.info(
            "funding history read",
            metadata: ["intervals": "\(fundingIntervals.mapValues { "\($0.components.seconds / 3600) h" })"]
        )
    }

    /// REST's settlements of `symbol` since the newest it confirmed, through `through`: recorded with
    /// the venue's own rate and mark, replacing what the stream gave. A failure is logged; the next
    /// settlement asks again from the same point.
    private func confirmFunding(_ symbol: String, through: Date) async {
        guard let funding, let from = marks[symbol]?.confirmed, from <= through else { return }
        do {
            let events = try await funding.fundingRates(symbol: symbol, from: from, through: through)
            guard let newest = events.last else { return }
            await output.recordFunding(symbol: symbol, events)
            counts.settlements += events.count
            marks[symbol]?.confirmed = newest.time.addingTimeInterval(0.001)
        } catch {
            output.logger.warning(
                "funding history could not be read; the stream's figures stand until the next settlement",
                metadata: ["symbol": "\(symbol)", "error": "\(error)"]
            )
        }
    }

    // MARK: Staleness

    private func watchStaleness() async throws {
        while true {
            try await Task.sleep(for: settings.watchdogPeriod)
            await checkStaleness()
        }
    }

    /// Marks streams silent for too long, and raises one alert for those that just went stale.
    func checkStaleness() async {
        let time = now()
        var newlyStale: [CandleStreamID] = []
        for id in settings.streams {
            guard let state = states[id], !state.stale else { continue }
            if time.timeIntervalSince(state.lastData) * 1000 > settings.staleIntervals * Double(state.length) {
                states[id]?.stale = true
                newlyStale.append(id)
            }
        }
        guard !newlyStale.isEmpty else { return }
        counts.staleAlerts += 1
        Counter(label: "tradebus_feed_stale_alerts_total", dimensions: [("venue", source.venue)]).increment()
        let names = newlyStale.map(\.description).joined(separator: ", ")
        output.logger.warning("feed stale", metadata: ["venue": "\(source.venue)", "streams": "\(names)"])
        do {
            try await output.alert(
                AlertPayload(
                    severity: .warning,
                    kind: "feed_stale",
                    title: "Market data feed stale",
                    message: "No data from \(source.venue) for \(names) in \(settings.staleIntervals) intervals",
                    symbol: newlyStale.count == 1 ? newlyStale[0].symbol : nil,
                    fields: [
                        "venue": .string(source.venue), "streams": .array(newlyStale.map { .string($0.description) }),
                    ]
                )
            )
        } catch {
            output.logger.error("could not publish the feed_stale alert", metadata: ["error": "\(error)"])
        }
    }
}
