import Foundation
import Testing
import TradingCore

/// The execution kernel, driven through generated hostile sequences by a simulated venue that
/// refuses stops, loses answers, fills in parts, expires, duplicates and reorders its reports, has
/// its stops cancelled by hand and its prices run through stops. After every step: every position
/// at the venue has a stop for its whole quantity or a flatten in progress (or has been unprotected
/// for less than the timeout); one order per decision; a position's close is reported once.
@Suite("ExecutionKernel")
struct ExecutionKernelTests {
    /// A deterministic generator (SplitMix64), so a failing seed replays.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func chance(_ p: Double) -> Bool { Double(next() % 1_000_000) / 1_000_000 < p }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    }

    /// The venue as the kernel cannot see it: what is really there.
    struct HostileVenue {
        var position: Money = 0  // signed
        var stops: [String: ExecutionKernel.StopOrder] = [:]
        var orders: [String: (request: ExecutionKernel.OrderRequest, status: OrderStatus, filled: Money)] = [:]
        var price: Money = 100
        var trades = 0
        /// Reports on their way to the kernel (the venue's event stream), which may come late, twice or out of order.
        var outbox: [ExecutionKernel.Event] = []
        var delivered: [ExecutionKernel.Event] = []
        /// Since when the venue has held a position with no stop covering it.
        var unprotectedSince: Date?
        var opens = 0

        mutating func fill(_ clientID: String, side: OrderSide, quantity: Money, at time: Date) {
            trades += 1
            let before = position
            position += side == .buy ? quantity : -quantity
            if before == 0 && position != 0 { opens += 1 }
            outbox.append(
                .fill(
                    VenueFill(
                        tradeID: "t\(trades)",
                        clientOrderID: clientID,
                        symbol: "BTCUSDT",
                        side: side,
                        price: price,
                        quantity: quantity,
                        fee: 0,
                        time: time
                    )
                )
            )
            if position == 0 {
                // closePosition-like behaviour is not assumed: reduce-only stops with nothing to reduce expire.
                for id in stops.keys.sorted() {
                    stops[id] = nil
                    outbox.append(.stopGone(symbol: "BTCUSDT", clientID: id))
                }
            }
        }

        var isCovered: Bool {
            let size = position.magnitude
            return size == 0 || stops.values.contains { $0.quantity == size && ($0.side == .sell) == (position > 0) }
        }
    }

    struct Outcome {
        var violations: [String] = []
        var steps = 0
        var longestUnprotected: TimeInterval = 0
    }

