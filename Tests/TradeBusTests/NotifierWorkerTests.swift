import Foundation
import HTTPSupport
import RabbitMQBus
import TestSupport
import Testing
import TradingCore
import TradingServices
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// notifier as separate processes against the real RabbitMQ and Redis, with local sink servers.
@Suite("Notifier (processes)", .serialized)
struct NotifierWorkerTests {
    let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path

    /// Fresh queues per test: the shared broker's `notifier.*` queues hold every alert other tests publish.
    let prefix = "test-notifier-\(UUID().uuidString.prefix(8).lowercased())"

    func environment(_ sinks: FakeSinks) -> [String: String] {
        [
            "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL, "HTTP_PORT": "0",
            "NOTIFIER_QUEUE_PREFIX": prefix,
            // Only the kind these tests publish: other tests' events (order rejections, ...) would queue ahead under the rate limits.
            "NOTIFY_ROUTES":
                "telegram:info:circuit_breaker;discord:info:circuit_breaker;slack:info:circuit_breaker;webhook:info:circuit_breaker",
            "TELEGRAM_BOT_TOKEN": "42:SECRET-TOKEN", "TELEGRAM_CHAT_ID": "-1001",
            "TELEGRAM_API_BASE_URL": sinks.telegramBase,
            "DISCORD_WEBHOOK_URL": sinks.discordURL, "SLACK_WEBHOOK_URL": sinks.slackURL,
            "NOTIFY_WEBHOOK_URL": sinks.webhookURL, "NOTIFY_WEBHOOK_SECRET": "hook-secret",
        ]
    }

    /// The alert's mark in every sink's body (a dash-free id: MarkdownV2 escapes dashes), so requests
    /// for alerts other tests published into the same durable queues are told apart.
    static func tag(_ id: String) -> String { id.replacingOccurrences(of: "-", with: "") }

    func received(_ sinks: FakeSinks, _ service: FakeSinks.Service, _ id: String) -> [FakeSinks.Received] {
        sinks.received(service).filter { $0.body.contains(Self.tag(id)) }
    }

    func publishAlert(_ bus: RabbitMQBus, id: String, times: Int) async throws {
        let payload = AlertPayload(
            severity: .critical,
            kind: "circuit_breaker",
            title: "Daily loss limit",
            message: "Trading halted: daily loss 5.2% ≥ 5% [\(Self.tag(id))]"
        )
        let body = try EnvelopeCodec.encode(
            Envelope(id: id, type: MessageType.alert, time: Date(), source: "test", payload: payload)
        )
        let message = OutgoingMessage(routingKey: payload.routingKey, body: body, messageID: id)
        try await bus.publish(Array(repeating: message, count: times))
    }

    @Test(
        "one alert published twice, two notifiers running: exactly one request per sink; a 429 three times then 200 is sent once, after the stated delays"
    )
    func exactlyOncePerSink() async throws {
        let sinks = try await FakeSinks.start()
        sinks.script(
            .discord,
            [.init(status: 429, retryAfter: 1), .init(status: 429, retryAfter: 1), .init(status: 429, retryAfter: 1)]
        )
        let bus = RabbitMQBus(
            configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "notifier-test")
        )
        try await bus.connect()
        for sink in ["telegram", "discord", "slack", "webhook", "log"] {
            try await bus.declare(SinkDispatcher.queue(for: sink, prefix: prefix))
        }
        let notifiers = try (0..<2).map { _ in
            try SpawnedProcess(executable: "\(build)/notifier", environment: environment(sinks))
        }
        defer { for notifier in notifiers { notifier.signal(SIGKILL) } }

