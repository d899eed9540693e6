import Foundation

/// The paper venue's engine: a simulated futures exchange, pure and deterministic, so backtests and
/// paper trading run the same code. It never sends anything anywhere.
///
/// - A market order fills at the next price (the next candle's open), moved against the taker by the
///   slippage, and pays the taker fee.
/// - Protection is orders resting at the "venue", as on a real exchange, placed and cancelled by the
///   execution kernel: reduce-only stop-market orders for a quantity (``placeStop(symbol:_:)``), and
///   one close-position take-profit (``placeTarget(symbol:side:price:clientID:)``). A stop that would
///   trigger at once against the current price is refused (``VenueError/Kind/wouldTrigger``).
/// - Stops, the take-profit and liquidation trigger on the **mark price**, as Binance's
///   `workingType=MARK_PRICE` orders and its liquidation engine do: the mark's candle over the period
///   when it is given (``onCandle(symbol:candle:time:funding:mark:)``), else the candle's own prices.
/// - On each candle: a mark through the liquidation price liquidates (see ``liquidationLoss(_:at:)``);
///   else **when a stop and the take-profit are both inside the candle, the stop is taken first** (the
///   cautious reading of an unknown path; a caller with lower-timeframe candles walks them in turn,
///   ``IntrabarPath``). A triggered stop or target is a market order: it fills at the traded price
///   when the mark reached the trigger (the trigger less the basis, mark − traded, at the candle's
///   open; the open itself if the mark gapped through), the stop with slippage.
/// - **The candle a position opens on counts.** Orders fill at the candle's open; what is placed after
///   those fills (the new position's stop and target) is checked against the rest of that candle when
///   ``finishCandle(symbol:)`` is called.
/// - Funding is charged at each settlement (``FundingEvent``) that falls inside a candle, after the
///   fills at the candle's open and before its stops: every open position pays rate × quantity × the
///   mark price (the candle's open when no mark is known). Longs pay a positive rate, shorts receive it.
public struct PaperExchange: Sendable, Hashable, Codable {
    /// Fees, slippage, margin and filters of the simulated venue.
    public struct Settings: Sendable, Hashable, Codable {
        /// Slippage against a taker: with the `fixed` model all of it, with `volume` its floor.
        public var slippageFraction: Money = 0.0005
        /// How slippage is worked out (``SlippageModel``).
        public var slippageModel: SlippageModel = .fixed
        /// `volume` model: slippage added per unit of the order's share of the candle's quote volume.
        public var volumeImpact: Money = 0.1
        /// `volume` model: the most slippage can be.
        public var slippageCap: Money = 0.01
        /// A fixed bid-ask spread, as a fraction of the price: a taker pays half of it.
        public var spreadFraction: Money = 0
        public var takerFeeRate: Money = 0.0005
        /// The liquidation clearance fee, a fraction of the notional at the liquidation price (Binance's
        /// `liquidationFee`, 0.0125 on BTCUSDT), paid from what is left of the margin.
        public var liquidationFeeRate: Money = 0.0125
        public var maintenanceMarginRate: Money = 0.005
        /// The venue's maintenance-margin tiers (nil: `maintenanceMarginRate` for every size).
        public var marginTiers: MarginTiers?
        public var filters = ExchangeFilters(
            tickSize: 0.0001,
            stepSize: 0.001,
            minQuantity: 0.001,
            maxQuantity: 1_000_000,
            minNotional: 5
        )
        /// The defaults, as documented on each field.
        public init() {}

        /// Reads settings saved by this or an earlier version: a field it did not have takes its default.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Settings()
            slippageFraction =
                try container.decodeIfPresent(Money.self, forKey: .slippageFraction) ?? defaults.slippageFraction
            slippageModel = try container.decodeIfPresent(SlippageModel.self, forKey: .slippageModel) ?? .fixed
            volumeImpact = try container.decodeIfPresent(Money.self, forKey: .volumeImpact) ?? defaults.volumeImpact
            slippageCap = try container.decodeIfPresent(Money.self, forKey: .slippageCap) ?? defaults.slippageCap
            spreadFraction = try container.decodeIfPresent(Money.self, forKey: .spreadFraction) ?? 0
            takerFeeRate = try container.decodeIfPresent(Money.self, forKey: .takerFeeRate) ?? defaults.takerFeeRate
            liquidationFeeRate =
                try container.decodeIfPresent(Money.self, forKey: .liquidationFeeRate) ?? defaults.liquidationFeeRate
            maintenanceMarginRate =
                try container.decodeIfPresent(Money.self, forKey: .maintenanceMarginRate)
                ?? defaults.maintenanceMarginRate
            marginTiers = try container.decodeIfPresent(MarginTiers.self, forKey: .marginTiers)
            filters = try container.decodeIfPresent(ExchangeFilters.self, forKey: .filters) ?? defaults.filters
        }

