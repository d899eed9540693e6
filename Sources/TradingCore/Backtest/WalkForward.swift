import Foundation

/// Walk-forward optimisation and the statistics that say how much a backtest's best result owes to
/// the search: windows, the deflated Sharpe ratio, the probability of backtest overfitting, and a Monte
/// Carlo of trade order. Pure: the caller runs the backtests.
public enum WalkForward {
    /// Training and test lengths (ms), and whether every training window starts at the data's start.
    public struct Plan: Sendable, Hashable {
        public var train: Int64
        public var test: Int64
        public var anchored: Bool

        /// A plan with the fields given.
        public init(train: Int64, test: Int64, anchored: Bool = false) {
            self.train = train
            self.test = test
            self.anchored = anchored
        }

        /// Reads `train=30d,test=7d` (units m, h, d, w).
        public static func parse(_ text: String, anchored: Bool) throws(BacktestError) -> Plan {
            var lengths: [String: Int64] = [:]
            for part in text.split(separator: ",") {
                let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, ["train", "test"].contains(pair[0]),
                    let length = CandleInterval.milliseconds(pair[1]), length > 0
                else {
                    throw BacktestError(
                        "--walk-forward '\(text)': expected train=LENGTH,test=LENGTH such as train=30d,test=7d"
                    )
                }
                lengths[pair[0]] = length
            }
            guard let train = lengths["train"], let test = lengths["test"] else {
                throw BacktestError("--walk-forward '\(text)': give both train= and test=")
            }
            return Plan(train: train, test: test, anchored: anchored)
        }
    }

    /// One step: train on `[trainStart, trainEnd)`, then trade `[testStart, testEnd)` (open times, ms).
    public struct Window: Sendable, Hashable {
        public var trainStart: Int64
        public var trainEnd: Int64
        public var testStart: Int64
        public var testEnd: Int64
    }

    /// The windows over data whose candles open in `[first, end)`: test windows follow one another
    /// without overlap, each right after its training window; rolling training windows move on by the
    /// test length, anchored ones all start at `first`. A last test window shorter than the plan's is
    /// kept; none starts before a full training window.
    public static func windows(first: Int64, end: Int64, plan: Plan) -> [Window] {
        guard plan.train > 0, plan.test > 0 else { return [] }
        var windows: [Window] = []
        var testStart = first + plan.train
        while testStart < end {
            windows.append(
                Window(
                    trainStart: plan.anchored ? first : testStart - plan.train,
                    trainEnd: testStart,
                    testStart: testStart,
                    testEnd: min(testStart + plan.test, end)
                )
            )
            testStart += plan.test
        }
        return windows
    }

    // MARK: Statistics

    /// Mean, standard deviation (sample), skewness and kurtosis (not excess) of `values`.
    public static func moments(_ values: [Double]) -> (mean: Double, sd: Double, skew: Double, kurtosis: Double) {
        let n = Double(values.count)
        guard values.count > 1 else { return (values.first ?? 0, 0, 0, 3) }
        let mean = values.reduce(0, +) / n
        var m2 = 0.0
        var m3 = 0.0
        var m4 = 0.0
        for value in values {
            let d = value - mean
            m2 += d * d
            m3 += d * d * d
            m4 += d * d * d * d
        }
        let population = m2 / n
        let skew = population > 0 ? (m3 / n) / pow(population, 1.5) : 0
        let kurtosis = population > 0 ? (m4 / n) / (population * population) : 3
        return (mean, (m2 / (n - 1)).squareRoot(), skew, kurtosis)
    }

    /// The Sharpe ratio of per-period `returns`, not annualised (0 with no variation).
    public static func sharpe(_ returns: [Double]) -> Double {
        let m = moments(returns)
        return m.sd > 0 ? m.mean / m.sd : 0
    }

    /// Per-period returns of an equity curve.
    public static func returns(_ equity: [Double]) -> [Double] {
        zip(equity, equity.dropFirst()).map { $0 > 0 ? $1 / $0 - 1 : 0 }
    }

