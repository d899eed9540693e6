import Foundation
import Testing

@testable import TradingCore

/// Walk-forward windows, the deflated Sharpe ratio, the probability of backtest overfitting, the Monte
/// Carlo of trade order, and a walk-forward over a shared file that reads nothing from the future.
@Suite("Walk-forward optimisation and overfitting statistics")
struct WalkForwardTests {
    static let day: Int64 = 86_400_000

    @Test("windows: each test window right after its training window, never overlapping it or the next test window")
    func windows() throws {
        let plan = try WalkForward.Plan.parse("train=30d,test=7d", anchored: false)
        #expect(plan == WalkForward.Plan(train: 30 * Self.day, test: 7 * Self.day))
        let rolling = WalkForward.windows(first: 0, end: 60 * Self.day, plan: plan)
        #expect(rolling.count == 5, "tests start at days 30, 37, 44, 51, 58")
        for (index, window) in rolling.enumerated() {
            #expect(window.trainEnd == window.testStart && window.trainStart < window.trainEnd)
            #expect(window.trainEnd - window.trainStart == 30 * Self.day, "rolling: the same length")
            #expect(window.testEnd <= 60 * Self.day && window.testStart < window.testEnd)
            if index > 0 { #expect(rolling[index - 1].testEnd == window.testStart, "test windows follow on") }
        }
        #expect(
            rolling.last!.testEnd == 60 * Self.day && rolling.last!.testEnd - rolling.last!.testStart == 2 * Self.day
        )
        let anchored = WalkForward.windows(
            first: 0,
            end: 60 * Self.day,
            plan: .init(train: plan.train, test: plan.test, anchored: true)
        )
        #expect(anchored.map(\.trainStart) == Array(repeating: 0, count: 5))
        #expect(anchored.map(\.testStart) == rolling.map(\.testStart))
        #expect(WalkForward.windows(first: 0, end: 30 * Self.day, plan: plan).isEmpty, "no room for a test window")
        #expect(throws: BacktestError.self) { try WalkForward.Plan.parse("train=30d", anchored: false) }
        #expect(throws: BacktestError.self) { try WalkForward.Plan.parse("train=30x,test=7d", anchored: false) }
    }

