import Foundation
import Logging
import SQLTradeStore
import Synchronization
import TestSupport
import Testing
import TradingCore
import TradingServices

/// The copy analyst loses no fill: one whose leader's account could not be read, or whose decision
/// could not be published, is decided again when the stream redelivers it.
@Suite("Copy analyst: no fill lost")
struct CopyAnalystTests {
    static let leader = "0xabcdefabcdefabcdefabcdefabcdefabcdef0002"

    /// A leader whose account read fails the first `failures` times.
    final class Source: LeaderSource {
        let failures = Mutex(0)
        init(failures: Int) { self.failures.withLock { $0 = failures } }
        func account(_ leader: String) async throws -> LeaderAccount {
            let fail = failures.withLock { count -> Bool in
                defer { count -= 1 }
                return count > 0
            }
            if fail { throw CopyError("the leader's account could not be read") }
            return LeaderAccount(equity: 1_000_000, stops: ["BTC": 98_000])
        }
        func recentFills(_ leader: String) async throws -> [LeaderFill] { [] }
        func fills(
            _ leaders: [String],
            receive: @escaping @Sendable (LeaderFillBatch) async throws -> Void
        )
            async throws
        {}
    }

    @Test("a fill whose account read failed is copied from the next snapshot; history at start is not")
    func redelivered() async throws {
        let bus = InProcessBus()
        try await bus.declare(QueueSpec(name: "decisions", bindings: ["decision.#"]))
        let decisions = Collector<String>()
        let consumer = RunningConsumer.start(bus, queue: "decisions") { decisions.append($0.messageID ?? "") }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("copy-\(UUID().uuidString).sqlite")
        let store = SQLTradeStore.sqlite(path: path.path)
        try await store.migrate()
        let now = Date()
        let analyst = CopyAnalyst(
            source: Source(failures: 1),
            bus: bus,
            store: store,
            settings: CopyAnalyst.Settings(
                leaders: [Leader(address: Self.leader, weight: 1)],
                sizing: CopySizing(mode: .proportional),
                capital: 10_000
            ),
            origin: "test",
            logger: Logger(label: "test"),
            now: { now }
        )
        func fill(_ tid: Int64, from: Money, secondsAgo: Double) -> LeaderFill {
            LeaderFill(
                coin: "BTC",
                price: 100_000,
                size: 1,
                isBuy: true,
                startPosition: from,
                time: Int64((now.timeIntervalSince1970 - secondsAgo) * 1000),
                tid: tid
            )
        }
        let old = fill(1, from: -1, secondsAgo: 3_600)
        // At start: an hour-old fill is history; the new one's account read fails.
        let opened = fill(2, from: 0, secondsAgo: 1)
        await #expect(throws: CopyError.self) {
            try await analyst.handle(LeaderFillBatch(leader: Self.leader, fills: [old, opened], snapshot: true))
        }
        // The reconnect's snapshot has it again, with one made while we were away (older than the
        // start's limit, but after what we followed): both are copied, the history still is not.
        let away = fill(3, from: 1, secondsAgo: 120)
        try await analyst.handle(LeaderFillBatch(leader: Self.leader, fills: [old, opened, away], snapshot: true))
        let id = "copy:\(Self.leader.lowercased())"
        #expect(await eventually { decisions.all.sorted() == ["\(id):2", "\(id):3"] })
        // Once more: nothing new.
        try await analyst.handle(LeaderFillBatch(leader: Self.leader, fills: [old, opened, away], snapshot: true))
        try await Task.sleep(for: .milliseconds(100))
        #expect(decisions.count == 2)
        try await consumer.stop()
        await store.close()
    }
}
