import Foundation
import Testing
import TradingCore

@Suite("Lockstep replay: the tracker, the market clock, the signal's own snapshot")
struct LockstepTests {
    let close = Date(timeIntervalSince1970: 1_637_120_100)

    func mark(_ worker: String, _ id: String, emits: [String] = [], at time: Date? = nil) -> Watermark {
        Watermark(
            worker: worker,
            symbol: "XRPUSDT",
            candleTime: time ?? close,
            handled: "\(worker):\(id)",
            emitted: emits
        )
    }

    @Test("a candle is done when the executor, the indicator worker and all the work they started have finished")
    func followsTheWork() {
        var tracker = LockstepTracker()
        tracker.start(candleID: "c1", close: close)
        #expect(!tracker.isDone)
        do {
            let done = tracker.receive(mark("executor", "c1"))
            #expect(!done)
        }
        do {
            let done = tracker.receive(mark("indicator-worker", "c1", emits: ["ai-analyst:s1", "ai-analyst:s2"]))
            #expect(!done)
        }
        do {
            let done = tracker.receive(mark("ai-analyst", "s1", emits: ["executor:d1"]))
            #expect(!done)
        }
        do {
            let done = tracker.receive(mark("ai-analyst", "s2"))
            #expect(!done)
        }
        #expect(tracker.holders == ["executor (d1)"])
        do {
            let done = tracker.receive(mark("executor", "d1"))
            #expect(done)
        }
    }

    @Test("a watermark before the one that names its work, a duplicate, another candle's: none fools it")
    func outOfOrderAndDuplicates() {
        var tracker = LockstepTracker()
        tracker.start(candleID: "c2", close: close)
        // The analyst is faster than the indicator worker's watermark naming its signal.
        tracker.receive(mark("ai-analyst", "s1", emits: ["executor:d1"]))
        tracker.receive(mark("executor", "d1"))
        tracker.receive(mark("executor", "c2"))
        // An earlier candle's watermark, redelivered, changes nothing.
        tracker.receive(mark("indicator-worker", "c1", emits: ["ai-analyst:old"], at: close - 300))
        #expect(!tracker.isDone)
        do {
            let done = tracker.receive(mark("indicator-worker", "c2", emits: ["ai-analyst:s1"]))
            #expect(done)
        }
        // A duplicate after the end leaves it done.
        do {
            let done = tracker.receive(mark("ai-analyst", "s1", emits: ["executor:d1"]))
            #expect(done)
        }
        // The next candle starts afresh.
        tracker.start(candleID: "c3", close: close + 300)
        #expect(!tracker.isDone)
        #expect(Set(tracker.pending) == ["executor:c3", "indicator-worker:c3"])
    }

    @Test("the market clock moves forward only; until set it reads the wall clock")
    func clockMovesForward() {
        let clock = ReplayClock()
        #expect(abs(clock.date.timeIntervalSinceNow) < 5)
        clock.advance(to: close)
        clock.advance(to: close - 86_400)
        #expect(clock.now() == close)
        clock.advance(to: close + 300)
        #expect(clock.date == close + 300)
    }

    @Test("a signal is decided on its own snapshot, and on no timeframe that closed after it")
    func signalSnapshotOnly() throws {
        let signal = IndicatorSnapshot(openTime: 1_000_000, close: 1, volume: 1)
        let newer = IndicatorSnapshot(openTime: 1_000_000 + 300_000, close: 2, volume: 1)
        // The 15m candle closing with the signal's 5m candle is in; one closing 5 minutes later is not.
        let quarterWith = IndicatorSnapshot(openTime: 1_000_000 + 300_000 - 900_000, close: 3, volume: 1)
        let quarterLater = IndicatorSnapshot(openTime: 1_000_000 + 600_000 - 900_000, close: 4, volume: 1)
        let now = Date(timeIntervalSince1970: Double(1_000_000 + 300_000) / 1000)
        let shown = try AnalysisContext.timeframes(
            latest: ["5m": newer, "15m": quarterWith],
            interval: "5m",
            signalSnapshot: signal,
            now: now,
            maxSnapshotAge: 120
        ).get()
        #expect(shown["5m"] == signal)
        #expect(shown["15m"] == quarterWith)
        let later = try AnalysisContext.timeframes(
            latest: ["5m": newer, "15m": quarterLater],
            interval: "5m",
            signalSnapshot: signal,
            now: now,
            maxSnapshotAge: 120
        ).get()
        #expect(later["5m"] == signal && later["15m"] == nil)
    }
}
