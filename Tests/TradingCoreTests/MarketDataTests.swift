import Foundation
import Testing
import TradingCore

@Suite("Market data: checks, sequencing and exchange formats")
struct MarketDataTests {
    let good = Candle(openTime: 60_000, open: 10, high: 12, low: 9, close: 11, volume: 5)

    @Test(
        "invalid candles are named by their defect",
        arguments: [
            (Candle(openTime: 0, open: .nan, high: 12, low: 9, close: 11, volume: 5), CandleDefect.notFinite),
            (Candle(openTime: 0, open: 10, high: .infinity, low: 9, close: 11, volume: 5), .notFinite),
            (Candle(openTime: 0, open: 0, high: 12, low: 9, close: 11, volume: 5), .nonPositivePrice),
            (Candle(openTime: 0, open: 10, high: 12, low: -1, close: 11, volume: 5), .nonPositivePrice),
            (Candle(openTime: 0, open: 10, high: 12, low: 9, close: 11, volume: -5), .negativeVolume),
            (Candle(openTime: 0, open: 10, high: 8, low: 9, close: 8.5, volume: 5), .highBelowLow),
            (Candle(openTime: 0, open: 13, high: 12, low: 9, close: 11, volume: 5), .openOutsideRange),
            (Candle(openTime: 0, open: 10, high: 12, low: 9, close: 8, volume: 5), .closeOutsideRange),
        ]
    )
    func defects(candle: Candle, defect: CandleDefect) {
        #expect(candle.defect == defect)
    }

    @Test("the sequencer drops duplicates and stale candles, reports gaps, invents nothing")
    func sequencing() {
        var sequencer = CandleSequencer(intervalMilliseconds: 60_000)
        func at(_ minute: Int64) -> Candle {
            var c = good
            c.openTime = minute * 60_000
            return c
        }
        #expect(sequencer.accept(at(1)) == .accepted(at(1)))
        #expect(sequencer.accept(at(2)) == .accepted(at(2)))
        #expect(sequencer.accept(at(2)) == .duplicate)
        #expect(sequencer.accept(at(1)) == .stale)
        #expect(sequencer.accept(at(5)) == .acceptedAfterGap(at(5), from: 3 * 60_000, missing: 2))
        var bad = at(6)
        bad.volume = -1
        #expect(sequencer.accept(bad) == .rejected(.negativeVolume))
        #expect(sequencer.lastOpenTime == Int64(300_000))
    }

    @Test("the 1m shared file has gaps, and they are found")
    func sharedFileGaps() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let candles = try CandleFile.parse(
            try String(
                contentsOf: root.appendingPathComponent("Tests/Fixtures/market-data/UNITTESTBTC-1m.csv"),
                encoding: .utf8
            )
        )
        var sequencer = CandleSequencer(intervalMilliseconds: CandleInterval.milliseconds("1m")!)
        var missing = 0
        var accepted = 0
        for candle in candles {
            switch sequencer.accept(candle) {
            case .accepted: accepted += 1
            case .acceptedAfterGap(_, _, let count):
                accepted += 1
                missing += count
            default: break
            }
        }
        #expect(accepted == candles.count)
        #expect(missing > 0)
        let span = Int((candles.last!.openTime - candles.first!.openTime) / 60_000) + 1
        #expect(accepted + missing == span, "every minute is either a candle or a reported gap")
    }

    @Test("Binance kline events, plain and combined, and REST klines")
    func binance() throws {
        let event =
            #"{"e":"kline","E":1672515782136,"s":"BTCUSDT","k":{"t":1672515780000,"T":1672515839999,"s":"BTCUSDT","i":"1m","f":100,"L":200,"o":"16500.1","c":"16510.5","h":"16520.0","l":"16490.2","v":"12.5","n":100,"x":true,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}"#
        let update = try #require(try BinanceMessages.kline(Array(event.utf8)))
        #expect(update.symbol == "BTCUSDT" && update.interval == "1m" && update.closed)
        #expect(
            update.candle
                == Candle(
                    openTime: 1_672_515_780_000,
                    open: 16500.1,
                    high: 16520,
                    low: 16490.2,
                    close: 16510.5,
                    volume: 12.5
                )
        )
        let combined = #"{"stream":"btcusdt@kline_1m","data":\#(event)}"#
        #expect(try BinanceMessages.kline(Array(combined.utf8)) == update)
        #expect(try BinanceMessages.kline(Array(#"{"result":null,"id":1}"#.utf8)) == nil)
        #expect(throws: ExchangeMessageError.self) { try BinanceMessages.kline(Array("garbage".utf8)) }
        let rest =
            #"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#
        #expect(
            try BinanceMessages.restKlines(Array(rest.utf8)) == [
                Candle(
                    openTime: 1_499_040_000_000,
                    open: 0.0163479,
                    high: 0.8,
                    low: 0.015758,
                    close: 0.015771,
                    volume: 148976.11427815
                )
            ]
        )
    }

    @Test("Bybit kline pushes and REST klines (newest first, put in order), and its errors")
    func bybit() throws {
        let push =
            #"{"topic":"kline.5.BTCUSDT","data":[{"start":1672324800000,"end":1672325099999,"interval":"5","open":"16649.5","close":"16677","high":"16677","low":"16608","volume":"2.081","turnover":"34666.4005","confirm":false,"timestamp":1672324988882}],"ts":1672324988882,"type":"snapshot"}"#
        let updates = try BybitMessages.klines(Array(push.utf8))
        #expect(
            updates.count == 1 && updates[0].interval == "5m" && updates[0].symbol == "BTCUSDT" && !updates[0].closed
        )
        #expect(BybitMessages.interval("240") == "4h" && BybitMessages.interval("D") == "1d")
        let rest =
            #"{"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT","category":"linear","list":[["1670608860000","17072","17074","17070","17071","10","170"],["1670608800000","17071","17073","17027","17055.5","268611","15.74"]]},"retExtInfo":{},"time":1672025956592}"#
        let candles = try BybitMessages.restKlines(Array(rest.utf8))
        #expect(candles.map(\.openTime) == [1_670_608_800_000, 1_670_608_860_000])
        let error = #"{"retCode":10001,"retMsg":"params error: symbol invalid","result":{},"retExtInfo":{},"time":1}"#
        #expect { try BybitMessages.restKlines(Array(error.utf8)) } throws: { "\($0)".contains("10001") }
    }
}
