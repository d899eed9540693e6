import TradingCore

/// The hot cache with no shared tier: the LRU alone. The embedded mode uses it; ``HotCache`` over
/// Redis keeps one of these in front as its first tier and fallback.
public final class LocalCache: HotCache {
    public let lru: LRUCache<CachedValue>

    /// An empty cache holding at most `capacity` keys.
    public init(capacity: Int = 100_000, defaultTTL: Duration? = nil) {
        self.lru = LRUCache(capacity: capacity, defaultTTL: defaultTTL)
    }

    public var health: CacheHealth { .localOnly }

    public func get(_ key: String) async -> CachedValue? { lru.value(forKey: key) }

    public func set(_ key: String, _ value: CachedValue, ttl: Duration?) async {
        lru.set(value, forKey: key, ttl: ttl)
    }

    public func setIfAbsent(_ key: String, _ value: CachedValue, ttl: Duration?) async -> Bool {
        lru.setIfAbsent(value, forKey: key, ttl: ttl)
    }

    public func get(_ keys: [String]) async -> [CachedValue?] { keys.map { lru.value(forKey: $0) } }

    public func remove(_ key: String) async { lru.removeValue(forKey: key) }

    public func set(_ entries: [CacheEntry]) async {
        for entry in entries { lru.set(entry.value, forKey: entry.key, ttl: entry.ttl) }
    }
}
