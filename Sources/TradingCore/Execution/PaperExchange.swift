import Foundation

/// The paper venue's engine: a simulated futures exchange, pure and deterministic, so backtests and
/// paper trading run the same code. It never sends anything anywhere.
///
/// - A market order fills at the next price (the next candle's open), moved against the taker by the
///   slippage, and pays the taker fee.
/// - Each position carries its stop-loss and take-profit (and trailing, break-even and ATR options) at
///   the "venue". On each candle, with its high and low: a gap through the liquidation price
///   liquidates (the margin is lost); else **when the stop and the take-profit are both inside the
///   candle, the stop is taken first** (the cautious reading of an unknown path); a stop fills at the
///   stop or at the open if the candle gapped through it, with slippage; a take-profit fills at its
///   price. Trailing, break-even and ATR stops then tighten for the next candle.
/// - Funding is charged at every 8-hour boundary (00:00, 08:00, 16:00 UTC) where a rate is known:
///   longs pay a positive rate, shorts receive it.
public struct PaperExchange: Sendable, Hashable, Codable {
    public struct Settings: Sendable, Hashable, Codable {
        public var slippageFraction: Decimal = 0.0005
        public var takerFeeRate: Decimal = 0.0005
        public var maintenanceMarginRate: Decimal = 0.005
        public var fundingInterval: TimeInterval = 8 * 3_600
        public var filters = ExchangeFilters(tickSize: 0.0001, stepSize: 0.001, minQuantity: 0.001, maxQuantity: 1_000_000, minNotional: 5)
        public init() {}
    }

    struct Position: Sendable, Hashable, Codable {
        var symbol: String
        var side: PositionSide
        var quantity: Decimal
        var entry: Decimal
        var leverage: Int
        var openedAt: Date
        var stopLoss: Decimal?
        var takeProfit: Decimal?
        var initialStop: Decimal?
        var policy = StopPolicy()
        var bestPrice: Decimal
        var fees: Decimal
        var funding: Decimal = 0
        /// The prices that matter on the next candle, as Doubles; nil until worked out (see ``Bounds``).
        var bounds: Bounds?
        var margin: Decimal { quantity * entry / Decimal(leverage) }
    }

    /// A protected position's levels as Doubles, widened by a hair: a candle whose low is above `below`
    /// and whose high is under `above` touches neither the stop, nor the target, nor the liquidation
    /// price, so it changes nothing but the mark price and needs no decimal arithmetic. A candle near a
    /// level takes the exact path.
    struct Bounds: Sendable, Hashable, Codable {
        var below: Double
        var above: Double
        /// Entry and size, for the equity estimate.
        var entry: Double
        var quantity: Double
    }

    public let settings: Settings
    /// Wallet balance: the initial capital plus realised PnL, minus fees and funding.
    public private(set) var balance: Decimal
    var positions: [String: Position] = [:]
    var orders: [String: VenueOrder] = [:]
    var pending: [String] = []
    var lastPrices: [String: Decimal] = [:]
    /// Closes of candles that took the fast path, kept as Doubles until a price is asked for (nil in
    /// state files written before there was a fast path).
    var lastCloses: [String: Double]?
    var lastFunding: Date?
    var nextTrade = 1
    var queued: [VenueEvent] = []

    /// Makes this account's trade and order ids unique among every paper account a store has seen.
    let instance: String

    public init(settings: Settings = Settings(), balance: Decimal, instance: String = String(UUID().uuidString.prefix(8)).lowercased()) {
        self.settings = settings
        self.balance = balance
        self.instance = instance
    }

    // MARK: Orders

