import Foundation

/// The life of an account's orders and positions at one venue, as a pure state machine: events and
/// the time in, actions out, no I/O and no clock reads (the shape of postgres-nio's connection state
/// machines). The executor feeds it what it sends and what the venue answers, and carries out what it
/// returns; ``ExecutionKernelTests`` drives it through thousands of generated hostile sequences.
///
/// **The invariant.** Every position with a filled quantity above zero has, at the venue, a working
/// reduce-only stop for exactly that quantity, or a flatten in progress, within
/// ``Settings/stopProtectionTimeout`` of the fill that made it so. To keep it:
/// - every fill that changes a position's quantity asks for a stop of the new size; the old stop is
///   cancelled only once the new one is accepted (make before break), so moving or resizing a stop
///   never leaves a moment without one;
/// - a stop refused because it would trigger at once is answered by a reduce-only market flatten
///   (exit reason `stop_refused`) and a critical alert;
/// - any other failure to place a stop is retried with backoff; past the timeout the position is
///   flattened, with a critical alert;
/// - a stop that disappears at the venue (cancelled by hand, expired) is placed again at once.
///
/// **Orders.** One order per decision: an order whose client id the kernel has seen is never sent
/// again. An order's status only moves forward (``OrderStatus/rank``); an unknown outcome is queried
/// with backoff and, past ``Settings/orderUnknownTimeout``, settled by the venue's own view
/// (``Event/venueSnapshot(symbol:quantity:stops:)``), never by a guess. Fills are facts with an
/// identity: a trade id seen before changes nothing.
public struct ExecutionKernel: Sendable {
    /// Stop policy and protection timeouts.
    public struct Settings: Sendable, Hashable {
        /// STOP_PROTECTION_TIMEOUT_SECONDS: how long a position may be without a stop before it is flattened.
        public var stopProtectionTimeout: TimeInterval = 5
        /// The backoff between attempts to place a stop, or to flatten.
        public var retry = Backoff(initial: .milliseconds(250), maximum: .seconds(2))
        /// ORDER_UNKNOWN_TIMEOUT_SECONDS: how long an order's outcome is queried before the venue's
        /// positions and open orders settle it.
        public var orderUnknownTimeout: TimeInterval = 30
        /// How often an open position's stops are checked against the venue's list (a stop cancelled
        /// by hand with no event to say so is found by this). Below the protection timeout, so such a
        /// stop is replaced in time.
        public var protectionCheckInterval: TimeInterval = 2
        /// The defaults, as documented on each field.
        public init() {}
    }

    /// An order the executor wants sent (an entry, or an exit on a decision).
    public struct OrderRequest: Sendable, Hashable {
        public var clientOrderID: String
        public var decisionID: String
        public var symbol: String
        public var side: OrderSide
        public var quantity: Money
        public var leverage: Int
        public var purpose: OrderPurpose
        /// For an entry: the stop its fills are protected with, and its target (placed by the
        /// executor once, as a close-position order that needs no resizing).
        public var stopLoss: Money?
        public var takeProfit: Money?
        /// For an entry: the rules its stop and target are held to once it fills (``FillCheck``).
        public var check: FillCheck?

        /// A `OrderRequest` with the fields given.
        public init(
            clientOrderID: String,
            decisionID: String,
            symbol: String,
            side: OrderSide,
            quantity: Money,
            leverage: Int,
            purpose: OrderPurpose,
            stopLoss: Money? = nil,
            takeProfit: Money? = nil,
            check: FillCheck? = nil
        ) {
            self.clientOrderID = clientOrderID
            self.decisionID = decisionID
            self.symbol = symbol
            self.side = side
            self.quantity = quantity
            self.leverage = leverage
            self.purpose = purpose
            self.stopLoss = stopLoss
            self.takeProfit = takeProfit
            self.check = check
        }

        public var reduceOnly: Bool { purpose != .entry }
    }

    /// A reduce-only stop-market order at the venue.
    public struct StopOrder: Sendable, Hashable, Codable {
        public var clientID: String
        /// The closing side (SELL for a long).
        public var side: OrderSide
        public var quantity: Money
        public var trigger: Money

        /// A `StopOrder` with the fields given.
        public init(clientID: String, side: OrderSide, quantity: Money, trigger: Money) {
            self.clientID = clientID
            self.side = side
            self.quantity = quantity
            self.trigger = trigger
        }
    }

