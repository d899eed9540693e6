import Foundation
import Testing
import TradingCore

/// Every indicator against TA-Lib's values (scripts/talib-vectors), on every shared data file.
@Suite("Indicators match TA-Lib")
struct TALibVectorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let files = ["XRPUSDT-PERP-5m", "XRPUSDT-PERP-1h", "UNITTESTBTC-1m", "ETHBTC-5m", "LTCBTC-5m"]

    /// Equal within 1e-9 relative, or 1e-12 absolute near zero.
    static func close(_ ours: Double, _ theirs: Double) -> Bool {
        abs(ours - theirs) <= max(1e-9 * abs(theirs), 1e-12)
    }

    @Test("from TA-Lib's first output onward, every column matches", arguments: files)
    func matchesTALib(file: String) throws {
        let data = try String(
            contentsOf: Self.root.appendingPathComponent("Tests/Fixtures/market-data/\(file).csv"),
            encoding: .utf8
        )
        let vectors = try String(
            contentsOf: Self.root.appendingPathComponent("Tests/TradingCoreTests/Vectors/\(file).talib.csv"),
            encoding: .utf8
        )
        let candles = try CandleFile.parse(data)
        let expected = vectors.split(separator: "\n").dropFirst().map {
            $0.split(separator: ",", omittingEmptySubsequences: false)
        }
        #expect(candles.count == expected.count)
        var set = IndicatorSet()
        var mismatches: [String] = []
        var compared = 0
        for (candle, row) in zip(candles, expected) {
            let snapshot = set.update(candle)
            #expect(Int64(row[0]) == snapshot.openTime)
            for (column, (ours, theirs)) in zip(
                IndicatorSnapshot.columns.dropFirst(),
                zip(snapshot.columnValues, row.dropFirst())
            ) {
                let reference = Double(theirs)
                switch (ours, reference) {
                case (nil, nil):
                    continue
                case (let value?, let reference?) where Self.close(value, reference):
                    compared += 1
                default:
                    if mismatches.count < 5 {
                        mismatches.append(
                            "\(column) at \(snapshot.openTime): ours \(ours.map { "\($0)" } ?? "warm-up"), TA-Lib \(theirs.isEmpty ? "warm-up" : String(theirs))"
                        )
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(file): \(mismatches.joined(separator: "; "))")
        #expect(compared > candles.count * 10)
    }

    @Test(
        "the batch table (what tradebus indicators prints) equals the incremental snapshots bit for bit",
        arguments: files
    )
    func tableEqualsSnapshots(file: String) throws {
        let candles = try CandleFile.parse(
            try String(
                contentsOf: Self.root.appendingPathComponent("Tests/Fixtures/market-data/\(file).csv"),
                encoding: .utf8
            )
        )
        let table = IndicatorTable(candles)
        var set = IndicatorSet()
        #expect(table.rows == candles.count)
        for (index, candle) in candles.enumerated() {
            let expected = set.update(candle).columnValues
            if table.row(index) != expected {
                Issue.record("\(file) row \(index): table \(table.row(index)), snapshot \(expected)")
                return
            }
        }
    }
}

@Suite("Candle files")
struct CandleFileTests {
    @Test("the 6-column CSV with a header")
    func sixColumns() throws {
        let candles = try CandleFile.parse(
            "open_time,open,high,low,close,volume\n1515560100000,0.0984,0.0994766,0.09828605,0.0994766,1820.544474\n"
        )
        #expect(
            candles == [
                Candle(
                    openTime: 1_515_560_100_000,
                    open: 0.0984,
                    high: 0.0994766,
                    low: 0.09828605,
                    close: 0.0994766,
                    volume: 1820.544474
                )
            ]
        )
    }

    @Test("Binance's 12-column klines, without a header and with microseconds")
    func binanceKlines() throws {
        let ms =
            "1636934400000,1.1893,1.1954,1.1891,1.1941,9289043.5,1636934699999,11073516.4,12345,4000000.1,4770000.2,0\n"
        let us =
            "1636934400000000,1.1893,1.1954,1.1891,1.1941,9289043.5,1636934699999999,11073516.4,12345,4000000.1,4770000.2,0\n"
        let header =
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
        let a = try CandleFile.parse(ms)
        let b = try CandleFile.parse(us)
        let c = try CandleFile.parse(header + ms)
        #expect(a == b && b == c)
        #expect(a.first?.openTime == 1_636_934_400_000)
        #expect(a.first?.volume == 9_289_043.5)
    }

    @Test("freqtrade JSON arrays")
    func freqtradeJSON() throws {
        let candles = try CandleFile.parse(
            "[[1636934400000, 1.1893, 1.1954, 1.1891, 1.1941, 9289043.5], [1636934700000, 1.1941, 1.1993, 1.1934, 1.1972, 7267451.9]]"
        )
        #expect(candles.count == 2)
        #expect(candles[1].close == 1.1972)
    }

    @Test("a bad line is an error naming the line")
    func badLine() {
        #expect { try CandleFile.parse("1,2,3,4,5,6\n2,2,x,4,5,6\n") } throws: { "\($0)".hasPrefix("line 2:") }
    }
}
