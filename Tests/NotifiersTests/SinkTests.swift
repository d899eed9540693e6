import Crypto
import Foundation
import Logging
import Notifiers
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// Waits recorded, not slept.
final class Waits: Sendable {
    private let waits = Mutex<[Duration]>([])
    var all: [Duration] { waits.withLock { $0 } }
    var sleep: @Sendable (Duration) async throws -> Void { { duration in self.waits.withLock { $0.append(duration) } } }
}

func alertBody(
    id: String = UUID().uuidString,
    severity: AlertSeverity = .warning,
    kind: String = "feed_stale",
    message: String = "No data from binance for BTCUSDT 1m in 3 intervals"
) throws -> [UInt8] {
    let payload = AlertPayload(
        severity: severity,
        kind: kind,
        title: "Market data feed stale",
        message: message,
        symbol: "BTCUSDT",
        fields: ["venue": .string("binance")]
    )
    return try EnvelopeCodec.encode(
        Envelope(id: id, type: MessageType.alert, time: Date(), source: "test", payload: payload)
    )
}

/// The sinks against local servers speaking each service's format, and the delivery rules around them.
@Suite("Notification sinks (local servers)")
struct SinkTests {
    let logger = Logger(label: "test")

    func worker(
        _ sink: any NotificationSink,
        waits: Waits = Waits(),
        cache: any HotCache = LocalCache(),
        route: SinkRoute = SinkRoute(minSeverity: .info)
    ) -> SinkDispatcher {
        var settings = SinkDispatcher.Settings()
        settings.backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(8))
        return SinkDispatcher(
            sink: sink,
            route: route,
            cache: cache,
            settings: settings,
            logger: logger,
            sleep: waits.sleep
        )
    }

    @Test("Telegram: sendMessage to the bot's chat in MarkdownV2; a 429's retry_after is waited, then it is sent once")
    func telegram() async throws {
        let server = try await FakeSinks.start()
        server.script(.telegram, [.init(status: 429, retryAfter: 3), .init(status: 429, retryAfter: 2)])
        let waits = Waits()
        let sink = TelegramSink(apiBase: server.telegramBase, token: "123:ABC", chatID: "-100200")
        try await worker(sink, waits: waits).handle(
            Delivery(
                routingKey: "alert.warning.feed_stale",
                body: try alertBody(message: "price dropped 2.5% (BTC-USDT)!")
            )
        )
        let requests = server.received(.telegram)
        #expect(requests.count == 3 && requests.allSatisfy { $0.path == "/bot123:ABC/sendMessage" })
        #expect(waits.all.filter { $0 >= .seconds(1) } == [.seconds(3), .seconds(2)])
        let body = try #require(requests.last?.json)
        #expect(body["chat_id"] as? String == "-100200" && body["parse_mode"] as? String == "MarkdownV2")
        let text = try #require(body["text"] as? String)
        #expect(text.contains(#"price dropped 2\.5% \(BTC\-USDT\)\!"#))
        await server.stop()
    }

    @Test("Discord: one embed; a 429 body's retry_after (seconds, fractional) is waited")
    func discord() async throws {
        let server = try await FakeSinks.start()
        server.script(.discord, [.init(status: 429, retryAfter: 1.5)])
        let waits = Waits()
        try await worker(DiscordSink(webhookURL: server.discordURL), waits: waits).handle(
            Delivery(routingKey: "alert.warning.feed_stale", body: try alertBody())
        )
        let requests = server.received(.discord)
        #expect(requests.count == 2 && waits.all.contains(.milliseconds(1_500)))
        let embed = try #require((requests.last?.json?["embeds"] as? [[String: Any]])?.first)
        #expect(
            (embed["title"] as? String)?.contains("Market data feed stale") == true
                && (embed["fields"] as? [Any])?.isEmpty == false
        )
        await server.stop()
    }

    @Test("Slack: text and blocks; a 429's Retry-After is waited; a 5xx is retried with backoff")
    func slack() async throws {
        let server = try await FakeSinks.start()
        server.script(.slack, [.init(status: 429, retryAfter: 4), .init(status: 503), .init(status: 500)])
        let waits = Waits()
        try await worker(SlackSink(webhookURL: server.slackURL), waits: waits).handle(
            Delivery(routingKey: "alert.warning.feed_stale", body: try alertBody())
        )
        #expect(server.received(.slack).count == 4)
        let backoffs = Array(waits.all.filter { $0 != .seconds(4) }.suffix(2))
        #expect(
            waits.all.contains(.seconds(4)) && backoffs.count == 2 && backoffs[0] <= .milliseconds(1_000)
                && backoffs[1] <= .milliseconds(2_000)
        )
        let body = try #require(server.received(.slack).last?.json)
        #expect((body["text"] as? String)?.contains("BTCUSDT") == true && (body["blocks"] as? [Any])?.count == 3)
        await server.stop()
    }

    @Test("the JSON webhook is signed with HMAC-SHA256 over the exact body")
    func webhook() async throws {
        // RFC 4231-style known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        #expect(
            WebhookSink.signature(Array("The quick brown fox jumps over the lazy dog".utf8), secret: "key")
                == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        )
        let server = try await FakeSinks.start()
        let id = UUID().uuidString
        try await worker(WebhookSink(url: server.webhookURL, secret: "s3cret")).handle(
            Delivery(routingKey: "alert.warning.feed_stale", body: try alertBody(id: id))
        )
        let request = try #require(server.received(.webhook).first)
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(request.body.utf8),
            using: SymmetricKey(data: Array("s3cret".utf8))
        )
        #expect(request.headers["x-tradebus-signature"] == "sha256=" + mac.map { String(format: "%02x", $0) }.joined())
        #expect(request.headers["x-tradebus-id"] == id && request.json?["kind"] as? String == "feed_stale")
        #expect((request.json?["payload"] as? [String: Any])?["severity"] as? String == "warning")
        await server.stop()
    }

    @Test("each alert id is sent at most once per sink: a redelivery and a second notifier send nothing more")
    func atMostOnce() async throws {
        let server = try await FakeSinks.start()
        let cache = LocalCache()
        let body = try alertBody()
        let first = worker(SlackSink(webhookURL: server.slackURL), cache: cache)
        let second = worker(SlackSink(webhookURL: server.slackURL), cache: cache)
        try await first.handle(Delivery(routingKey: "alert.warning.feed_stale", body: body))
        try await first.handle(Delivery(routingKey: "alert.warning.feed_stale", body: body, redelivered: true))
        try await second.handle(Delivery(routingKey: "alert.warning.feed_stale", body: body))
        #expect(server.received(.slack).count == 1)
        let duplicates = (await first.health.duplicates, await second.health.duplicates)
        #expect(duplicates.0 == 1 && duplicates.1 == 1)
        await server.stop()
    }

    @Test("what still fails goes to the dead-letter queue with the reason, and its claim is released")
    func deadLetter() async throws {
        let server = try await FakeSinks.start()
        server.script(.telegram, [.init(status: 400)])
        let cache = LocalCache()
        let body = try alertBody()
        let sink = TelegramSink(apiBase: server.telegramBase, token: "1:X", chatID: "1")
        await #expect {
            try await worker(sink, cache: cache).handle(Delivery(routingKey: "alert.warning.feed_stale", body: body))
        } throws: { error in
            (error as? MessageRejected)?.reason.contains("HTTP 400") == true
        }
        #expect(server.received(.telegram).count == 1)  // a 400 is not retried
        try await worker(sink, cache: cache).handle(Delivery(routingKey: "alert.warning.feed_stale", body: body))
        #expect(server.received(.telegram).count == 2)  // a replay sends it
        await #expect(throws: MessageRejected.self) {
            try await worker(sink).handle(Delivery(routingKey: "alert.x.y", body: Array("garbage".utf8)))
        }
        await server.stop()
    }

    @Test("routes: below the minimum severity or another kind is not sent")
    func routes() async throws {
        let server = try await FakeSinks.start()
        let w = worker(
            SlackSink(webhookURL: server.slackURL),
            route: SinkRoute(minSeverity: .warning, kinds: ["feed_*", "circuit_breaker"])
        )
        try await w.handle(Delivery(routingKey: "a", body: try alertBody(severity: .info)))
        try await w.handle(Delivery(routingKey: "a", body: try alertBody(kind: "analyst_invalid")))
        try await w.handle(Delivery(routingKey: "a", body: try alertBody(severity: .critical, kind: "circuit_breaker")))
        let notRouted = await w.health.notRouted
        #expect(server.received(.slack).count == 1 && notRouted == 2)
        await server.stop()
    }

    @Test("the rate limit spaces messages: Telegram's one a second per chat")
    func rateLimit() async throws {
        let server = try await FakeSinks.start()
        let w = SinkDispatcher(
            sink: TelegramSink(apiBase: server.telegramBase, token: "1:X", chatID: "1"),
            route: SinkRoute(minSeverity: .info),
            cache: LocalCache(),
            logger: logger
        )
        let clock = ContinuousClock()
        let begun = clock.now
        for _ in 0..<3 { try await w.handle(Delivery(routingKey: "a", body: try alertBody())) }
        // Each send waits its turn: the third cannot start before two turns after the first started
        // (arrival times at the server shift with a connection's setup on a loaded machine, so they are not used).
        #expect(server.received(.telegram).count == 3 && clock.now - begun >= .seconds(2))
        await server.stop()
    }
}