    @Test("the deflated Sharpe ratio matches a hand computation")
    func deflatedSharpe() {
        // Ten returns: mean 0.007, sample sd 0.0160208, so SR = 0.436931; skewness −0.169188, kurtosis
        // 1.978355 (population moments). Twenty trials whose Sharpe ratios vary by 0.01:
        // SR₀ = 0.1 × (0.422784 × Φ⁻¹(0.95) + 0.577216 × Φ⁻¹(1 − 1/(20e))) = 0.190071.
        // z = (0.436931 − 0.190071) × √9 / √(1 + 0.169188 × 0.436931 + 0.244589 × 0.190909) = 0.699591,
        // DSR = Φ(z) = 0.757909.
        let returns = [0.02, -0.01, 0.03, -0.005, 0.01, 0.0, 0.015, -0.02, 0.025, 0.005]
        let m = WalkForward.moments(returns)
        #expect(abs(m.mean - 0.007) < 1e-12 && abs(m.sd - 0.016_020_819_787_597_22) < 1e-12)
        #expect(abs(m.skew - -0.169_187_578_703_940_77) < 1e-12 && abs(m.kurtosis - 1.978_354_978_354_978) < 1e-12)
        #expect(abs(WalkForward.expectedMaximumSharpe(trials: 20, variance: 0.01) - 0.190_070_795_118_119_83) < 1e-9)
        #expect(
            abs(WalkForward.deflatedSharpe(returns: returns, trials: 20, variance: 0.01) - 0.757_908_717_340_5) < 1e-9
        )
        // One trial: nothing to deflate by; the threshold is 0.
        #expect(WalkForward.expectedMaximumSharpe(trials: 1, variance: 0.01) == 0)
    }

    @Test(
        "PBO: 0 when one configuration is best in every block; high when the in-sample best is the out-of-sample worst"
    )
    func overfitting() throws {
        // Noise of the same size for all; configuration 0 earns more in every block.
        func noise(_ index: Int, _ salt: Int) -> Double {
            Double((index * 7_919 + salt * 104_729) % 13) / 1_000 - 0.006
        }
        let dominant = (0..<4).map { config in
            (0..<320).map { noise($0, config) + (config == 0 ? 0.01 : 0) }
        }
        #expect(try #require(WalkForward.probabilityOfOverfitting(dominant, blocks: 8)) == 0)
        // Two configurations taking turns, block by block: whichever won more of the in-sample blocks
        // has fewer of the rest.
        let alternating = (0..<2).map { config in
            (0..<320).map { index -> Double in
                let block = index / 40
                return noise(index, config) + (block % 2 == config ? 0.01 : -0.01)
            }
        }
        #expect(try #require(WalkForward.probabilityOfOverfitting(alternating, blocks: 8)) > 0.5)
        #expect(WalkForward.probabilityOfOverfitting([dominant[0]], blocks: 8) == nil, "one configuration")
        #expect(WalkForward.combinations(of: 16, choosing: 8).count == 12_870)
    }

    @Test("Monte Carlo of trade order: the same seed gives the same spread; the drawdown of a known order")
    func monteCarlo() {
        #expect(abs(WalkForward.maximumDrawdown(capital: 100, [10, -20, 5, -10, 30]) - 25.0 / 110) < 1e-12)
        let pnls = (0..<50).map { Double(($0 * 37) % 11) - 5 }
        let first = WalkForward.monteCarloDrawdowns(capital: 1_000, pnls: pnls, runs: 200, seed: 42)
        #expect(first == WalkForward.monteCarloDrawdowns(capital: 1_000, pnls: pnls, runs: 200, seed: 42))
        #expect(first.count == 200 && first == first.sorted() && first.first! < first.last!)
    }

    @Test(
        "a walk-forward over XRPUSDT-PERP-5m reads nothing from the future: later candles changed, earlier windows unchanged"
    )
    func noLookAhead() throws {
        let candles = try BacktesterTests.candles("XRPUSDT-PERP-5m")
        var configurations: [Backtester.Settings] = []
        for risk in ["0.005", "0.01", "0.02"] {
            var settings = Backtester.Settings()
            settings.halts.maxConsecutiveLosses = 20
            settings.limits.riskPerTradeFraction = Money(string: risk)!
            configurations.append(settings)
        }
        let plan = WalkForward.Plan(train: 2 * Self.day, test: Self.day)  // the file holds 6.9 days
        let report = try WalkForward.run(
            candles,
            symbol: "XRPUSDT",
            interval: "5m",
            plan: plan,
            configurations: configurations
        )
        #expect(report.steps.count >= 4)
        for step in report.steps {
            #expect(
                step.trades.allSatisfy { $0.entryTime.timeIntervalSince1970 * 1000 >= Double(step.window.testStart) }
            )
            #expect(step.trades.allSatisfy { $0.entryTime.timeIntervalSince1970 * 1000 < Double(step.window.testEnd) })
        }
        #expect(report.outOfSampleReturns.count == report.steps.map(\.returns.count).reduce(0, +))
        // Everything after the first test window turned upside down: the first window's choice and trades
        // do not move.
        let cut = report.steps[0].window.testEnd
        let future = candles.map { candle -> Candle in
            guard candle.openTime >= cut else { return candle }
            return Candle(
                openTime: candle.openTime,
                open: 2 / candle.open,
                high: 2 / candle.low,
                low: 2 / candle.high,
                close: 2 / candle.close,
                volume: candle.volume
            )
        }
        let changed = try WalkForward.run(
            future,
            symbol: "XRPUSDT",
            interval: "5m",
            plan: plan,
            configurations: configurations
        )
        #expect(changed.steps[0].chosen == report.steps[0].chosen)
        #expect(changed.steps[0].trainingSharpes == report.steps[0].trainingSharpes)
        #expect(
            changed.steps[0].trades == report.steps[0].trades && changed.steps[0].returns == report.steps[0].returns
        )
        #expect(changed.steps.dropFirst().map(\.trades) != report.steps.dropFirst().map(\.trades), "the later ones do")
        #expect((0...1).contains(report.deflatedSharpe))
        #expect(report.probabilityOfOverfitting.map { (0...1).contains($0) } ?? false)
    }
}
