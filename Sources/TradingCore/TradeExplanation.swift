import Foundation

/// Why a trade was made and how it went: the decision behind it (with what the risk gateway checked),
/// its orders, and the fills that opened and closed it. The cockpit's trade page and `/why` show it.
public struct TradeExplanation: Sendable, Hashable, Codable {
    public var trade: TradeRecord
    public var decision: DecisionRecord?
    public var orders: [OrderRecord]
    public var fills: [FillRecord]

    /// A `TradeExplanation` with the fields given.
    public init(trade: TradeRecord, decision: DecisionRecord?, orders: [OrderRecord], fills: [FillRecord]) {
        self.trade = trade
        self.decision = decision
        self.orders = orders
        self.fills = fills
    }

    /// Reads it from `store`. The fills are the trade's own orders', its stop's and target's, and any
    /// other fill of the symbol while it was open (an exit another decision sent, a flatten): one
    /// position per symbol at a time makes those its own.
    public static func load(_ trade: TradeRecord, from store: any TradeStore) async throws -> TradeExplanation {
        guard let position = try await store.position(id: trade.positionID) else {
            return TradeExplanation(trade: trade, decision: nil, orders: [], fills: [])
        }
        let decision = try await store.decision(id: position.decisionID)
        let orders = try await store.orders(decisionID: position.decisionID)
        var fills: [String: FillRecord] = [:]
        var ids = Set(orders.map(\.clientOrderID))
        for purpose in OrderPurpose.allCases {
            ids.insert(ClientOrderID.make(decisionID: position.decisionID, purpose: purpose))
        }
        for id in ids {
            for fill in try await store.fills(clientOrderID: id) { fills[fill.tradeID] = fill }
        }
        let window = trade.entryTime.addingTimeInterval(-1)...trade.exitTime.addingTimeInterval(1)
        for fill in try await store.latestFills(venue: position.venue, symbol: trade.symbol, limit: 1_000)
        where window.contains(fill.time) {
            fills[fill.tradeID] = fill
        }
        return TradeExplanation(
            trade: trade,
            decision: decision,
            orders: orders,
            fills: fills.values.sorted { ($0.time, $0.tradeID) < ($1.time, $1.tradeID) }
        )
    }
}