    /// The standard normal distribution function.
    public static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.squareRoot()) }

    /// Its inverse, by bisection to 1e-12 (p in (0, 1)).
    public static func normalQuantile(_ p: Double) -> Double {
        var low = -40.0
        var high = 40.0
        while high - low > 1e-12 {
            let middle = (low + high) / 2
            if normalCDF(middle) < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }

    /// The expected maximum Sharpe ratio of `trials` unskilled strategies whose Sharpe ratios vary by
    /// `variance` (Bailey and López de Prado, 2014):
    /// √V × ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant.
    public static func expectedMaximumSharpe(trials: Int, variance: Double) -> Double {
        guard trials > 1, variance > 0 else { return 0 }
        let gamma = 0.577_215_664_901_532_9
        let n = Double(trials)
        return variance.squareRoot()
            * ((1 - gamma) * normalQuantile(1 - 1 / n) + gamma * normalQuantile(1 - 1 / (n * M_E)))
    }

    /// The deflated Sharpe ratio (Bailey and López de Prado, 2014): the probability that the true Sharpe
    /// ratio of the chosen strategy is above what the best of `trials` unskilled ones would show,
    /// Φ((SR − SR₀) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²)), with SR the chosen strategy's per-period
    /// Sharpe over its `returns` (T of them, skewness γ₃, kurtosis γ₄) and SR₀ the expected maximum of
    /// `trials` Sharpe ratios of variance `variance`.
    public static func deflatedSharpe(returns: [Double], trials: Int, variance: Double) -> Double {
        let m = moments(returns)
        guard m.sd > 0, returns.count > 1 else { return 0 }
        let sr = m.mean / m.sd
        let threshold = expectedMaximumSharpe(trials: trials, variance: variance)
        let denominator = (1 - m.skew * sr + (m.kurtosis - 1) / 4 * sr * sr).squareRoot()
        guard denominator > 0 else { return 0 }
        return normalCDF((sr - threshold) * Double(returns.count - 1).squareRoot() / denominator)
    }

    /// The probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey,
    /// Borwein, López de Prado and Zhu, 2015). `returns[n]` are configuration n's per-period returns,
    /// all over the same periods, cut into `blocks` (even) consecutive blocks. For every choice of half
    /// the blocks as in-sample, the configuration with the best in-sample Sharpe is ranked among all by
    /// its out-of-sample Sharpe; the PBO is the share of choices where it lands in the bottom half
    /// (logit of its relative rank ≤ 0). Nil with fewer than two configurations or too few periods.
    public static func probabilityOfOverfitting(_ returns: [[Double]], blocks: Int = 16) -> Double? {
        guard returns.count > 1, blocks >= 2, blocks % 2 == 0,
            let periods = returns.map(\.count).min(), periods >= blocks * 2
        else { return nil }
        // Each configuration's sum, sum of squares and count per block: a union's Sharpe from them.
        let size = periods / blocks
        let sums: [[(sum: Double, squares: Double, count: Double)]] = returns.map { series in
            (0..<blocks).map { block in
                let part = series[(block * size)..<(block == blocks - 1 ? periods : (block + 1) * size)]
                return (part.reduce(0, +), part.reduce(0) { $0 + $1 * $1 }, Double(part.count))
            }
        }
        func sharpe(_ config: Int, _ chosen: [Int]) -> Double {
            var sum = 0.0
            var squares = 0.0
            var count = 0.0
            for block in chosen {
                sum += sums[config][block].sum
                squares += sums[config][block].squares
                count += sums[config][block].count
            }
            let mean = sum / count
            let variance = (squares - count * mean * mean) / max(count - 1, 1)
            return variance > 0 ? mean / variance.squareRoot() : 0
        }
        var overfit = 0
        var total = 0
        for inSample in combinations(of: blocks, choosing: blocks / 2) {
            let outOfSample = (0..<blocks).filter { !inSample.contains($0) }
            let best = (0..<returns.count).max { sharpe($0, inSample) < sharpe($1, inSample) }!
            let scores = (0..<returns.count).map { sharpe($0, outOfSample) }
            // Relative rank of the chosen one out of sample, in (0, 1).
            let rank = Double(scores.filter { $0 < scores[best] }.count) + 1
            let omega = rank / Double(returns.count + 1)
            if log(omega / (1 - omega)) <= 0 { overfit += 1 }
            total += 1
        }
        return Double(overfit) / Double(total)
    }

    /// Every way to choose `k` of `0..<n`, in lexicographic order.
    static func combinations(of n: Int, choosing k: Int) -> [[Int]] {
        var result: [[Int]] = []
        var current: [Int] = []
        func extend(_ start: Int) {
            if current.count == k {
                result.append(current)
                return
            }
            guard start < n, n - start >= k - current.count else { return }
            for next in start..<n {
                current.append(next)
                extend(next + 1)
                current.removeLast()
            }
        }
        extend(0)
        return result
    }

    /// The maximum drawdown (a fraction of the peak) of `capital` plus `pnls` in turn.
    public static func maximumDrawdown(capital: Double, _ pnls: [Double]) -> Double {
        var equity = capital
        var peak = capital
        var worst = 0.0
        for pnl in pnls {
            equity += pnl
            peak = max(peak, equity)
            if peak > 0 { worst = max(worst, (peak - equity) / peak) }
        }
        return worst
    }

    /// The maximum drawdowns of `runs` shuffles of the trades' order (a seeded generator, so the same
    /// seed gives the same figures), sorted ascending.
    public static func monteCarloDrawdowns(capital: Double, pnls: [Double], runs: Int, seed: UInt64) -> [Double] {
        var generator = SplitMix64(seed: seed)
        var order = pnls
        var drawdowns: [Double] = []
        drawdowns.reserveCapacity(runs)
        for _ in 0..<runs {
            order.shuffle(using: &generator)
            drawdowns.append(maximumDrawdown(capital: capital, order))
        }
        return drawdowns.sorted()
    }
}

