import Foundation
import RedisCache
import TestSupport
import Testing
import TradingCore
import TradingServices

enum CacheKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case lru
    case redis

    var testDescription: String { rawValue }

    func make() throws -> any HotCache {
        switch self {
        case .lru: LocalCache(capacity: 1000)
        case .redis:
            RedisCache(configuration: .init(url: try RedisURL(TestServices.redisURL), commandTimeout: .seconds(2)))
        }
    }
}

@Suite("HotCache contract")
struct HotCacheContractTests {
    let sourceTime = Date(timeIntervalSince1970: 1_700_000_000.123456)

    @Test("a value comes back with its source time", arguments: CacheKind.allCases)
    func roundTrip(kind: CacheKind) async throws {
        let cache = try kind.make()
        let key = TestServices.uniqueName("price")
        #expect(await cache.get(key) == nil)
        await cache.set(key, CachedValue("1.2345", sourceTime: sourceTime), ttl: .seconds(60))
        let value = try #require(await cache.get(key))
        #expect(value.string == "1.2345")
        #expect(abs(value.sourceTime.timeIntervalSince(sourceTime)) < 0.000_001)
        #expect(value.isFresh(maxAge: .seconds(5), now: sourceTime.addingTimeInterval(5)))
        #expect(!value.isFresh(maxAge: .seconds(5), now: sourceTime.addingTimeInterval(5.001)))
        #expect(kind == .lru ? cache.health == .localOnly : cache.health == .healthy)
    }

    @Test("a key expires after its TTL", arguments: CacheKind.allCases)
    func ttlExpires(kind: CacheKind) async throws {
        let cache = try kind.make()
        // Two keys, so a busy machine (the whole suite runs in parallel on two cores) cannot make the
        // first check outlive a short TTL.
        let kept = TestServices.uniqueName("ttl-kept")
        let expiring = TestServices.uniqueName("ttl-expiring")
        await cache.set(kept, CachedValue("x", sourceTime: sourceTime), ttl: .seconds(60))
        await cache.set(expiring, CachedValue("x", sourceTime: sourceTime), ttl: .milliseconds(300))
        try await Task.sleep(for: .milliseconds(1500))
        #expect(await cache.get(kept) != nil)
        #expect(await cache.get(expiring) == nil)
    }

    @Test("set-if-absent sets once", arguments: CacheKind.allCases)
    func setIfAbsent(kind: CacheKind) async throws {
        let cache = try kind.make()
        let key = TestServices.uniqueName("dedupe")
        #expect(await cache.setIfAbsent(key, CachedValue("first", sourceTime: sourceTime), ttl: .seconds(60)))
        #expect(await !cache.setIfAbsent(key, CachedValue("second", sourceTime: sourceTime), ttl: .seconds(60)))
        #expect(await cache.get(key)?.string == "first")
    }

    @Test("remove deletes a key, so set-if-absent can claim it again", arguments: CacheKind.allCases)
    func remove(kind: CacheKind) async throws {
        let cache = try kind.make()
        let key = TestServices.uniqueName("claim")
        #expect(await cache.setIfAbsent(key, CachedValue("a", sourceTime: sourceTime), ttl: .seconds(60)))
        await cache.remove(key)
        #expect(await cache.get(key) == nil)
        #expect(await cache.setIfAbsent(key, CachedValue("b", sourceTime: sourceTime), ttl: .seconds(60)))
        #expect(await cache.get(key)?.string == "b")
        await cache.remove(TestServices.uniqueName("never-set"))
    }

    @Test("batch get and set keep the order of keys", arguments: CacheKind.allCases)
    func batch(kind: CacheKind) async throws {
        let cache = try kind.make()
        let prefix = TestServices.uniqueName("batch")
        let entries = (0..<20).map {
            CacheEntry(key: "\(prefix):\($0)", value: CachedValue("v\($0)", sourceTime: sourceTime), ttl: .seconds(60))
        }
        await cache.set(entries)
        let keys = entries.map(\.key) + ["\(prefix):missing"]
        let values = await cache.get(keys)
        #expect(values.count == 21)
        #expect(values.prefix(20).map { $0?.string } == (0..<20).map { "v\($0)" })
        #expect(values[20] == nil)
    }
}