    /// Accepts a market order (idempotent by client id); it fills at the next price.
    public mutating func submit(_ request: VenueOrderRequest) -> Result<VenueOrder, VenueError> {
        if let existing = orders[request.clientOrderID] { return .success(existing) }
        guard request.quantity > 0, request.leverage >= 1 else { return .failure(VenueError(.rejected, "quantity and leverage must be positive")) }
        if request.reduceOnly {
            guard let position = positions[request.symbol], (position.side == .long) == (request.side == .sell) else {
                return .failure(VenueError(.rejected, "reduce-only order with no position to reduce"))
            }
        }
        let order = VenueOrder(
            clientOrderID: request.clientOrderID, venueOrderID: "paper-\(instance)-\(orders.count + 1)", symbol: request.symbol, side: request.side,
            quantity: request.quantity, filledQuantity: 0, averagePrice: nil, status: .accepted, reduceOnly: request.reduceOnly)
        orders[request.clientOrderID] = order
        pending.append(request.clientOrderID)
        leverages[request.symbol] = request.leverage
        return .success(order)
    }

    var leverages: [String: Int] = [:]

    public func order(clientOrderID: String) -> VenueOrder? { orders[clientOrderID] }

    public var openPositions: [VenuePosition] {
        positions.values.sorted { $0.symbol < $1.symbol }.map {
            VenuePosition(symbol: $0.symbol, side: $0.side, quantity: $0.quantity, entryPrice: $0.entry, leverage: $0.leverage, stopLoss: $0.stopLoss, takeProfit: $0.takeProfit, openedAt: $0.openedAt)
        }
    }

    /// Places the position's protection.
    public mutating func protect(symbol: String, stopLoss: Decimal, takeProfit: Decimal?, policy: StopPolicy) -> Result<Void, VenueError> {
        guard var position = positions[symbol] else { return .failure(VenueError(.rejected, "no open position on \(symbol) to protect")) }
        position.stopLoss = stopLoss
        position.takeProfit = takeProfit
        if position.initialStop == nil { position.initialStop = stopLoss }
        position.policy = policy
        position.bounds = bounds(of: position)
        positions[symbol] = position
        return .success(())
    }

    /// The last close seen for `symbol`.
    public func price(symbol: String) -> Decimal? {
        if let close = lastCloses?[symbol] { return Decimal(finite: close) }
        return lastPrices[symbol]
    }

