import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import TradingCore
import TradingServices
import Venues

/// What the live executor's tests on Binance start from: a local Binance server (BTCUSDT at
/// 100,000) that checks signatures, a fresh SQLite store, an in-process bus and cache.
struct BinanceWorld {
    let server: FakeBinanceFutures
    let store: SQLTradeStore
    let bus = InProcessBus()
    let cache = LocalCache()

    init() async throws {
        server = try await FakeBinanceFutures.start()
        server.setPrice("BTCUSDT", 100_000)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-executor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = .sqlite(path: directory.appendingPathComponent("store.sqlite").path)
        try await store.migrate()
    }

    /// A new process: a venue with no memory, and an executor that reconciles before anything else.
    /// `configure` changes its settings (no reference price is required here).
    func restart(
        timeout: Duration = .seconds(5), reconcile: Bool = true, configure: (inout ExecutorService.Settings) -> Void = { _ in }
    ) async throws -> (ExecutorService, BinanceFuturesVenue) {
        let venue = BinanceFuturesVenue(baseURL: server.baseURL, apiKey: server.apiKey, secret: server.secret, timeout: timeout, logger: Logger(label: "test"))
        var settings = ExecutorService.Settings()
        settings.limits.requireReferencePrice = false
        configure(&settings)
        let executor = ExecutorService(venue: venue, store: store, bus: bus, cache: cache, settings: settings, source: "test", logger: Logger(label: "test"))
        if reconcile { try await executor.reconcile() }
        return (executor, venue)
    }

    /// A long BTCUSDT decision at 100,000, stop 98,000, target 104,000, 3x.
    func intent(_ id: String = UUID().uuidString) -> OrderIntent {
        let proposal = TradeProposal(action: .long, confidence: 0.82, leverage: 3, entry: 100_000, stopLoss: 98_000, takeProfit: 104_000, reasoning: "t")
        return OrderIntent(
            decisionID: "decision:\(id)",
            decision: DecisionPayload(symbol: "BTCUSDT", proposal: proposal, provider: "rules", model: "m", promptVersion: "v", attempts: 0, candleTime: 0, requestID: id),
            decidedAt: Date())
    }
}
