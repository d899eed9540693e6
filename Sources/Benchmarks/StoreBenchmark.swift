import Foundation
import PostgresStore
import SQLTradeStore
import TradingCore
import WorkerRuntime

/// `tradebus bench store`: fills written one row per autocommit statement against the batch path
/// (COPY into a temporary table, then one INSERT that skips duplicates), with `psql \copy` of the
/// same rows into a plain table as the peer.
public enum StoreBenchmark {
    public static func run(databaseURL: String, singleRows: Int, batchRows: Int) async throws -> BenchReport {
        try await using(
            SQLTradeStore.postgres(url: databaseURL, connections: 1),
            close: { await $0.close() },
            body: { try await measure($0, databaseURL: databaseURL, singleRows: singleRows, batchRows: batchRows) }
        )
    }

    static func measure(
        _ store: SQLTradeStore,
        databaseURL: String,
        singleRows: Int,
        batchRows: Int
    ) async throws -> BenchReport {
        var report = BenchReport(benchmark: "store")
        try await store.migrate()
        let run = UUID().uuidString.prefix(8).lowercased()
        let base = Date()
        func fill(_ index: Int) -> FillRecord {
            FillRecord(
                venue: "bench",
                tradeID: "\(run)-\(index)",
                clientOrderID: "bench-\(run)-\(index / 10)",
                symbol: "BTCUSDT",
                side: index % 2 == 0 ? .buy : .sell,
                price: Money(97_000) + Money(index % 1000) / 100,
                quantity: Money(string: "0.001")!,
                fee: Money(string: "0.0388")!,
                feeAsset: "USDT",
                time: base.addingTimeInterval(Double(index) / 1000)
            )
        }

        let single = (0..<singleRows).map(fill)
        let singleSeconds = try await seconds { for row in single { try await store.recordFill(row) } }
        let batch = (singleRows..<(singleRows + batchRows)).map(fill)
        var inserted = 0
        let batchSeconds = try await seconds {
            for chunk in stride(from: 0, to: batch.count, by: 10_000) {
                inserted += try await store.recordFills(Array(batch[chunk..<min(chunk + 10_000, batch.count)]))
            }
        }
        guard inserted == batchRows else {
            throw StoreError(.query, "batch path inserted \(inserted) of \(batchRows) rows")
        }

        // The peer: psql \copy of the same rows into a table without the conflict handling.
        let file = NSTemporaryDirectory() + "tradebus-bench-\(run).tsv"
        let rows =
            batch.map { f in
                [
                    f.venue, f.tradeID + "-peer", f.clientOrderID, f.symbol, f.side.rawValue, "\(f.price)",
                    "\(f.quantity)", "\(f.fee)", f.feeAsset, SQLText.time(f.time),
                ]
                .joined(separator: "\t")
            }.joined(separator: "\n") + "\n"
        try rows.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await Command.run(
            "psql",
            [databaseURL, "-qc", "CREATE TABLE IF NOT EXISTS bench_copy_peer (LIKE fills INCLUDING ALL)"]
        )
        try await Command.run("psql", [databaseURL, "-qc", "TRUNCATE bench_copy_peer"])
        let psqlSeconds = try await seconds {
            try await Command.run(
                "psql",
                [
                    databaseURL, "-qc",
                    "\\copy bench_copy_peer (venue, trade_id, client_order_id, symbol, side, price, quantity, fee, fee_asset, time) FROM '\(file)'",
                ]
            )
        }

        let singleRate = Double(singleRows) / singleSeconds
        let batchRate = Double(batchRows) / batchSeconds
        let peerRate = Double(batchRows) / psqlSeconds
        report.add(BenchFigure("single-row autocommit INSERT (prepared)", singleRate, "rows/s"))
        report.add(BenchFigure("batch path: COPY + INSERT ... ON CONFLICT DO NOTHING", batchRate, "rows/s"))
        report.add(
            BenchFigure(
                "peer: psql \\copy of the same rows (plain table)",
                peerRate,
                "rows/s",
                note: "includes psql start-up"
            )
        )
        report.add(BenchFigure("batch vs single-row", batchRate / singleRate, "x"))
        report.add(BenchFigure("batch vs psql \\copy", batchRate / peerRate, "x"))
        report.goal(
            "batch 20x or more faster than single-row (\(String(format: "%.1f", batchRate / singleRate))x)",
            met: batchRate / singleRate >= 20
        )
        return report
    }
}
