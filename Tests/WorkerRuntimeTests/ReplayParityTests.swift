import Foundation
import Logging
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

/// The backtester against the embedded services, in one process: every shared data file, and every
/// stop policy and executor option that changes how trades end. The same trades, field for field, and
/// the same number of decisions.
@Suite("Backtester parity with the embedded services", .serialized)
struct ReplayParityTests {
    static let files: [(file: String, symbol: String, interval: String)] = [
        ("XRPUSDT-PERP-5m", "XRPUSDT", "5m"), ("XRPUSDT-PERP-1h", "XRPUSDT", "1h"), ("ETHBTC-5m", "ETHBTC", "5m"),
        ("LTCBTC-5m", "LTCBTC", "5m"),
        ("UNITTESTBTC-1m", "UNITTESTBTC", "1m"),
    ]

    static func candles(_ file: String) throws -> [Candle] {
        let path = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/\(file).csv")
        return try CandleFile.parse(try String(contentsOf: path, encoding: .utf8))
    }

    /// Both drivers on the same candles and keys; returns the backtester's outcome once they agree.
    @discardableResult
    static func compare(
        _ file: String,
        symbol: String,
        interval: String,
        _ environment: [String: String] = [:],
        funding: FundingSchedule? = nil,
        candles given: [Candle]? = nil,
        marks: [Int64: Candle]? = nil,
        detail: [Candle]? = nil
    ) async throws -> ReplayOutcome {
        let candles = try given ?? candles(file)
        let config = try SettingsReader(environment: environment)
        let fast = try Backtester(settings: try Backtester.Settings.read(config), analyst: .rules).run(
            candles,
            symbol: symbol,
            interval: interval,
            funding: funding,
            marks: marks,
            detail: detail
        )

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("parity-\(UUID().uuidString).sqlite")
            .path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = SQLTradeStore.sqlite(path: path)
        let system = try EmbeddedSystem(
            config: config,
            store: store,
            analyst: .rules,
            notify: false,
            logger: Logger(label: "parity", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        try await system.start()
        let services = try await system.replay(
            candles,
            symbol: symbol,
            interval: interval,
            funding: funding,
            marks: marks,
            detail: detail
        )
        await system.stop()
        await store.close()

        #expect(
            fast.trades == services.trades,
            "\(file) \(environment): \(fast.trades.count) vs \(services.trades.count) trades"
        )
        for (a, b) in zip(fast.trades, services.trades) where a != b {
            Issue.record("first difference in \(file) \(environment):\n\(a)\n\(b)")
            break
        }
        for trade in fast.trades where trade.exitTime < trade.entryTime {
            Issue.record("a trade closes before it opens: \(trade)")
            break
        }
        #expect(
            fast.signals == services.signals && fast.decisions == services.decisions && fast.times == services.times
        )
        // The equity curves: the backtester works out open positions in Double arithmetic.
        #expect(fast.equity.count == services.equity.count)
        let worst = zip(fast.equity, services.equity).map { abs($0 - $1) / $1 }.max() ?? 0
        #expect(worst < 1e-9, "equity curves differ by \(worst)")
        return fast
    }