extension WalkForward {
    /// One window's result: the configuration chosen on its training window and what it did out of sample.
    public struct Step: Sendable {
        public var window: Window
        /// The index of the configuration with the best training Sharpe (ties: the first).
        public var chosen: Int
        /// Each configuration's per-period Sharpe on the training window.
        public var trainingSharpes: [Double]
        /// The trades the chosen configuration entered in the test window.
        public var trades: [TradeRecord]
        /// Its per-candle equity returns over the test window.
        public var returns: [Double]
    }

    /// A walk-forward run and its statistics.
    public struct Report: Sendable {
        public var steps: [Step]
        /// The test windows' per-candle returns, stitched in order: the out-of-sample record.
        public var outOfSampleReturns: [Double]
        /// Each configuration's per-period Sharpe over the whole data (the full-sample sweep).
        public var fullSampleSharpes: [Double]
        /// The full-sample sweep's best configuration, what a plain sweep would pick.
        public var best: Int
        /// The deflated Sharpe ratio of that pick over the configurations tried.
        public var deflatedSharpe: Double
        /// The probability of backtest overfitting of the sweep (nil: too few periods or configurations).
        public var probabilityOfOverfitting: Double?

        /// The out-of-sample equity curve from `capital`, compounding the stitched returns.
        public func outOfSampleEquity(capital: Double) -> [Double] {
            var equity = [capital]
            equity.reserveCapacity(outOfSampleReturns.count + 1)
            for r in outOfSampleReturns { equity.append(equity[equity.count - 1] * (1 + r)) }
            return equity
        }
    }

    /// Optimises `configurations` on each training window of `plan` (the best per-period Sharpe wins),
    /// trades the next test window with the winner (the training candles only warm its indicators up:
    /// nothing after the test window's end is read), and works out the full-sample sweep's deflated
    /// Sharpe and probability of overfitting. Training runs of a window run on all cores.
    public static func run(
        _ candles: [Candle],
        symbol: String,
        interval: String,
        plan: Plan,
        configurations: [Backtester.Settings],
        funding: FundingSchedule? = nil,
        marks: [Int64: Candle]? = nil,
        detail: [Candle]? = nil
    ) throws -> Report {
        guard let length = CandleInterval.milliseconds(interval), let first = candles.first,
            let last = candles.last
        else { throw BacktestError("interval '\(interval)' is not one of 1m, 5m, 15m, 1h, 4h, 1d") }
        guard !configurations.isEmpty else { throw BacktestError("a walk-forward needs at least one configuration") }
        let windows = windows(first: first.openTime, end: last.openTime + length, plan: plan)
        guard !windows.isEmpty else {
            throw BacktestError("the data is shorter than one training window and a test window after it")
        }
        func slice(_ from: Int64, _ to: Int64) -> [Candle] {
            candles.filter { $0.openTime >= from && $0.openTime < to }
        }
        func returns(_ outcome: ReplayOutcome, from: Int64) -> [Double] {
            let all = WalkForward.returns(outcome.equity)
            return zip(all, outcome.times).filter { $0.1.timeIntervalSince1970 * 1000 - Double(length) >= Double(from) }
                .map(\.0)
        }
        // Every configuration over one slice, on all cores: its per-candle returns.
        func sweep(_ part: [Candle]) throws -> [[Double]] {
            try Backtester.sweep(
                configurations,
                candles: part,
                symbol: symbol,
                interval: interval,
                funding: funding,
                marks: marks,
                detail: detail
            ) { _, outcome in WalkForward.returns(outcome.equity) }
        }
        var steps: [Step] = []
        for window in windows {
            let sharpes = try sweep(slice(window.trainStart, window.trainEnd)).map(sharpe)
            let chosen = sharpes.indices.max { sharpes[$0] < sharpes[$1] || (sharpes[$0] == sharpes[$1] && $0 > $1) }!
            let test = try Backtester(settings: configurations[chosen], analyst: .rules).run(
                slice(window.trainStart, window.testEnd),
                symbol: symbol,
                interval: interval,
                funding: funding,
                marks: marks,
                detail: detail,
                tradingFrom: Date(timeIntervalSince1970: Double(window.testStart) / 1000)
            )
            steps.append(
                Step(
                    window: window,
                    chosen: chosen,
                    trainingSharpes: sharpes,
                    trades: test.trades,
                    returns: returns(test, from: window.testStart)
                )
            )
        }
        let full = try sweep(candles)
        let fullSharpes = full.map(sharpe)
        let best = fullSharpes.indices.max { fullSharpes[$0] < fullSharpes[$1] }!
        let variance = moments(fullSharpes).sd * moments(fullSharpes).sd
        var blocks = 16
        while blocks > 2, (full.map(\.count).min() ?? 0) < blocks * 2 { blocks -= 2 }
        return Report(
            steps: steps,
            outOfSampleReturns: steps.flatMap(\.returns),
            fullSampleSharpes: fullSharpes,
            best: best,
            deflatedSharpe: deflatedSharpe(returns: full[best], trials: configurations.count, variance: variance),
            probabilityOfOverfitting: probabilityOfOverfitting(full, blocks: blocks)
        )
    }
}
