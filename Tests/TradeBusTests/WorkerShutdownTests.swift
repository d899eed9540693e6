import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every worker, started as its own process against the real servers, stops on SIGTERM within 10 s:
/// its ServiceGroup shuts down gracefully (consumers stop taking messages and finish what they hold,
/// connections close) and it exits 0. The feed is busy publishing when the signal comes. (What a
/// consumer holds at the signal is finished and acknowledged, or returned: `GracefulShutdownTests`
/// shows it with a worker built on the same `ConsumerService`.) Serialized with the market-data
/// process tests: its indicator worker consumes the same shared candle queue.
extension MarketDataSystemTests {
    @Suite("Workers stop on SIGTERM", .serialized)
    struct WorkerShutdownTests {
        static let workers = ["feed-ingester", "indicator-worker", "ai-analyst", "executor", "notifier"]

        @Test("SIGTERM stops the worker gracefully within 10 s, exit status 0", arguments: workers)
        func sigterm(_ worker: String) async throws {
            let unique = TestServices.uniqueName("shutdown")
            var environment = [
                "AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL,
                "DATABASE_URL": TestServices.databaseURL,
                "HTTP_PORT": "0",
            ]
            switch worker {
            case "feed-ingester":
                // Busy: a synthetic walk published at 600x real time until stopped.
                let symbol = "SD" + unique.filter(\.isLetter).uppercased().prefix(6) + "USDT"
                environment.merge(
                    [
                        "FEED_SOURCE": "synthetic", "FEED_SYMBOLS": symbol, "SYNTHETIC_CANDLES": "0",
                        "REPLAY_SPEED": "600",
                    ]) {
                        $1
                    }
            case "executor":
                environment.merge([
                    "EXECUTOR_ACCOUNT": unique, "PAPER_STATE_FILE": NSTemporaryDirectory() + "\(unique).json",
                    "REQUIRE_REFERENCE_PRICE": "false",
                ]) { $1 }
            default:
                break
            }
            let executable = TestServices.repositoryRoot.appendingPathComponent(".build/debug/\(worker)").path
            let process = try SpawnedProcess(executable: executable, environment: environment)
            defer { process.signal(SIGKILL) }
            #expect(
                await eventually(timeout: .seconds(60)) { process.output.contains("started") },
                "\(process.output.suffix(2000))"
            )
            try await Task.sleep(for: .seconds(1))
            let signalled = ContinuousClock.now
            process.signal(SIGTERM)
            let status = try await process.waitForExit(timeout: .seconds(10))
            let took = ContinuousClock.now - signalled
            #expect(status == 0, "\(process.output.suffix(2000))")
            #expect(
                took < .seconds(10) && process.output.contains("stopped"),
                "took \(took): \(process.output.suffix(1000))"
            )
            print("\(worker): stopped \(took) after SIGTERM")
        }
    }
}
