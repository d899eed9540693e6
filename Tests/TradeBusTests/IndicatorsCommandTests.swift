import Foundation
import TestSupport
import Testing
import WorkerRuntime

/// The `tradebus indicators` command-line contract, run as a process.
@Suite("tradebus indicators")
struct IndicatorsCommandTests {
    let tradebus = TestServices.repositoryRoot.appendingPathComponent(".build/debug/tradebus").path
    let data = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data").path
    let vectors = TestServices.repositoryRoot.appendingPathComponent("Tests/TradingCoreTests/Vectors").path

    @Test("csv: the header in order, one row per candle, empty warm-up fields, values as TA-Lib's")
    func csv() async throws {
        let output = try await Command.run(tradebus, ["indicators", "--data", "\(data)/XRPUSDT-PERP-1h.csv"])
        let rows = output.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(
            rows[0].joined(separator: ",")
                == "open_time,close,sma20,ema12,ema26,macd,macd_signal,macd_hist,rsi14,atr14,bb_upper,bb_middle,bb_lower,stoch_k,stoch_d,adx14,obv"
        )
        let reference = try String(contentsOfFile: "\(vectors)/XRPUSDT-PERP-1h.talib.csv", encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(rows.count == reference.count)
        for (ours, theirs) in zip(rows.dropFirst(), reference.dropFirst()) {
            #expect(ours.count == 17)
            for (a, b) in zip(ours, theirs) {
                #expect(a.isEmpty == b.isEmpty)
                if let x = Double(a), let y = Double(b) { #expect(abs(x - y) <= max(1e-9 * abs(y), 1e-12)) }
            }
        }
    }

    @Test("jsonl: one object per candle with null during warm-up")
    func jsonl() async throws {
        let output = try await Command.run(
            tradebus,
            ["indicators", "--data", "\(data)/XRPUSDT-PERP-1h.csv", "--format", "jsonl"]
        )
        let lines = output.split(separator: "\n")
        #expect(lines.count == 100)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["sma20"] is NSNull)
        #expect((first["open_time"] as? NSNumber)?.int64Value == 1_637_110_800_000)
        let last = try #require(try JSONSerialization.jsonObject(with: Data(lines[99].utf8)) as? [String: Any])
        #expect(last["adx14"] is NSNumber)
        #expect(Set(last.keys).count == 17)
    }

    @Test("an unreadable file is a clear error, exit code 64")
    func missingFile() async {
        await #expect { try await Command.run(tradebus, ["indicators", "--data", "/nonexistent.csv"]) } throws: {
            error in
            guard let failure = error as? CommandFailed else { return false }
            return failure.status == 64 && failure.output.contains("cannot read --data")
        }
    }
}
