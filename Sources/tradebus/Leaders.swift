import ArgumentParser
import Exchanges
import Foundation
import Logging
import TradingCore
import TradingServices
import WorkerRuntime

struct Leaders: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each followed leader's PnL, win rate and drawdown, and our copied PnL against theirs.",
        discussion: """
            Reads COPY_LEADERS, COPY_CAPITAL and HYPERLIQUID_REST_URL, and each leader's recent fills (userFills)
            and equity (clearinghouseState) from Hyperliquid; our copied trades from DATABASE_URL (or --database).
            With --leader-fills FILE (a userFills JSON array) and --leader ADDRESS, one leader is judged from
            the file, offline.
            """
    )

    @OptionGroup var record: RecordOption
    @Option(help: "A leader's recorded userFills (JSON array, newest first): judge them offline.")
    var leaderFills: String?
    @Option(help: "The address whose fills --leader-fills holds.") var leader: String?
    @Option(help: "With --leader-fills: the leader's equity now, USD (their return and drawdown need it).")
    var leaderEquity: Double?
    @Flag(help: "Print one JSON array.") var json = false

    func run() async throws {
        let config = try SettingsReader(environment: try record.environment())
        let store = try Infrastructure.store(config)
        let reports: [LeaderReport]
        do {
            try await store.migrate()  // a record not made yet has no copied trade
            reports = try await read(config, store: store)
            await store.close()
        } catch {
            await store.close()
            throw error
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
            return
        }
        for report in reports {
            print(report.lines.joined(separator: "\n"))
            if let since = report.followedSince {
                print("  followed since \(since.formatted(.iso8601))")
            } else {
                print("  not copied yet: no trade of ours opened from this leader's fills")
            }
        }
    }

    /// The reports: one leader from --leader-fills, else every leader of COPY_LEADERS from Hyperliquid.
    func read(_ config: SettingsReader, store: any TradeStore) async throws -> [LeaderReport] {
        if let leaderFills {
            guard let address = leader, let followed = try? Leader.parse(address).first else {
                throw ValidationError("--leader-fills needs --leader 0x… (40 hex digits)")
            }
            let fills: [LeaderFill]
            do { fills = try LeaderFill.read(try Data(contentsOf: URL(fileURLWithPath: leaderFills))) } catch {
                throw ValidationError("--leader-fills \(leaderFills) is not a userFills JSON array: \(error)")
            }
            let capital = try config.double(
                "COPY_CAPITAL",
                default: 10_000,
                range: 1...1_000_000_000,
                help: "USD our copies are sized against"
            )
            return [
                LeaderReport(
                    leader: followed,
                    fills: fills,
                    equity: leaderEquity.flatMap(Money.init(finite:)),
                    ourTrades: try await store.trades(since: nil),
                    ourCapital: Money(finite: capital)!
                )
            ]
        } else {
            guard let followed = try CopyConfiguration.followed(config) else {
                throw ValidationError("no leaders: set COPY_LEADERS (0xabc…:0.5,0xdef…:1), or give --leader-fills FILE")
            }
            var logger = Logger(label: "tradebus.leaders")
            logger.logLevel = .warning
            let board = LeaderBoard(
                leaders: followed.leaders,
                source: HyperliquidLeaders(
                    webSocketURL: followed.webSocketURL,
                    restURL: followed.restURL,
                    logger: logger
                ),
                store: store,
                capital: followed.capital
            )
            return try await board.reports()
        }
    }
}
