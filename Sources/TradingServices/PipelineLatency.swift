import Foundation
import Metrics

/// `tradebus_pipeline_seconds{stage}`: from a candle's close to a stage of the work it caused (`signal`,
/// `decision`, `order`, `fill`), on the wall clock. Live only: a replay's candles closed long ago, so
/// anything over an hour (or before the close) is not a latency and is not recorded.
public enum PipelineLatency {
    /// The stages, in the order a candle reaches them.
    public static let stages = ["signal", "decision", "order", "fill"]

    /// Records that `stage` was reached now for the candle that closed at `candleClose`.
    public static func record(_ stage: String, candleClose: Date, now: Date = Date()) {
        let seconds = now.timeIntervalSince(candleClose)
        guard seconds >= 0, seconds < 3_600 else { return }
        Timer(label: "tradebus_pipeline_seconds", dimensions: [("stage", stage)])
            .recordNanoseconds(Int64(seconds * 1_000_000_000))
    }
}