    /// What the venue said to a stop that was sent.
    public enum StopAnswer: Sendable, Hashable {
        case accepted
        /// Refused because it would trigger at once (Binance -2021, Bybit 110092/110093).
        case wouldTrigger(String)
        /// Refused for another reason, or not reached: worth another try.
        case failed(String)
        /// The answer was lost: the stop may or may not exist.
        case unknown(String)
    }

    /// What reached the kernel: an order to send, the venue's answers and fills, a stop move, a flatten.
    public enum Event: Sendable, Hashable {
        /// The executor wants this order sent.
        case submit(OrderRequest)
        /// The venue's answer to an order, or to a query of it. `nil` status: the venue has never seen it.
        case orderStatus(clientOrderID: String, status: OrderStatus?)
        /// Sending or querying the order failed without an answer: its outcome is unknown.
        case orderUnknown(clientOrderID: String, reason: String)
        /// An execution at the venue (of any order: an entry, an exit, a stop, a flatten).
        case fill(VenueFill)
        case stopAnswer(symbol: String, clientID: String, StopAnswer)
        /// A stop of ours is no longer working at the venue though we did not cancel it (cancelled by hand, expired).
        case stopGone(symbol: String, clientID: String)
        /// Our cancel of a stop is done (or the stop was already gone).
        case stopCancelled(symbol: String, clientID: String)
        /// The stop policy (trailing, break-even, ATR) moves the stop to `price`.
        case moveStop(symbol: String, price: Money)
        /// Close the position at market now (an operator, an opposite decision, a breaker).
        case flatten(symbol: String, reason: String)
        /// What the venue holds for `symbol`: its signed quantity (positive long) and the client ids
        /// of the working stops it lists. The venue wins.
        case venueSnapshot(symbol: String, quantity: Money, stops: Set<String>)
        /// Time passes: retries, timeouts.
        case tick
    }

    /// What the kernel asks the executor to do at the venue.
    public enum Action: Sendable, Hashable {
        case sendOrder(OrderRequest)
        case queryOrder(clientOrderID: String, symbol: String)
        case placeStop(symbol: String, StopOrder)
        case cancelStop(symbol: String, clientID: String)
        /// A reduce-only market order for the whole position.
        case flatten(symbol: String, clientOrderID: String, side: OrderSide, quantity: Money, reason: String)
        /// A reduce-only market order for part of the position (its entry filled larger than the risk
        /// budget allows at an allowed stop: ``FillCheck``).
        case reduce(symbol: String, clientOrderID: String, side: OrderSide, quantity: Money, reason: String)
        /// Ask the venue for the symbol's position and working stops (answered by ``Event/venueSnapshot(symbol:quantity:stops:)``).
        case reconcile(symbol: String)
        case alert(AlertSeverity, kind: String, symbol: String, message: String)
        /// The position's quantity or average changed (it opened, grew, shrank): record it.
        case positionChanged(symbol: String)
        /// The position is flat: record the trade with this exit reason.
        case positionClosed(symbol: String, reason: String)
    }

    /// An order the kernel has seen, and where it stands.
    public struct OrderState: Sendable, Hashable {
        public var request: OrderRequest
        public private(set) var status: OrderStatus
        public var filled: Money = 0
        /// Since when the outcome is unknown, and when to query it next.
        var unknownSince: Date?
        var queryAt: Date?
        var queries = 0

        /// Moves the status forward; a status behind the current one is ignored.
        mutating func advance(to next: OrderStatus) -> Bool {
            guard next.rank > status.rank || (status == .sent && next == .unknown) else { return false }
            status = next
            return true
        }
    }

    /// A position as its fills build it, and its protection.
    public struct PositionState: Sendable, Hashable {
        public var symbol: String
        public var side: PositionSide
        public var quantity: Money = 0
        public var averagePrice: Money = 0
        /// The stop level the position should have.
        public var stopPrice: Money?
        /// The target the position should have (checked against the fill), for the executor to place.
        public var targetPrice: Money?
        /// The entry's own stop and target, and the rules they are held to against the fill.
        var askedStop: Money?
        var askedTarget: Money?
        var check: FillCheck?
        /// A reduce order in flight (``Action/reduce(symbol:clientOrderID:side:quantity:reason:)``).
        public var reducing: String?
        /// Stops the venue accepted and we have not cancelled (two while one is being replaced).
        public var working: [StopOrder] = []
        /// A stop sent whose answer is awaited (or was lost).
        public var placing: StopOrder?
        /// Every stop sent for this position: the venue's list of working stops says which still work.
        var issued: [StopOrder] = []
        var placingUnknown = false
        /// Cancels sent and not yet confirmed.
        var cancelling: Set<String> = []
        /// Since when no working stop covers the whole quantity.
        public var unprotectedSince: Date?
        var attempts = 0
        var retryAt: Date?
        /// A flatten order in flight, and why.
        public var flattening: String?
        /// Why the position is being flattened; set from the first flatten until it is flat (retries included).
        public var flattenReason: String?
        var flattenRetryAt: Date?
        /// A stop of ours has triggered: its market order closes the position.
        var stopTriggered: String?
        /// When the venue's view of it was last asked for, and last seen.
        var checkedAt: Date?
        /// The decision that opened it (stable ids for its stops and flattens).
        public var decisionID: String

