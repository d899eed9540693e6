import Foundation
import TradingCore

/// Each symbol's position as a live venue's fills build it, to tell when one closes, why and for how
/// much; with the stop and target placed for it and its stop as the policy moves it, candle by candle.
/// Shared by the live venues: each one says what a fill of its own means (`reason`) and, where the
/// exchange reports it, the fill's realised PnL.
struct PositionBook: Sendable {
    /// A position as the fills build it.
    struct Holding: Sendable {
        var side: PositionSide
        var quantity: Decimal
        var entry: Decimal
        var openedAt: Date
        var realized: Decimal = 0
        var fees: Decimal
        var leverage: Int
    }

    /// The stop and target placed for a position, and what a fill of that stop means.
    struct Protection: Sendable {
        var stopLoss: Decimal
        var takeProfit: Decimal?
        /// `stop_loss`, or `trailing_stop` once a trailing policy has moved it.
        var stopReason = "stop_loss"
    }

    /// A stop the policy tightened on a candle: place it at the venue, then keep it with ``moved(_:)``.
    struct StopMove: Sendable {
        var symbol: String
        var managed: ManagedStop
        var takeProfit: Decimal?
        var stopLoss: Decimal { managed.stop }
        var side: PositionSide { managed.side }
        /// What a fill of the moved stop means: `trailing_stop` under a trailing policy, else `stop_loss`.
        var reason: String { managed.policy.trailingCallbackFraction != nil ? "trailing_stop" : "stop_loss" }
    }

    private var holdings: [String: Holding] = [:]
    /// The leverage set for each symbol: the position its next fill opens has it.
    var leverages: [String: Int] = [:]
    /// The stop and target placed for each symbol's position.
    private(set) var protection: [String: Protection] = [:]
    /// Each protected position's stop as its policy moves it, with its target.
    private var managed: [String: (stop: ManagedStop, takeProfit: Decimal?)] = [:]

    /// A position open in the store after a restart: tracked from its record, with the fees its entry
    /// paid (so its close books them all), and the stop and target the store holds.
    mutating func resume(_ position: VenuePosition) {
        holdings[position.symbol] = Holding(
            side: position.side, quantity: position.quantity, entry: position.entryPrice, openedAt: position.openedAt, fees: position.fees,
            leverage: position.leverage)
        leverages[position.symbol] = position.leverage
        if let stop = position.stopLoss { protection[position.symbol] = Protection(stopLoss: stop, takeProfit: position.takeProfit) }
    }

    /// The venue holds a stop and target for the position (entered at `entry`); from now on the
    /// stop moves by `policy`.
    mutating func protected(symbol: String, side: PositionSide, entry: Decimal, stopLoss: Decimal, takeProfit: Decimal?, policy: StopPolicy) {
        managed[symbol] = (ManagedStop(side: side, entry: entry, initialStop: stopLoss, stop: stopLoss, bestPrice: entry, policy: policy), takeProfit)
        protection[symbol] = Protection(stopLoss: stopLoss, takeProfit: takeProfit)
    }

    /// Whether the symbol's position has a stop that its policy moves.
    func isManaged(_ symbol: String) -> Bool { managed[symbol] != nil }

    /// A closed candle: the stop of the symbol's position as its policy tightens it. nil when it
    /// stays (the best price seen is kept) or the symbol has no managed stop.
    mutating func tighten(_ symbol: String, high: Decimal, low: Decimal, close: Decimal, atr: Decimal?, filters: ExchangeFilters) -> StopMove? {
        guard var entry = managed[symbol] else { return nil }
        guard entry.stop.tighten(high: high, low: low, close: close, atr: atr, filters: filters) != nil else {
            managed[symbol] = entry
            return nil
        }
        return StopMove(symbol: symbol, managed: entry.stop, takeProfit: entry.takeProfit)
    }

    /// The venue has the moved stop. A position that closed meanwhile stays closed.
    mutating func moved(_ move: StopMove) {
        guard managed[move.symbol] != nil else { return }
        managed[move.symbol] = (move.managed, move.takeProfit)
        protection[move.symbol] = Protection(stopLoss: move.stopLoss, takeProfit: move.takeProfit, stopReason: move.reason)
    }

    /// Follows the symbol's position through `fill`; returns the close when it comes back to flat.
    /// `realizedPnl`: the fill's PnL as the exchange reports it, or nil to take it from the entry
    /// price; `reason`: what a close by this fill means.
    mutating func record(_ fill: VenueFill, realizedPnl: Decimal?, reason: String) -> VenueClose? {
        let side: PositionSide = fill.side == .buy ? .long : .short
        guard var holding = holdings[fill.symbol] else {
            holdings[fill.symbol] = Holding(
                side: side, quantity: fill.quantity, entry: fill.price, openedAt: fill.time, fees: fill.fee, leverage: leverages[fill.symbol] ?? 1)
            return nil
        }
        if holding.side == side {
            holding.entry = (holding.entry * holding.quantity + fill.price * fill.quantity) / (holding.quantity + fill.quantity)
            holding.quantity += fill.quantity
            holding.fees += fill.fee
            holdings[fill.symbol] = holding
            return nil
        }
        let closing = min(fill.quantity, holding.quantity)
        holding.quantity -= fill.quantity
        holding.realized += realizedPnl ?? (fill.price - holding.entry) * closing * (holding.side == .long ? 1 : -1)
        holding.fees += fill.fee
        guard holding.quantity <= 0 else {
            holdings[fill.symbol] = holding
            return nil
        }
        holdings[fill.symbol] = nil
        managed[fill.symbol] = nil
        let levels = protection.removeValue(forKey: fill.symbol)
        return VenueClose(
            symbol: fill.symbol, side: holding.side, quantity: closing, entryPrice: holding.entry, exitPrice: fill.price, openedAt: holding.openedAt,
            closedAt: fill.time, reason: reason, pnl: holding.realized - holding.fees, fees: holding.fees, funding: 0, leverage: holding.leverage,
            stopLoss: levels?.stopLoss, takeProfit: levels?.takeProfit)
    }
}