        /// The price a taker gets for `quantity` at `price`: half the spread and the slippage against it.
        /// `quoteVolume` is the candle's (base volume × close), for the `volume` model.
        public func takerPrice(_ price: Money, buy: Bool, quantity: Money, quoteVolume: Money?) -> Money {
            // On every fill of a backtest: with the defaults (fixed, no spread) no arithmetic beyond the
            // fixed slippage's.
            var move = slippageFraction
            if slippageModel == .volume {
                if let quoteVolume, quoteVolume > 0 { move += volumeImpact * price * quantity / quoteVolume }
                move = min(move, slippageCap)
            }
            if !spreadFraction.isZero { move += spreadFraction / 2 }
            return buy ? price * (1 + move) : price * (1 - move)
        }
    }

    /// How the paper venue works out slippage.
    public enum SlippageModel: String, Sendable, Hashable, Codable, CaseIterable {
        /// `slippageFraction` on every taker fill.
        case fixed
        /// `slippageFraction` + `volumeImpact` × the order's notional / the candle's quote volume, at most
        /// `slippageCap`: a large order in a thin candle moves the price more.
        case volume
    }

    struct Position: Sendable, Hashable, Codable {
        var symbol: String
        var side: PositionSide
        var quantity: Money
        var entry: Money
        var leverage: Int
        var openedAt: Date
        var fees: Money
        var funding: Money = 0
        /// PnL already realised by partial reduces (before fees).
        var realized: Money = 0
        /// The most it held (the trade's size).
        var peak: Money
        /// The prices that matter on the next candle, as Doubles; nil until worked out (see ``Bounds``).
        var bounds: Bounds?
        /// The liquidation price at this entry, size and leverage, once worked out (nil in state files
        /// written before it was kept, and until then).
        var liquidation: Money?
        var margin: Money { quantity * entry / Money(leverage) }
    }

    /// A close-position take-profit.
    struct Target: Sendable, Hashable, Codable {
        var clientID: String
        var price: Money
    }

    /// A candle's open, high and low, traded or mark.
    struct Span: Sendable, Hashable, Codable {
        var open: Money
        var high: Money
        var low: Money

        /// The prices of `candle`; nil if one is not finite.
        init?(_ candle: Candle) {
            guard let open = Money(finite: candle.open), let high = Money(finite: candle.high),
                let low = Money(finite: candle.low)
            else { return nil }
            self.init(open: open, high: high, low: low)
        }

        init(open: Money, high: Money, low: Money) {
            self.open = open
            self.high = high
            self.low = low
        }
    }

    /// The part of a candle after the fills at its open, for stops and targets placed since.
    struct Rest: Sendable, Hashable, Codable {
        var traded: Span
        /// The mark over the candle, when known.
        var mark: Span?
        var time: Date
    }

    /// A protected position's levels as Doubles, widened by a hair: a candle whose low is above `below`
    /// and whose high is under `above` touches neither a stop, nor the target, nor the liquidation
    /// price, so it changes nothing but the mark price and needs no decimal arithmetic. A candle near a
    /// level takes the exact path.
    struct Bounds: Sendable, Hashable, Codable {
        var below: Double
        var above: Double
        /// Entry and size, for the equity estimate.
        var entry: Double
        var quantity: Double
    }

    public private(set) var settings: Settings

    /// Replaces the settings (a restart with changed configuration); open positions' cached bounds follow.
    public mutating func apply(_ settings: Settings) {
        self.settings = settings
        for (symbol, position) in positions {
            var refreshed = repriced(position)
            refreshed.bounds = bounds(of: refreshed)
            positions[symbol] = refreshed
        }
    }
    /// Wallet balance: the initial capital plus realised PnL, minus fees and funding.
    public private(set) var balance: Money
    var positions: [String: Position] = [:]
    var orders: [String: VenueOrder] = [:]
    var pending: [String] = []
    /// Resting stop orders and take-profits, by symbol.
    var stops: [String: [ExecutionKernel.StopOrder]] = [:]
    var targets: [String: Target] = [:]
    var rest: [String: Rest] = [:]
    var lastPrices: [String: Money] = [:]
    /// Closes of candles that took the fast path, kept as Doubles until a price is asked for (nil in
    /// state files written before there was a fast path).
    var lastCloses: [String: Double]?
    /// The mark's last close, by symbol, where candles came with a mark.
    var lastMarks: [String: Double]?
    /// Each symbol's last candle's quote volume, for the `volume` slippage model (nil with the fixed one).
    var quoteVolumes: [String: Money]?
    var nextTrade = 1
    var queued: [VenueEvent] = []

    /// Makes this account's trade and order ids unique among every paper account a store has seen.
    let instance: String

    /// A `PaperExchange` with the fields given.
    public init(
        settings: Settings = Settings(),
        balance: Money,
        instance: String = String(UUID().uuidString.prefix(8)).lowercased()
    ) {
        self.settings = settings
        self.balance = balance
        self.instance = instance
    }

    // MARK: Orders

    /// Accepts a market order (idempotent by client id); it fills at the next price.
    public mutating func submit(_ request: VenueOrderRequest) -> Result<VenueOrder, VenueError> {
        if let existing = orders[request.clientOrderID] { return .success(existing) }
        guard request.quantity > 0, request.leverage >= 1 else {
            return .failure(VenueError(.rejected, "quantity and leverage must be positive"))
        }
        if request.reduceOnly {
            guard let position = positions[request.symbol], (position.side == .long) == (request.side == .sell) else {
                return .failure(VenueError(.rejected, "reduce-only order with no position to reduce"))
            }
        }
        let order = VenueOrder(
            clientOrderID: request.clientOrderID,
            venueOrderID: "paper-\(instance)-\(orders.count + 1)",
            symbol: request.symbol,
            side: request.side,
            quantity: request.quantity,
            filledQuantity: 0,
            averagePrice: nil,
            status: .accepted,
            reduceOnly: request.reduceOnly
        )
        orders[request.clientOrderID] = order
        pending.append(request.clientOrderID)
        if !request.reduceOnly { leverages[request.symbol] = request.leverage }
        return .success(order)
    }

    var leverages: [String: Int] = [:]

    public func order(clientOrderID: String) -> VenueOrder? { orders[clientOrderID] }

    public var openPositions: [VenuePosition] {
        positions.values.sorted { $0.symbol < $1.symbol }.map {
            VenuePosition(
                symbol: $0.symbol,
                side: $0.side,
                quantity: $0.quantity,
                entryPrice: $0.entry,
                leverage: $0.leverage,
                stopLoss: nearestStop($0)?.trigger,
                takeProfit: targets[$0.symbol]?.price,
                openedAt: $0.openedAt,
                fees: $0.fees
            )
        }
    }

    /// The price stops and targets are judged against now: the mark's open (else the candle's) while
    /// the rest of its candle is ahead, else the last close of the mark (else of the candle).
    func mark(_ symbol: String) -> Money? {
        if let part = rest[symbol] { return part.mark?.open ?? part.traded.open }
        return lastMarks?[symbol].flatMap { Money(finite: $0) } ?? price(symbol: symbol)
    }

    /// Places a reduce-only stop-market order; refused with `wouldTrigger` when its trigger is already
    /// passed. Placing a client id again changes nothing.
    public mutating func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) -> Result<Void, VenueError> {
        if stops[symbol]?.contains(where: { $0.clientID == stop.clientID }) ?? false { return .success(()) }
        guard var position = positions[symbol], stop.side == (position.side == .long ? .sell : .buy), stop.quantity > 0
        else {
            return .failure(VenueError(.rejected, "reduce-only stop with no position to reduce on \(symbol)"))
        }
        if let mark = mark(symbol), position.side == .long ? stop.trigger >= mark : stop.trigger <= mark {
            return .failure(
                VenueError(.wouldTrigger, "the stop at \(stop.trigger) would trigger at once (price \(mark))")
            )
        }
        stops[symbol, default: []].append(stop)
        // With the rest of a candle ahead, the levels are worked out once it is taken.
        position.bounds = rest[symbol] == nil ? bounds(of: position) : nil
        positions[symbol] = position
        return .success(())
    }

    /// Cancels a stop; one already gone is not an error.
    public mutating func cancelStop(symbol: String, clientID: String) {
        guard let index = stops[symbol]?.firstIndex(where: { $0.clientID == clientID }) else { return }
        stops[symbol]!.remove(at: index)
        if stops[symbol]!.isEmpty { stops[symbol] = nil }
        if var position = positions[symbol] {
            position.bounds = bounds(of: position)
            positions[symbol] = position
        }
    }

    /// The symbol's working stops.
    public func workingStops(symbol: String) -> [ExecutionKernel.StopOrder] { stops[symbol] ?? [] }

    /// Places (or replaces) the position's close-position take-profit.
    public mutating func placeTarget(
        symbol: String,
        side: OrderSide,
        price: Money,
        clientID: String
    ) -> Result<Void, VenueError> {
        guard var position = positions[symbol], side == (position.side == .long ? .sell : .buy) else {
            return .failure(VenueError(.rejected, "take-profit with no position to close on \(symbol)"))
        }
        if let mark = mark(symbol), position.side == .long ? price <= mark : price >= mark {
            return .failure(
                VenueError(.wouldTrigger, "the take-profit at \(price) would trigger at once (price \(mark))")
            )
        }
        targets[symbol] = Target(clientID: clientID, price: price)
        position.bounds = rest[symbol] == nil ? bounds(of: position) : nil
        positions[symbol] = position
        return .success(())
    }

    /// The stop that triggers first: the highest of a long's, the lowest of a short's.
    func nearestStop(_ p: Position) -> ExecutionKernel.StopOrder? {
        let all = stops[p.symbol] ?? []
        return p.side == .long ? all.max { $0.trigger < $1.trigger } : all.min { $0.trigger < $1.trigger }
    }

    /// The last close seen for `symbol`.
    public func price(symbol: String) -> Money? {
        if let close = lastCloses?[symbol] { return Money(finite: close) }
        return lastPrices[symbol]
    }

    /// Equity: the balance plus unrealised PnL at the last prices.
    public var equity: Money {
        balance
            + positions.values.reduce(Money(0)) { total, p in
                let mark = price(symbol: p.symbol) ?? p.entry
                return total + (p.side == .long ? mark - p.entry : p.entry - mark) * p.quantity
            }
    }

    /// ``equity`` in Double arithmetic from `balance` (the balance as a Double, which the caller keeps):
    /// equal to it but for rounding in the last digits; for an equity curve drawn every candle.
    public func estimatedEquity(balance: Double) -> Double {
        var total = balance
        for p in positions.values {
            guard let bounds = p.bounds, let mark = lastCloses?[p.symbol] else { return equity.doubleValue }
            total += (p.side == .long ? mark - bounds.entry : bounds.entry - mark) * bounds.quantity
        }
        return total
    }

    /// The balance not held as margin.
    public var availableMargin: Money { balance - positions.values.reduce(Money(0)) { $0 + $1.margin } }

    /// Events since the last call.
    public mutating func drainEvents() -> [VenueEvent] {
        defer { queued.removeAll() }
        return queued
    }

    /// Events not yet acknowledged, oldest first.
    public var pendingEvents: [VenueEvent] { queued }

    /// Forgets the first `count` events.
    public mutating func acknowledgeEvents(_ count: Int) { queued.removeFirst(min(count, queued.count)) }

    // MARK: Prices

    /// The next candle of `symbol`, as it comes (prices as Doubles), with the mark's candle over the
    /// same period when known: ``onCandle(symbol:open:high:low:close:time:funding:quoteVolume:mark:)``,
    /// except that a candle that can change nothing but the price (no order waiting, no funding, and no
    /// position, or one whose levels the mark stays clear of) is taken without decimal arithmetic. An
    /// impossible candle, traded or mark, is refused.
    public mutating func onCandle(
        symbol: String,
        candle: Candle,
        time: Date,
        funding: FundingEvent? = nil,
        mark: Candle? = nil
    ) throws(VenueError) {
        // No fill, stop, target or liquidation on an impossible candle (prices not finite or not
        // positive, high below low, open or close outside the range).
        if let defect = candle.defect { throw VenueError(.rejected, "candle at \(candle.openTime) refused: \(defect)") }
        if let defect = mark?.defect { throw VenueError(.rejected, "mark at \(candle.openTime) refused: \(defect)") }
        if let last = lastCandle[symbol], time <= last { return }
        if let mark {
            lastMarks = lastMarks ?? [:]
            lastMarks![symbol] = mark.close
        }
        if funding == nil, rest.isEmpty, !pending.contains(where: { orders[$0]?.symbol == symbol }) {
            let clear: Bool
            if !positions.isEmpty, let position = positions[symbol] {
                let path = mark ?? candle
                clear = position.bounds.map { path.low > $0.below && path.high < $0.above } ?? false
            } else {
                clear = true
            }
            if clear {
                lastCandle[symbol] = time
                if !lastPrices.isEmpty { lastPrices[symbol] = nil }
                lastCloses = lastCloses ?? [:]
                lastCloses![symbol] = candle.close
                return
            }
        }
        onCandle(
            symbol: symbol,
            open: Money(finite: candle.open)!,
            high: Money(finite: candle.high)!,
            low: Money(finite: candle.low)!,
            close: Money(finite: candle.close)!,
            time: time,
            funding: funding,
            quoteVolume: settings.slippageModel == .volume ? Money(finite: candle.volume * candle.close) : nil,
            mark: mark
        )
        lastCloses?[symbol] = candle.close
    }

    /// The maintenance-margin rate of a position: its tier's, by its notional at entry.
    func maintenanceRate(_ p: Position) -> Money {
        settings.marginTiers?.rate(notional: p.quantity * p.entry) ?? settings.maintenanceMarginRate
    }

    /// The liquidation price of a position: kept on it (``Position/liquidation``) or worked out.
    func liquidationPrice(_ p: Position) -> Money {
        p.liquidation
            ?? RiskGateway.liquidationPrice(
                side: p.side,
                entry: p.entry,
                leverage: Money(p.leverage),
                maintenanceMarginRate: maintenanceRate(p)
            )
    }

    /// `p` with its liquidation price worked out again (its entry, size or the settings changed).
    func repriced(_ p: Position) -> Position {
        var p = p
        p.liquidation = nil
        p.liquidation = liquidationPrice(p)
        return p
    }

    /// ``Bounds`` of a position, nil without a stop.
    func bounds(of p: Position) -> Bounds? {
        guard let stop = nearestStop(p)?.trigger else { return nil }
        let hair = 1e-9
        let liquidation = liquidationPrice(p).doubleValue
        let stopValue = stop.doubleValue
        let target = targets[p.symbol]?.price.doubleValue
        let below = p.side == .long ? max(stopValue, liquidation) : (target ?? 0)
        let above = p.side == .long ? (target ?? .infinity) : min(stopValue, liquidation)
        return Bounds(
            below: below * (1 + hair),
            above: above * (1 - hair),
            entry: p.entry.doubleValue,
            quantity: p.quantity.doubleValue
        )
    }

    /// The next candle of `symbol` (prices as Money), with the funding settlement inside it, if any,
    /// and the mark's candle over the period when known. Orders waiting fill at its open; a position
    /// that was there before takes its liquidation, stops and target over the mark's range; a position
    /// that those fills opened or changed takes them over the rest of the candle at
    /// ``finishCandle(symbol:)``, once its protection is placed. A candle not after the last one of its
    /// symbol (a redelivery) changes nothing.
    public mutating func onCandle(
        symbol: String,
        open: Money,
        high: Money,
        low: Money,
        close: Money,
        time: Date,
        funding: FundingEvent? = nil,
        quoteVolume: Money? = nil,
        mark: Candle? = nil
    ) {
        if let last = lastCandle[symbol], time <= last { return }
        finishCandle(symbol: symbol)
        if let quoteVolume {
            quoteVolumes = quoteVolumes ?? [:]
            quoteVolumes![symbol] = quoteVolume
        }
        lastCandle[symbol] = time
        lastCloses?[symbol] = nil
        let traded = Span(open: open, high: high, low: low)
        let markSpan = mark.flatMap(Span.init)
        let filled = fillPending(symbol: symbol, at: open, time: time)
        if let funding { chargeFunding(symbol: symbol, funding, price: markSpan?.open ?? open) }
        lastPrices[symbol] = close
        if filled, positions[symbol] != nil {
            rest[symbol] = Rest(traded: traded, mark: markSpan, time: time)
        } else {
            trigger(symbol: symbol, traded: traded, mark: markSpan, time: time)
        }
    }

    /// The rest of the symbol's last candle, after the fills at its open: the stops and target placed
    /// since are taken over it (stop first). Nothing to do when nothing filled at that open.
    public mutating func finishCandle(symbol: String) {
        guard !rest.isEmpty, let part = rest.removeValue(forKey: symbol) else { return }
        trigger(symbol: symbol, traded: part.traded, mark: part.mark, time: part.time)
    }

    /// Liquidation, stop or target over a candle.
    mutating func trigger(symbol: String, traded: Span, mark: Span?, time: Date) {
        guard let position = positions[symbol] else { return }
        exit(position, traded: traded, mark: mark ?? traded, time: time)
        if var position = positions[symbol] {
            position.bounds = bounds(of: position)
            positions[symbol] = position
        }
    }

    /// Fills the symbol's waiting orders at `open`; true if any filled.
    mutating func fillPending(symbol: String, at open: Money, time: Date) -> Bool {
        var remaining: [String] = []
        var filled = false
        for id in pending {
            guard var order = orders[id], order.symbol == symbol else {
                remaining.append(id)
                continue
            }
            filled = true
            if order.reduceOnly, positions[symbol].map({ ($0.side == .long) != (order.side == .sell) }) ?? true {
                // Nothing left to reduce (a stop or target closed it first): the order expires.
                order.status = .expired
                orders[id] = order
                continue
            }
            let quantity = order.reduceOnly ? min(order.quantity, positions[symbol]!.quantity) : order.quantity
            let buy = order.side == .buy
            let price = settings.takerPrice(open, buy: buy, quantity: quantity, quoteVolume: quoteVolumes?[symbol])
            let fee = price * quantity * settings.takerFeeRate
            let fill = VenueFill(
                tradeID: "paper-\(instance)-\(nextTrade)",
                clientOrderID: id,
                symbol: symbol,
                side: order.side,
                price: price,
                quantity: quantity,
                fee: fee,
                time: time
            )
            nextTrade += 1
            order.filledQuantity = quantity
            order.averagePrice = price
            order.status = quantity < order.quantity ? .expired : .filled
            orders[id] = order
            queued.append(.fill(fill))
            balance -= fee
            apply(fill, leverage: leverages[symbol] ?? 1, reduceOnly: order.reduceOnly, reason: "exit")
        }
        pending = remaining
        return filled
    }

    /// A fill's effect on the position; a fill that closes it queues the close (with `reason`) and
    /// takes its resting orders away.
    mutating func apply(_ fill: VenueFill, leverage: Int, reduceOnly: Bool, reason: String) {
        let side: PositionSide = fill.side == .buy ? .long : .short
        if var position = positions[fill.symbol] {
            if position.side == side {
                let quantity = position.quantity + fill.quantity
                position.entry = (position.entry * position.quantity + fill.price * fill.quantity) / quantity
                position.quantity = quantity
                position = repriced(position)
                position.peak = max(position.peak, quantity)
                position.fees += fill.fee
                position.bounds = nil
                positions[fill.symbol] = position
            } else {
                // A reduce or exit: realise the PnL of what is closed.
                let closed = min(position.quantity, fill.quantity)
                let pnl = (position.side == .long ? fill.price - position.entry : position.entry - fill.price) * closed
                balance += pnl
                position.realized += pnl
                position.quantity -= closed
                position.fees += fill.fee
                if position.quantity == 0 {
                    positions[fill.symbol] = nil
                    queued.append(.closed(close(position, exit: fill.price, time: fill.time, reason: reason)))
                    stops[fill.symbol] = nil
                    targets[fill.symbol] = nil
                    rest[fill.symbol] = nil
                } else {
                    position = repriced(position)  // a smaller size may fall in another margin tier
                    position.bounds = bounds(of: position)
                    positions[fill.symbol] = position
                }
            }
        } else if !reduceOnly {
            positions[fill.symbol] = repriced(
                Position(
                    symbol: fill.symbol,
                    side: side,
                    quantity: fill.quantity,
                    entry: fill.price,
                    leverage: leverage,
                    openedAt: fill.time,
                    fees: fill.fee,
                    peak: fill.quantity
                )
            )
        }
    }

    /// The close of a position that is now flat.
    func close(_ p: Position, exit: Money, time: Date, reason: String) -> VenueClose {
        VenueClose(
            symbol: p.symbol,
            side: p.side,
            quantity: p.peak,
            entryPrice: p.entry,
            exitPrice: exit,
            openedAt: p.openedAt,
            closedAt: time,
            reason: reason,
            pnl: p.realized - p.fees - p.funding,
            fees: p.fees,
            funding: p.funding,
            leverage: p.leverage,
            stopLoss: nearestStop(p)?.trigger,
            takeProfit: targets[p.symbol]?.price
        )
    }

    /// What a liquidation at `price` costs the position, all of it from its isolated margin: the loss
    /// to that price, then the clearance fee (`liquidationFeeRate` × `price` × quantity) out of what
    /// margin is left, never more (Binance: the position is closed; what margin remains after the fee
    /// goes to the insurance fund). Returns the loss to the price and the fee.
    func liquidationLoss(_ p: Position, at price: Money) -> (loss: Money, fee: Money) {
        let loss = (p.side == .long ? p.entry - price : price - p.entry) * p.quantity
        let fee = min(price * p.quantity * settings.liquidationFeeRate, max(p.margin - loss, 0))
        return (loss, fee)
    }

    /// The exit this candle forces, if any: liquidation, the nearest stop, or the target, all judged on
    /// the `mark` (the traded prices when the mark is unknown). The balance takes its PnL and the exit
    /// fee; a stop for less than the position reduces it.
    mutating func exit(_ position: Position, traded: Span, mark: Span, time: Date) {
        var p = position
        let long = p.side == .long
        let liquidation = liquidationPrice(p)
        let stop = nearestStop(p)
        let stopHit = stop.map { long ? mark.low <= $0.trigger : mark.high >= $0.trigger } ?? false
        let liquidationHit = long ? mark.low <= liquidation : mark.high >= liquidation
        let side: OrderSide = long ? .sell : .buy
        if liquidationHit
            && (!stopHit || (long ? mark.open <= liquidation : mark.open >= liquidation)
                || (stop.map { long ? $0.trigger < liquidation : $0.trigger > liquidation } ?? true))
        {
            // Liquidated: the mark went past the stop, or there was no stop before liquidation. The
            // loss to the liquidation price and the clearance fee come out of the margin.
            let (loss, fee) = liquidationLoss(p, at: liquidation)
            balance -= loss + fee
            p.realized -= loss
            p.fees += fee
            let quantity = p.quantity
            p.quantity = 0
            positions[p.symbol] = nil
            queued.append(
                .fill(
                    VenueFill(
                        tradeID: "paper-\(instance)-\(nextTrade)",
                        clientOrderID: "paper-\(instance)-liquidation-\(nextTrade)",
                        symbol: p.symbol,
                        side: side,
                        price: liquidation,
                        quantity: quantity,
                        fee: fee,
                        time: time
                    )
                )
            )
            nextTrade += 1
            queued.append(.closed(close(p, exit: liquidation, time: time, reason: "liquidation")))
            stops[p.symbol] = nil
            targets[p.symbol] = nil
            return
        }
        let price: Money
        let quantity: Money
        let clientID: String
        let reason: String
        // The traded price when the mark touched `level`: the level less the basis at the open (the open
        // if the mark opened past it), inside the traded candle.
        func tradedPrice(at level: Money, falling: Bool) -> Money {
            let touched = falling ? min(level, mark.open) : max(level, mark.open)
            return min(max(touched - (mark.open - traded.open), traded.low), traded.high)
        }
        if stopHit, let stop {
            quantity = min(stop.quantity, p.quantity)
            price = settings.takerPrice(
                tradedPrice(at: stop.trigger, falling: long),
                buy: !long,
                quantity: quantity,
                quoteVolume: quoteVolumes?[p.symbol]
            )
            clientID = stop.clientID
            reason = "stop_loss"
            stops[p.symbol]?.removeAll { $0.clientID == stop.clientID }
        } else if let target = targets[p.symbol], long ? mark.high >= target.price : mark.low <= target.price {
            price = tradedPrice(at: target.price, falling: !long)
            quantity = p.quantity
            clientID = target.clientID
            reason = "take_profit"
        } else {
            return
        }
        let fee = price * quantity * settings.takerFeeRate
        balance -= fee
        let fill = VenueFill(
            tradeID: "paper-\(instance)-\(nextTrade)",
            clientOrderID: clientID,
            symbol: p.symbol,
            side: side,
            price: price,
            quantity: quantity,
            fee: fee,
            time: time
        )
        nextTrade += 1
        queued.append(.fill(fill))
        apply(fill, leverage: p.leverage, reduceOnly: true, reason: reason)
    }

    /// Charges `funding` to the open position of `symbol`, once per settlement time, at its mark
    /// price or else `price`.
    mutating func chargeFunding(symbol: String, _ funding: FundingEvent, price: Money) {
        guard var position = positions[symbol], (lastFundingBySymbol[symbol] ?? .distantPast) < funding.time else {
            return
        }
        lastFundingBySymbol[symbol] = funding.time
        let signed = position.side == .long ? position.quantity : -position.quantity
        let payment = FundingEvent.payment(quantity: signed, price: funding.markPrice ?? price, rate: funding.rate)
        position.funding += payment
        balance -= payment
        positions[symbol] = position
    }

    var lastFundingBySymbol: [String: Date] = [:]
    var lastCandle: [String: Date] = [:]
}