        /// The side of an order that closes it.
        public var closingSide: OrderSide { side == .long ? .sell : .buy }

        init(symbol: String, side: PositionSide, stopPrice: Money? = nil, decisionID: String) {
            self.symbol = symbol
            self.side = side
            self.stopPrice = stopPrice
            self.decisionID = decisionID
        }

        /// The position an entry opens.
        init(entry request: OrderRequest) {
            self.init(
                symbol: request.symbol,
                side: request.side == .buy ? .long : .short,
                stopPrice: request.stopLoss,
                decisionID: request.decisionID
            )
            targetPrice = request.takeProfit
            askedStop = request.stopLoss
            askedTarget = request.takeProfit
            check = request.check
        }

        /// Whether a working stop covers exactly the position's quantity.
        public var isProtected: Bool { working.contains { $0.quantity == quantity } }

        /// Whether the invariant holds now: flat, protected, or being flattened.
        public var isSafe: Bool { quantity == 0 || isProtected || flattenReason != nil || stopTriggered != nil }
    }

    public let settings: Settings
    /// Orders in play: not final, or of a position still open. Scanned by symbol, so kept small.
    public private(set) var orders: [String: OrderState] = [:]
    /// Final orders of positions that are gone: looked up by id (a late fill, a decision seen again),
    /// never scanned, so a long run does not slow down as its history grows.
    var retired: [String: OrderState] = [:]
    public private(set) var positions: [String: PositionState] = [:]
    /// Trade ids seen: a fill seen again changes nothing.
    public private(set) var seenTrades: Set<String> = []
    /// A venue quantity that differs from the kernel's, and since when it has.
    struct Mismatch: Sendable, Hashable {
        var quantity: Money
        var since: Date
    }
    var mismatches: [String: Mismatch] = [:]

    /// Makes the client ids of stops and flattens unique to this kernel's life (the executor passes
    /// its start time), so ids never repeat across restarts.
    public let epoch: String
    /// Stops and flattens issued per decision: ids never repeat, even for a position opened again.
    var issuedPerDecision: [String: Int] = [:]

    /// A `ExecutionKernel` with the fields given.
    public init(settings: Settings = Settings(), epoch: String = "0") {
        self.settings = settings
        self.epoch = epoch
    }

    /// The next client id for a stop or flatten of the position.
    mutating func nextID(_ position: PositionState, _ kind: String, purpose: OrderPurpose) -> String {
        let count = issuedPerDecision[position.decisionID, default: 0] + 1
        issuedPerDecision[position.decisionID] = count
        return ClientOrderID.make(decisionID: "\(position.decisionID)#\(epoch)#\(kind)\(count)", purpose: purpose)
    }

    // MARK: Events