        let id = UUID().uuidString
        try await publishAlert(bus, id: id, times: 2)
        let arrived = await eventually(timeout: .seconds(60)) {
            [FakeSinks.Service.telegram, .slack, .webhook].allSatisfy { !received(sinks, $0, id).isEmpty }
                && received(sinks, .discord, id).count >= 4
        }
        #expect(arrived, "\(notifiers.map(\.output))")
        try await Task.sleep(for: .seconds(2))  // a duplicate would have come by now
        #expect(
            received(sinks, .telegram, id).count == 1 && received(sinks, .slack, id).count == 1
                && received(sinks, .webhook, id).count == 1
        )
        let discord = received(sinks, .discord, id).map(\.time)
        #expect(discord.count == 4, "three 429s, then the one that is taken")
        for (earlier, later) in zip(discord, discord.dropFirst()) { #expect(later.timeIntervalSince(earlier) >= 0.95) }
        #expect(received(sinks, .telegram, id).first?.path == "/bot42:SECRET-TOKEN/sendMessage")
        #expect(received(sinks, .webhook, id).first?.headers["x-tradebus-id"] == id)
        // Secrets never reach the logs.
        for notifier in notifiers {
            #expect(
                !notifier.output.contains("SECRET-TOKEN") && !notifier.output.contains("hook-secret")
                    && !notifier.output.contains(sinks.slackURL)
            )
        }
        for notifier in notifiers {
            notifier.signal(SIGTERM)
            #expect(try await notifier.waitForExit(timeout: .seconds(30)) == 0, "\(notifier.output)")
        }
        await bus.shutdown()
        await sinks.stop()
    }

    @Test("a sink that is down never holds the others back; its notice goes to its dead-letter queue")
    func downSink() async throws {
        let sinks = try await FakeSinks.start()
        // Slack is down, and its first answer asks for 4 s before the next try.
        sinks.script(.slack, [.init(status: 503, retryAfter: 4)] + Array(repeating: .init(status: 503), count: 19))
        let bus = RabbitMQBus(
            configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "notifier-test")
        )
        try await bus.connect()
        for sink in ["telegram", "discord", "slack", "webhook", "log"] {
            try await bus.declare(SinkDispatcher.queue(for: sink, prefix: prefix))
        }
        var environment = environment(sinks)
        environment["NOTIFY_MAX_ATTEMPTS"] = "3"
        let notifier = try SpawnedProcess(executable: "\(build)/notifier", environment: environment)
        defer { notifier.signal(SIGKILL) }
        let id = UUID().uuidString
        try await publishAlert(bus, id: id, times: 1)
        #expect(
            await eventually(timeout: .seconds(30)) {
                received(sinks, .telegram, id).count == 1 && received(sinks, .webhook, id).count == 1
            },
            "\(notifier.output)"
        )
        #expect(await eventually(timeout: .seconds(60)) { received(sinks, .slack, id).count == 3 })
        // Not held back: the others had it before Slack's second try, 4 s after its first.
        let secondSlackAttempt = received(sinks, .slack, id)[1].time
        for service in [FakeSinks.Service.telegram, .webhook] {
            #expect(try #require(received(sinks, service, id).first).time < secondSlackAttempt, "\(service)")
        }
        let status = try await HTTPCaller().send(
            "GET",
            "http://127.0.0.1:\(try notifier.healthPort())/status",
            headers: [],
            timeout: .seconds(5)
        ).text
        #expect(status.contains("sink.slack.queue_waiting") && status.contains("sink.telegram"), "\(status)")
        notifier.signal(SIGTERM)
        #expect(try await notifier.waitForExit(timeout: .seconds(30)) == 0, "\(notifier.output)")
        await bus.shutdown()
        await sinks.stop()
    }

    @Test("invalid sink settings stop the notifier at start with the key named")
    func invalidConfiguration() async throws {
        let servers = ["AMQP_URL": "amqp://x", "REDIS_URL": "redis://x"]
        for (settings, key) in [
            (["TELEGRAM_BOT_TOKEN": "1:X"], "TELEGRAM_CHAT_ID"),
            (["SLACK_WEBHOOK_URL": "not a url"], "SLACK_WEBHOOK_URL"),
            (["NOTIFY_MIN_SEVERITY": "loud"], "NOTIFY_MIN_SEVERITY"),
            (["NOTIFY_ROUTES": "pager:warning"], "NOTIFY_ROUTES"),
            // empty: unset, whatever the test runner exports
            (["NOTIFY_DAILY_SUMMARY_HOUR": "18", "DATABASE_URL": ""], "DATABASE_URL"),
        ] {
            await #expect {
                try await Command.run("\(build)/notifier", [], environment: servers.merging(settings) { $1 })
            } throws: { error in
                guard let failure = error as? CommandFailed else { return false }
                return failure.status == 2 && failure.output.contains(key) && !failure.output.contains("1:X")
            }
        }
    }
}
