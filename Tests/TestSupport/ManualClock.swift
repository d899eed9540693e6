import Foundation
import Synchronization

/// A clock the test moves by hand, for code that takes `now: () -> Date`.
public final class ManualClock: Sendable {
    private let time: Mutex<Date>
    public init(_ start: Date) { time = Mutex(start) }
    public convenience init(millis: Int64) { self.init(Date(timeIntervalSince1970: Double(millis) / 1000)) }
    public func set(_ date: Date) { time.withLock { $0 = date } }
    public func set(millis: Int64) { set(Date(timeIntervalSince1970: Double(millis) / 1000)) }
    public var date: Date { time.withLock { $0 } }
    public var now: @Sendable () -> Date { { self.date } }
}
