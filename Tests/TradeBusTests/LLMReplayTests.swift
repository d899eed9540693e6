import Foundation
import SQLTradeStore
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

extension MarketDataSystemTests {
    /// `tradebus run --data` and `tradebus backtest` with an LLM analyst (a local OpenAI-compatible
    /// server): the look-ahead guard, and PnL net of what the models cost.
    @Suite("LLM replays: look-ahead guard and net PnL", .serialized)
    struct LLMReplayTests {
        let tradebus = TestServices.repositoryRoot.appendingPathComponent(".build/debug/tradebus").path
        /// XRPUSDT-PERP-5m.csv: candles from November 2021.
        let data = TestServices.repositoryRoot.appendingPathComponent("Tests/Fixtures/market-data/XRPUSDT-PERP-5m.csv")
            .path

        func temporary(_ name: String) -> String {
            FileManager.default.temporaryDirectory.appendingPathComponent("\(TestServices.uniqueName(name))").path
        }

        func environment(_ server: FakeLLM, model: String = "gpt-4o-mini") -> [String: String] {
            [
                "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "INITIAL_CAPITAL": "",
                "ANALYST_PROVIDERS": "openai", "OPENAI_BASE_URL": server.openAIBaseURL, "OPENAI_MODEL": model,
                "OPENAI_API_KEY": "", "LLM_PRICE_PER_MTOK": "5/15", "LLM_TRAINING_CUTOFFS": "",
            ]
        }

        @Test(
            "a replay asking a model about candles before its training cutoff is refused, naming it; --allow-lookahead runs and says so"
        )
        func lookAhead() async throws {
            let server = try await FakeLLM.start()
            let refused = await #expect(throws: CommandFailed.self) {
                try await Command.run(
                    tradebus,
                    ["run", "--data", data, "--database", temporary("la") + ".sqlite"],
                    environment: environment(server)
                )
            }
            #expect(
                refused?.output.contains("gpt-4o-mini was trained on data up to 2023-10-01") == true
                    && refused?.output.contains("--allow-lookahead") == true,
                "\(String(describing: refused))"
            )
            #expect(server.received.isEmpty, "nothing was asked")
            // A model missing from the table counts as knowing everything up to today.
            let unknown = await #expect(throws: CommandFailed.self) {
                try await Command.run(
                    tradebus,
                    ["run", "--data", data, "--database", temporary("la") + ".sqlite"],
                    environment: environment(server, model: "my-local-model")
                )
            }
            #expect(unknown?.output.contains("my-local-model is not in the cutoff table") == true)

            let database = temporary("la-allowed") + ".sqlite"
            let run = try await Command.run(
                tradebus,
                ["run", "--data", data, "--database", database, "--allow-lookahead"],
                environment: environment(server)
            )
            #expect(run.contains("LOOK-AHEAD"), "\(run)")
            let report = try await Command.run(
                tradebus,
                ["report", "--database", database, "--json"],
                environment: environment(server)
            )
            let object = try #require(try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])
            #expect((object["lookahead_decisions"] as? Int ?? 0) > 0, "\(object)")
            // A cutoff before the data: nothing to refuse.
            var later = environment(server)
            later["LLM_TRAINING_CUTOFFS"] = "gpt-4o-mini=2021-01-01"
            let clean = try await Command.run(
                tradebus,
                ["run", "--data", data, "--database", temporary("la-clean") + ".sqlite"],
                environment: later
            )
            #expect(!clean.contains("LOOK-AHEAD"))
            await server.stop()
        }

        @Test(
            "each call's cost is kept with its decision; report, run and backtest JSON show gross, LLM cost and net PnL"
        )
        func netPnL() async throws {
            let server = try await FakeLLM.start()
            var environment = environment(server)
            environment["LLM_TRAINING_CUTOFFS"] = "gpt-4o-mini=2021-01-01"
            let database = temporary("cost") + ".sqlite"
            let summary = try await Command.run(
                tradebus,
                ["run", "--data", data, "--database", database],
                environment: environment
            )
            #expect(summary.contains("LLM cost"), "\(summary)")
            let calls = server.received.count
            #expect(calls > 0)
            let store = SQLTradeStore.sqlite(path: database)
            let spend = try await store.llmSpend(since: nil)
            let decisions = try await store.recentDecisions(limit: 1)
            await store.close()
            // The fake reports 900 tokens in and 80 out per call: 0.0057 USD at 5/15 per million.
            #expect(abs(spend.cost - Double(calls) * 0.0057) < 1e-9, "\(spend) over \(calls) calls")
            #expect(
                spend.modelDecisions > 0 && spend.modelDecisions <= spend.decisions,
                "a cached decision costs nothing"
            )
            let usage = try #require(decisions.first?.usage)
            #expect(usage.inputTokens == 900 && usage.outputModes == ["openai gpt-4o-mini: json_schema"])
            #expect(decisions.first?.llmCost == 0.0057)

            let report = try await Command.run(
                tradebus,
                ["report", "--database", database, "--json"],
                environment: environment
            )
            let object = try #require(try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])
            let total = try #require(object["total_pnl"] as? Double)
            let cost = try #require(object["llm_cost"] as? Double)
            #expect(abs(cost - spend.cost) < 1e-9)
            #expect(abs((object["net_pnl"] as? Double ?? .nan) - (total - cost)) < 1e-9)
            #expect(object["gross_pnl"] is Double && object["llm_cost_per_decision"] is Double)

            let backtest = try await Command.run(
                tradebus,
                ["backtest", "--data", data, "--analyst", "recorded", "--json"],
                environment: environment.merging(["DATABASE_URL": "sqlite://\(database)"]) { $1 }
            )
            let replayed = try #require(
                try JSONSerialization.jsonObject(with: Data(backtest.utf8)) as? [String: Any]
            )
            #expect(abs((replayed["llm_cost"] as? Double ?? 0) - spend.cost) < 1e-9, "\(replayed)")
            #expect(
                abs(
                    (replayed["net_pnl"] as? Double ?? .nan) - ((replayed["total_pnl"] as? Double ?? 0) - spend.cost)
                ) < 1e-9
            )
            // Recorded LLM decisions on candles before the model's cutoff: refused, as a replay is.
            let refused = await #expect(throws: CommandFailed.self) {
                try await Command.run(
                    tradebus,
                    ["backtest", "--data", data, "--analyst", "recorded", "--json"],
                    environment: environment.merging([
                        "DATABASE_URL": "sqlite://\(database)", "LLM_TRAINING_CUTOFFS": "",
                    ]) { $1 }
                )
            }
            #expect(refused?.output.contains("gpt-4o-mini was trained on data up to 2023-10-01") == true)
            await server.stop()
        }
    }
}