    /// One generated sequence.
    static func run(seed: UInt64, steps: Int = 80, trace: Bool = false) -> Outcome {
        var random = Random(state: seed)
        var settings = ExecutionKernel.Settings()
        settings.stopProtectionTimeout = 5
        settings.orderUnknownTimeout = 20
        var kernel = ExecutionKernel(settings: settings)
        var venue = HostileVenue()
        var outcome = Outcome()
        var now = Date(timeIntervalSince1970: 1_700_000_000)
        var sentPerDecision: [String: Int] = [:]
        var closes = 0
        var doubleCloses = 0
        var openSinceClose = false
        var decisions: [String] = []
        var actions: [ExecutionKernel.Action] = []

        func carryOut(_ action: ExecutionKernel.Action) {
            if trace { print("  action \(action)") }
            switch action {
            case .sendOrder(let request):
                sentPerDecision[request.clientOrderID, default: 0] += 1
                let roll = random.int(0...99)
                if roll < 8 {
                    venue.outbox.append(.orderStatus(clientOrderID: request.clientOrderID, status: .rejected))
                    return
                }
                if roll < 14 {
                    // Lost before the venue saw it.
                    venue.outbox.append(.orderUnknown(clientOrderID: request.clientOrderID, reason: "timeout"))
                    return
                }
                if request.reduceOnly {
                    let size = venue.position.magnitude
                    guard size > 0, (request.side == .sell) == (venue.position > 0) else {
                        venue.orders[request.clientOrderID] = (request, .rejected, 0)
                        venue.outbox.append(.orderStatus(clientOrderID: request.clientOrderID, status: .rejected))
                        return
                    }
                    let quantity = min(size, request.quantity)
                    venue.fill(request.clientOrderID, side: request.side, quantity: quantity, at: now)
                    venue.orders[request.clientOrderID] = (request, .filled, quantity)
                    venue.outbox.append(.orderStatus(clientOrderID: request.clientOrderID, status: .filled))
                    return
                }
                // An entry: fills whole, in parts, or in part and then expires.
                let parts = random.int(1...3)
                let expires = random.chance(0.2)
                var filled: Money = 0
                for part in 1...parts {
                    let quantity =
                        part == parts && !expires ? request.quantity - filled : request.quantity / Money(parts + 1)
                    guard quantity > 0 else { continue }
                    filled += quantity
                    venue.fill(request.clientOrderID, side: request.side, quantity: quantity, at: now)
                }
                let status: OrderStatus = filled >= request.quantity ? .filled : .expired
                venue.orders[request.clientOrderID] = (request, status, filled)
                if roll < 22 {
                    venue.outbox.append(
                        .orderUnknown(
                            clientOrderID: request.clientOrderID,
                            reason: "answer lost after the order was accepted"
                        )
                    )
                } else {
                    venue.outbox.append(.orderStatus(clientOrderID: request.clientOrderID, status: status))
                }
            case .queryOrder(let id, _):
                if random.chance(0.3) {
                    venue.outbox.append(.orderUnknown(clientOrderID: id, reason: "still unreachable"))
                } else {
                    venue.outbox.append(.orderStatus(clientOrderID: id, status: venue.orders[id]?.status))
                }
            case .placeStop(let symbol, let stop):
                let long = stop.side == .sell
                let crossed = long ? venue.price <= stop.trigger : venue.price >= stop.trigger
                let roll = random.int(0...99)
                if crossed || roll < 5 {
                    venue.outbox.append(
                        .stopAnswer(
                            symbol: symbol,
                            clientID: stop.clientID,
                            .wouldTrigger("-2021 Order would immediately trigger.")
                        )
                    )
                } else if roll < 20 {
                    venue.outbox.append(.stopAnswer(symbol: symbol, clientID: stop.clientID, .failed("HTTP 503")))
                } else if roll < 30 {
                    // Placed, but the answer is lost.
                    venue.stops[stop.clientID] = stop
                    venue.outbox.append(.stopAnswer(symbol: symbol, clientID: stop.clientID, .unknown("timeout")))
                } else if roll < 35 {
                    venue.outbox.append(.stopAnswer(symbol: symbol, clientID: stop.clientID, .unknown("timeout")))
                } else {
                    venue.stops[stop.clientID] = stop
                    venue.outbox.append(.stopAnswer(symbol: symbol, clientID: stop.clientID, .accepted))
                }
            case .cancelStop(let symbol, let id):
                venue.stops[id] = nil
                venue.outbox.append(.stopCancelled(symbol: symbol, clientID: id))
            case .flatten(_, let id, let side, let quantity, _), .reduce(_, let id, let side, let quantity, _):
                carryOut(
                    .sendOrder(
                        ExecutionKernel.OrderRequest(
                            clientOrderID: id,
                            decisionID: id,
                            symbol: "BTCUSDT",
                            side: side,
                            quantity: quantity,
                            leverage: 1,
                            purpose: .exit
                        )
                    )
                )
            case .reconcile(let symbol):
                venue.outbox.append(
                    .venueSnapshot(symbol: symbol, quantity: venue.position, stops: Set(venue.stops.keys))
                )
            case .positionClosed:
                // A close is recorded once: never two without a position in between.
                if !openSinceClose { doubleCloses += 1 }
                openSinceClose = false
                closes += 1
            case .positionChanged:
                openSinceClose = true
            case .alert:
                break
            }
        }

        for step in 0..<steps {
            outcome.steps = step + 1
            now = now.addingTimeInterval(Double(random.int(0...1500)) / 1000)
            // The market moves; a stop it crosses triggers.
            venue.price += Money(random.int(-3...3))
            for (id, stop) in venue.stops.sorted(by: { $0.key < $1.key }) where venue.position != 0 {
                let long = stop.side == .sell
                guard long ? venue.price <= stop.trigger : venue.price >= stop.trigger else { continue }
                venue.stops[id] = nil
                let quantity = min(stop.quantity, venue.position.magnitude)
                if quantity > 0 { venue.fill(id, side: stop.side, quantity: quantity, at: now) }
            }
            // A decision, sometimes one seen before.
            if kernel.positions["BTCUSDT"] == nil, venue.position == 0, random.chance(0.3) {
                let id =
                    decisions.isEmpty || random.chance(0.7)
                    ? "d\(step)" : decisions[random.int(0...(decisions.count - 1))]
                decisions.append(id)
                let long = random.chance(0.5)
                // Some entries are held to the gateway's rules against their fill: a budget that moves
                // the stop, or that no allowed stop meets (the position is then cut or closed).
                let check: FillCheck? =
                    random.chance(0.4)
                    ? FillCheck(
                        minStopFraction: 0.01,
                        maxStopFraction: 0.08,
                        riskBudget: Money(random.int(0...6)),
                        feeRate: 0.0005,
                        minRewardRisk: 1.5,
                        filters: ExchangeFilters(
                            tickSize: 0.01,
                            stepSize: 0.001,
                            minQuantity: 0.01,
                            maxQuantity: 100,
                            minNotional: 0
                        )
                    ) : nil
                let request = ExecutionKernel.OrderRequest(
                    clientOrderID: ClientOrderID.make(decisionID: id, purpose: .entry),
                    decisionID: id,
                    symbol: "BTCUSDT",
                    side: long ? .buy : .sell,
                    quantity: 1,
                    leverage: 3,
                    purpose: .entry,
                    stopLoss: long ? venue.price - 4 : venue.price + 4,
                    check: check
                )
                actions += kernel.handle(.submit(request), now: now)
            }
            // A resize of the open position (copy-trading's add and partial close): an entry of another
            // decision on its side, or a reduce-only exit of part of it. The stop must follow the size.
            if let position = kernel.positions["BTCUSDT"], position.quantity > 0, !kernel.isClosing("BTCUSDT"),
                random.chance(0.15)
            {
                let add = random.chance(0.5)
                let id = "\(add ? "a" : "r")\(step)"
                let quantity = add ? Money(random.int(1...4)) / 4 : position.quantity / 2
                let request = ExecutionKernel.OrderRequest(
                    clientOrderID: ClientOrderID.make(decisionID: id, purpose: add ? .entry : .exit),
                    decisionID: id,
                    symbol: "BTCUSDT",
                    side: add ? (position.side == .long ? .buy : .sell) : position.closingSide,
                    quantity: quantity,
                    leverage: 3,
                    purpose: add ? .entry : .exit,
                    // An add carries the position's stop, as the executor's does.
                    stopLoss: add ? position.stopPrice : nil
                )
                actions += kernel.handle(.submit(request), now: now)
            }
            // The hostile venue: a stop cancelled by hand, an operator flatten, a trailing move.
            if random.chance(0.05), let id = venue.stops.keys.sorted().first {
                venue.stops[id] = nil
                if random.chance(0.5) { venue.outbox.append(.stopGone(symbol: "BTCUSDT", clientID: id)) }
            }
            if random.chance(0.03) {
                actions += kernel.handle(.flatten(symbol: "BTCUSDT", reason: "operator"), now: now)
            }
            if random.chance(0.1), let position = kernel.positions["BTCUSDT"], let stop = position.stopPrice {
                actions += kernel.handle(
                    .moveStop(symbol: "BTCUSDT", price: position.side == .long ? stop + 1 : stop - 1),
                    now: now
                )
            }
            if random.chance(0.15) {
                actions += kernel.handle(
                    .venueSnapshot(symbol: "BTCUSDT", quantity: venue.position, stops: Set(venue.stops.keys)),
                    now: now
                )
            }
            actions += kernel.handle(.tick, now: now)
            // Carry out, then deliver the venue's reports: some twice, some out of order, some held back.
            var rounds = 0
            while (!actions.isEmpty || !venue.outbox.isEmpty) && rounds < 20 {
                rounds += 1
                let batch = actions
                actions = []
                for action in batch { carryOut(action) }
                var reports = venue.outbox
                venue.outbox = []
                if reports.count > 1, random.chance(0.3) { reports.swapAt(0, reports.count - 1) }
                for report in reports {
                    if random.chance(0.1) {
                        venue.outbox.append(report)  // late
                        continue
                    }
                    if trace { print("  event \(report)") }
                    actions += kernel.handle(report, now: now)
                    venue.delivered.append(report)
                    // duplicated
                    if case .fill = report, random.chance(0.2) { actions += kernel.handle(report, now: now) }
                }
                if rounds == 19 { actions += kernel.handle(.tick, now: now) }
            }
            if trace {
                print(
                    "step \(step) t=\(now.timeIntervalSince1970) venue \(venue.position) stops \(venue.stops.values.map { ($0.clientID.suffix(4), $0.quantity, $0.trigger) }) kernel \(String(describing: kernel.positions["BTCUSDT"]))"
                )
            }
            // The invariant, at the venue.
            if venue.isCovered
                || kernel.positions["BTCUSDT"].map({ $0.flattenReason != nil || $0.flattening != nil }) == true
            {
                venue.unprotectedSince = nil
            } else {
                venue.unprotectedSince = venue.unprotectedSince ?? now
                let gap = now.timeIntervalSince(venue.unprotectedSince!)
                outcome.longestUnprotected = max(outcome.longestUnprotected, gap)
                // The timeout, plus one step's time for the tick that notices it.
                if gap > settings.stopProtectionTimeout + 1.5, outcome.violations.isEmpty {
                    outcome.violations.append(
                        "seed \(seed) step \(step): \(venue.position) held without a stop for \(gap) s"
                    )
                }
            }
        }
        for (id, count) in sentPerDecision where count > 1 {
            outcome.violations.append("seed \(seed): order \(id) sent \(count) times")
        }
        if doubleCloses > 0 {
            outcome.violations.append("seed \(seed): \(doubleCloses) closes recorded twice (of \(closes))")
        }
        return outcome
    }

