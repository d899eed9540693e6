import Foundation

/// The hot-data port: Redis with an in-process LRU in front and behind it.
///
/// Calls never throw: when Redis is down or slower than its timeout, the LRU answers and the cache
/// reports itself degraded. Every value carries the time of the data it holds, so a reader can refuse
/// stale data (``CachedValue/isFresh(maxAge:now:)``).
public protocol HotCache: Sendable {
    func get(_ key: String) async -> CachedValue?
    func set(_ key: String, _ value: CachedValue, ttl: Duration?) async
    /// Sets the key only if it does not exist; true when this call set it. The basis of dedupe.
    func setIfAbsent(_ key: String, _ value: CachedValue, ttl: Duration?) async -> Bool
    /// Gets many keys in one round trip; the result has one entry per key, in order.
    func get(_ keys: [String]) async -> [CachedValue?]
    /// Sets many keys in one round trip.
    func set(_ entries: [CacheEntry]) async
    /// Deletes the key (a claim given back, say); nothing happens if it does not exist.
    func remove(_ key: String) async
    /// Whether the shared tier (Redis) answers.
    var health: CacheHealth { get }
}

/// A value and the time of the data it holds.
public struct CachedValue: Sendable, Hashable {
    public var bytes: [UInt8]
    /// When the data was true in the world (a candle's close time, say), not when it was cached.
    public var sourceTime: Date

    /// A `CachedValue` with the fields given.
    public init(bytes: [UInt8], sourceTime: Date) {
        self.bytes = bytes
        self.sourceTime = sourceTime
    }

    /// A cached string, with the time its source produced it.
    public init(_ string: String, sourceTime: Date) {
        self.init(bytes: Array(string.utf8), sourceTime: sourceTime)
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// True when the data is at most `maxAge` old at `now`.
    public func isFresh(maxAge: Duration, now: Date) -> Bool {
        let age = now.timeIntervalSince(sourceTime)
        let limit = Double(maxAge.components.seconds) + Double(maxAge.components.attoseconds) / 1e18
        return age <= limit
    }
}

/// One key to set in a batch.
public struct CacheEntry: Sendable, Hashable {
    public var key: String
    public var value: CachedValue
    public var ttl: Duration?

    /// A `CacheEntry` with the fields given.
    public init(key: String, value: CachedValue, ttl: Duration? = nil) {
        self.key = key
        self.value = value
        self.ttl = ttl
    }
}

/// Whether the shared tier answers.
public enum CacheHealth: String, Sendable {
    /// Redis answers.
    case healthy
    /// Redis is down or slow: the LRU answers alone while a reconnect runs in the background.
    case degraded
    /// There is no shared tier (embedded mode).
    case localOnly = "local_only"
}