extension PaperExchange {
    /// Carries out one of the execution kernel's actions at once (the backtester's venue answers
    /// while it is asked), and returns the answer as the kernel's next events. Alerts and records
    /// are the caller's.
    public mutating func carryOut(_ action: ExecutionKernel.Action) -> [ExecutionKernel.Event] {
        switch action {
        case .sendOrder(let request):
            let order = VenueOrderRequest(
                clientOrderID: request.clientOrderID,
                symbol: request.symbol,
                side: request.side,
                quantity: request.quantity,
                leverage: request.leverage,
                reduceOnly: request.reduceOnly
            )
            let status = (try? submit(order).get())?.status ?? .rejected
            return [.orderStatus(clientOrderID: request.clientOrderID, status: status)]
        case .flatten(let symbol, let id, let side, let quantity, _),
            .reduce(let symbol, let id, let side, let quantity, _):
            let order = VenueOrderRequest(
                clientOrderID: id,
                symbol: symbol,
                side: side,
                quantity: quantity,
                leverage: 1,
                reduceOnly: true
            )
            return [.orderStatus(clientOrderID: id, status: (try? submit(order).get())?.status ?? .rejected)]
        case .placeStop(let symbol, let stop):
            switch placeStop(symbol: symbol, stop) {
            case .success: return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .accepted)]
            case .failure(let error) where error.code == .wouldTrigger:
                return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .wouldTrigger(error.message))]
            case .failure(let error):
                return [.stopAnswer(symbol: symbol, clientID: stop.clientID, .failed(error.message))]
            }
        case .cancelStop(let symbol, let id):
            cancelStop(symbol: symbol, clientID: id)
            return [.stopCancelled(symbol: symbol, clientID: id)]
        case .queryOrder(let id, _):
            return [.orderStatus(clientOrderID: id, status: order(clientOrderID: id)?.status)]
        case .reconcile(let symbol):
            let held = positions[symbol].map { $0.side == .long ? $0.quantity : -$0.quantity } ?? 0
            return [
                .venueSnapshot(symbol: symbol, quantity: held, stops: Set(workingStops(symbol: symbol).map(\.clientID)))
            ]
        case .alert, .positionChanged, .positionClosed:
            return []
        }
    }
}
