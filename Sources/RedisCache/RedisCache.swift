import Foundation
import Logging
import Metrics
import Synchronization
import TradingCore
import TradingServices

/// ``HotCache`` over Redis with an in-process LRU as first tier and fallback.
///
/// Reads take the LRU when its copy is younger than `localFreshness`, else ask Redis and refresh the
/// LRU. When Redis is down or slower than the command timeout, every call is answered from the LRU with
/// no error, the cache reports itself degraded (health and the `tradebus_cache_degraded` gauge), and a
/// background task reconnects; once Redis answers again it is used again.
///
/// Values are stored in Redis as `<source time, µs since epoch>|<bytes>`.
public final class RedisCache: HotCache {
    /// Where Redis is, and how the cache behaves when it is slow or away.
    public struct Configuration: Sendable {
        public var url: RedisURL
        /// Each Redis call; past it the LRU answers.
        public var commandTimeout: Duration
        public var lruCapacity: Int
        /// How long the LRU's copy is trusted before Redis is asked again.
        public var localFreshness: Duration
        /// Expiry of keys set with no TTL, in the LRU only (Redis keeps them).
        public var lruTTL: Duration?
        public var reconnectInterval: Duration

        /// A `Configuration` with the fields given.
        public init(
            url: RedisURL,
            commandTimeout: Duration = .milliseconds(50),
            lruCapacity: Int = 100_000,
            localFreshness: Duration = .milliseconds(250),
            lruTTL: Duration? = .seconds(3600),
            reconnectInterval: Duration = .milliseconds(200)
        ) {
            self.url = url
            self.commandTimeout = commandTimeout
            self.lruCapacity = lruCapacity
            self.localFreshness = localFreshness
            self.lruTTL = lruTTL
            self.reconnectInterval = reconnectInterval
        }
    }

    /// A value in the LRU with when it was cached (monotonic ns).
    struct LocalEntry: Sendable {
        var value: CachedValue
        var cachedAt: UInt64
    }

    public let configuration: Configuration
    public let client: RedisClient
    let lru: LRUCache<LocalEntry>
    private let degraded = Atomic<Bool>(false)
    /// Keys written while Redis was away, with their TTL and whether they were set-if-absent: written
    /// back when it returns, so other processes see them.
    private let dirty = Mutex<[String: (ttl: Duration?, onlyIfAbsent: Bool)]>([:])
    private let reconnecting = Atomic<Bool>(false)
    /// The background reconnect while Redis is away: owned here, cancelled and awaited by ``close()``.
    private let reconnect = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger
    private let degradedGauge = Gauge(label: "tradebus_cache_degraded")
    private let fallbacks = Counter(label: "tradebus_cache_fallback_total")
    private let localFreshnessNanos: UInt64

    /// A cache on Redis with an LRU in front; it connects on first use.
    public init(configuration: Configuration, logger: Logger = Logger(label: "tradebus.redis")) {
        self.configuration = configuration
        self.logger = logger
        self.client = RedisClient(url: configuration.url, timeout: configuration.commandTimeout)
        self.lru = LRUCache(capacity: configuration.lruCapacity, defaultTTL: configuration.lruTTL)
        let (seconds, attoseconds) = configuration.localFreshness.components
        self.localFreshnessNanos = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        degradedGauge.record(0)
    }

    public var health: CacheHealth { degraded.load(ordering: .relaxed) ? .degraded : .healthy }

    /// Checks Redis now; true when it answers. Starts the background reconnect when it does not.
    @discardableResult
    public func checkConnection() async -> Bool {
        do {
            try await client.ping()
            return true
        } catch {
            markDegraded(error)
            return false
        }
    }

    // MARK: HotCache

    public func get(_ key: String) async -> CachedValue? {
        let local = lru.value(forKey: key)
        if let local, LRUCache<LocalEntry>.now() &- local.cachedAt < localFreshnessNanos { return local.value }
        return await get([key], local: [local])[0]
    }

    public func get(_ keys: [String]) async -> [CachedValue?] {
        await get(keys, local: keys.map { lru.value(forKey: $0) })
    }

    private func get(_ keys: [String], local: [LocalEntry?]) async -> [CachedValue?] {
        if keys.isEmpty { return [] }
        let fallback = local.map { $0?.value }
        guard !degraded.load(ordering: .relaxed) else {
            fallbacks.increment()
            return fallback
        }
        do {
            let replies = try await client.pipeline(keys.map { [Array("GET".utf8), Array($0.utf8)] })
            let now = LRUCache<LocalEntry>.now()
            return zip(keys, replies).map { key, reply in
                guard let bytes = reply.bytes, let value = Self.decode(bytes) else {
                    if reply == .null { lru.removeValue(forKey: key) }
                    return nil
                }
                lru.set(LocalEntry(value: value, cachedAt: now), forKey: key)
                return value
            }
        } catch {
            markDegraded(error)
            return fallback
        }
    }

    public func set(_ key: String, _ value: CachedValue, ttl: Duration?) async {
        await set([CacheEntry(key: key, value: value, ttl: ttl)])
    }