    /// Equity: the balance plus unrealised PnL at the last prices.
    public var equity: Decimal {
        balance + positions.values.reduce(Decimal(0)) { total, p in
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
    public var availableMargin: Decimal { balance - positions.values.reduce(Decimal(0)) { $0 + $1.margin } }

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

    /// The next candle of `symbol`, as it comes (prices as Doubles): ``onCandle(symbol:open:high:low:close:time:atr:fundingRate:)``,
    /// except that a candle that can change nothing but the mark price (no order waiting, no funding
    /// rate, and no position, or one whose stop policy is off and whose levels the candle stays clear
    /// of) is taken without decimal arithmetic. A price that is not finite is refused.
    public mutating func onCandle(symbol: String, candle: Candle, time: Date, atr: Double? = nil, fundingRate: Decimal? = nil) throws(VenueError) {
        guard candle.open.isFinite, candle.high.isFinite, candle.low.isFinite, candle.close.isFinite else {
            throw VenueError(.rejected, "candle at \(candle.openTime) has a price that is not finite")
        }
        if let last = lastCandle[symbol], time <= last { return }
        if fundingRate == nil, !pending.contains(where: { orders[$0]?.symbol == symbol }) {
            let clear: Bool
            if !positions.isEmpty, let position = positions[symbol] {
                clear = !position.policy.isActive && position.bounds.map { candle.low > $0.below && candle.high < $0.above } ?? false
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
            symbol: symbol, open: Decimal(finite: candle.open)!, high: Decimal(finite: candle.high)!, low: Decimal(finite: candle.low)!,
            close: Decimal(finite: candle.close)!, time: time, atr: atr.flatMap(Decimal.init(finite:)), fundingRate: fundingRate)
        lastCloses?[symbol] = candle.close
    }

    /// ``Bounds`` of a position, nil without a stop.
    func bounds(of p: Position) -> Bounds? {
        guard let stop = p.stopLoss else { return nil }
        let hair = 1e-9
        let liquidation = RiskGateway.liquidationPrice(side: p.side, entry: p.entry, leverage: Decimal(p.leverage), maintenanceMarginRate: settings.maintenanceMarginRate).doubleValue
        let stopValue = stop.doubleValue, target = p.takeProfit?.doubleValue
        let below = p.side == .long ? max(stopValue, liquidation) : (target ?? 0)
        let above = p.side == .long ? (target ?? .infinity) : min(stopValue, liquidation)
        return Bounds(below: below * (1 + hair), above: above * (1 - hair), entry: p.entry.doubleValue, quantity: p.quantity.doubleValue)
    }

    /// The next candle of `symbol` (prices as Decimal); `atr` feeds the ATR-adaptive stop, `fundingRate` funding.
    /// A candle not after the last one of its symbol (a redelivery) changes nothing.
    public mutating func onCandle(symbol: String, open: Decimal, high: Decimal, low: Decimal, close: Decimal, time: Date, atr: Decimal? = nil, fundingRate: Decimal? = nil) {
        if let last = lastCandle[symbol], time <= last { return }
        lastCandle[symbol] = time
        lastCloses?[symbol] = nil
        fillPending(symbol: symbol, at: open, time: time)
        chargeFunding(symbol: symbol, price: open, time: time, rate: fundingRate)
        if var position = positions[symbol] {
            if let close = exit(&position, open: open, high: high, low: low, time: time) {
                positions[symbol] = nil
                queued.append(.closed(close))
            } else {
                tighten(&position, high: high, low: low, close: close, atr: atr)
                position.bounds = bounds(of: position)
                positions[symbol] = position
            }
        }
        lastPrices[symbol] = close
    }

    mutating func fillPending(symbol: String, at open: Decimal, time: Date) {
        var remaining: [String] = []
        for id in pending {
            guard var order = orders[id], order.symbol == symbol else {
                remaining.append(id)
                continue
            }
            let buy = order.side == .buy
            let price = buy ? open * (1 + settings.slippageFraction) : open * (1 - settings.slippageFraction)
            let fee = price * order.quantity * settings.takerFeeRate
            let fill = VenueFill(tradeID: "paper-\(instance)-\(nextTrade)", clientOrderID: id, symbol: symbol, side: order.side, price: price, quantity: order.quantity, fee: fee, time: time)
            nextTrade += 1
            order.filledQuantity = order.quantity
            order.averagePrice = price
            order.status = .filled
            orders[id] = order
            queued.append(.fill(fill))
            balance -= fee
            apply(fill, leverage: leverages[symbol] ?? 1, reduceOnly: order.reduceOnly)
        }
        pending = remaining
    }

    mutating func apply(_ fill: VenueFill, leverage: Int, reduceOnly: Bool) {
        let side: PositionSide = fill.side == .buy ? .long : .short
        if var position = positions[fill.symbol] {
            if position.side == side {
                let quantity = position.quantity + fill.quantity
                position.entry = (position.entry * position.quantity + fill.price * fill.quantity) / quantity
                position.quantity = quantity
                position.fees += fill.fee
                position.bounds = nil
                positions[fill.symbol] = position
            } else {
                // A reduce or exit: realise the PnL of what is closed.
                let closed = min(position.quantity, fill.quantity)
                let pnl = (position.side == .long ? fill.price - position.entry : position.entry - fill.price) * closed
                balance += pnl
                position.quantity -= closed
                position.fees += fill.fee
                position.bounds = nil
                if position.quantity == 0 {
                    positions[fill.symbol] = nil
                    queued.append(.closed(close(position, quantity: closed, exit: fill.price, pnl: pnl, time: fill.time, reason: "exit")))
                } else {
                    positions[fill.symbol] = position
                }
            }
        } else if !reduceOnly {
            positions[fill.symbol] = Position(
                symbol: fill.symbol, side: side, quantity: fill.quantity, entry: fill.price, leverage: leverage, openedAt: fill.time,
                bestPrice: fill.price, fees: fill.fee)
        }
    }

    func close(_ p: Position, quantity: Decimal, exit: Decimal, pnl: Decimal, time: Date, reason: String) -> VenueClose {
        VenueClose(
            symbol: p.symbol, side: p.side, quantity: quantity, entryPrice: p.entry, exitPrice: exit, openedAt: p.openedAt, closedAt: time, reason: reason,
            pnl: pnl - p.fees - p.funding, fees: p.fees, funding: p.funding, leverage: p.leverage, stopLoss: p.stopLoss, takeProfit: p.takeProfit)
    }

    /// The exit this candle forces, if any; the balance takes its PnL and the exit fee.
    mutating func exit(_ p: inout Position, open: Decimal, high: Decimal, low: Decimal, time: Date) -> VenueClose? {
        let long = p.side == .long
        let liquidation = RiskGateway.liquidationPrice(side: p.side, entry: p.entry, leverage: Decimal(p.leverage), maintenanceMarginRate: settings.maintenanceMarginRate)
        var price: Decimal?, reason = ""
        let stopHit = p.stopLoss.map { long ? low <= $0 : high >= $0 } ?? false
        let liquidationHit = long ? low <= liquidation : high >= liquidation
        if liquidationHit && (!stopHit || (long ? open <= liquidation : open >= liquidation) || (p.stopLoss.map { long ? $0 < liquidation : $0 > liquidation } ?? true)) {
            // Liquidated: the gap went past the stop, or there was no stop before liquidation. The margin is lost.
            let loss = -p.margin
            balance += loss
            p.fees += 0
            return close(p, quantity: p.quantity, exit: liquidation, pnl: loss, time: time, reason: "liquidation")
        }
        if stopHit, let stop = p.stopLoss {
            let touched = long ? min(stop, open) : max(stop, open)
            price = long ? touched * (1 - settings.slippageFraction) : touched * (1 + settings.slippageFraction)
            reason = p.stopLoss != p.initialStop && p.policy.trailingCallbackFraction != nil ? "trailing_stop" : "stop_loss"
        } else if let target = p.takeProfit, long ? high >= target : low <= target {
            price = long ? max(target, open) : min(target, open)
            reason = "take_profit"
        }
        guard let exit = price else { return nil }
        let fee = exit * p.quantity * settings.takerFeeRate
        p.fees += fee
        balance -= fee
        let pnl = (long ? exit - p.entry : p.entry - exit) * p.quantity
        balance += pnl
        queued.append(.fill(VenueFill(
            tradeID: "paper-\(instance)-\(nextTrade)", clientOrderID: "paper-\(instance)-\(reason)-\(nextTrade)", symbol: p.symbol,
            side: long ? .sell : .buy, price: exit, quantity: p.quantity, fee: fee, time: time)))
        nextTrade += 1
        return close(p, quantity: p.quantity, exit: exit, pnl: pnl, time: time, reason: reason)
    }

    /// Trailing, break-even and ATR stops, from this candle, for the next one (``StopPolicy/tightened``).
    mutating func tighten(_ p: inout Position, high: Decimal, low: Decimal, close: Decimal, atr: Decimal?) {
        p.bestPrice = p.side == .long ? max(p.bestPrice, high) : min(p.bestPrice, low)
        guard let stop = p.stopLoss, let initial = p.initialStop,
              let tightened = p.policy.tightened(
                stop: stop, side: p.side, entry: p.entry, initialStop: initial, bestPrice: p.bestPrice, close: close, atr: atr, filters: settings.filters)
        else { return }
        p.stopLoss = tightened
        queued.append(.stopMoved(symbol: p.symbol, stopLoss: tightened))
    }

    mutating func chargeFunding(symbol: String, price: Decimal, time: Date, rate: Decimal?) {
        guard let rate, var position = positions[symbol] else { return }
        let interval = settings.fundingInterval
        let boundary = Date(timeIntervalSince1970: (time.timeIntervalSince1970 / interval).rounded(.down) * interval)
        guard position.openedAt < boundary, (lastFundingBySymbol[symbol] ?? .distantPast) < boundary else { return }
        lastFundingBySymbol[symbol] = boundary
        let payment = price * position.quantity * rate * (position.side == .long ? 1 : -1)
        position.funding += payment
        balance -= payment
        positions[symbol] = position
    }

    var lastFundingBySymbol: [String: Date] = [:]
    var lastCandle: [String: Date] = [:]
}