    /// Takes in one event at `now`; returns what to do, in order.
    public mutating func handle(_ event: Event, now: Date) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .submit(let request):
            // one order per decision
            guard orders[request.clientOrderID] == nil, retired[request.clientOrderID] == nil else { break }
            if request.purpose != .entry, let position = positions[request.symbol],
                position.flattening != nil || position.stopTriggered != nil
                    || orders.values.contains(where: {
                        $0.request.symbol == request.symbol && $0.request.purpose == .exit && !$0.status.isFinal
                    })
            {
                break  // already closing: a second exit would find nothing to reduce
            }
            if request.purpose == .entry, let position = positions[request.symbol],
                position.decisionID != request.decisionID,
                isClosing(request.symbol)
            {
                break  // an add to a position being closed would outlive it
            }
            orders[request.clientOrderID] = OrderState(request: request, status: .sent)
            if request.purpose == .entry, positions[request.symbol] == nil {
                positions[request.symbol] = PositionState(entry: request)
            }
            actions.append(.sendOrder(request))
        case .orderStatus(let id, let status):
            guard var order = orders[id] else { break }
            if let status {
                if order.advance(to: status) {
                    order.unknownSince = nil
                    order.queryAt = nil
                }
            } else if order.status == .unknown || order.status == .sent {
                // The venue never saw it: it will not fill.
                _ = order.advance(to: .rejected)
            }
            orders[id] = order
            actions += orderSettled(order, now: now)
        case .orderUnknown(let id, _):
            guard var order = orders[id], !order.status.isFinal else { break }
            if order.status == .sent || order.status == .unknown {
                _ = order.advance(to: .unknown)
            }
            order.unknownSince = order.unknownSince ?? now
            order.queryAt = now.addingTimeInterval(settings.retry.ceiling(attempt: order.queries).timeInterval)
            order.queries += 1
            orders[id] = order
        case .fill(let fill):
            guard seenTrades.insert(fill.tradeID).inserted else { break }
            actions += apply(fill, now: now)
        case .stopAnswer(let symbol, let clientID, let answer):
            actions += stopAnswered(symbol: symbol, clientID: clientID, answer, now: now)
        case .stopGone(let symbol, let clientID):
            guard var position = positions[symbol] else { break }
            let wasWorking = position.working.contains { $0.clientID == clientID }
            position.working.removeAll { $0.clientID == clientID }
            if position.placing?.clientID == clientID { position.placing = nil }
            positions[symbol] = position
            if wasWorking, position.quantity > 0 {
                actions.append(
                    .alert(
                        .warning,
                        kind: "stop_gone",
                        symbol: symbol,
                        message: "the stop \(clientID) on \(symbol) is gone at the venue; placing it again"
                    )
                )
            }
            actions += protect(symbol, now: now)
        case .stopCancelled(let symbol, let clientID):
            guard var position = positions[symbol] else { break }
            position.cancelling.remove(clientID)
            position.working.removeAll { $0.clientID == clientID }
            positions[symbol] = position
            actions += protect(symbol, now: now)
        case .moveStop(let symbol, let price):
            guard var position = positions[symbol], position.quantity > 0, position.stopPrice != price else { break }
            position.stopPrice = price
            positions[symbol] = position
            actions += protect(symbol, now: now)
        case .flatten(let symbol, let reason):
            actions += flatten(symbol, reason: reason, now: now)
        case .venueSnapshot(let symbol, let quantity, let stops):
            actions += reconcile(symbol, quantity: quantity, stops: stops, now: now)
        case .tick:
            actions += tick(now: now)
        }
        return actions
    }

    // MARK: Orders

    /// What an order's new status means: an exit or flatten that ended without closing is tried again.
    mutating func orderSettled(_ order: OrderState, now: Date) -> [Action] {
        guard order.status.isFinal else { return [] }
        guard var position = positions[order.request.symbol] else {
            retire(order.request.symbol)
            return []
        }
        if position.reducing == order.request.clientOrderID {
            position.reducing = nil
            positions[order.request.symbol] = position
            return []
        }
        if position.flattening == order.request.clientOrderID, position.quantity > 0,
            order.filled < order.request.quantity
        {
            // The flatten ended without closing everything (refused, expired): ask the venue, and try again.
            // The flatten stays in progress (flattenReason) and is sent again after a backoff.
            position.flattening = nil
            position.flattenRetryAt = now.addingTimeInterval(
                settings.retry.ceiling(attempt: position.attempts).timeInterval
            )
            position.attempts += 1
            positions[order.request.symbol] = position
            return [.reconcile(symbol: order.request.symbol)]
        }
        if order.request.purpose == .entry, position.quantity == 0, order.filled == 0 {
            // An entry that never filled: no position.
            positions[order.request.symbol] = nil
            retire(order.request.symbol)
        }
        return []
    }

    // MARK: Fills

    mutating func apply(_ fill: VenueFill, now: Date) -> [Action] {
        var actions: [Action] = []
        if let late = retired.removeValue(forKey: fill.clientOrderID) { orders[fill.clientOrderID] = late }
        if var order = orders[fill.clientOrderID] {
            order.filled += fill.quantity
            _ = order.advance(to: order.filled >= order.request.quantity ? .filled : .partiallyFilled)
            orders[fill.clientOrderID] = order
        }
        let side: PositionSide = fill.side == .buy ? .long : .short
        if positions[fill.symbol] == nil, let order = orders[fill.clientOrderID], order.request.purpose == .entry {
            // A late fill of an entry given up for dead (its answer said it never filled): the position opens after all.
            positions[fill.symbol] = PositionState(entry: order.request)
        }
        guard var position = positions[fill.symbol] else {
            // A fill with no position we know of (opened at the venue by hand): the venue's snapshot decides.
            return [.reconcile(symbol: fill.symbol)]
        }
        if position.quantity == 0 { position.side = side }
        var cut: FillCheck.Verdict?
        if position.side == side {
            let quantity = position.quantity + fill.quantity
            position.averagePrice =
                position.quantity == 0
                ? fill.price : (position.averagePrice * position.quantity + fill.price * fill.quantity) / quantity
            position.quantity = quantity
            if let check = position.check, let stop = position.askedStop,
                let request = orders[fill.clientOrderID]?.request, request.purpose == .entry,
                request.decisionID == position.decisionID
            {
                // The entry's stop and target, judged again against where it really filled. (An add, an
                // entry of another decision, keeps the stop the position has now: the gateway sized the
                // add so that the whole position's loss at it stays within the budget.)
                let verdict = check.verdict(
                    side: position.side,
                    average: position.averagePrice,
                    quantity: quantity,
                    stop: stop,
                    target: position.askedTarget
                )
                position.stopPrice = verdict.stop
                position.targetPrice = verdict.target
                if verdict.quantity < quantity { cut = verdict }
            }
        } else {
            position.quantity = max(0, position.quantity - fill.quantity)
            if position.working.contains(where: { $0.clientID == fill.clientOrderID }) {
                position.stopTriggered = fill.clientOrderID
                position.working.removeAll { $0.clientID == fill.clientOrderID }
            }
        }
        positions[fill.symbol] = position
        if position.quantity == 0 {
            let reason = position.flattenReason ?? (position.stopTriggered != nil ? "stop_loss" : reasonFor(fill))
            actions.append(.positionClosed(symbol: fill.symbol, reason: reason))
            // Whatever protection is left has nothing to protect.
            for stop in position.working { actions.append(.cancelStop(symbol: fill.symbol, clientID: stop.clientID)) }
            positions[fill.symbol] = nil
            // A reduce-only order still open (an exit for more than was left) has nothing to reduce: the venue expires it.
            for (id, order) in orders
            where order.request.symbol == fill.symbol && order.request.reduceOnly && !order.status.isFinal {
                _ = orders[id]!.advance(to: order.filled > 0 ? .filled : .expired)
            }
            retire(fill.symbol)
            return actions
        }
        actions.append(.positionChanged(symbol: fill.symbol))
        if position.unprotectedSince == nil, !position.isProtected { positions[fill.symbol]!.unprotectedSince = now }
        actions += protect(fill.symbol, now: now)
        if let cut { actions += reduce(fill.symbol, to: cut, now: now) }
        return actions
    }

    /// Cuts a position to the size its risk budget allows (all of it when that is below the venue's minimum).
    mutating func reduce(_ symbol: String, to verdict: FillCheck.Verdict, now: Date) -> [Action] {
        guard var position = positions[symbol], position.reducing == nil, let reason = verdict.reason else { return [] }
        let alert = Action.alert(
            .warning,
            kind: reason,
            symbol: symbol,
            message:
                "the entry on \(symbol) filled at \(position.averagePrice): no stop within the allowed distance keeps the loss within the "
                + "risk budget at \(position.quantity); \(verdict.quantity == 0 ? "closing it" : "cutting it to \(verdict.quantity)")"
        )
        guard verdict.quantity > 0 else { return [alert] + flatten(symbol, reason: reason, now: now) }
        let id = nextID(position, "reduce", purpose: .exit)
        let quantity = position.quantity - verdict.quantity
        position.reducing = id
        positions[symbol] = position
        let request = OrderRequest(
            clientOrderID: id,
            decisionID: position.decisionID,
            symbol: symbol,
            side: position.closingSide,
            quantity: quantity,
            leverage: 1,
            purpose: .exit
        )
        orders[id] = OrderState(request: request, status: .sent)
        return [
            alert,
            .reduce(symbol: symbol, clientOrderID: id, side: position.closingSide, quantity: quantity, reason: reason),
        ]
    }

    func reasonFor(_ fill: VenueFill) -> String {
        guard let order = orders[fill.clientOrderID] else { return "closed_at_venue" }
        return order.request.purpose == .exit ? "exit" : "closed_at_venue"
    }

    /// The symbol's final orders leave the orders in play once it has no position.
    mutating func retire(_ symbol: String) {
        for (id, order) in orders where order.request.symbol == symbol && order.status.isFinal {
            retired[id] = orders.removeValue(forKey: id)
        }
    }

    // MARK: Protection

    /// Brings the symbol's protection to its quantity: places a stop of the right size when none is
    /// working or being placed, and cancels the others once one is. A position with no stop level, or
    /// being flattened, is left to that.
    mutating func protect(_ symbol: String, now: Date) -> [Action] {
        guard var position = positions[symbol] else { return [] }
        var actions: [Action] = []
        defer { positions[symbol] = position }
        guard position.quantity > 0, position.flattening == nil, position.stopTriggered == nil else { return actions }
        if position.isProtected {
            position.unprotectedSince = nil
        } else if position.unprotectedSince == nil {
            position.unprotectedSince = now
        }
        guard let level = position.stopPrice else {
            if position.unprotectedSince.map({ now.timeIntervalSince($0) >= settings.stopProtectionTimeout }) ?? false {
                positions[symbol] = position
                let flattened = flatten(symbol, reason: "no_stop", now: now)
                position = positions[symbol]!
                return flattened
            }
            return actions
        }
        let wanted = { (stop: StopOrder) in stop.quantity == position.quantity && stop.trigger == level }
        if let current = position.working.first(where: wanted) {
            // The right stop works: every other one goes (make before break).
            for stop in position.working
            where stop.clientID != current.clientID && !position.cancelling.contains(stop.clientID) {
                position.cancelling.insert(stop.clientID)
                actions.append(.cancelStop(symbol: symbol, clientID: stop.clientID))
            }
            return actions
        }
        guard position.placing == nil, position.retryAt.map({ now >= $0 }) ?? true else { return actions }
        let stop = StopOrder(
            clientID: nextID(position, "stop", purpose: .stopLoss),
            side: position.closingSide,
            quantity: position.quantity,
            trigger: level
        )
        position.placing = stop
        position.issued.append(stop)
        position.placingUnknown = false
        actions.append(.placeStop(symbol: symbol, stop))
        return actions
    }

    mutating func stopAnswered(symbol: String, clientID: String, _ answer: StopAnswer, now: Date) -> [Action] {
        guard var position = positions[symbol] else {
            // The position is gone: a stop that was placed has nothing to protect.
            if case .accepted = answer { return [.cancelStop(symbol: symbol, clientID: clientID)] }
            return []
        }
        guard let placing = position.placing, placing.clientID == clientID else {
            if case .accepted = answer, !position.working.contains(where: { $0.clientID == clientID }) {
                return [.cancelStop(symbol: symbol, clientID: clientID)]  // a stale stop: not ours any more
            }
            return []
        }
        switch answer {
        case .accepted:
            position.placing = nil
            position.working.append(placing)
            position.attempts = 0
            position.retryAt = nil
            positions[symbol] = position
            if position.quantity == 0 || position.flattening != nil {
                return [.cancelStop(symbol: symbol, clientID: clientID)]
            }
            return protect(symbol, now: now)
        case .wouldTrigger(let message):
            position.placing = nil
            positions[symbol] = position
            var actions: [Action] = [
                .alert(
                    .critical,
                    kind: "stop_refused",
                    symbol: symbol,
                    message:
                        "the venue refused the stop at \(placing.trigger) on \(symbol) (it would trigger at once: \(message)); flattening at market"
                )
            ]
            actions += flatten(symbol, reason: "stop_refused", now: now)
            return actions
        case .failed(let message):
            position.placing = nil
            position.retryAt = now.addingTimeInterval(settings.retry.ceiling(attempt: position.attempts).timeInterval)
            position.attempts += 1
            positions[symbol] = position
            if position.attempts == 1 {
                return [
                    .alert(
                        .warning,
                        kind: "stop_failed",
                        symbol: symbol,
                        message: "placing the stop on \(symbol) failed (\(message)); retrying"
                    )
                ]
            }
            return []
        case .unknown:
            // It may be working: ask the venue which stops it lists before placing another.
            position.placingUnknown = true
            position.retryAt = now.addingTimeInterval(settings.retry.ceiling(attempt: position.attempts).timeInterval)
            position.attempts += 1
            positions[symbol] = position
            return [.reconcile(symbol: symbol)]
        }
    }

    mutating func flatten(_ symbol: String, reason: String, now: Date) -> [Action] {
        guard var position = positions[symbol], position.quantity > 0, position.flattening == nil,
            position.stopTriggered == nil
        else { return [] }
        if position.flattenReason != nil, reason != position.flattenReason, let retry = position.flattenRetryAt,
            now < retry
        {
            return []
        }
        let id = nextID(position, "flatten", purpose: .exit)
        position.flattening = id
        position.flattenReason = position.flattenReason ?? reason
        position.flattenRetryAt = nil
        positions[symbol] = position
        let request = OrderRequest(
            clientOrderID: id,
            decisionID: position.decisionID,
            symbol: symbol,
            side: position.closingSide,
            quantity: position.quantity,
            leverage: 1,
            purpose: .exit
        )
        orders[id] = OrderState(request: request, status: .sent)
        var actions: [Action] = [
            .flatten(
                symbol: symbol,
                clientOrderID: id,
                side: position.closingSide,
                quantity: position.quantity,
                reason: reason
            )
        ]
        if reason == "no_stop" || reason == "stop_timeout" {
            actions.insert(
                .alert(
                    .critical,
                    kind: "stop_timeout",
                    symbol: symbol,
                    message: "\(symbol) had no stop for \(Int(settings.stopProtectionTimeout)) s; flattening at market"
                ),
                at: 0
            )
        }
        return actions
    }

    // MARK: The venue's view

    mutating func reconcile(_ symbol: String, quantity signed: Money, stops: Set<String>, now: Date) -> [Action] {
        // Orders of the symbol whose outcome stayed unknown past the timeout: the venue's view settles them.
        for (id, order) in orders where order.request.symbol == symbol && order.status == .unknown {
            if let since = order.unknownSince, now.timeIntervalSince(since) >= settings.orderUnknownTimeout {
                var settled = order
                _ = settled.advance(to: settled.filled > 0 ? .filled : .expired)
                orders[id] = settled
            }
        }
        let quantity = signed.magnitude
        guard var position = positions[symbol] else {
            guard quantity > 0, persists(symbol, venue: signed, now: now) else { return [] }
            // The venue holds a position the kernel does not know: track it; it is protected once a level is set.
            var adopted = PositionState(
                symbol: symbol,
                side: signed > 0 ? .long : .short,
                decisionID: "adopted:\(symbol)"
            )
            adopted.quantity = quantity
            adopted.averagePrice = 0
            adopted.unprotectedSince = now
            positions[symbol] = adopted
            return [
                .alert(
                    .critical,
                    kind: "unknown_position",
                    symbol: symbol,
                    message: "the venue holds \(signed) \(symbol) that the executor did not open"
                ),
                .positionChanged(symbol: symbol),
            ] + protect(symbol, now: now)
        }
        // The venue's list of working stops is the truth about the stops this position was given.
        position.working = position.issued.filter {
            stops.contains($0.clientID) && !position.cancelling.contains($0.clientID)
        }
        if let placing = position.placing, position.placingUnknown {
            position.placing = nil
            position.placingUnknown = false
            if stops.contains(placing.clientID) { position.working.append(placing) }
        }
        position.working.removeAll { $0.clientID == position.placing?.clientID }
        position.cancelling.formIntersection(stops)
        positions[symbol] = position
        var actions: [Action] = []
        // Fills on their way can make a snapshot newer or older than the kernel's count: only a
        // difference that lasts is the venue's word.
        let mine = position.side == .long ? position.quantity : -position.quantity
        if signed == mine {
            mismatches[symbol] = nil
            if position.stopTriggered != nil, quantity > 0 { positions[symbol]!.stopTriggered = nil }
        } else if persists(symbol, venue: signed, now: now) {
            if quantity == 0 {
                guard position.quantity > 0 else { return [] }  // not filled yet: its entry is on its way
                let reason = position.flattenReason ?? (position.stopTriggered != nil ? "stop_loss" : "closed_at_venue")
                positions[symbol] = nil
                retire(symbol)
                return [.positionClosed(symbol: symbol, reason: reason)]
                    + position.working.map { .cancelStop(symbol: symbol, clientID: $0.clientID) }
            }
            positions[symbol]!.quantity = quantity
            positions[symbol]!.side = signed > 0 ? .long : .short
            positions[symbol]!.stopTriggered = nil
            actions.append(.positionChanged(symbol: symbol))
        } else if quantity == 0 {
            // Flat at the venue, the fill that did it still on its way: there is nothing there to protect
            // (a reduce-only stop would be refused), and the venue may have cancelled our stop with it.
            return actions
        }
        return actions + protect(symbol, now: now)
    }

    /// Whether the venue's quantity for `symbol` has differed from the kernel's, the same way, for
    /// at least ``Settings/protectionCheckInterval``.
    mutating func persists(_ symbol: String, venue quantity: Money, now: Date) -> Bool {
        guard let seen = mismatches[symbol], seen.quantity == quantity else {
            mismatches[symbol] = Mismatch(quantity: quantity, since: now)
            return false
        }
        guard now.timeIntervalSince(seen.since) >= settings.protectionCheckInterval else { return false }
        mismatches[symbol] = nil
        return true
    }

    // MARK: Time

    mutating func tick(now: Date) -> [Action] {
        var actions: [Action] = []
        for id in orders.keys.sorted() {
            guard let order = orders[id], order.status == .unknown, let at = order.queryAt, now >= at else { continue }
            orders[id]!.queryAt = nil
            if let since = order.unknownSince, now.timeIntervalSince(since) >= settings.orderUnknownTimeout {
                actions.append(.reconcile(symbol: order.request.symbol))
            } else {
                actions.append(.queryOrder(clientOrderID: id, symbol: order.request.symbol))
            }
        }
        for symbol in positions.keys.sorted() {
            guard let position = positions[symbol], position.quantity > 0 else { continue }
            if position.checkedAt.map({ now.timeIntervalSince($0) >= settings.protectionCheckInterval }) ?? true {
                positions[symbol]!.checkedAt = now
                actions.append(.reconcile(symbol: symbol))
            }
            if position.flattening == nil, position.stopTriggered == nil, let since = position.unprotectedSince,
                now.timeIntervalSince(since) >= settings.stopProtectionTimeout, !position.isProtected
            {
                actions += flatten(symbol, reason: "stop_timeout", now: now)
            } else if position.flattening == nil, position.stopTriggered == nil, let retry = position.flattenRetryAt,
                now >= retry
            {
                actions += flatten(symbol, reason: position.flattenReason ?? "flatten", now: now)
            } else {
                actions += protect(symbol, now: now)
            }
        }
        return actions
    }

    // MARK: Reading

    /// The order with that client id, in play or retired.
    public func order(_ clientOrderID: String) -> OrderState? { orders[clientOrderID] ?? retired[clientOrderID] }

    /// Positions that break the invariant at `now`: open, not protected, not being flattened, for
    /// longer than the timeout.
    public func exposed(now: Date) -> [String] {
        positions.values.filter { position in
            !position.isSafe
                && (position.unprotectedSince.map { now.timeIntervalSince($0) > settings.stopProtectionTimeout } ?? true)
        }.map(\.symbol).sorted()
    }

    /// Whether an order of ours on the symbol (an entry, an exit, a reduce, a flatten) is on its way.
    public func hasOrderInFlight(_ symbol: String) -> Bool {
        orders.values.contains { $0.request.symbol == symbol && !$0.status.isFinal }
    }

    /// Whether an exit (a decision's, or a flatten) is on its way for the symbol.
    public func isClosing(_ symbol: String) -> Bool {
        guard let position = positions[symbol] else { return false }
        return position.flattening != nil || position.stopTriggered != nil
            || orders.values.contains {
                $0.request.symbol == symbol && $0.request.purpose == .exit && !$0.status.isFinal
            }
    }

    /// A position the store knew before a restart, tracked again: its stops are those the venue
    /// lists (`stops`); the next snapshot keeps the right one and cancels the others.
    public mutating func restore(
        symbol: String,
        side: PositionSide,
        quantity: Money,
        averagePrice: Money,
        stopPrice: Money?,
        decisionID: String,
        stops: [StopOrder],
        now: Date
    ) {
        var position = PositionState(symbol: symbol, side: side, stopPrice: stopPrice, decisionID: decisionID)
        position.quantity = quantity
        position.averagePrice = averagePrice
        position.issued = stops.filter { $0.side == position.closingSide }
        position.working = position.issued
        if !position.isProtected { position.unprotectedSince = now }
        positions[symbol] = position
    }
}

extension OrderStatus {
    /// How far along its life an order is: a status never moves to a lower rank. UNKNOWN sits beside
    /// SENT; any answer from the venue resolves it.
    public var rank: Int {
        switch self {
        case .intent: 0
        case .sent, .unknown: 1
        case .accepted: 2
        case .partiallyFilled: 3
        case .filled, .canceled, .rejected, .expired: 4
        }
    }
}
