import Foundation
import Testing

@testable import Cockpit

@Suite("Cockpit tokens, roles and the login limiter")
struct CockpitAccessTests {
    @Test("tokens: at least one, 16 characters or more, two different ones; each error names its key")
    func configuration() throws {
        #expect(throws: CockpitConfigurationError.self) { try CockpitTokens(viewer: nil, operator: "") }
        do {
            _ = try CockpitTokens(viewer: "short", operator: nil)
            Issue.record("a short token was taken")
        } catch { #expect(error.key == "COCKPIT_VIEWER_TOKEN" && error.message.contains("16")) }
        do {
            _ = try CockpitTokens(viewer: "same-token-0123456789", operator: "same-token-0123456789")
            Issue.record("the same token for both roles was taken")
        } catch { #expect(error.key == "COCKPIT_OPERATOR_TOKEN") }
        let tokens = try CockpitTokens(viewer: "viewer-token-0123456789", operator: "operator-token-0123456789")
        #expect(tokens.role(for: "viewer-token-0123456789") == .viewer)
        #expect(tokens.role(for: "operator-token-0123456789") == .operator)
        #expect(tokens.role(for: "viewer-token-012345678") == nil, "a prefix")
        #expect(tokens.role(for: "viewer-token-01234567890") == nil, "longer")
        #expect(tokens.role(for: "") == nil)
        #expect(CockpitRole.viewer < .operator && !(CockpitRole.operator < .viewer))
    }

    @Test("constant-time comparison agrees with ==, on every length and difference")
    func constantTime() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let a = (0..<Int.random(in: 0...20, using: &generator)).map { _ in
                UInt8.random(in: 0...3, using: &generator)
            }
            var b = a
            if Bool.random(using: &generator), !b.isEmpty { b[Int.random(in: 0..<b.count, using: &generator)] ^= 1 }
            if Bool.random(using: &generator) { b.append(0) }
            #expect(CockpitTokens.constantTimeEquals(a, b) == (a == b))
        }
    }

    @Test("the limiter: the limit within the window, then refused until the oldest failure leaves it")
    func limiter() {
        var limiter = LoginLimiter(limit: 3, window: 60)
        let t0 = Date(timeIntervalSince1970: 1_000)
        for second in 0..<3 {
            #expect(limiter.check("a", now: t0.addingTimeInterval(Double(second))).allowed)
            limiter.fail("a", now: t0.addingTimeInterval(Double(second)))
        }
        let refused = limiter.check("a", now: t0.addingTimeInterval(10))
        #expect(!refused.allowed && refused.retryAfter == 50)
        #expect(limiter.check("b", now: t0.addingTimeInterval(10)).allowed, "per client")
        #expect(limiter.check("a", now: t0.addingTimeInterval(60)).allowed, "the oldest left the window")
    }
}