    @Test(
        "thousands of hostile sequences: never a position without a stop past the timeout, one order per decision, one close per position"
    )
    func invariantUnderFaults() {
        var violations: [String] = []
        var longest: TimeInterval = 0
        if let seed = ProcessInfo.processInfo.environment["KERNEL_TRACE_SEED"].flatMap(UInt64.init) {
            _ = Self.run(seed: seed, trace: true)
        }
        for seed in 1...3_000 {
            let outcome = Self.run(seed: UInt64(seed))
            violations += outcome.violations
            longest = max(longest, outcome.longestUnprotected)
        }
        #expect(violations.isEmpty, "\(violations.prefix(10))")
        #expect(longest <= 6.5)
    }

    // MARK: The cases one by one

    static let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    static func entry(_ decision: String = "d1", stop: Money = 98) -> ExecutionKernel.OrderRequest {
        ExecutionKernel.OrderRequest(
            clientOrderID: ClientOrderID.make(decisionID: decision, purpose: .entry),
            decisionID: decision,
            symbol: "BTCUSDT",
            side: .buy,
            quantity: 1,
            leverage: 3,
            purpose: .entry,
            stopLoss: stop
        )
    }

    static func fill(
        _ id: String,
        order: String,
        side: OrderSide = .buy,
        quantity: Money = 1,
        price: Money = 100
    ) -> VenueFill {
        VenueFill(
            tradeID: id,
            clientOrderID: order,
            symbol: "BTCUSDT",
            side: side,
            price: price,
            quantity: quantity,
            fee: 0,
            time: t0
        )
    }

