import Foundation
import Testing
import TradingCore

@Suite("Performance report")
struct PerformanceReportTests {
    func trade(
        _ pnl: Money,
        entry: Money = 100,
        stop: Money? = 98,
        target: Money? = 104,
        day: Double = 0
    ) -> TradeRecord {
        TradeRecord(
            id: UUID().uuidString,
            positionID: "p",
            symbol: "BTCUSDT",
            side: .long,
            entryTime: Date(timeIntervalSince1970: day * 86_400),
            entryPrice: entry,
            exitTime: Date(timeIntervalSince1970: day * 86_400 + 60),
            exitPrice: entry,
            quantity: 1,
            leverage: 1,
            stopLoss: stop,
            takeProfit: target,
            pnl: pnl,
            fees: 1,
            funding: 0,
            exitReason: "exit"
        )
    }

    @Test("wins, losses, profit factor, reward to risk, fees, return and drawdown by hand")
    func figures() {
        let trades = [trade(30), trade(-10), trade(-20, target: 103), trade(40)]
        let report = PerformanceReport(
            trades: trades,
            equity: [1_000, 1_030, 1_020, 1_000, 1_040],
            initialCapital: 1_000,
            candles: 4,
            periodsPerYear: 4
        )
        #expect(report.trades == 4 && report.wins == 2 && report.losses == 2 && report.winRate == 0.5)
        #expect(report.totalPnL == 40 && report.fees == 4)
        #expect(abs(report.profitFactor - 70.0 / 30.0) < 1e-12 && !report.profitFactorIsInfinite)
        #expect(abs(report.averageRewardRisk - (2 + 2 + 1.5 + 2) / 4) < 1e-12)
        #expect(abs(report.returnPercent - 4) < 1e-12)
        #expect(abs(report.maxDrawdownPercent - 30.0 / 1_030 * 100) < 1e-9)
        #expect(report.sharpe > 0 && report.sortino > report.sharpe)
    }

    @Test("no trades and a flat curve: zeros, not NaN; only wins: an infinite profit factor, flagged")
    func edges() {
        let flat = PerformanceReport(
            trades: [],
            equity: [1_000, 1_000, 1_000],
            initialCapital: 1_000,
            candles: 2,
            periodsPerYear: 100
        )
        #expect(
            flat.winRate == 0 && flat.sharpe == 0 && flat.sortino == 0 && flat.maxDrawdownPercent == 0
                && flat.profitFactor == 0
        )
        let winner = PerformanceReport(
            trades: [trade(5)],
            equity: [1_000, 1_005],
            initialCapital: 1_000,
            candles: 1,
            periodsPerYear: 100
        )
        #expect(winner.profitFactorIsInfinite && winner.profitFactor == 0)
    }

    @Test("the trades CSV has the contract's columns, and PnL by day groups by UTC exit day")
    func csvAndDays() {
        let csv = PerformanceReport.tradesCSV([trade(1), trade(2, day: 1)])
        let lines = csv.split(separator: "\n")
        #expect(
            lines[0]
                == "id,symbol,side,entry_time,entry_price,exit_time,exit_price,quantity,leverage,stop_loss,take_profit,pnl,fees,funding,exit_reason"
        )
        #expect(
            lines.count == 3
                && lines[1].hasSuffix(
                    ",BTCUSDT,LONG,1970-01-01T00:00:00Z,100,1970-01-01T00:01:00Z,100,1,1,98,104,1,1,0,exit"
                )
        )
        #expect(lines[1].split(separator: ",").count == 15)
        let days = PerformanceReport.pnlByDay([trade(1), trade(2), trade(4, day: 1)])
        #expect(
            days.map(\.day) == ["1970-01-01", "1970-01-02"] && days.map(\.pnl) == [3, 4]
                && days.map(\.trades) == [2, 1]
        )
    }
}
