import Foundation
import Metrics
import Prometheus
import TestSupport
import Testing

@testable import WorkerRuntime

@Suite("Metrics: help text on every family")
struct MetricsTests {
    @Test("every tradebus_* metric named in the sources has help text, and no help text names a metric that is gone")
    func everyMetricDescribed() throws {
        let sources = TestServices.repositoryRoot.appendingPathComponent("Sources")
        var named: Set<String> = []
        let files = FileManager.default.enumerator(atPath: sources.path)!
        let pattern = try Regex(#"label: "(tradebus_[a-z0-9_]+)""#)
        for case let file as String in files where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: pattern) {
                if let name = match.output[1].substring { named.insert(String(name)) }
            }
        }
        #expect(named.count > 30)
        #expect(named.subtracting(MetricHelp.text.keys).sorted().isEmpty, "no help text")
        #expect(Set(MetricHelp.text.keys).subtracting(named).sorted().isEmpty, "help text for a metric no code makes")
    }

    @Test("the factory writes # HELP for counters, gauges and histograms, labelled or not")
    func helpLines() {
        let registry = PrometheusCollectorRegistry()
        let factory = DescribedMetricsFactory(registry: registry)
        factory.makeCounter(label: "tradebus_orders_total", dimensions: [("status", "new")]).increment(by: 1)
        factory.makeCounter(label: "tradebus_orders_total", dimensions: [("status", "filled")]).increment(by: 2)
        factory.makeRecorder(label: "tradebus_cache_degraded", dimensions: [], aggregate: false).record(Int64(1))
        factory.makeTimer(label: "tradebus_pipeline_seconds", dimensions: [("stage", "order")])
            .recordNanoseconds(3_000_000)
        let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        #expect(text.contains("# HELP tradebus_orders_total Orders sent to the venue"))
        #expect(text.contains("# HELP tradebus_cache_degraded "))
        #expect(text.contains("# HELP tradebus_pipeline_seconds Seconds from a candle's close"))
        #expect(text.contains(#"tradebus_pipeline_seconds_bucket{stage="order",le="0.005"} 1"#))
    }
}
