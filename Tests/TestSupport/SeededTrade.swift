import Foundation
import SQLTradeStore
import SQLiteStore
import TradingCore

/// One traded position in a new SQLite store, for the tests of what reads the record (the cockpit, the
/// chat bot): decision `d1` (ordered, with a risk check), its entry order `tb-d1-e` and fill, position
/// `p1`, trade `t1` (a long BTCUSDT won at take-profit), two equity readings and a critical alert.
public enum SeededTrade {
    /// What the executor answers to `status` beside it: one short ETHUSDT position, the price 50 under
    /// its entry (+75 USD unrealised), its stop working.
    public static let status = AccountStatus(
        account: "default",
        venue: "paper",
        control: AccountControl(),
        equity: 10_114.9,
        positions: [
            AccountStatus.Position(
                symbol: "ETHUSDT",
                side: .short,
                quantity: 1.5,
                entryPrice: 3_000,
                stopLoss: 3_090,
                workingStops: 1,
                leverage: 3,
                liquidationPrice: 3_980,
                liquidationDistance: 0.326,
                price: 2_950
            )
        ],
        lastReconciliation: nil,
        time: Date(timeIntervalSince1970: 1_763_700_000)
    )

    /// A store with a decision, its entry order and fill, the position and its trade, and equity.
    public static func store() async throws -> SQLTradeStore {
        let t0 = Date(timeIntervalSince1970: 1_763_700_000)
        let path =
            FileManager.default.temporaryDirectory.appendingPathComponent(TestServices.uniqueName("cockpit"))
            .path + ".sqlite"
        let store = SQLTradeStore.sqlite(path: path)
        try await store.migrate()
        var decision = DecisionRecord(
            id: "d1",
            correlationID: "c1",
            symbol: "BTCUSDT",
            action: .long,
            confidence: 0.8,
            leverage: 3,
            entry: 97_000,
            stopLoss: 95_000,
            takeProfit: 101_000,
            reasoning: "MACD crossed up over rising RSI",
            provider: "rules",
            model: "rules-v1",
            promptVersion: "v1",
            candleTime: t0,
            createdAt: t0,
            prompt: nil,
            reply: nil
        )
        // What asking a model for it cost: the overview's net PnL is after it.
        decision.llmCost = 0.25
        try await store.recordDecision(decision)
        try await store.recordOrder(
            OrderRecord(
                clientOrderID: "tb-d1-e",
                decisionID: "d1",
                venue: "paper",
                symbol: "BTCUSDT",
                side: .buy,
                type: .market,
                purpose: .entry,
                quantity: 0.01,
                reduceOnly: false,
                createdAt: t0
            )
        )
        try await store.recordFill(
            FillRecord(
                venue: "paper",
                tradeID: "f1",
                clientOrderID: "tb-d1-e",
                symbol: "BTCUSDT",
                side: .buy,
                price: 97_010,
                quantity: 0.01,
                fee: 0.48505,
                feeAsset: "USDT",
                time: t0
            )
        )
        var position = PositionRecord(
            id: "p1",
            venue: "paper",
            symbol: "BTCUSDT",
            side: .long,
            quantity: 0.01,
            entryPrice: 97_010,
            leverage: 3,
            stopLoss: 95_000,
            takeProfit: 101_000,
            decisionID: "d1",
            openedAt: t0
        )
        position.status = .closed
        try await store.savePosition(position)
        try await store.recordTrade(
            TradeRecord(
                id: "t1",
                positionID: "p1",
                symbol: "BTCUSDT",
                side: .long,
                entryTime: t0,
                entryPrice: 97_010,
                exitTime: t0.addingTimeInterval(3_600),
                exitPrice: 101_000,
                quantity: 0.01,
                leverage: 3,
                stopLoss: 95_000,
                takeProfit: 101_000,
                pnl: 39.9,
                fees: 0.99,
                funding: 0,
                exitReason: "take_profit"
            )
        )
        try await store.recordEquitySnapshot(
            EquitySnapshot(time: t0, equity: 10_039.9, balance: 10_039.9, unrealizedPnL: 0, openPositions: 0)
        )
        try await store.recordEquitySnapshot(
            EquitySnapshot(
                time: t0.addingTimeInterval(3_600),
                equity: 10_079.8,
                balance: 10_079.8,
                unrealizedPnL: 0,
                openPositions: 0
            )
        )
        try await store.recordDecisionOutcome(
            id: "d1",
            DecisionOutcome(
                status: .ordered,
                checks: [
                    RiskCheckResult(check: "stop_distance", passed: true, value: "2.06 %", limit: "0.50 % to 7.00 %")
                ],
                time: t0
            )
        )
        try await store.recordAlert(
            AlertRecord(
                id: "a1",
                time: t0,
                alert: AlertPayload(
                    severity: .critical,
                    kind: "breaker",
                    title: "<script>alert(1)</script>",
                    message: "drawdown halt"
                )
            )
        )
        try await store.recordBacktest(
            BacktestRecord(
                id: "b1",
                time: t0,
                symbol: "BTCUSDT",
                interval: "1h",
                source: "/data/BTCUSDT-1h.csv",
                report: PerformanceReport(
                    trades: [],
                    equity: [10_000, 10_120, 10_080],
                    initialCapital: 10_000,
                    candles: 3,
                    periodsPerYear: 8_760
                ),
                equity: [10_000, 10_120, 10_080]
            )
        )
        try await store.recordDivergence(
            DivergenceRecord(
                id: "v1",
                time: t0,
                symbol: "BTCUSDT",
                interval: "1h",
                runTrades: 1,
                backtestTrades: 1,
                identical: 0,
                differing: 1,
                pnlDifference: -1.25,
                byCause: ["fill_price": -1.25],
                report: "matched  t1\n           PnL -1.25 [fill_price -1.25] exit_price 101000 vs 101125"
            )
        )
        return store
    }
}
