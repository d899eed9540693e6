import Foundation
import TradingCore
import WorkerRuntime

/// `tradebus bench indicators`: the whole indicator set updated incrementally, per candle; against
/// TA-Lib recomputing everything over the last 1,000 candles for each new one (the seed bots' way);
/// and against TA-Lib's batch functions over a whole series. TA-Lib runs from scripts/talib-bench in
/// the same command.
public enum IndicatorBenchmark {
    public static func run(dataFile: String, repeat repetitions: Int, talibScript: String) async throws -> BenchReport {
        var report = BenchReport(benchmark: "indicators")
        let candles = try CandleFile.parse(try String(contentsOfFile: dataFile, encoding: .utf8))
        var series: [Candle] = []
        series.reserveCapacity(candles.count * repetitions)
        for _ in 0..<repetitions { series += candles }

        // Best of three passes over the whole series, one fresh IndicatorSet each.
        var best = Double.infinity
        var checksum = 0.0
        for _ in 0..<3 {
            var set = IndicatorSet()
            let elapsed = await seconds {
                for candle in series {
                    let snapshot = set.update(candle)
                    checksum += snapshot.adx14 ?? 0
                }
            }
            best = min(best, elapsed)
        }
        let oursPerCandle = best * 1e9 / Double(series.count)

        // The batch path: the same indicators as columns over the whole series (what `tradebus indicators` prints).
        var bestBatch = Double.infinity
        for _ in 0..<3 {
            let elapsed = await seconds {
                let table = IndicatorTable(series)
                checksum += table.values[table.values.count - 2]
            }
            bestBatch = min(bestBatch, elapsed)
        }
        let batchPerBar = bestBatch * 1e9 / Double(series.count)

        // Where the time goes: each indicator alone over the series.
        func alone(_ name: String, _ body: (Candle) -> Double?) async {
            var sum = 0.0
            let elapsed = await seconds { for candle in series { sum += body(candle) ?? 0 } }
            report.add(
                BenchFigure(
                    "  \(name) alone, per candle",
                    elapsed * 1e9 / Double(series.count),
                    "ns",
                    note: "checksum \(Int(sum) & 0xff)"
                )
            )
        }
        var sma = SMA(period: 20)
        var ema = EMA(period: 12)
        var macd = MACD()
        var rsi = RSI()
        var atr = ATR()
        var bands = Bollinger()
        var stochastic = Stochastic()
        var adx = ADX()
        var obv = OBV()
        await alone("SMA(20)") { sma.update($0.close) }
        await alone("EMA(12)") { ema.update($0.close) }
        await alone("MACD(12,26,9)") { macd.update($0.close)?.histogram }
        await alone("RSI(14)") { rsi.update($0.close) }
        await alone("ATR(14)") { atr.update(high: $0.high, low: $0.low, close: $0.close) }
        await alone("Bollinger(20,2)") { bands.update($0.close)?.upper }
        await alone("Stochastic(14,3,3)") { stochastic.update(high: $0.high, low: $0.low, close: $0.close)?.d }
        await alone("ADX(14)") { adx.update(high: $0.high, low: $0.low, close: $0.close) }
        await alone("OBV") { obv.update(close: $0.close, volume: $0.volume) }
        report.add(
            BenchFigure(
                "tradebus: whole set, incremental, per candle",
                oursPerCandle,
                "ns",
                note: "\(series.count) candles, checksum \(Int(checksum))"
            )
        )
        report.goal(
            "200 ns or less per candle (\(String(format: "%.0f", oursPerCandle)) ns)",
            met: oursPerCandle <= 200
        )

        let output = try await Command.run(
            "python3",
            [talibScript, "--data", dataFile, "--repeat", String(repetitions)]
        )
        guard let line = output.split(separator: "\n").last, let data = line.data(using: .utf8),
            let talib = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let recompute = talib["recompute_ns_per_candle"] as? Double,
            let batch = talib["batch_ns_per_bar"] as? Double
        else { throw CommandFailed(command: talibScript, status: 0, output: output) }
        report.add(BenchFigure("TA-Lib: recompute all over the last 1,000 candles, per new candle", recompute, "ns"))
        report.add(
            BenchFigure(
                "TA-Lib: batch over the whole series, per bar",
                batch,
                "ns",
                note: "TA-Lib \(talib["talib"] ?? "?")"
            )
        )
        report.add(BenchFigure("incremental vs TA-Lib recompute", recompute / oursPerCandle, "x cheaper"))
        report.add(
            BenchFigure("tradebus: TA-Lib's indicators as columns over the whole series, per bar", batchPerBar, "ns")
        )
        report.add(BenchFigure("batch vs TA-Lib batch", batchPerBar / batch, "x TA-Lib's cost"))
        report.add(
            BenchFigure(
                "incremental with snapshot, swings and regime vs TA-Lib batch",
                oursPerCandle / batch,
                "x TA-Lib's cost"
            )
        )
        report.goal(
            "100x or more cheaper than recomputing (\(String(format: "%.0f", recompute / oursPerCandle))x)",
            met: recompute / oursPerCandle >= 100
        )
        report.goal(
            "within 2x of TA-Lib's batch cost per bar (\(String(format: "%.2f", batchPerBar / batch))x)",
            met: batchPerBar / batch <= 2
        )
        return report
    }
}
