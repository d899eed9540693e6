import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Benchmarks

/// The benchmarks' report and plumbing, and one benchmark run small against the real Postgres.
@Suite("Benchmarks")
struct BenchmarksTests {
    @Test("a report carries every figure and goal, as text and as JSON, with the machine it ran on")
    func report() throws {
        var report = BenchReport(benchmark: "demo")
        report.add(BenchFigure("rows written", 12_345.6, "rows/s", note: "peer: psql"))
        report.add(BenchFigure("ratio", 2.5, "x"))
        report.goal("10x or more", met: false)
        let text = report.text()
        #expect(text.hasPrefix("demo benchmark — \(ProcessInfo.processInfo.activeProcessorCount) cores"))
        #expect(text.contains("12346 rows/s  (peer: psql)") && text.contains("2.500 x"))
        #expect(text.contains("goal: MISSED 10x or more"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(report.json().utf8))
        #expect(decoded.figures.map(\.name) == ["rows written", "ratio"] && decoded.goals == report.goals)
    }

    @Test("percentiles are nearest-rank")
    func percentiles() {
        let values = (1...100).map(Double.init)
        #expect(percentile(values, 50) == 50 && percentile(values, 99) == 99 && percentile(values, 100) == 100)
        #expect(percentile([7], 99) == 7 && percentile([], 50).isNaN)
    }

    @Test("what a benchmark opens is closed, awaited, when it fails too")
    func closesOnFailure() async throws {
        struct Failed: Error {}
        final class Resource: Sendable {
            let closed = Mutex(false)
        }
        let resource = Resource()
        await #expect(throws: Failed.self) {
            try await using(resource, close: { $0.closed.withLock { $0 = true } }, body: { _ in throw Failed() })
        }
        #expect(resource.closed.withLock { $0 })
    }

    @Test("the store benchmark, run small on the real Postgres, measures both paths and the psql peer")
    func storeBenchmark() async throws {
        let report = try await StoreBenchmark.run(databaseURL: TestServices.databaseURL, singleRows: 50, batchRows: 500)
        let names = report.figures.map(\.name)
        #expect(names.contains("single-row autocommit INSERT (prepared)") && names.contains("batch vs psql \\copy"))
        #expect(report.figures.allSatisfy { $0.value.isFinite && $0.value > 0 }, "\(report.text())")
    }
}
