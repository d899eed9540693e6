import CoreMetrics
import Prometheus

/// The help text of every metric family the workers export: `/metrics` carries a `# HELP` line for
/// each, as `promtool check metrics` asks. A test finds every `tradebus_*` label in the sources here.
public enum MetricHelp {
    public static let text: [String: String] = [
        "tradebus_account_equity": "The account's equity at the venue (USD), at each decision and close.",
        "tradebus_account_mode": "The account's mode: 0 normal, 1 REDUCING (no new entries), 2 halted.",
        "tradebus_breakers_tripped": "Circuit breakers tripped on the account (each needs an operator's reset).",
        "tradebus_positions_unprotected": "Open positions with no stop at the venue covering them right now.",
        "tradebus_reconcile_unresolved":
            "Mismatches between store and venue the last reconciliation could not resolve.",
        "tradebus_reconcile_findings_total":
            "Mismatches between store and venue found (and acted on) by reconciliation.",
        "tradebus_feed_last_candle_seconds": "Close time (Unix seconds) of the last candle published, by venue.",
        "tradebus_llm_budget_used_ratio": "Today's LLM spending as a share of LLM_DAILY_BUDGET_USD.",
        "tradebus_analyst_all_failed_total": "Decisions for which every LLM of the panel failed.",
        "tradebus_analyst_cache_total": "Analyst answers served from the decision cache, by result.",
        "tradebus_analyst_canary_total": "Live signals decided by the canary candidate (ANALYST_CANARY_PERCENT).",
        "tradebus_analyst_grounding_total": "Answers by grounding result (grounded, uncited, ungrounded).",
        "tradebus_analyst_invalid_total": "LLM answers refused as invalid and turned into HOLD.",
        "tradebus_analyst_refused_total": "Signals not analysed, by reason (missing or stale snapshot).",
        "tradebus_bus_consumed_total": "Messages consumed from RabbitMQ, by queue.",
        "tradebus_bus_dead_lettered_total": "Messages sent to a dead-letter queue, by queue.",
        "tradebus_bus_publish_failed_total": "Publishes RabbitMQ did not confirm.",
        "tradebus_bus_published_total": "Messages published to RabbitMQ and confirmed.",
        "tradebus_bus_reconnects_total": "Reconnections to RabbitMQ.",
        "tradebus_cache_degraded": "1 while Redis is unreachable or slow and the in-process LRU answers.",
        "tradebus_cache_fallback_total": "Cache calls answered by the in-process LRU because Redis failed.",
        "tradebus_copy_fill_to_decision_seconds":
            "Copy-trading: seconds from a followed leader's fill to our decision on the bus.",
        "tradebus_decisions_total": "Decisions made, by action and provider.",
        "tradebus_feed_backfilled_candles_total": "Candles fetched over REST to fill a gap, by venue.",
        "tradebus_feed_candles_total": "Closed candles published, by venue.",
        "tradebus_feed_disconnects_total": "Market-data WebSocket disconnections, by venue.",
        "tradebus_feed_duplicates_total": "Candles dropped as duplicates, by venue.",
        "tradebus_feed_gaps_total": "Gaps found in a candle stream, by venue.",
        "tradebus_feed_invalid_candles_total": "Invalid candles skipped, by venue and defect.",
        "tradebus_feed_malformed_messages_total": "Exchange messages that could not be read, by venue.",
        "tradebus_feed_missing_candles_total": "Candles still missing after backfill, by venue.",
        "tradebus_feed_record_failures_total": "Candles or settlements the store did not keep.",
        "tradebus_feed_stale_alerts_total": "Alerts raised for a silent stream, by venue.",
        "tradebus_indicator_candles_total": "Candles turned into indicator snapshots.",
        "tradebus_indicator_state_restored_total": "Indicator streams restored from Redis (a takeover or a restart).",
        "tradebus_llm_cost_microusd_total": "What the LLM calls cost, in millionths of a US dollar, by model.",
        "tradebus_llm_failures_total": "LLM calls that failed, by model and reason.",
        "tradebus_llm_latency_seconds": "Duration of one LLM call, by model.",
        "tradebus_llm_output_mode_total":
            "LLM replies by structured-output path (json_schema, json_object, tool, text).",
        "tradebus_llm_repairs_total": "Invalid answers asked again with the reason (LLM_REPAIR_ATTEMPTS).",
        "tradebus_llm_retries_total": "LLM calls retried after a transient failure, by model.",
        "tradebus_llm_tokens_total": "LLM tokens, by model and direction (input, output).",
        "tradebus_notifier_duplicates_total": "Notices dropped as already sent, by sink.",
        "tradebus_notifier_failed_total": "Notices a sink failed to deliver after its retries, by sink.",
        "tradebus_notifier_retries_total": "Notice deliveries retried, by sink.",
        "tradebus_notifier_sent_total": "Notices delivered, by sink.",
        "tradebus_orders_total": "Orders sent to the venue, by the status it answered.",
        "tradebus_pipeline_seconds":
            "Seconds from a candle's close to a stage of its work: signal, decision, order, fill.",
        "tradebus_risk_rejections_total": "Decisions refused by the risk gateway, by reason.",
        "tradebus_shadow_decisions_total": "Decisions of the shadow candidate (ANALYST_SHADOW), by action.",
        "tradebus_shadow_failures_total": "Shadow decisions that could not be recorded or published.",
    ]

    /// A name nobody described gets this, so the family still has help text; the test makes it rare.
    static func help(_ name: String) -> String { text[name] ?? "TradeBus metric \(name)." }
}

/// swift-metrics into the Prometheus registry, as swift-prometheus's own factory does, but with the
/// help text of ``MetricHelp`` on every family, and latency buckets that reach the LLMs' minutes.
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    /// From a millisecond (a candle through the bus) to two minutes (an LLM's answer).
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]
    static let valueBuckets: [Double] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000]

    func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricHelp.help(label))
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(
            descriptor: descriptor(label),
            labels: dimensions,
            buckets: Self.valueBuckets
        )
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: Self.durationBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
