import Foundation
import TradingCore

/// Each symbol's position as a live venue's fills build it, to tell when one closes, why and for how
/// much. (Its stops are the execution kernel's, placed and moved by the executor.) Shared by the live venues: each one says what a fill of its own means (`reason`) and, where the
/// exchange reports it, the fill's realised PnL.
struct PositionBook: Sendable {
    /// A position as the fills build it.
    struct Holding: Sendable {
        var side: PositionSide
        var quantity: Money
        var entry: Money
        var openedAt: Date
        var realized: Money = 0
        var fees: Money
        var leverage: Int
    }

    private var holdings: [String: Holding] = [:]
    /// The leverage set for each symbol: the position its next fill opens has it.
    var leverages: [String: Int] = [:]
    /// The stop and target the store held for a position resumed after a restart, for its close.
    private var levels: [String: (stopLoss: Money?, takeProfit: Money?)] = [:]

    /// The symbol's position as the fills built it: positive long, negative short, zero flat.
    func signedQuantity(_ symbol: String) -> Money {
        guard let holding = holdings[symbol] else { return 0 }
        return holding.side == .long ? holding.quantity : -holding.quantity
    }

    /// A position open in the store after a restart: tracked from its record, with the fees its entry
    /// paid (so its close books them all), and the stop and target the store holds.
    mutating func resume(_ position: VenuePosition) {
        holdings[position.symbol] = Holding(
            side: position.side,
            quantity: position.quantity,
            entry: position.entryPrice,
            openedAt: position.openedAt,
            fees: position.fees,
            leverage: position.leverage
        )
        leverages[position.symbol] = position.leverage
        levels[position.symbol] = (position.stopLoss, position.takeProfit)
    }

    /// Follows the symbol's position through `fill`; returns the close when it comes back to flat.
    /// `realizedPnl`: the fill's PnL as the exchange reports it, or nil to take it from the entry
    /// price; `reason`: what a close by this fill means.
    mutating func record(_ fill: VenueFill, realizedPnl: Money?, reason: String) -> VenueClose? {
        let side: PositionSide = fill.side == .buy ? .long : .short
        guard var holding = holdings[fill.symbol] else {
            holdings[fill.symbol] = Holding(
                side: side,
                quantity: fill.quantity,
                entry: fill.price,
                openedAt: fill.time,
                fees: fill.fee,
                leverage: leverages[fill.symbol] ?? 1
            )
            return nil
        }
        if holding.side == side {
            holding.entry =
                (holding.entry * holding.quantity + fill.price * fill.quantity) / (holding.quantity + fill.quantity)
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
        let levels = levels.removeValue(forKey: fill.symbol)
        return VenueClose(
            symbol: fill.symbol,
            side: holding.side,
            quantity: closing,
            entryPrice: holding.entry,
            exitPrice: fill.price,
            openedAt: holding.openedAt,
            closedAt: fill.time,
            reason: reason,
            pnl: holding.realized - holding.fees,
            fees: holding.fees,
            funding: 0,
            leverage: holding.leverage,
            stopLoss: levels?.stopLoss ?? nil,
            takeProfit: levels?.takeProfit ?? nil
        )
    }
}
