import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded least-recently-used map with per-entry expiry, safe to share between tasks.
///
/// Entries live in one array linked by indices (no allocation per hit), behind one mutex. Expiry uses
/// the coarse monotonic clock, which is cheap to read and precise to a few milliseconds.
public final class LRUCache<Value: Sendable>: Sendable {
    /// Entries in parallel arrays indexed by slot, so relinking touches plain integers only.
    private struct Storage: ~Copyable {
        var index: [String: Int32] = [:]
        var keys: [String] = []
        var values: [Value] = []
        var expiresAt: [UInt64] = []  // monotonic nanoseconds; 0 means never
        var previous: [Int32] = []
        var next: [Int32] = []
        var head: Int32 = -1  // most recently used
        var tail: Int32 = -1  // least recently used
    }

    public let capacity: Int
    public let defaultTTL: Duration?
    private let storage: Mutex<Storage>

    /// At most `capacity` entries; `defaultTTL` applies where a set gives none (nil: no expiry).
    public init(capacity: Int, defaultTTL: Duration? = nil) {
        precondition(capacity > 0, "LRUCache capacity must be positive")
        self.capacity = capacity
        self.defaultTTL = defaultTTL
        var storage = Storage()
        storage.index.reserveCapacity(capacity)
        storage.keys.reserveCapacity(capacity)
        storage.values.reserveCapacity(capacity)
        storage.expiresAt.reserveCapacity(capacity)
        storage.previous.reserveCapacity(capacity)
        storage.next.reserveCapacity(capacity)
        self.storage = Mutex(storage)
    }

    /// Monotonic time in nanoseconds from the coarse clock.
    @inline(__always)
    public static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    private func deadline(_ ttl: Duration?, now: UInt64) -> UInt64 {
        guard let ttl = ttl ?? defaultTTL else { return 0 }
        let (seconds, attoseconds) = ttl.components
        return now + UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000) + 1
    }

    /// The value for `key`, if present and not expired; marks it most recently used.
    public func value(forKey key: String) -> Value? {
        storage.withLock { storage -> Value? in
            guard let slot = storage.index[key] else { return nil }
            let expiresAt = storage.expiresAt[Int(slot)]
            if expiresAt != 0 && expiresAt <= Self.now() {
                Self.remove(slot, from: &storage)
                return nil
            }
            Self.moveToFront(slot, in: &storage)
            return storage.values[Int(slot)]
        }
    }

    /// Stores `value`, evicting the least recently used entry when full.
    public func set(_ value: Value, forKey key: String, ttl: Duration? = nil) {
        let expiresAt = deadline(ttl, now: Self.now())
        storage.withLock { storage in
            Self.store(value, key: key, expiresAt: expiresAt, capacity: capacity, in: &storage)
        }
    }

    /// Stores `value` only if `key` is absent or expired; true when it stored it.
    public func setIfAbsent(_ value: Value, forKey key: String, ttl: Duration? = nil) -> Bool {
        let now = Self.now()
        let expiresAt = deadline(ttl, now: now)
        return storage.withLock { storage -> Bool in
            if let slot = storage.index[key] {
                let expiresAt = storage.expiresAt[Int(slot)]
                if expiresAt == 0 || expiresAt > now { return false }
            }
            Self.store(value, key: key, expiresAt: expiresAt, capacity: capacity, in: &storage)
            return true
        }
    }

    /// Removes `key`, if present.
    public func removeValue(forKey key: String) {
        storage.withLock { storage in
            if let slot = storage.index[key] { Self.remove(slot, from: &storage) }
        }
    }

    /// Entries held, expired ones included until they are touched or evicted.
    public var count: Int { storage.withLock { $0.index.count } }

    private static func store(_ value: Value, key: String, expiresAt: UInt64, capacity: Int, in storage: inout Storage)
    {
        if let slot = storage.index[key] {
            storage.values[Int(slot)] = value
            storage.expiresAt[Int(slot)] = expiresAt
            moveToFront(slot, in: &storage)
            return
        }
        let slot: Int32
        if storage.keys.count < capacity {
            slot = Int32(storage.keys.count)
            storage.keys.append(key)
            storage.values.append(value)
            storage.expiresAt.append(expiresAt)
            storage.previous.append(-1)
            storage.next.append(-1)
        } else {
            // Reuse the least recently used slot.
            slot = storage.tail
            unlink(slot, in: &storage)
            storage.index.removeValue(forKey: storage.keys[Int(slot)])
            storage.keys[Int(slot)] = key
            storage.values[Int(slot)] = value
            storage.expiresAt[Int(slot)] = expiresAt
        }
        storage.index[key] = slot
        linkAtFront(slot, in: &storage)
    }

    private static func remove(_ slot: Int32, from storage: inout Storage) {
        unlink(slot, in: &storage)
        storage.index.removeValue(forKey: storage.keys[Int(slot)])
        // Keep the arrays dense: move the last slot into the hole.
        let last = Int32(storage.keys.count - 1)
        if slot != last {
            let s = Int(slot)
            let l = Int(last)
            storage.keys[s] = storage.keys[l]
            storage.values[s] = storage.values[l]
            storage.expiresAt[s] = storage.expiresAt[l]
            storage.previous[s] = storage.previous[l]
            storage.next[s] = storage.next[l]
            storage.index[storage.keys[s]] = slot
            let previous = storage.previous[s]
            let next = storage.next[s]
            if previous >= 0 { storage.next[Int(previous)] = slot } else { storage.head = slot }
            if next >= 0 { storage.previous[Int(next)] = slot } else { storage.tail = slot }
        }
        storage.keys.removeLast()
        storage.values.removeLast()
        storage.expiresAt.removeLast()
        storage.previous.removeLast()
        storage.next.removeLast()
    }

    private static func moveToFront(_ slot: Int32, in storage: inout Storage) {
        guard storage.head != slot else { return }
        unlink(slot, in: &storage)
        linkAtFront(slot, in: &storage)
    }

    private static func unlink(_ slot: Int32, in storage: inout Storage) {
        let previous = storage.previous[Int(slot)]
        let next = storage.next[Int(slot)]
        if previous >= 0 { storage.next[Int(previous)] = next } else { storage.head = next }
        if next >= 0 { storage.previous[Int(next)] = previous } else { storage.tail = previous }
        storage.previous[Int(slot)] = -1
        storage.next[Int(slot)] = -1
    }

    private static func linkAtFront(_ slot: Int32, in storage: inout Storage) {
        storage.previous[Int(slot)] = -1
        storage.next[Int(slot)] = storage.head
        if storage.head >= 0 { storage.previous[Int(storage.head)] = slot }
        storage.head = slot
        if storage.tail < 0 { storage.tail = slot }
    }
}
