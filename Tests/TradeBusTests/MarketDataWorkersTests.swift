import Foundation
import RedisCache
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The tests that run processes, one at a time. An indicator-worker process consumes `md.candle.#`, so
/// while it runs it would also take the candles another test publishes, and restore (by design) state
/// that test's own workers wrote; and on two cores, processes running side by side starve the
/// in-process tests of CPU.
@Suite("Market data on RabbitMQ and Redis", .serialized)
enum MarketDataSystemTests {}

/// feed-ingester and indicator-worker as separate processes against the real RabbitMQ and Redis.
extension MarketDataSystemTests {
    @Suite("Market data workers (processes)")
    struct MarketDataWorkersTests {
        let build = TestServices.repositoryRoot.appendingPathComponent(".build/debug").path
        let file = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/XRPUSDT-PERP-5m.csv")
            .path

        @Test(
            "XRPUSDT-PERP-5m replayed through feed-ingester → RabbitMQ → indicator-worker gives the snapshots of tradebus indicators"
        )
        func replayThroughWorkers() async throws {
            let symbol = "XRP\(UUID().uuidString.prefix(6).uppercased())"
            let environment = ["AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL, "HTTP_PORT": "0"]
            let worker = try SpawnedProcess(executable: "\(build)/indicator-worker", environment: environment)
            defer { worker.signal(SIGKILL) }
            let feed = try SpawnedProcess(
                executable: "\(build)/feed-ingester",
                environment: environment.merging([
                    "FEED_FILE": file, "FEED_SYMBOL": symbol, "FEED_INTERVAL": "5m", "FEED_VENUE": "binance",
                ]) { $1 }
            )
            defer { feed.signal(SIGKILL) }

            let candles = try CandleFile.parse(try String(contentsOfFile: file, encoding: .utf8))
            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(TestServices.redisURL),
                    commandTimeout: .seconds(1),
                    localFreshness: .zero
                )
            )
            let key = SnapshotPayload.cacheKey(symbol: symbol, interval: "5m")
            let arrived = await eventually(timeout: .seconds(60), interval: .milliseconds(200)) {
                guard let value = await cache.get(key),
                    let payload = try? EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes)
                else { return false }
                return payload.payload.snapshot.openTime == candles.last!.openTime
            }
            #expect(arrived, "feed: \(feed.output)\nworker: \(worker.output)")
            let value = try #require(await cache.get(key))
            let snapshot = try EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes).payload.snapshot
            #expect(
                value.sourceTime == Date(timeIntervalSince1970: Double(candles.last!.openTime + 300_000) / 1000),
                "stamped with its candle time"
            )

            // The same values as the command line prints for the file's last candle.
            let printed = try await Command.run("\(build)/tradebus", ["indicators", "--data", file])
            let last = printed.split(separator: "\n").last!.split(separator: ",", omittingEmptySubsequences: false).map(
                String.init
            )
            let ours = [String(snapshot.openTime)] + snapshot.columnValues.map { $0.map { "\($0)" } ?? "" }
            #expect(ours == last)
            #expect(await cache.get("price:binance:\(symbol)")?.string == String(candles.last!.close))

            feed.signal(SIGTERM)
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0, "\(worker.output)")
            _ = try? await feed.waitForExit(timeout: .seconds(30))
        }

        @Test(
            "feed-ingester on a Binance-format exchange → RabbitMQ → indicator-worker: live candles, a gap filled from REST, snapshots in Redis"
        )
        func liveFeedThroughWorkers() async throws {
            let exchange = try await FakeExchange.start(.binance)
            let symbol = "LV\(UUID().uuidString.prefix(6).uppercased())USDT"
            let stream = CandleStreamID(symbol: symbol, interval: "1m")
            let environment = ["AMQP_URL": TestServices.amqpURL, "REDIS_URL": TestServices.redisURL, "HTTP_PORT": "0"]
            let worker = try SpawnedProcess(executable: "\(build)/indicator-worker", environment: environment)
            defer { worker.signal(SIGKILL) }
            // A live feed keeps its candles and funding in the store.
            let feed = try SpawnedProcess(
                executable: "\(build)/feed-ingester",
                environment: environment.merging([
                    "DATABASE_URL": TestServices.databaseURL, "FEED_SOURCE": "binance", "FEED_SYMBOLS": symbol,
                    "FEED_INTERVAL": "1m",
                    "BINANCE_WS_URL": exchange.webSocketURL, "BINANCE_REST_URL": exchange.restURL,
                ]) { $1 }
            )
            defer { feed.signal(SIGKILL) }
            #expect(await eventually(timeout: .seconds(30)) { exchange.openConnections == 1 }, "feed: \(feed.output)")

            // Recent minutes, so the feed's catch-up logic sees them as closed; minute 3 only in REST.
            let now = Int64(Date().timeIntervalSince1970 * 1000) / 60_000 * 60_000
            let candles = (0..<6).map { index in
                Candle(
                    openTime: now - Int64(10 - index) * 60_000,
                    open: 10,
                    high: 11 + Double(index),
                    low: 9,
                    close: 10.5 + Double(index) / 10,
                    volume: 100
                )
            }
            exchange.setHistory(candles, for: stream)
            for (index, candle) in candles.enumerated() where index != 3 {
                exchange.push(candle, for: stream, closed: true)
            }

            let cache = RedisCache(
                configuration: .init(
                    url: try RedisURL(TestServices.redisURL),
                    commandTimeout: .seconds(1),
                    localFreshness: .zero
                )
            )
            let arrived = await eventually(timeout: .seconds(30), interval: .milliseconds(100)) {
                guard let value = await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: "1m")),
                    let payload = try? EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes)
                else { return false }
                return payload.payload.snapshot.openTime == candles.last!.openTime
            }
            #expect(arrived, "feed: \(feed.output)\nworker: \(worker.output)")
            var reference = IndicatorSet()
            let expected = candles.map { reference.update($0) }.last
            let value = try #require(await cache.get(SnapshotPayload.cacheKey(symbol: symbol, interval: "1m")))
            #expect(
                try EnvelopeCodec.decode(SnapshotPayload.self, from: value.bytes).payload.snapshot == expected,
                "the REST-filled minute is in the indicators"
            )
            // One kline request (the gap); the others read the funding interval and history at start.
            #expect(exchange.restPaths.filter { $0.hasPrefix("/fapi/v1/klines") }.count == 1, "\(exchange.restPaths)")
            #expect(exchange.restPaths.contains("/fapi/v1/fundingInfo"))
            #expect(await cache.get("price:binance:\(symbol)")?.string == String(candles.last!.close))

            feed.signal(SIGTERM)
            worker.signal(SIGTERM)
            #expect(try await feed.waitForExit(timeout: .seconds(30)) == 0, "\(feed.output)")
            #expect(try await worker.waitForExit(timeout: .seconds(30)) == 0, "\(worker.output)")
            await exchange.stop()
        }

        @Test("an invalid setting stops feed-ingester at start with the key named")
        func invalidConfiguration() async throws {
            let servers = ["AMQP_URL": "amqp://x", "REDIS_URL": "redis://x"]
            for (settings, key) in [
                (["FEED_SOURCE": "kraken"], "FEED_SOURCE"),
                (["FEED_SOURCE": "binance"], "FEED_SYMBOLS"),
                (["FEED_SOURCE": "binance", "FEED_SYMBOLS": "BTC-USDT"], "FEED_SYMBOLS"),
                (["FEED_SOURCE": "bybit", "FEED_SYMBOLS": "BTCUSDT", "FEED_INTERVAL": "2d"], "FEED_INTERVAL"),
                (
                    ["FEED_SOURCE": "binance", "FEED_SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": "https://x"],
                    "BINANCE_WS_URL"
                ),
                (["FEED_SOURCE": "synthetic", "SYNTHETIC_SEED": "-1"], "SYNTHETIC_SEED"),
            ] {
                await #expect {
                    try await Command.run("\(build)/feed-ingester", [], environment: servers.merging(settings) { $1 })
                } throws: { error in
                    guard let failure = error as? CommandFailed else { return false }
                    return failure.status == 2 && failure.output.contains(key)
                }
            }
        }
    }
}