extension MarketDataSystemTests.LLMReplayTests {
    @Test(
        "shadow: over a replay the candidate's decisions are recorded apart and traded on their own paper account, never by the live executor; compare --shadow prints the table"
    )
    func shadow() async throws {
        let server = try await FakeLLM.start()
        server.setResponder(FakeLLM.longAtClose)
        var environment = environment(server)
        environment["ANALYST_PROVIDERS"] = "rules"
        environment["ANALYST_SHADOW"] = "openai:gpt-shadow@analyst-v2"
        environment["LLM_TRAINING_CUTOFFS"] = "gpt-shadow=2021-01-01"
        let database = temporary("shadow") + ".sqlite"
        let shadowDatabase = String(database.dropLast(".sqlite".count)) + "-shadow.sqlite"
        let summary = try await Command.run(
            tradebus,
            ["run", "--data", data, "--database", database],
            environment: environment
        )
        #expect(summary.contains("tradebus compare --shadow"), "\(summary)")
        let live = SQLTradeStore.sqlite(path: database)
        let shadow = SQLTradeStore.sqlite(path: shadowDatabase)
        let liveDecisions = try await live.recentDecisions(limit: 100_000)
        let shadowDecisions = try await shadow.recentDecisions(limit: 100_000)
        let liveTrades = try await live.trades(since: nil)
        let shadowTrades = try await shadow.trades(since: nil)
        var liveOrigins: [String] = []
        for trade in liveTrades { liveOrigins.append(try await live.position(id: trade.positionID)?.decisionID ?? "?") }
        var shadowOrigins: [String] = []
        for trade in shadowTrades {
            shadowOrigins.append(try await shadow.position(id: trade.positionID)?.decisionID ?? "?")
        }
        await live.close()
        await shadow.close()
        // The live record holds the live panel's decisions only, and its trades come from them.
        #expect(!liveDecisions.isEmpty && liveDecisions.allSatisfy { $0.provider == "rules" })
        let liveIDs = Set(liveDecisions.map(\.id))
        #expect(liveOrigins.allSatisfy { liveIDs.contains($0) }, "a live trade from elsewhere: \(liveOrigins)")
        // The candidate decided the same signals, and its own paper account traded them.
        #expect(shadowDecisions.count == liveDecisions.count)
        #expect(shadowDecisions.allSatisfy { $0.provider == "openai" && $0.model == "gpt-shadow" })
        #expect(Set(shadowDecisions.map(\.id)) == liveIDs)
        #expect(!shadowTrades.isEmpty, "the candidate always goes LONG: its paper account trades")
        let shadowIDs = Set(shadowDecisions.map(\.id))
        #expect(shadowOrigins.allSatisfy { shadowIDs.contains($0) }, "\(shadowOrigins)")

        let table = try await Command.run(
            tradebus,
            ["compare", "--shadow", "--database", database, "--shadow-database", shadowDatabase],
            environment: environment
        )
        for label in [
            "agreement", "paper PnL", "max drawdown", "LLM cost", "latency", "openai:gpt-shadow (analyst-v2)",
        ] {
            #expect(table.contains(label), "\(label) missing: \(table)")
        }
        let json = try await Command.run(
            tradebus,
            ["compare", "--shadow", "--database", database, "--shadow-database", shadowDatabase, "--json"],
            environment: environment
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((object["common"] as? Int) == liveDecisions.count)
        #expect(((object["shadow"] as? [String: Any])?["trades"] as? Int) == shadowTrades.count)

        // A canary of 100 %: the candidate decides the live signals, and the live executor trades them.
        environment["ANALYST_CANARY_PERCENT"] = "100"
        let canary = temporary("canary") + ".sqlite"
        _ = try await Command.run(tradebus, ["run", "--data", data, "--database", canary], environment: environment)
        let canaryStore = SQLTradeStore.sqlite(path: canary)
        let routed = try await canaryStore.recentDecisions(limit: 100_000)
        let routedTrades = try await canaryStore.trades(since: nil)
        await canaryStore.close()
        #expect(!routed.isEmpty && routed.allSatisfy { $0.provider == "openai" && $0.reasoning.hasPrefix("canary") })
        #expect(!routedTrades.isEmpty)
        await server.stop()
    }
}