    @Test("every shared data file: the same trades, decisions and equity", arguments: files.map(\.file))
    func everyFile(_ file: String) async throws {
        let entry = Self.files.first { $0.file == file }!
        // A loss-run halt holds until an operator resets it; with a longer run allowed, the whole file is compared.
        let outcome = try await Self.compare(
            file,
            symbol: entry.symbol,
            interval: entry.interval,
            ["MAX_CONSECUTIVE_LOSSES": "20"]
        )
        if file != "XRPUSDT-PERP-1h" { #expect(outcome.trades.count >= 5, "\(file) should trade") }
    }

    @Test(
        "with the real XRPUSDT funding and mark files: the same trades, each charged the same funding",
        arguments: [false, true]
    )
    func funding(marked: Bool) async throws {
        func text(_ name: String) throws -> String {
            let path = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/\(name)")
            return try String(contentsOf: path, encoding: .utf8)
        }
        var schedule = try FundingSchedule.parse(try text("XRPUSDT-PERP-funding-8h.csv"))
        let prices = try MarkPrices.parse(try text("XRPUSDT-PERP-mark-1h.csv"))
        if marked { schedule = schedule.marked(by: prices) }
        for (file, interval, length) in [
            ("XRPUSDT-PERP-5m", "5m", Int64(300_000)), ("XRPUSDT-PERP-1h", "1h", 3_600_000),
        ] {
            let marks = marked ? prices.candles(for: try Self.candles(file), length: length) : nil
            let outcome = try await Self.compare(
                file,
                symbol: "XRPUSDT",
                interval: interval,
                ["MAX_CONSECUTIVE_LOSSES": "20"],
                funding: schedule,
                marks: marks
            )
            if interval == "5m" { #expect(outcome.trades.contains { $0.funding != 0 }, "some trade pays funding") }
        }
    }

    @Test("with 1m detail under 5m candles: the embedded run and the backtest make the same trades, with and without")
    func intrabar() async throws {
        // UNITTESTBTC-1m aggregated to 5m: without the detail a candle holding both the stop and the
        // target is taken stop first; with it, in the order the minutes show.
        let minutes = try Self.candles("UNITTESTBTC-1m")
        let fives = CandleInterval.aggregate(minutes, to: 300_000)
        let environment = ["MAX_CONSECUTIVE_LOSSES": "20"]
        let plain = try await Self.compare(
            "UNITTESTBTC-5m",
            symbol: "UNITTESTBTC",
            interval: "5m",
            environment,
            candles: fives
        )
        let detailed = try await Self.compare(
            "UNITTESTBTC-5m",
            symbol: "UNITTESTBTC",
            interval: "5m",
            environment,
            candles: fives,
            detail: minutes
        )
        // The minutes move at least one exit (a stop filled at a minute's open gap, here); the trade
        // whose outcome flips is `IntrabarTests`'.
        #expect(plain.trades != detailed.trades)
        // A trailing stop moves minute by minute in both.
        try await Self.compare(
            "UNITTESTBTC-5m",
            symbol: "UNITTESTBTC",
            interval: "5m",
            environment.merging(["TRAILING_CALLBACK_PERCENT": "0.005", "TRAILING_ACTIVATION_R": "1"]) { $1 },
            candles: fives,
            detail: minutes
        )
    }

    @Test(
        "stop policies and executor options: trailing, break-even, ATR, no close on an opposite decision, tight breakers, other limits",
        arguments: [
            ["TRAILING_CALLBACK_PERCENT": "0.01", "TRAILING_ACTIVATION_R": "1"],
            ["BREAK_EVEN_AFTER_1R": "true"],
            ["ATR_STOP_MULTIPLE": "2"],
            ["CLOSE_ON_OPPOSITE_DECISION": "false", "MAX_LEVERAGE": "2"],
            ["MAX_CONSECUTIVE_LOSSES": "1", "DAILY_LOSS_LIMIT_PERCENT": "0.01", "RISK_PER_TRADE_PERCENT": "0.03"],
            [
                "MIN_REWARD_RISK": "2", "MAX_STOP_LOSS_PERCENT": "0.02", "PAPER_SLIPPAGE_PERCENT": "0.002",
                "MIN_PROFIT_USD": "5",
            ],
            ["PAPER_SLIPPAGE_MODEL": "volume", "PAPER_SLIPPAGE_VOLUME_IMPACT": "5", "PAPER_SPREAD_PERCENT": "0.0004"],
        ]
    )
    func options(_ environment: [String: String]) async throws {
        let outcome = try await Self.compare("XRPUSDT-PERP-5m", symbol: "XRPUSDT", interval: "5m", environment)
        #expect(!outcome.trades.isEmpty)
    }

    @Test(
        "the exits the options make are there to compare: trailing stops, break-even stops and closes on an opposite decision"
    )
    func exitsCovered() async throws {
        let candles = try Self.candles("XRPUSDT-PERP-5m")
        func reasons(_ environment: [String: String]) throws -> Set<String> {
            let settings = try Backtester.Settings.read(try SettingsReader(environment: environment))
            return Set(
                try Backtester(settings: settings, analyst: .rules).run(candles, symbol: "XRPUSDT", interval: "5m")
                    .trades.map(\.exitReason)
            )
        }
        #expect(try reasons([:]).isSuperset(of: ["stop_loss", "take_profit", "exit"]))
        #expect(
            try reasons(["TRAILING_CALLBACK_PERCENT": "0.01", "TRAILING_ACTIVATION_R": "1"]).contains("trailing_stop")
        )
    }

    @Test("a backtest refuses USE_PAPER_TRADING=false and an invalid key, naming it")
    func configuration() {
        #expect {
            try Backtester.Settings.read(
                try SettingsReader(environment: [
                    "USE_PAPER_TRADING": "false", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
                ])
            )
        } throws: {
            "\($0)".contains("USE_PAPER_TRADING")
        }
        #expect { try Backtester.Settings.read(try SettingsReader(environment: ["MAX_LEVERAGE": "0"])) } throws: {
            "\($0)".contains("MAX_LEVERAGE")
        }
        #expect {
            try Backtester.Settings.read(try SettingsReader(environment: ["PAPER_SLIPPAGE_MODEL": "random"]))
        } throws: {
            "\($0)".contains("PAPER_SLIPPAGE_MODEL") && "\($0)".contains("fixed, volume")
        }
    }
}
