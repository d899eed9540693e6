import Foundation
import SQLTradeStore
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Run one at a time with the other process tests: on two cores, parallel processes starve the
/// in-process tests of CPU.
extension MarketDataSystemTests {
    /// `tradebus backtest`, `tradebus run --data` and `tradebus report`, run as processes.
    /// Processes are awaited, never waited for on a thread of the shared pool: a blocked pool starves every other test.
    @Suite("tradebus backtest, run and report", .serialized)
    struct BacktestCommandTests {
        let tradebus = TestServices.repositoryRoot.appendingPathComponent(".build/debug/tradebus").path
        /// XRPUSDT-PERP-5m.csv from ../shared/data, copied into the fixtures.
        let data = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/XRPUSDT-PERP-5m.csv")
            .path
        let columns =
            "id,symbol,side,entry_time,entry_price,exit_time,exit_price,quantity,leverage,stop_loss,take_profit,pnl,fees,funding,exit_reason"

        func temporary(_ name: String) -> String {
            FileManager.default.temporaryDirectory.appendingPathComponent("\(TestServices.uniqueName(name))").path
        }

        /// The worker keys a test environment may carry, cleared so the defaults apply.
        let defaults = [
            "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "ANALYST_PROVIDERS": "",
            "INITIAL_CAPITAL": "",
        ]

        @Test(
            "fixed-point money: every shared file makes the trades the Decimal build made, to the last digit",
            arguments: [false, true]
        )
        func sameTradesAsDecimal(breakersNeverStop: Bool) async throws {
            let fixtures = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures")
            var environment = defaults
            if breakersNeverStop {
                environment.merge(
                    [
                        "DAILY_LOSS_LIMIT_PERCENT": "1", "MAX_CONSECUTIVE_LOSSES": "100", "MAX_DRAWDOWN_PERCENT": "1",
                        "INITIAL_CAPITAL": "1000000000",
                    ]
                ) { $1 }
            }
            let market = fixtures.appendingPathComponent("market-data").path
            let runs: [(name: String, arguments: [String])] =
                ["ETHBTC-5m", "LTCBTC-5m", "UNITTESTBTC-1m", "XRPUSDT-PERP-1h", "XRPUSDT-PERP-5m"].map {
                    ($0, ["--data", "\(market)/\($0).csv"])
                } + [
                    (
                        "XRPUSDT-PERP-5m.funding-mark",
                        [
                            "--data", "\(market)/XRPUSDT-PERP-5m.csv", "--funding",
                            "\(market)/XRPUSDT-PERP-funding-8h.csv", "--mark", "\(market)/XRPUSDT-PERP-mark-1h.csv",
                        ]
                    )
                ]
            var trades = 0
            for run in runs {
                let out = temporary("money") + ".csv"
                _ = try await Command.run(
                    tradebus,
                    ["backtest"] + run.arguments + ["--trades-out", out],
                    environment: environment
                )
                let name = run.name + (breakersNeverStop ? ".breakers-never-stop" : "")
                let expected = try String(
                    contentsOf: fixtures.appendingPathComponent("trades-before-money/\(name).csv"),
                    encoding: .utf8
                )
                let actual = try String(contentsOfFile: out, encoding: .utf8)
                #expect(actual == expected, "\(name): the trades differ from the Decimal build's")
                trades += actual.split(separator: "\n").count - 1
            }
            #expect(trades >= (breakersNeverStop ? 250 : 25), "the files should trade: \(trades) trades")
        }

        @Test("parity: backtest and run --data make the same trades, with the same ids, times and prices")
        func parity() async throws {
            let backtestTrades = temporary("bt") + ".csv"
            let runTrades = temporary("run") + ".csv"
            let database = temporary("run") + ".sqlite"
            _ = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--json", "--trades-out", backtestTrades],
                environment: defaults
            )
            _ = try await Command.run(
                tradebus,
                ["run", "--data", data, "--database", database, "--trades-out", runTrades],
                environment: defaults
            )
            let backtest = try String(contentsOfFile: backtestTrades, encoding: .utf8)
            let run = try String(contentsOfFile: runTrades, encoding: .utf8)
            let rows = backtest.split(separator: "\n")
            #expect(rows.first.map(String.init) == columns)
            #expect(rows.count >= 4, "the file should trade a few times: \(backtest)")
            #expect(backtest == run)
        }

