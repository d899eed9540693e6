import Foundation
import Testing

@testable import TradingCore

/// The divergence report's matching and causes, on a run with injected latency, slippage, one
/// operator flatten and one decision that never traded.
@Suite("Divergence between a run and its backtest")
struct DivergenceTests {
    static let t0 = Date(timeIntervalSince1970: 1_637_193_600)

    static func trade(
        _ n: Int,
        entry minute: Double = 0,
        price: Money = 100,
        exitPrice: Money = 110,
        pnl: Money,
        fees: Money = Money(string: "0.5")!,
        reason: String = "take_profit"
    ) -> TradeRecord {
        TradeRecord(
            id: "trade:position:decision:d\(n)",
            positionID: "position:decision:d\(n)",
            symbol: "X",
            side: .long,
            entryTime: t0.addingTimeInterval(Double(n) * 3_600 + minute * 60),
            entryPrice: price,
            exitTime: t0.addingTimeInterval(Double(n) * 3_600 + 1_800),
            exitPrice: exitPrice,
            quantity: 1,
            leverage: 2,
            stopLoss: 98,
            takeProfit: 110,
            pnl: pnl,
            fees: fees,
            funding: 0,
            exitReason: reason
        )
    }

    static func decision(_ n: Int, lateBy seconds: Double = 1) -> DecisionRecord {
        let candle = t0.addingTimeInterval(Double(n) * 3_600 - 300)
        let payload = DecisionPayload(
            symbol: "X",
            proposal: TradeProposal(
                action: .long,
                confidence: 0.8,
                leverage: 2,
                entry: 100,
                stopLoss: 98,
                takeProfit: 110,
                reasoning: "r"
            ),
            provider: "rules",
            model: "m",
            promptVersion: "v",
            attempts: 0,
            candleTime: Int64(candle.timeIntervalSince1970 * 1000),
            requestID: "r\(n)"
        )
        return DecisionRecord(
            id: "decision:d\(n)",
            correlationID: "c",
            payload: payload,
            createdAt: candle.addingTimeInterval(seconds)
        )
    }

    @Test("an identical run differs nowhere")
    func identical() {
        let trades = (1...3).map { Self.trade($0, pnl: 10) }
        let divergence = Divergence(
            run: trades,
            backtest: trades,
            decisions: [:],
            candleLength: 300_000,
            openTimes: []
        )
        #expect(divergence.rows.isEmpty && divergence.identical == 3 && divergence.pnlDifference == 0)
        #expect(divergence.byCause.isEmpty)
    }

    @Test(
        "latency, slippage, an operator flatten and a lost decision each under their cause, summing to the PnL difference"
    )
    func causes() throws {
        let backtest = [
            Self.trade(1, pnl: 10), Self.trade(2, pnl: 10), Self.trade(3, pnl: 10), Self.trade(4, pnl: 10),
            Self.trade(5, pnl: 4),
        ]
        let run = [
            Self.trade(1, pnl: 10),
            // The decision came six minutes after its candle closed: entered a candle later.
            Self.trade(2, entry: 5, price: 102, pnl: 8),
            // Slippage at the entry, and a fee on the larger notional.
            Self.trade(
                3,
                price: Money(string: "100.99")!,
                pnl: Money(string: "9.0")!,
                fees: Money(string: "0.51")!
            ),
            // Flattened by an operator before the target.
            Self.trade(4, exitPrice: 103, pnl: 3, reason: "operator"),
        ]
        var decisions = Dictionary(uniqueKeysWithValues: (1...5).map { ("decision:d\($0)", Self.decision($0)) })
        decisions["decision:d2"] = Self.decision(2, lateBy: 360)
        decisions["decision:d5"] = Self.decision(5, lateBy: 400)
        let divergence = Divergence(
            run: run,
            backtest: backtest,
            decisions: decisions,
            candleLength: 300_000,
            openTimes: Set(
                (0..<100).map { Int64(Self.t0.timeIntervalSince1970 * 1000) - 600_000 + Int64($0) * 300_000 }
            )
        )
        #expect(divergence.identical == 1 && divergence.rows.count == 4)
        let rows = Dictionary(uniqueKeysWithValues: divergence.rows.map { ($0.id, $0) })
        #expect(rows["trade:position:decision:d2"]?.causes == [.signalLatency: -2])
        #expect(rows["trade:position:decision:d2"]?.differences["entry_time"] != nil)
        #expect(
            rows["trade:position:decision:d3"]?.causes
                == [.fee: Money(string: "-0.01")!, .fillPrice: Money(string: "-0.99")!]
        )
        #expect(rows["trade:position:decision:d4"]?.causes == [.operatorAction: -7])
        let missing = try #require(rows["trade:position:decision:d5"])
        #expect(missing.kind == .missing && missing.causes == [.signalLatency: -4])
        #expect(divergence.pnlDifference == -14)
        #expect(divergence.byCause.values.reduce(0, +) == divergence.pnlDifference)
        #expect(divergence.byCause[.signalLatency] == -6 && divergence.byCause[.operatorAction] == -7)
        let csv = divergence.csv().split(separator: "\n")
        #expect(csv.first == "id,kind,field,run,backtest,pnl_difference,causes")
        #expect(
            csv.contains { $0.hasPrefix("trade:position:decision:d4,matched,exit_reason,operator,take_profit,-7,") }
        )
    }
}
