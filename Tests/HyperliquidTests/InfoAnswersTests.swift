import Foundation
import Hyperliquid
import Testing
import TradingCore

@Suite("Hyperliquid /info answers about a followed account")
struct InfoAnswersTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hyperliquid")

    @Test(
        "historicalOrders: each reduce-only stop trigger with when it worked; take-profits and limit orders are no stops; a malformed answer is named"
    )
    func historicalOrders() throws {
        let answer = Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("leader-orders.json")))
        let triggers = try HyperliquidLeaderMessages.triggers(historicalOrders: answer)
        #expect(
            triggers.triggers == [
                .init(coin: "BTC", sells: false, price: 104_000, placed: 1_764_900_201_000, ended: nil),
                .init(coin: "BTC", sells: true, price: 97_500, placed: 1_764_899_905_000, ended: 1_764_900_200_500),
            ]
        )
        #expect {
            try HyperliquidLeaderMessages.triggers(historicalOrders: Array(#"[{"order":{}}]"#.utf8))
        } throws: { "\($0)".contains("historicalOrders answer is malformed") }
    }

    @Test("userFills: the recent fills oldest first, each tid once, with closedPnl and fee")
    func userFills() throws {
        let answer = Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("leader-fills.json")))
        let fills = try HyperliquidLeaderMessages.recentFills(answer)
        #expect(fills.map(\.tid) == [5001, 5101, 5002, 5003, 5004, 5005])
        #expect(fills.last?.closedPnl == -2_000 && fills.last?.fee == Money(string: "90.45")!)
        #expect(throws: (any Error).self) { try HyperliquidLeaderMessages.recentFills(Array("{}".utf8)) }
    }
}