        @Test(
            "--funding and --mark: backtest and run --data charge the same funding; it is in the trades, the summary and --json"
        )
        func funding() async throws {
            let funding = TestServices.repositoryRoot.appendingPathComponent(
                "Tests/Fixtures/market-data/XRPUSDT-PERP-funding-8h.csv"
            ).path
            let mark = TestServices.repositoryRoot.appendingPathComponent(
                "Tests/Fixtures/market-data/XRPUSDT-PERP-mark-1h.csv"
            ).path
            let backtestTrades = temporary("btf") + ".csv"
            let runTrades = temporary("runf") + ".csv"
            let environment = defaults.merging(["MAX_CONSECUTIVE_LOSSES": "20"]) { $1 }
            let json = try await Command.run(
                tradebus,
                [
                    "backtest", "--data", data, "--funding", funding, "--mark", mark, "--json", "--trades-out",
                    backtestTrades,
                ],
                environment: environment
            )
            let summary = try await Command.run(
                tradebus,
                [
                    "run", "--data", data, "--funding", funding, "--mark", mark, "--database",
                    temporary("runf") + ".sqlite",
                    "--trades-out", runTrades,
                ],
                environment: environment
            )
            let backtest = try String(contentsOfFile: backtestTrades, encoding: .utf8)
            #expect(backtest == (try String(contentsOfFile: runTrades, encoding: .utf8)))
            let column = columns.split(separator: ",").firstIndex(of: "funding")!
            let paid = backtest.split(separator: "\n").dropFirst().compactMap {
                Double($0.split(separator: ",", omittingEmptySubsequences: false)[column])
            }
            #expect(paid.contains { $0 != 0 }, "some trade pays funding: \(backtest)")
            let figures = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let total = try #require(figures["funding"] as? Double)
            #expect(abs(total - paid.reduce(0, +)) < 1e-9)
            // The mark file ends on 2021-11-19 03:00: it prices the settlements up to then.
            #expect(
                summary.contains(
                    "funding (from \(funding), at the mark of \(mark) for 5 of 91 settlements, else the candle's open"
                ),
                "\(summary)"
            )
            // A detail file must be of a shorter interval: the 5m file under itself is refused, by name.
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data, "--detail", data],
                    environment: environment
                )
            } throws: {
                "\($0)".contains("--detail \(data): its candles must be of a shorter interval that divides 5m")
            }
        }

        @Test(
            "tradebus diff: a paper run over the shared file differs nowhere; a fee changed in its record is found, under fee"
        )
        func diff() async throws {
            let database = temporary("diff") + ".sqlite"
            _ = try await Command.run(tradebus, ["run", "--data", data, "--database", database], environment: defaults)
            func diff() async throws -> [String: Any] {
                // The record names the candle file it ran on: no --data needed. --save keeps each report in it.
                let output = try await Command.run(
                    tradebus,
                    ["diff", "--run", database, "--json", "--save"],
                    environment: defaults
                )
                return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            }
            let same = try await diff()
            let trades = try #require(same["run_trades"] as? Int)
            #expect(trades > 0 && same["identical"] as? Int == trades && same["differing"] as? Int == 0, "\(same)")
            #expect(same["pnl_difference"] as? Double == 0)

            // The venue charged one trade a dollar more than the paper venue would have.
            let store = try Infrastructure.store(
                try SettingsReader(environment: ["DATABASE_URL": "sqlite://" + database])
            )
            let first = try #require(try await store.trades(since: nil).first)
            let values: [SQLValue] = [.text("\(first.fees + 1)"), .text("\(first.pnl - 1)"), .text(first.id)]
            _ = try await store.database.withSession {
                try $0.query("UPDATE trades SET fees = $1, pnl = $2 WHERE id = $3", values)
            }
            await store.close()
            let changed = try await diff()
            #expect(changed["differing"] as? Int == 1 && changed["identical"] as? Int == trades - 1, "\(changed)")
            #expect(changed["pnl_difference"] as? Double == -1)
            #expect((changed["by_cause"] as? [String: Double]) == ["fee": -1], "\(changed)")
            // Both reports are in the record, the newest first, for the cockpit's Backtests page.
            let record = try Infrastructure.store(
                try SettingsReader(environment: ["DATABASE_URL": "sqlite://" + database])
            )
            let saved = try await record.divergences(limit: 10)
            await record.close()
            #expect(saved.map(\.differing) == [1, 0] && saved.first?.byCause == ["fee": -1])
            #expect(saved.first?.report.contains("fee") == true && saved.allSatisfy { $0.runTrades == trades })
        }

        @Test(
            "backtest --walk-forward: windows that never overlap their training, the winners, the stitched record, DSR, PBO and a Monte Carlo"
        )
        func walkForward() async throws {
            let output = try await Command.run(
                tradebus,
                [
                    "backtest", "--data", data, "--walk-forward", "train=2d,test=1d", "--sweep",
                    "RISK_PER_TRADE_PERCENT=0.005:0.02:0.005", "--monte-carlo", "200", "--json",
                ],
                environment: defaults.merging(["MAX_CONSECUTIVE_LOSSES": "20"]) { $1 }
            )
            let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            let windows = try #require(report["windows"] as? [[String: Any]])
            #expect(windows.count == 5, "tests start on days 2 to 6 of the 6.9-day file")
            for window in windows {
                #expect((window["train_end"] as? String) == (window["test_start"] as? String))
                #expect((window["settings"] as? [String: String])?["RISK_PER_TRADE_PERCENT"] != nil)
            }
            #expect(report["configurations"] as? Int == 4)
            #expect((report["deflated_sharpe"] as? Double).map { (0...1).contains($0) } == true)
            #expect((report["probability_of_overfitting"] as? Double).map { (0...1).contains($0) } == true)
            let drawdowns = try #require(report["monte_carlo_max_drawdown_pct"] as? [String: Double])
            #expect(drawdowns["p5"]! <= drawdowns["p50"]! && drawdowns["p50"]! <= drawdowns["p95"]!)
            #expect(report["monte_carlo_runs"] as? Int == 200)
            #expect((report["out_of_sample_equity"] as? [Double])?.first == 10_000)
            // A walk-forward needs a grid.
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data, "--walk-forward", "train=2d,test=1d"],
                    environment: defaults
                )
            } throws: { "\($0)".contains("--walk-forward optimises a --sweep grid") }
        }

        @Test(
            "tradebus diff on a live run's record: the candles its feed kept stand in for a file, and it differs nowhere"
        )
        func diffRecordedCandles() async throws {
            let database = temporary("diff-live") + ".sqlite"
            _ = try await Command.run(tradebus, ["run", "--data", data, "--database", database], environment: defaults)
            // A live run names no file: its feed kept the candles (market_candles) instead.
            let store = try Infrastructure.store(
                try SettingsReader(environment: ["DATABASE_URL": "sqlite://" + database])
            )
            let candles = try CandleFile.parse(try String(contentsOfFile: data, encoding: .utf8))
            try await store.recordCandles(venue: "binance", symbol: "XRPUSDT", interval: "5m", candles)
            _ = try await store.database.withSession { try $0.query("DELETE FROM run_sources", []) }
            await store.close()
            let output = try await Command.run(tradebus, ["diff", "--run", database, "--json"], environment: defaults)
            let same = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            let trades = try #require(same["run_trades"] as? Int)
            #expect(trades > 0 && same["identical"] as? Int == trades && same["differing"] as? Int == 0, "\(same)")
        }

        @Test(
            "run --dashboard: Ctrl-C during the replay stops it cleanly (exit 0); a --trades-out it cannot write fails the run"
        )
        func interruptedAndUnwritable() async throws {
            let run = try SpawnedProcess(
                executable: tradebus,
                arguments: [
                    // A folder that does not exist yet: the run makes it, for its record and its log.
                    "run", "--data", data, "--database", temporary("new-folder") + "/run.sqlite", "--dashboard",
                    "127.0.0.1:0", "--pace", "20",
                ],
                environment: defaults
            )
            #expect(await eventually(timeout: .seconds(60)) { run.output.contains("dashboard: http://127.0.0.1:") })
            run.signal(SIGINT)
            #expect(try await run.waitForExit(timeout: .seconds(30)) == 0, "\(run.output)")
            #expect(run.output.contains("stopped by a signal before the replay ended"), "\(run.output)")
            let failure = await #expect(throws: CommandFailed.self) {
                try await Command.run(
                    tradebus,
                    [
                        "run", "--data", data, "--database", temporary("unwritable") + ".sqlite", "--trades-out",
                        "/nonexistent/t.csv",
                    ],
                    environment: defaults
                )
            }
            #expect(
                failure?.output.contains("--trades-out /nonexistent/t.csv") == true,
                "\(String(describing: failure))"
            )
        }

        @Test("--save keeps the result in DATABASE_URL for the cockpit; without DATABASE_URL it says so")
        func save() async throws {
            let database = temporary("saved") + ".sqlite"
            let printed = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--json", "--save"],
                environment: defaults.merging(["DATABASE_URL": "sqlite://\(database)"]) { $1 }
            )
            let report = try #require(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
            let store = try Infrastructure.store(
                try SettingsReader(environment: ["DATABASE_URL": "sqlite://\(database)"])
            )
            let saved = try await store.backtests(limit: 10)
            await store.close()
            let record = try #require(saved.first)
            #expect(saved.count == 1 && record.symbol == "XRPUSDT" && record.interval == "5m")
            let printedPnL = try #require(report["total_pnl"] as? Double)
            #expect(record.report.trades == report["trades"] as? Int && abs(record.report.totalPnL - printedPnL) < 1e-9)
            #expect(record.equity.count == 500 && record.equity.last == record.report.finalEquity)
            await #expect(throws: CommandFailed.self) {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data, "--save"],
                    environment: defaults.merging(["DATABASE_URL": ""]) { $1 }
                )
            }
        }

        @Test(
            "tradebus leaders: each leader of COPY_LEADERS read from a local Hyperliquid (userFills, clearinghouseState) beside our copied trades in the record; a file judged offline; no leader named, a clear error"
        )
        func leaders() async throws {
            let fixtures = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/hyperliquid")
            let fillsFile = fixtures.appendingPathComponent("leader-fills.json").path
            let fills = try LeaderFill.read(Data(contentsOf: URL(fileURLWithPath: fillsFile)))
            let address = "0xabcdef0123456789abcdef0123456789abcdef01"
            let venue = try await FakeExchange.start(.hyperliquid)
            venue.setLeader(address, equity: 100_000)
            for fill in fills { venue.leaderFill(address, fill: fill, push: false) }
            // The record: one trade copied from this leader (its short), one of the rules analyst's.
            let path = temporary("leaders.sqlite")
            let store = SQLTradeStore.sqlite(path: path)
            try await store.migrate()
            let trips = LeaderFill.roundTrips(fills, leader: address)
            for (id, position, pnl) in [
                ("t1", "position:copy:\(address):5004", Money(-30)), ("t2", "position:rules-1", 80),
            ] {
                var trade = trips[1]
                trade.id = id
                trade.positionID = position
                trade.pnl = pnl
                try await store.recordTrade(trade)
            }
            await store.close()
            var environment = defaults
            environment["DATABASE_URL"] = "sqlite://\(path)"
            environment["COPY_LEADERS"] = address + ":0.5"
            environment["HYPERLIQUID_REST_URL"] = venue.restURL
            let output = try await Command.run(tradebus, ["leaders", "--json"], environment: environment)
            let reports = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] ?? []
            #expect(reports.count == 1 && reports.first?["leader"] as? String == address)
            let theirs = reports.first?["theirs"] as? [String: Any]
            let ours = reports.first?["ours"] as? [String: Any]
            #expect(theirs?["trades"] as? Int == 2 && theirs?["wins"] as? Int == 1, "\(output)")
            #expect(ours?["trades"] as? Int == 1 && ours?["pnl"] as? Double == -30, "\(output)")
            #expect(reports.first?["equity"] as? Double == 100_000 && reports.first?["weight"] as? Double == 0.5)
            #expect(venue.received.contains { $0.contains(#""type":"userFills""#) })
            // The table, and the same leader judged from the file alone.
            let table = try await Command.run(
                tradebus,
                ["leaders", "--leader-fills", fillsFile, "--leader", address, "--leader-equity", "100000"],
                environment: environment
            )
            #expect(
                table.contains("theirs                 2 trades  win  50%") && table.contains("ours, copied"),
                "\(table)"
            )
            await venue.stop()
            environment["COPY_LEADERS"] = ""
            await #expect {
                try await Command.run(tradebus, ["leaders"], environment: environment)
            } throws: { error in
                "\(error)".contains("COPY_LEADERS")
            }
        }

        @Test(
            "--analyst copy --leader-fills: the recorded leader's BTC fills make a long and, after the flip, a short; the sizing's needs are named"
        )
        func copyLeader() async throws {
            let fixtures = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/hyperliquid")
            let fills = try LeaderFill.read(Data(contentsOf: fixtures.appendingPathComponent("leader-fills.json")))
                .filter { $0.coin == "BTC" }
            let first = fills[0].time - fills[0].time % 60_000 - 5 * 60_000
            let rows = (0..<35).map { minute in
                let open = first + Int64(minute) * 60_000
                let price = (fills.last { $0.time < open }?.price ?? fills[0].price).doubleValue
                return "\(open),\(price),\(price * 1.001),\(price * 0.999),\(price),5"
            }
            let candles = temporary("BTCUSDT-1m.csv")
            try ("open_time,open,high,low,close,volume\n" + rows.joined(separator: "\n") + "\n")
                .write(toFile: candles, atomically: true, encoding: .utf8)
            let fillsFile = fixtures.appendingPathComponent("leader-fills.json").path
            let trades = temporary("copy-trades.csv")
            _ = try await Command.run(
                tradebus,
                [
                    "backtest", "--data", candles, "--symbol", "BTCUSDT", "--analyst", "copy", "--leader-fills",
                    fillsFile, "--leader-equity", "100000", "--trades-out", trades,
                ],
                environment: defaults
            )
            let lines = try String(contentsOfFile: trades, encoding: .utf8).split(separator: "\n").dropFirst()
            #expect(lines.map { $0.split(separator: ",")[2] } == ["LONG", "SHORT"], "\(lines)")
            // With the leader's trigger orders, their stops: 97,500 under the long, 104,000 over the short (as
            // the fill check holds them against where the entries filled), not 7 % away.
            let ordersFile = fixtures.appendingPathComponent("leader-orders.json").path
            _ = try await Command.run(
                tradebus,
                [
                    "backtest", "--data", candles, "--symbol", "BTCUSDT", "--analyst", "copy", "--leader-fills",
                    fillsFile, "--leader-equity", "100000", "--leader-orders", ordersFile, "--trades-out", trades,
                ],
                environment: defaults
            )
            let stopped = try String(contentsOfFile: trades, encoding: .utf8).split(separator: "\n").dropFirst()
            let stops = stopped.compactMap { Double($0.split(separator: ",")[9]) }
            #expect(stops.count == 2 && abs(stops[0] - 97_500) < 50 && abs(stops[1] - 104_000) < 50, "\(stopped)")
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", candles, "--analyst", "copy", "--leader-fills", fillsFile],
                    environment: defaults
                )
            } throws: { error in
                "\(error)".contains("--leader-equity")
            }
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", candles, "--analyst", "copy"],
                    environment: defaults
                )
            } throws: { error in
                "\(error)".contains("--leader-fills")
            }
        }

        @Test("--json has every key of the contract; a second run gives the same figures (deterministic)")
        func json() async throws {
            let first = try await Command.run(tradebus, ["backtest", "--data", data, "--json"], environment: defaults)
            let second = try await Command.run(tradebus, ["backtest", "--data", data, "--json"], environment: defaults)
            let a = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
            let b = try #require(try JSONSerialization.jsonObject(with: Data(second.utf8)) as? [String: Any])
            for key in [
                "candles", "trades", "wins", "losses", "win_rate", "total_pnl", "return_pct", "max_drawdown_pct",
                "sharpe", "sortino", "profit_factor",
                "avg_reward_risk", "fees", "funding", "elapsed_seconds", "candles_per_second",
            ] {
                #expect(a[key] is NSNumber, "missing \(key)")
            }
            #expect((a["candles"] as? Int) == 1_999)
            for key in ["trades", "total_pnl", "max_drawdown_pct", "sharpe", "fees"] {
                #expect((a[key] as? Double) == (b[key] as? Double), "\(key) differs")
            }
            let trades = try #require(a["trades"] as? Int)
            let wins = try #require(a["wins"] as? Int)
            let losses = try #require(a["losses"] as? Int)
            #expect(trades == wins + losses && trades > 0)
        }

        @Test(
            "on every shared data file, in the backtest and the paper run, each trade's stop as placed after the fill lies within MIN..MAX_STOP_LOSS_PERCENT of its entry price"
        )
        func stopsJudgedAgainstTheFill() async throws {
            let files = ["XRPUSDT-PERP-5m", "XRPUSDT-PERP-1h", "ETHBTC-5m", "LTCBTC-5m", "UNITTESTBTC-1m"]
            var checked = 0
            for file in files {
                let path = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/\(file).csv")
                    .path
                let backtest = temporary("stops-bt") + ".csv"
                let run = temporary("stops-run") + ".csv"
                _ = try await Command.run(
                    tradebus,
                    ["backtest", "--data", path, "--json", "--trades-out", backtest],
                    environment: defaults
                )
                _ = try await Command.run(
                    tradebus,
                    ["run", "--data", path, "--database", temporary("stops") + ".sqlite", "--trades-out", run],
                    environment: defaults
                )
                for out in [backtest, run] {
                    let header =
                        try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").first.map {
                            $0.split(separator: ",").map(String.init)
                        } ?? []
                    let entry = try #require(header.firstIndex(of: "entry_price"))
                    let stop = try #require(header.firstIndex(of: "stop_loss"))
                    for row in try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst() {
                        let fields = row.split(separator: ",", omittingEmptySubsequences: false)
                        let price = try #require(Money(string: String(fields[entry])))
                        let level = try #require(Money(string: String(fields[stop])))
                        let distance = (price - level).magnitude / price
                        // The defaults: MIN_STOP_LOSS_PERCENT 0.005, MAX_STOP_LOSS_PERCENT 0.07.
                        #expect(
                            distance >= Money(string: "0.005")! && distance <= Money(string: "0.07")!,
                            "\(file) \(out): \(row)"
                        )
                        checked += 1
                    }
                }
            }
            #expect(checked >= 40, "the files should trade: \(checked) trades read")
        }

        @Test(
            "the workers' risk limits bound a backtest: MAX_LEVERAGE=1 makes every trade 1x; an invalid value stops it naming the key"
        )
        func riskLimits() async throws {
            let out = temporary("lev") + ".csv"
            _ = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--trades-out", out, "--json"],
                environment: defaults.merging(["MAX_LEVERAGE": "1"]) { $1 }
            )
            let rows = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst().map {
                $0.split(separator: ",", omittingEmptySubsequences: false)
            }
            #expect(!rows.isEmpty && rows.allSatisfy { $0[8] == "1" })
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data],
                    environment: defaults.merging(["MAX_LEVERAGE": "0"]) { $1 }
                )
            } throws: { error in
                "\(error)".contains("MAX_LEVERAGE")
            }
        }

        /// Decodes a 2-bit indexed PNG and prints its size and the rows where each line's colour appears.
        static let pngCheck = """
            import struct, sys, zlib
            data = open(sys.argv[1], "rb").read()
            assert data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
            i, idat = 8, b""
            while i < len(data):
                n = struct.unpack(">I", data[i:i + 4])[0]
                kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
                assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[i + 8 + n:i + 12 + n])[0], kind
                if kind == b"IHDR": width, height, depth, colour = struct.unpack(">IIBB", body[:10])
                if kind == b"IDAT": idat += body
                i += 12 + n
            assert depth == 2 and colour == 3
            raw, stride, rows = zlib.decompress(idat), (width + 3) // 4 + 1, {1: [], 2: []}
            for y in range(height):
                row = raw[y * stride + 1:(y + 1) * stride]
                found = {(row[x // 4] >> (6 - 2 * (x % 4))) & 3 for x in range(width)}
                for colour in (1, 2):
                    if colour in found: rows[colour].append(y)
            band = lambda ys: "%d-%d" % (min(ys) // 10 * 10, (max(ys) + 9) // 10 * 10)
            print("%dx%d equity-rows %s drawdown-rows %s" % (width, height, band(rows[1]), band(rows[2])))
            """

        @Test("--plot draws the equity curve and drawdown as SVG, and as a PNG beside it; --sweep ranks a grid")
        func plotAndSweep() async throws {
            let svg = temporary("plot") + ".svg"
            _ = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--plot", svg, "--json"],
                environment: defaults
            )
            let drawing = try String(contentsOfFile: svg, encoding: .utf8)
            #expect(drawing.hasPrefix("<svg") && drawing.components(separatedBy: "<polyline").count == 3)
            // The PNG beside it, read by Python's own zlib: every chunk's CRC, the zlib stream, the size, and
            // the equity line (palette index 1) above the drawdown line (index 2).
            let png = String(svg.dropLast(4)) + ".png"
            let checked = try await Command.run("python3", ["-c", Self.pngCheck, png])
            #expect(checked.contains("900x420 equity-rows 30-280 drawdown-rows 310-400"), "\(checked)")
            let output = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--json", "--sweep", "RISK_PER_TRADE_PERCENT=0.005:0.01:0.005"],
                environment: defaults
            )
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])
            #expect(rows.count == 2)
            let pnls = rows.compactMap { $0["total_pnl"] as? Double }
            #expect(pnls.count == 2 && pnls[0] >= pnls[1] && pnls[0] != pnls[1])
        }

        @Test(
            "run --live: candles from a local Binance-format exchange go through the one-process system until SIGINT, then a summary"
        )
        func live() async throws {
            let exchange = try await FakeExchange.start(.binance)
            // REFERENCE_VENUE's prices are fed too, for the deviation guard.
            let reference = try await FakeExchange.start(.bybit)
            let symbol = "LR\(UUID().uuidString.prefix(6).uppercased())USDT"
            let stream = CandleStreamID(symbol: symbol, interval: "1m")
            let database = temporary("live") + ".sqlite"
            let run = try SpawnedProcess(
                executable: tradebus,
                arguments: [
                    "run", "--live", "--venue", "binance", "--symbols", symbol, "--interval", "1m", "--database",
                    database,
                ],
                environment: defaults.merging([
                    "BINANCE_WS_URL": exchange.webSocketURL, "BINANCE_REST_URL": exchange.restURL,
                    "REFERENCE_VENUE": "bybit",
                    "BYBIT_WS_URL": reference.webSocketURL, "BYBIT_REST_URL": reference.restURL,
                ]) { $1 }
            )
            defer { run.signal(SIGKILL) }
            #expect(await eventually(timeout: .seconds(30)) { exchange.openConnections == 1 }, "\(run.output)")
            #expect(
                await eventually(timeout: .seconds(30)) { reference.openConnections == 1 },
                "the reference venue's feed: \(run.output)"
            )
            let now = Int64(Date().timeIntervalSince1970 * 1000) / 60_000 * 60_000
            let candles = (0..<5).map { index in
                Candle(openTime: now - Int64(8 - index) * 60_000, open: 10, high: 11, low: 9, close: 10.5, volume: 100)
            }
            exchange.setHistory(candles, for: stream)
            for candle in candles { exchange.push(candle, for: stream, closed: true) }
            #expect(await eventually(timeout: .seconds(30)) { run.output.contains("live: 5 candles") }, "\(run.output)")
            run.signal(SIGINT)
            #expect(try await run.waitForExit(timeout: .seconds(30)) == 0, "\(run.output)")
            #expect(run.output.contains("live run stopped: 5 candles"), "\(run.output)")
            #expect(FileManager.default.fileExists(atPath: database))
            await exchange.stop()
            await reference.stop()
        }

        @Test(
            "run --live with USE_PAPER_TRADING=false trades on the live venue (a local Binance server sees signed calls); a backtest refuses it, naming the key"
        )
        func liveVenue() async throws {
            let market = try await FakeExchange.start(.binance)
            let futures = try await FakeBinanceFutures.start()
            let symbol = "LV\(UUID().uuidString.prefix(6).uppercased())USDT"
            let run = try SpawnedProcess(
                executable: tradebus,
                arguments: [
                    "run", "--live", "--venue", "binance", "--symbols", symbol, "--database",
                    temporary("live") + ".sqlite",
                ],
                environment: defaults.merging([
                    "BINANCE_WS_URL": market.webSocketURL, "BINANCE_REST_URL": market.restURL,
                    "USE_PAPER_TRADING": "false", "LIVE_VENUE": "binance",
                    "BINANCE_FUTURES_URL": futures.baseURL, "BINANCE_API_KEY": futures.apiKey,
                    "BINANCE_API_SECRET": futures.secret,
                ]) { $1 }
            )
            defer { run.signal(SIGKILL) }
            #expect(
                await eventually(timeout: .seconds(30)) { run.output.contains("LIVE ORDERS on binance") },
                "\(run.output)"
            )
            #expect(
                await eventually(timeout: .seconds(30)) { futures.requests.contains("/fapi/v2/positionRisk") },
                "reconciled with the live venue: \(run.output)"
            )
            run.signal(SIGTERM)
            #expect(try await run.waitForExit(timeout: .seconds(30)) == 0, "\(run.output)")
            await #expect {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data],
                    environment: defaults.merging([
                        "USE_PAPER_TRADING": "false", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
                    ]) { $1 }
                )
            } throws: { error in
                "\(error)".contains("USE_PAPER_TRADING")
            }
            await market.stop()
            await futures.stop()
        }

        @Test(
            "report reads the run's record: trades, PnL by day summing to the total; recorded decisions replay the same trades"
        )
        func reportAndRecorded() async throws {
            let database = temporary("rec") + ".sqlite"
            let runTrades = temporary("rec") + ".csv"
            let replayed = temporary("replayed") + ".csv"
            _ = try await Command.run(
                tradebus,
                ["run", "--data", data, "--database", database, "--trades-out", runTrades],
                environment: defaults
            )
            let output = try await Command.run(
                tradebus,
                ["report", "--database", database, "--json"],
                environment: defaults
            )
            let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            let tradeRows = try String(contentsOfFile: runTrades, encoding: .utf8).split(separator: "\n").count - 1
            #expect((report["trades"] as? Int) == tradeRows)
            let days = try #require(report["pnl_by_day"] as? [[String: Any]])
            let total = try #require(report["total_pnl"] as? Double)
            #expect(abs(days.compactMap { $0["pnl"] as? Double }.reduce(0, +) - total) < 1e-6 && !days.isEmpty)
            #expect(report["open_positions"] is [Any])
            _ = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--analyst", "recorded", "--trades-out", replayed, "--json"],
                environment: defaults.merging(["DATABASE_URL": "sqlite://\(database)"]) { $1 }
            )
            #expect(
                try String(contentsOfFile: replayed, encoding: .utf8)
                    == String(contentsOfFile: runTrades, encoding: .utf8)
            )
        }
    }
}
