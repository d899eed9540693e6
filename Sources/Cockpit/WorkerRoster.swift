import Foundation
import Synchronization
import TradingCore

/// The newest heartbeat of each worker instance, for the overview's health table.
public final class WorkerRoster: Sendable {
    private let beats = Mutex<[String: WorkerHeartbeat]>([:])

    /// An empty roster.
    public init() {}

    /// Keeps `heartbeat` if it is the instance's newest.
    public func record(_ heartbeat: WorkerHeartbeat) {
        beats.withLock { beats in
            if let known = beats[heartbeat.instance], known.time > heartbeat.time { return }
            beats[heartbeat.instance] = heartbeat
        }
    }

    /// Every instance heard from, by worker then instance; one gone quiet for a day is forgotten.
    public func current(now: Date = Date()) -> [WorkerHeartbeat] {
        beats.withLock { beats in
            beats = beats.filter { now.timeIntervalSince($0.value.time) < 86_400 }
            return beats.values.sorted { ($0.worker, $0.instance) < ($1.worker, $1.instance) }
        }
    }
}