    public func set(_ entries: [CacheEntry]) async {
        if entries.isEmpty { return }
        let now = LRUCache<LocalEntry>.now()
        for entry in entries {
            lru.set(LocalEntry(value: entry.value, cachedAt: now), forKey: entry.key, ttl: entry.ttl)
        }
        guard !degraded.load(ordering: .relaxed) else {
            fallbacks.increment()
            markDirty(entries.map { ($0.key, $0.ttl) }, onlyIfAbsent: false)
            return
        }
        do {
            let replies = try await client.pipeline(
                entries.map { Self.setCommand($0.key, $0.value, ttl: $0.ttl, onlyIfAbsent: false) }
            )
            for case .error(let message) in replies {
                logger.warning("Redis refused SET", metadata: ["error": "\(message)"])
            }
        } catch {
            markDirty(entries.map { ($0.key, $0.ttl) }, onlyIfAbsent: false)
            markDegraded(error)
        }
    }

    public func remove(_ key: String) async {
        lru.removeValue(forKey: key)
        _ = dirty.withLock { $0.removeValue(forKey: key) }
        guard !degraded.load(ordering: .relaxed) else { return }
        do {
            _ = try await client.pipeline([[Array("DEL".utf8), Array(key.utf8)]])
        } catch {
            markDegraded(error)
        }
    }

    public func setIfAbsent(_ key: String, _ value: CachedValue, ttl: Duration?) async -> Bool {
        if !degraded.load(ordering: .relaxed) {
            do {
                let reply = try await client.pipeline([Self.setCommand(key, value, ttl: ttl, onlyIfAbsent: true)])[0]
                let stored = reply == .status("OK")
                if stored {
                    lru.set(LocalEntry(value: value, cachedAt: LRUCache<LocalEntry>.now()), forKey: key, ttl: ttl)
                }
                return stored
            } catch {
                markDegraded(error)
            }
        }
        fallbacks.increment()
        let stored = lru.setIfAbsent(
            LocalEntry(value: value, cachedAt: LRUCache<LocalEntry>.now()),
            forKey: key,
            ttl: ttl
        )
        if stored { markDirty([(key, ttl)], onlyIfAbsent: true) }
        return stored
    }

    private func markDirty(_ keys: [(String, Duration?)], onlyIfAbsent: Bool) {
        dirty.withLock { dirty in
            for (key, ttl) in keys where dirty.count < configuration.lruCapacity {
                dirty[key] = (ttl, onlyIfAbsent)
            }
        }
    }

    /// Writes what was set while Redis was away, from the LRU, in one pipeline. Keys set-if-absent stay
    /// set-if-absent: another process may have claimed them meanwhile.
    private func writeBack() async throws {
        let pending = dirty.withLock { dirty in
            let pending = dirty
            dirty.removeAll()
            return pending
        }
        var commands: [[[UInt8]]] = []
        for (key, entry) in pending {
            guard let local = lru.value(forKey: key) else { continue }
            commands.append(Self.setCommand(key, local.value, ttl: entry.ttl, onlyIfAbsent: entry.onlyIfAbsent))
        }
        guard !commands.isEmpty else { return }
        do {
            _ = try await client.pipeline(commands)
            logger.info("wrote back keys set while Redis was away", metadata: ["keys": "\(commands.count)"])
        } catch {
            dirty.withLock { dirty in dirty.merge(pending) { current, _ in current } }
            throw error
        }
    }

    // MARK: Degraded mode

    private func markDegraded(_ error: any Error) {
        if !degraded.exchange(true, ordering: .relaxed) {
            logger.warning(
                "Redis unavailable; answering from the in-process LRU",
                metadata: ["error": "\(error)", "url": "\(configuration.url)"]
            )
            degradedGauge.record(1)
        }
        guard !reconnecting.exchange(true, ordering: .relaxed) else { return }
        let task = Task { [self] in
            defer { reconnecting.store(false, ordering: .relaxed) }
            while true {
                do { try await Task.sleep(for: configuration.reconnectInterval) } catch { return }
                if (try? await client.ping()) != nil, (try? await writeBack()) != nil { break }
            }
            degraded.store(false, ordering: .relaxed)
            // Writes that raced with the first write-back.
            try? await writeBack()
            degradedGauge.record(0)
            logger.info("Redis is back", metadata: ["url": "\(configuration.url)"])
        }
        reconnect.withLock { $0 = task }
    }

    /// Whether the background reconnect is running (Redis was found away and has not answered since).
    public var isReconnecting: Bool { reconnecting.load(ordering: .relaxed) }

    /// Stops the background reconnect, if any, and waits for it: nothing of the cache outlives this.
    public func close() async {
        let task = reconnect.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
    }

    // MARK: Encoding

    static func setCommand(_ key: String, _ value: CachedValue, ttl: Duration?, onlyIfAbsent: Bool) -> [[UInt8]] {
        var command = [Array("SET".utf8), Array(key.utf8), encode(value)]
        if let ttl {
            let (seconds, attoseconds) = ttl.components
            let millis = max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
            command += [Array("PX".utf8), Array(String(millis).utf8)]
        }
        if onlyIfAbsent { command.append(Array("NX".utf8)) }
        return command
    }

    static func encode(_ value: CachedValue) -> [UInt8] {
        let micros = Int64((value.sourceTime.timeIntervalSince1970 * 1_000_000).rounded())
        return Array("\(micros)|".utf8) + value.bytes
    }

    static func decode(_ bytes: [UInt8]) -> CachedValue? {
        guard let bar = bytes.firstIndex(of: UInt8(ascii: "|")),
            let micros = Int64(String(decoding: bytes[..<bar], as: UTF8.self))
        else { return nil }
        return CachedValue(
            bytes: Array(bytes[(bar + 1)...]),
            sourceTime: Date(timeIntervalSince1970: Double(micros) / 1_000_000)
        )
    }
}
