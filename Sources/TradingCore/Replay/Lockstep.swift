import Foundation
import Synchronization

/// The market's clock during a replay: the close of the candle being handled. Every service of a
/// replay reads it, so decision ages, snapshot staleness, breaker days and trade times are market
/// times, and a file from 2018 replays as one from today does. Until something sets it, it tells the
/// real time (a live run never sets it).
public final class ReplayClock: Sendable {
    private let current = Mutex<Date?>(nil)
    /// A clock that reads the wall clock until a replay sets it.
    public init() {}
    /// Sets the time (the embedded replay, which moves one candle at a time).
    public func set(_ date: Date) { current.withLock { $0 = date } }
    /// Moves the time forward to `date`, never back: a redelivered older message leaves it where it is,
    /// so a day never flips back and forth.
    public func advance(to date: Date) {
        current.withLock { $0 = max($0 ?? date, date) }
    }
    public var date: Date { current.withLock { $0 } ?? Date() }
    public var now: @Sendable () -> Date { { self.date } }
}

/// A worker's watermark in a lockstep replay (`progress.<worker>.<symbol>`): it has fully handled the
/// message `handled` (its effects recorded and its messages published) and published `emitted` for
/// the next workers. Keys are `<consumer>:<message id>`: `indicator-worker:candle:…`,
/// `ai-analyst:sig:…`, `executor:decision:…`.
public struct Watermark: Sendable, Hashable, Codable {
    public var worker: String
    public var symbol: String
    /// The close of the candle this work came from.
    public var candleTime: Date
    public var handled: String
    public var emitted: [String]

    /// A `Watermark` with the fields given.
    public init(worker: String, symbol: String, candleTime: Date, handled: String, emitted: [String]) {
        self.worker = worker
        self.symbol = symbol
        self.candleTime = candleTime
        self.handled = handled
        self.emitted = emitted
    }

    /// The message type of a watermark.
    public static let messageType = "progress"

    /// The key of the work `consumer` does on the message `messageID`.
    public static func key(_ consumer: String, _ messageID: String) -> String { "\(consumer):\(messageID)" }
}

/// What the feed waits for before it publishes the next candle of a lockstep replay: every piece of
/// work the candle caused, found from the watermarks as they come. A candle starts two (the executor
/// and the indicator worker take it); each watermark ends one and names the work it started (a signal
/// for the analyst, a decision for the executor). Pure: watermarks in, "done" or what is pending out.
/// Duplicates (redeliveries) and watermarks that arrive before the one naming them change nothing;
/// watermarks of other candles are ignored.
public struct LockstepTracker: Sendable {
    /// The workers that take a candle from the feed.
    public static let candleConsumers = ["executor", "indicator-worker"]

    public private(set) var candleTime: Date?
    public private(set) var pending: Set<String> = []
    private var done: Set<String> = []

    /// An idle tracker.
    public init() {}

    /// A candle published (message id `candleID`, closing at `close`): its work starts.
    public mutating func start(candleID: String, close: Date) {
        candleTime = close
        done = []
        pending = Set(Self.candleConsumers.map { Watermark.key($0, candleID) })
    }

    /// A watermark came; true when the candle's work is all done.
    @discardableResult
    public mutating func receive(_ watermark: Watermark) -> Bool {
        guard watermark.candleTime == candleTime else { return isDone }
        done.insert(watermark.handled)
        pending.remove(watermark.handled)
        for key in watermark.emitted where !done.contains(key) { pending.insert(key) }
        return isDone
    }

    /// True when nothing the candle started is pending.
    public var isDone: Bool { candleTime != nil && pending.isEmpty }

    /// The pending work by worker and message, for a stall's message: `ai-analyst (sig:…)`.
    public var holders: [String] {
        pending.sorted().map { key in
            guard let colon = key.firstIndex(of: ":") else { return key }
            return "\(key[..<colon]) (\(key[key.index(after: colon)...]))"
        }
    }
}
