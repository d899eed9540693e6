import Foundation
import Testing
import TradingCore

@Suite("Timeframes, signals, regime and swing levels")
struct StructureTests {
    func minute(_ index: Int, open: Double, high: Double, low: Double, close: Double, volume: Double = 1) -> Candle {
        Candle(
            openTime: 1_700_000_000_000 - 1_700_000_000_000 % 14_400_000 + Int64(index) * 60_000,
            open: open,
            high: high,
            low: low,
            close: close,
            volume: volume
        )
    }

    @Test("1m candles build 5m, 15m, 1h and 4h candles with OHLCV right")
    func aggregates() {
        var aggregator = TimeframeAggregator()
        var outputs: [TimeframeAggregator.Output] = []
        for index in 0..<240 {
            let price = 100 + Double(index)
            outputs += aggregator.add(
                minute(index, open: price, high: price + 0.5, low: price - 0.5, close: price + 0.25, volume: 2)
            )
        }
        let counts = Dictionary(grouping: outputs, by: \.interval).mapValues(\.count)
        #expect(counts == ["5m": 48, "15m": 16, "1h": 4, "4h": 1])
        #expect(outputs.allSatisfy { $0.complete })
        let first5m = outputs.first { $0.interval == "5m" }!.candle
        #expect(
            first5m.open == 100 && first5m.close == 104.25 && first5m.high == 104.5 && first5m.low == 99.5
                && first5m.volume == 10
        )
        let fourHours = outputs.first { $0.interval == "4h" }!
        #expect(fourHours.minutes == 240 && fourHours.candle.volume == 480 && fourHours.candle.high == 339.5)
    }

    @Test("a gap closes a partial candle, marked incomplete, and invents nothing")
    func gap() {
        var aggregator = TimeframeAggregator(intervals: [("5m", 5)])
        var outputs: [TimeframeAggregator.Output] = []
        for index in [0, 1, 2, 7, 8, 9] {
            outputs += aggregator.add(minute(index, open: 1, high: 2, low: 0.5, close: 1.5))
        }
        #expect(outputs.count == 2)
        #expect(outputs[0].minutes == 3 && !outputs[0].complete)
        #expect(outputs[1].minutes == 3 && !outputs[1].complete, "the 5–9 bucket lacks 5 and 6")
    }

    func snapshot(
        close: Double = 100,
        macd: Double? = nil,
        signal: Double? = nil,
        rsi: Double? = nil,
        volume: Double = 1,
        upper: Double? = nil,
        lower: Double? = nil,
        volumeSMA: Double? = nil
    ) -> IndicatorSnapshot {
        IndicatorSnapshot(
            openTime: 0,
            close: close,
            macd: macd,
            macdSignal: signal,
            rsi14: rsi,
            bollingerUpper: upper,
            bollingerMiddle: nil,
            bollingerLower: lower,
            volume: volume,
            volumeSMA20: volumeSMA
        )
    }

    @Test("MACD crosses, RSI leaving extremes, and volume-confirmed breakouts are signals")
    func signals() {
        let bullishCross = Signal.detect(previous: snapshot(macd: -1, signal: 0), current: snapshot(macd: 1, signal: 0))
        #expect(bullishCross.map(\.kind) == [.macdCross] && bullishCross[0].direction == .bullish)
        #expect(
            Signal.detect(previous: snapshot(macd: 1, signal: 0), current: snapshot(macd: -1, signal: 0)).first?
                .direction == .bearish
        )
        #expect(Signal.detect(previous: snapshot(macd: 1, signal: 0), current: snapshot(macd: 2, signal: 0)).isEmpty)
        #expect(
            Signal.detect(previous: snapshot(rsi: 75), current: snapshot(rsi: 69)).map(\.kind) == [.rsiExitOverbought]
        )
        #expect(
            Signal.detect(previous: snapshot(rsi: 25), current: snapshot(rsi: 31)).map(\.kind) == [.rsiExitOversold]
        )
        #expect(Signal.detect(previous: snapshot(rsi: 75), current: snapshot(rsi: 72)).isEmpty)
        let breakout = snapshot(close: 110, volume: 20, upper: 105, lower: 95, volumeSMA: 10)
        #expect(Signal.detect(previous: snapshot(), current: breakout).map(\.kind) == [.bollingerBreakout])
        let thinVolume = snapshot(close: 110, volume: 12, upper: 105, lower: 95, volumeSMA: 10)
        #expect(Signal.detect(previous: snapshot(), current: thinVolume).isEmpty, "a breakout needs volume")
    }

    @Test("the regime rule, in its documented order")
    func regime() {
        var s = IndicatorSnapshot(
            openTime: 0,
            close: 100,
            sma20: 98,
            ema12: 99,
            ema26: 97,
            atr14: 1,
            adx14: 30,
            volume: 1
        )
        #expect(MarketRegime.classify(s) == .trendingUp)
        s.close = 95
        s.ema12 = 96
        s.ema26 = 97
        #expect(MarketRegime.classify(s) == .trendingDown)
        s.adx14 = 15
        #expect(MarketRegime.classify(s) == .ranging)
        s.atr14 = 3
        #expect(MarketRegime.classify(s) == .volatile, "3% ATR beats every other label")
        s.adx14 = nil
        #expect(MarketRegime.classify(s) == nil)
    }

    @Test("swing highs and lows become resistance and support once confirmed")
    func swings() {
        var levels = SwingLevels(strength: 2)
        let highs: [Double] = [10, 11, 15, 12, 11, 13]
        let lows: [Double] = [9, 8, 12, 5, 9, 10]
        var seen: [Double?] = []
        for (h, l) in zip(highs, lows) {
            levels.update(high: h, low: l)
            seen.append(levels.resistance)
        }
        #expect(seen == [nil, nil, nil, nil, 15, 15], "15 is confirmed two candles later")
        #expect(levels.support == 5)
    }
}
