import Testing
import TradingServices

@Suite("LRUCache")
struct LRUCacheTests {
    @Test("evicts the least recently used entry when full")
    func evictsLeastRecentlyUsed() {
        let cache = LRUCache<Int>(capacity: 3)
        cache.set(1, forKey: "a")
        cache.set(2, forKey: "b")
        cache.set(3, forKey: "c")
        #expect(cache.value(forKey: "a") == 1)  // a is now most recent
        cache.set(4, forKey: "d")  // evicts b
        #expect(cache.value(forKey: "b") == nil)
        #expect(cache.value(forKey: "a") == 1)
        #expect(cache.value(forKey: "c") == 3)
        #expect(cache.value(forKey: "d") == 4)
        #expect(cache.count == 3)
    }

    @Test("entries expire after their TTL; set-if-absent sees expired entries as absent")
    func expiry() async throws {
        let cache = LRUCache<String>(capacity: 10)
        cache.set("v", forKey: "k", ttl: .milliseconds(30))
        #expect(cache.value(forKey: "k") == "v")
        #expect(!cache.setIfAbsent("w", forKey: "k"))
        try await Task.sleep(for: .milliseconds(80))
        #expect(cache.value(forKey: "k") == nil)
        #expect(cache.setIfAbsent("w", forKey: "k"))
        #expect(cache.value(forKey: "k") == "w")
    }

    @Test("removal keeps the structure consistent under churn")
    func churn() {
        let cache = LRUCache<Int>(capacity: 50)
        var model: [String: Int] = [:]
        var order: [String] = []
        var generator = SystemRandomNumberGenerator()
        for step in 0..<5000 {
            let key = "k\(Int.random(in: 0..<80, using: &generator))"
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                cache.set(step, forKey: key)
                model[key] = step
                order.removeAll { $0 == key }
                order.append(key)
                if order.count > 50 { model.removeValue(forKey: order.removeFirst()) }
            case 1:
                cache.removeValue(forKey: key)
                model.removeValue(forKey: key)
                order.removeAll { $0 == key }
            default:
                let value = cache.value(forKey: key)
                #expect(value == model[key])
                if value != nil {
                    order.removeAll { $0 == key }
                    order.append(key)
                }
            }
        }
        #expect(cache.count == model.count)
    }
}