    static func placed(_ actions: [ExecutionKernel.Action]) -> [ExecutionKernel.StopOrder] {
        actions.compactMap { if case .placeStop(_, let stop) = $0 { stop } else { nil } }
    }

    /// A kernel holding a long of 1 BTCUSDT whose stop at 98 the venue accepted, and that stop.
    static func protectedPosition() -> (ExecutionKernel, ExecutionKernel.StopOrder) {
        var kernel = ExecutionKernel()
        let request = entry()
        _ = kernel.handle(.submit(request), now: t0)
        let stop = placed(kernel.handle(.fill(fill("1", order: request.clientOrderID)), now: t0))[0]
        _ = kernel.handle(.stopAnswer(symbol: "BTCUSDT", clientID: stop.clientID, .accepted), now: t0)
        return (kernel, stop)
    }

    @Test("a decision is sent once; the same decision again sends nothing")
    func oneOrderPerDecision() {
        var kernel = ExecutionKernel()
        #expect(kernel.handle(.submit(Self.entry()), now: Self.t0).count == 1)
        #expect(kernel.handle(.submit(Self.entry()), now: Self.t0).isEmpty)
    }

    @Test(
        "a stop refused because it would trigger at once: flatten at market, reduce-only, stop_refused, critical alert"
    )
    func stopRefused() {
        var kernel = ExecutionKernel()
        let request = Self.entry()
        _ = kernel.handle(.submit(request), now: Self.t0)
        let stop = try! #require(
            Self.placed(kernel.handle(.fill(Self.fill("1", order: request.clientOrderID)), now: Self.t0)).first
        )
        #expect(stop.quantity == 1 && stop.trigger == 98 && stop.side == .sell)
        let actions = kernel.handle(
            .stopAnswer(symbol: "BTCUSDT", clientID: stop.clientID, .wouldTrigger("-2021")),
            now: Self.t0
        )
        #expect(actions.contains { if case .alert(.critical, "stop_refused", _, _) = $0 { true } else { false } })
        let flatten = actions.compactMap {
            if case .flatten(_, let id, let side, let quantity, let reason) = $0 {
                (id, side, quantity, reason)
            } else {
                nil
            }
        }
        #expect(flatten.count == 1 && flatten[0].1 == .sell && flatten[0].2 == 1 && flatten[0].3 == "stop_refused")
        let closed = kernel.handle(.fill(Self.fill("2", order: flatten[0].0, side: .sell)), now: Self.t0)
        #expect(closed.contains(.positionClosed(symbol: "BTCUSDT", reason: "stop_refused")))
    }

    @Test(
        "an entry that fills in part and then expires: the stop covers the filled quantity, and is resized when it changes"
    )
    func partialFillThenExpiry() {
        var kernel = ExecutionKernel()
        let request = Self.entry()
        _ = kernel.handle(.submit(request), now: Self.t0)
        let first = try! #require(
            Self.placed(kernel.handle(.fill(Self.fill("1", order: request.clientOrderID, quantity: 0.4)), now: Self.t0))
                .first
        )
        #expect(first.quantity == 0.4)
        _ = kernel.handle(.stopAnswer(symbol: "BTCUSDT", clientID: first.clientID, .accepted), now: Self.t0)
        #expect(
            kernel.handle(.orderStatus(clientOrderID: request.clientOrderID, status: .expired), now: Self.t0).isEmpty
        )
        #expect(kernel.positions["BTCUSDT"]?.isProtected == true)
        // A late second fill (the venue reports it after the expiry): the new stop first, then the old one goes.
        let second = try! #require(
            Self.placed(kernel.handle(.fill(Self.fill("2", order: request.clientOrderID, quantity: 0.2)), now: Self.t0))
                .first
        )
        #expect(second.quantity == 0.6)
        #expect(kernel.positions["BTCUSDT"]?.working.map(\.clientID) == [first.clientID])
        let after = kernel.handle(.stopAnswer(symbol: "BTCUSDT", clientID: second.clientID, .accepted), now: Self.t0)
        #expect(after == [.cancelStop(symbol: "BTCUSDT", clientID: first.clientID)])
    }

    @Test("moving a stop places the new one before it cancels the old one")
    func makeBeforeBreak() {
        var (kernel, _) = Self.protectedPosition()
        let moved = kernel.handle(.moveStop(symbol: "BTCUSDT", price: 99), now: Self.t0)
        #expect(Self.placed(moved).map(\.trigger) == [99])
        #expect(!moved.contains { if case .cancelStop = $0 { true } else { false } })
        #expect(kernel.positions["BTCUSDT"]?.isProtected == true)
    }

    @Test("a fill seen twice changes nothing")
    func duplicateFill() {
        var kernel = ExecutionKernel()
        let request = Self.entry()
        _ = kernel.handle(.submit(request), now: Self.t0)
        _ = kernel.handle(.fill(Self.fill("1", order: request.clientOrderID, quantity: 0.5)), now: Self.t0)
        #expect(kernel.handle(.fill(Self.fill("1", order: request.clientOrderID, quantity: 0.5)), now: Self.t0).isEmpty)
        #expect(kernel.positions["BTCUSDT"]?.quantity == 0.5)
    }

    @Test("a stop that keeps failing is retried with backoff, then the position is flattened at the timeout")
    func stopTimeout() {
        var kernel = ExecutionKernel()
        let request = Self.entry()
        _ = kernel.handle(.submit(request), now: Self.t0)
        var stop = Self.placed(kernel.handle(.fill(Self.fill("1", order: request.clientOrderID)), now: Self.t0))[0]
        var attempts = 1
        var time = Self.t0
        var flattened: String?
        while flattened == nil, time < Self.t0.addingTimeInterval(10) {
            _ = kernel.handle(.stopAnswer(symbol: "BTCUSDT", clientID: stop.clientID, .failed("HTTP 503")), now: time)
            time = time.addingTimeInterval(0.5)
            for action in kernel.handle(.tick, now: time) {
                if case .placeStop(_, let next) = action {
                    stop = next
                    attempts += 1
                }
                if case .flatten(_, _, _, _, let reason) = action { flattened = reason }
            }
        }
        #expect(flattened == "stop_timeout")
        #expect(attempts >= 3)
        #expect(time.timeIntervalSince(Self.t0) >= 5 && time.timeIntervalSince(Self.t0) <= 5.5)
    }

    @Test("an order's status never goes backwards; an unknown one is queried, then settled by the venue")
    func unknownOrder() {
        var kernel = ExecutionKernel()
        let request = Self.entry()
        _ = kernel.handle(.submit(request), now: Self.t0)
        _ = kernel.handle(.orderUnknown(clientOrderID: request.clientOrderID, reason: "timeout"), now: Self.t0)
        #expect(kernel.order(request.clientOrderID)?.status == .unknown)
        #expect(
            kernel.handle(.tick, now: Self.t0.addingTimeInterval(1)) == [
                .queryOrder(clientOrderID: request.clientOrderID, symbol: "BTCUSDT")
            ]
        )
        _ = kernel.handle(.orderStatus(clientOrderID: request.clientOrderID, status: .filled), now: Self.t0)
        _ = kernel.handle(.orderStatus(clientOrderID: request.clientOrderID, status: .accepted), now: Self.t0)
        #expect(kernel.order(request.clientOrderID)?.status == .filled)
    }

    @Test(
        "the stop is judged against the real fill: an entry that filled higher keeps its risk budget by a nearer stop, or is cut when no allowed stop does"
    )
    func stopAgainstFill() throws {
        let filters = ExchangeFilters(
            tickSize: 0.01,
            stepSize: 0.001,
            minQuantity: 0.01,
            maxQuantity: 100,
            minNotional: 0
        )
        let check = FillCheck(
            minStopFraction: 0.01,
            maxStopFraction: 0.05,
            riskBudget: 2.1,
            feeRate: 0,
            minRewardRisk: 2,
            filters: filters
        )
        var kernel = ExecutionKernel()
        var request = Self.entry(stop: 98)
        request.takeProfit = 103
        request.check = check
        _ = kernel.handle(.submit(request), now: Self.t0)
        // Filled at 100.5, the stop at 98 would lose 2.5 > 2.1: it moves up to 98.4; the target moves out to 2R.
        let stop = try #require(
            Self.placed(kernel.handle(.fill(Self.fill("1", order: request.clientOrderID, price: 100.5)), now: Self.t0))
                .first
        )
        #expect(
            stop.trigger == Money(string: "98.4")
                && kernel.positions["BTCUSDT"]?.targetPrice == Money(string: "104.7")
        )

        // Filled at 104 with a budget of 0.52, no stop 1 % away or more keeps it at this size: the stop goes
        // to the nearest allowed price (102.96) and the position is cut to 0.52 / 1.04 = 0.5.
        var tight = ExecutionKernel()
        var gapped = Self.entry(stop: 98)
        gapped.check = check
        gapped.check?.riskBudget = Money(string: "0.52")!
        _ = tight.handle(.submit(gapped), now: Self.t0)
        let actions = tight.handle(.fill(Self.fill("1", order: gapped.clientOrderID, price: 104)), now: Self.t0)
        let first = try #require(Self.placed(actions).first)
        #expect(first.trigger == Money(string: "102.96") && first.quantity == 1)
        let cut = actions.compactMap {
            if case .reduce(_, let id, .sell, let quantity, "risk_reduced") = $0 { (id, quantity) } else { nil }
        }
        #expect(cut.count == 1 && cut.first?.1 == Money(string: "0.5"))
        _ = tight.handle(.stopAnswer(symbol: "BTCUSDT", clientID: first.clientID, .accepted), now: Self.t0)
        // The cut fills: the stop is resized to what is left, and the position stays open.
        let after = tight.handle(
            .fill(Self.fill("2", order: cut[0].0, side: .sell, quantity: cut[0].1, price: 104)),
            now: Self.t0
        )
        #expect(
            Self.placed(after).first?.quantity == Money(string: "0.5")
                && tight.positions["BTCUSDT"]?.quantity == Money(string: "0.5")
        )
        #expect(!after.contains { if case .positionClosed = $0 { true } else { false } })
    }

    @Test(
        "FillCheck: a stop too near or too far moves to the nearest allowed price; below the venue's minimum the position is closed"
    )
    func fillCheckVerdicts() {
        let filters = ExchangeFilters(
            tickSize: 0.01,
            stepSize: 0.001,
            minQuantity: 0.5,
            maxQuantity: 100,
            minNotional: 0
        )
        let check = FillCheck(
            minStopFraction: 0.01,
            maxStopFraction: 0.05,
            riskBudget: 100,
            feeRate: 0,
            minRewardRisk: 1.5,
            filters: filters
        )
        #expect(
            check.verdict(side: .long, average: 100, quantity: 1, stop: 99.5, target: nil)
                == .init(stop: 99, target: nil, quantity: 1, reason: "stop_too_near")
        )
        #expect(
            check.verdict(side: .long, average: 100, quantity: 1, stop: 90, target: nil)
                == .init(stop: 95, target: nil, quantity: 1, reason: "stop_too_far")
        )
        #expect(
            check.verdict(side: .short, average: 100, quantity: 1, stop: 100.5, target: 99)
                == .init(stop: 101, target: Money(string: "98.5"), quantity: 1, reason: "stop_too_near")
        )
        #expect(
            check.verdict(side: .long, average: 100, quantity: 1, stop: 97, target: 110)
                == .init(stop: 97, target: 110, quantity: 1, reason: nil)
        )
        var poor = check
        poor.riskBudget = Money(string: "0.4")!
        #expect(
            poor.verdict(side: .long, average: 100, quantity: 1, stop: 97, target: nil)
                == .init(stop: 99, target: nil, quantity: 0, reason: "stop_unaffordable")
        )
    }

    @Test("a stop cancelled by hand at the venue is placed again")
    func stopCancelledByHand() {
        var (kernel, stop) = Self.protectedPosition()
        let again = kernel.handle(.venueSnapshot(symbol: "BTCUSDT", quantity: 1, stops: []), now: Self.t0)
        #expect(Self.placed(again).count == 1 && Self.placed(again)[0].clientID != stop.clientID)
    }
}
