import Foundation
import TestSupport
import Testing
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Canary secrets planted in every secret key (directly, in URLs, and through `*_FILE`): none appears
/// in `tradebus config`, in any worker's `--print-config`, or in a live executor's log.
@Suite("Secrets stay secret")
struct ConfigCommandTests {
    let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path

    func canaries() throws -> [String: String] {
        let secretFile = NSTemporaryDirectory() + "canary-\(UUID().uuidString)"
        try "canary-binance-secret".write(toFile: secretFile, atomically: true, encoding: .utf8)
        return [
            "USE_PAPER_TRADING": "false", "LIVE_VENUE": "binance", "BINANCE_API_KEY": "canary-binance-key",
            "BINANCE_API_SECRET_FILE": secretFile, "ANALYST_PROVIDERS": "rules,openai,anthropic",
            "OPENAI_API_KEY": "canary-openai", "ANTHROPIC_API_KEY": "canary-anthropic",
            "TELEGRAM_BOT_TOKEN": "canary-telegram",
            "TELEGRAM_CHAT_ID": "canary-chat", "NOTIFY_WEBHOOK_URL": "https://hooks.example/canary-webhook",
            "NOTIFY_WEBHOOK_SECRET": "canary-hmac", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/canary-slack",
            "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/canary-discord",
            "DATABASE_URL": "postgres://user:canary-pg@127.0.0.1:5432/db",
            "AMQP_URL": "amqp://user:canary-amqp@127.0.0.1:5672/",
            "REDIS_URL": "redis://:canary-redis@127.0.0.1:6379/0", "FEED_SOURCE": "synthetic",
        ]
    }

    @Test("tradebus config shows every worker's keys with their sources, every secret as ***")
    func configCommand() async throws {
        let output = try await Command.run("\(build)/tradebus", ["config"], environment: try canaries())
        #expect(!output.contains("canary"), "\(output)")
        for key in [
            "BINANCE_API_SECRET=***  # secret file", "OPENAI_API_KEY=***", "TELEGRAM_BOT_TOKEN=***",
            "NOTIFY_WEBHOOK_SECRET=***",
        ] {
            #expect(output.contains(key), "\(key) in \(output)")
        }
        #expect(output.contains("DATABASE_URL=postgres://user:***@127.0.0.1:5432/db  # environment"))
        for worker in WorkerSettings.workers.map(\.name) { #expect(output.contains("# \(worker)\n")) }
        let one = try await Command.run(
            "\(build)/tradebus",
            ["config", "--worker", "executor"],
            environment: try canaries()
        )
        #expect(one.contains("# executor") && !one.contains("# notifier") && one.contains("MAX_STOP_LOSS_PERCENT="))
    }

    @Test("each worker's --print-config redacts the same secrets", arguments: WorkerSettings.workers.map(\.name))
    func printConfig(_ worker: String) async throws {
        let output = try await Command.run("\(build)/\(worker)", ["--print-config"], environment: try canaries())
        #expect(!output.contains("canary") && output.contains("***"), "\(output)")
    }

    @Test("a live executor signing with canary keys never logs them")
    func executorLog() async throws {
        let exchange = try await FakeBinanceFutures.start(apiKey: "canary-binance-key", secret: "canary-binance-secret")
        var environment = try canaries()
        environment.merge([
            "DATABASE_URL": TestServices.databaseURL, "AMQP_URL": TestServices.amqpURL,
            "REDIS_URL": TestServices.redisURL,
            "HTTP_PORT": "0", "EXECUTOR_ACCOUNT": TestServices.uniqueName("secrets"),
            "BINANCE_FUTURES_URL": exchange.baseURL,
            "REQUIRE_REFERENCE_PRICE": "false", "LOG_LEVEL": "debug",
        ]) { $1 }
        let executor = try SpawnedProcess(executable: "\(build)/executor", environment: environment)
        defer { executor.signal(SIGKILL) }
        #expect(
            await eventually(timeout: .seconds(60)) { executor.output.contains("reconciled with the venue") },
            "\(executor.output)"
        )
        executor.signal(SIGTERM)
        _ = try await executor.waitForExit(timeout: .seconds(10))
        #expect(!exchange.requests.isEmpty, "it signed requests with the canary keys")
        #expect(!executor.output.contains("canary"), "\(executor.output)")
        await exchange.stop()
    }
}
