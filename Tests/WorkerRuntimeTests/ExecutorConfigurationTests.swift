import Foundation
import Logging
import Testing
import TradingCore
import TradingServices
import WorkerRuntime

/// Which venue the executor's configuration builds: paper unless USE_PAPER_TRADING=false.
@Suite("Executor configuration: the venue")
struct ExecutorConfigurationTests {
    func venue(_ environment: [String: String]) throws -> any Venue {
        try ExecutorConfiguration.read(try SettingsReader(environment: environment)).makeVenue(
            logger: Logger(label: "test")
        )
    }

    @Test("paper by default, even with exchange keys present; live only when USE_PAPER_TRADING=false")
    func choice() throws {
        let keys = [
            "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s", "BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s",
            "PAPER_STATE_FILE": FileManager.default.temporaryDirectory.appendingPathComponent(
                "paper-\(UUID().uuidString).json"
            ).path,
        ]
        let paper = try venue(keys)
        #expect(paper.name == "paper" && !paper.isLive)
        let binance = try venue(keys.merging(["USE_PAPER_TRADING": "false"]) { $1 })
        #expect(binance.name == "binance" && binance.isLive)
        let bybit = try venue(keys.merging(["USE_PAPER_TRADING": "false", "LIVE_VENUE": "bybit"]) { $1 })
        #expect(bybit.name == "bybit" && bybit.isLive)
    }

    @Test("live without its exchange's keys stops at start naming the key")
    func missingKeys() throws {
        #expect {
            try venue([
                "USE_PAPER_TRADING": "false", "LIVE_VENUE": "bybit", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
            ])
        } throws: { error in
            (error as? ConfigError)?.key == "BYBIT_API_KEY"
        }
    }

    @Test("a shadow executor takes shadow.decision.# on paper only; a live venue for it stops it at start")
    func shadow() throws {
        let shadow = try ExecutorConfiguration.read(try SettingsReader(environment: ["EXECUTOR_DECISIONS": "shadow"]))
        #expect(shadow.settings.shadow)
        #expect(TradeExecutor.decisionQueue(account: "shadow", shadow: true).bindings == ["shadow.decision.#"])
        #expect(TradeExecutor.decisionQueue(account: "default").bindings == ["decision.#"])
        #expect {
            try ExecutorConfiguration.read(
                try SettingsReader(environment: [
                    "EXECUTOR_DECISIONS": "shadow", "USE_PAPER_TRADING": "false", "BINANCE_API_KEY": "k",
                    "BINANCE_API_SECRET": "s",
                ])
            )
        } throws: { error in
            (error as? ConfigError)?.key == "EXECUTOR_DECISIONS"
        }
    }
}
