import Foundation
import PostgresStore
import SQLTradeStore
import SQLiteStore
import TestSupport
import Testing
import TradingCore

enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case postgres
    case sqlite

    var testDescription: String { rawValue }

    func withStore(_ body: (SQLTradeStore) async throws -> Void) async throws {
        let store: SQLTradeStore =
            switch self {
            case .postgres: .postgres(url: TestServices.databaseURL)
            case .sqlite: .sqlite(path: NSTemporaryDirectory() + "tradebus-\(UUID().uuidString).sqlite")
            }
        do {
            try await store.migrate()
            try await body(store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}

@Suite("TradeStore contract")
struct TradeStoreContractTests {
    // Microsecond precision, as both stores keep.
    let t0 = Date(timeIntervalSince1970: 1_763_700_000.123456)

    func decision(_ id: String) -> DecisionRecord {
        DecisionRecord(
            id: id,
            correlationID: "c-\(id)",
            symbol: "BTCUSDT",
            action: .long,
            confidence: 0.83,
            leverage: 4,
            entry: Money(string: "97123.45")!,
            stopLoss: Money(string: "95000.1")!,
            takeProfit: Money(string: "101000")!,
            reasoning: "trend up; tab\tand newline\n kept",
            provider: "rules",
            model: "rules-v1",
            promptVersion: "v1",
            candleTime: t0,
            createdAt: t0.addingTimeInterval(1),
            prompt: "prompt",
            reply: nil
        )
    }

    /// A century from now, to the second: later than anything an earlier run left in the shared
    /// database, so "the newest first" starts with this run's rows.
    static func newest() -> Date {
        Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3_155_760_000).rounded())
    }

    @Test("migrations are versioned and apply once", arguments: StoreKind.allCases)
    func migrationsApplyOnce(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.migrate()
            try await store.migrate()
            #expect(try await store.appliedMigrations() == Migrations.all.map(\.version))
        }
    }

    @Test("a decision round-trips, and the same id twice leaves one row", arguments: StoreKind.allCases)
    func decisionIdempotent(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("d")
            #expect(try await store.recordDecision(decision(id)))
            var changed = decision(id)
            changed.confidence = 0.1
            #expect(try await !store.recordDecision(changed))
            #expect(try await store.decision(id: id) == decision(id))
            let replay = try await store.decisions(symbol: "BTCUSDT", candleTimes: t0...t0)
            #expect(replay.filter { $0.id == id }.count == 1)
        }
    }

    @Test(
        "a decision's LLM cost and usage round-trip, and the spend since a time sums them",
        arguments: StoreKind.allCases
    )
    func decisionCost(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("d")
            // Later than the other tests' newest rows in the shared database.
            let since = Self.newest().addingTimeInterval(315_576_000)
            var asked = decision(id)
            asked.createdAt = since
            asked.llmCost = 0.0057
            asked.usage = LLMUsage(
                inputTokens: 900,
                outputTokens: 80,
                latencyMs: 412,
                attempts: 2,
                outputModes: ["openai m: json_schema"],
                grounding: ["openai m: ungrounded"],
                refusals: ["openai m: ungrounded: rsi14 28 cited, the state says 71.3 (5m)"],
                lookAhead: "m was trained on data up to 2024-06-01"
            )
            var rules = decision(id + "-rules")
            rules.createdAt = since.addingTimeInterval(1)
            #expect(try await store.recordDecision(asked))
            #expect(try await store.recordDecision(rules))
            #expect(try await store.decision(id: id) == asked)
            #expect(try await store.decision(id: id + "-rules")?.usage == nil)
            let spend = try await store.llmSpend(since: since)
            #expect(
                spend == LLMSpend(cost: 0.0057, decisions: 2, modelDecisions: 1, lookAheadDecisions: 1),
                "\(spend)"
            )
        }
    }

    @Test(
        "a decision's outcome is recorded once, and the newest decisions come first with theirs",
        arguments: StoreKind.allCases
    )
    func decisionOutcomes(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("d")
            var newest = decision(id)
            newest.createdAt = Self.newest()
            var older = decision(id + "-older")
            older.createdAt = newest.createdAt.addingTimeInterval(-60)
            #expect(try await store.recordDecision(older))
            #expect(try await store.recordDecision(newest))
            let outcome = DecisionOutcome(
                status: .ordered,
                checks: [
                    RiskCheckResult(check: "stop_distance", passed: true, value: "2.19 %", limit: "0.50 % to 7.00 %")
                ],
                time: Date(timeIntervalSince1970: 1_763_700_001)
            )
            #expect(try await store.recordDecisionOutcome(id: id, outcome))
            let second = DecisionOutcome(status: .refused, code: "halted", reason: "no", time: outcome.time)
            #expect(try await !store.recordDecisionOutcome(id: id, second))
            #expect(try await !store.recordDecisionOutcome(id: "no-such-decision", second))
            #expect(try await store.decision(id: id)?.outcome == outcome)
            #expect(try await store.decision(id: older.id)?.outcome == nil)
            // Other runs share the database: this run's two come first among its own, in order.
            let recent = try await store.recentDecisions(limit: 20).filter { $0.id.hasPrefix(id) }
            #expect(recent.map(\.id) == [id, older.id])
            #expect(recent.first?.outcome == outcome)
        }
    }

    @Test("an alert is kept once, the newest first", arguments: StoreKind.allCases)
    func alertRecords(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("alert")
            let time = Self.newest()
            let alert = AlertRecord(
                id: id,
                time: time,
                alert: AlertPayload(
                    severity: .critical,
                    kind: "breaker",
                    title: "Drawdown halt",
                    message: "drawdown 12.5 % ≥ 10 %",
                    symbol: "BTCUSDT",
                    fields: ["drawdown": .number(0.125)]
                )
            )
            var earlier = alert
            earlier.id = id + "-earlier"
            earlier.time = time.addingTimeInterval(-1)
            earlier.alert.symbol = nil
            earlier.alert.fields = nil
            let first = try await store.recordAlert(earlier)
            let second = try await store.recordAlert(alert)
            let again = try await store.recordAlert(alert)
            #expect(first && second && !again)
            let recent = try await store.recentAlerts(limit: 20).filter { $0.id.hasPrefix(id) }
            #expect(recent == [alert, earlier])
        }
    }

    @Test(
        "a backtest's result and a divergence report are each kept once, the newest first",
        arguments: StoreKind.allCases
    )
    func backtestRecords(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let report = PerformanceReport(
                trades: [],
                equity: [10_000, 10_050, 9_990, 10_120],
                initialCapital: 10_000,
                candles: 4,
                periodsPerYear: 105_120
            )
            let time = Self.newest()
            let record = BacktestRecord(
                id: TestServices.uniqueName("backtest"),
                time: time,
                symbol: "XRPUSDT",
                interval: "5m",
                source: "/data/XRPUSDT-PERP-5m.csv",
                report: report,
                equity: (0..<1_000).map { 10_000 + Double($0) }
            )
            #expect(record.equity.count == 500 && record.equity.first == 10_000 && record.equity.last == 10_999)
            let first = try await store.recordBacktest(record)
            let again = try await store.recordBacktest(record)
            #expect(first && !again)
            let newest = try await store.backtests(limit: 1)
            #expect(newest == [record])
            let divergence = DivergenceRecord(
                id: TestServices.uniqueName("diff"),
                time: time,
                symbol: "XRPUSDT",
                interval: "5m",
                runTrades: 50,
                backtestTrades: 50,
                identical: 48,
                differing: 2,
                pnlDifference: Money(string: "-3.125")!,
                byCause: ["fill_price": Money(string: "-3.5")!, "fee": Money(string: "0.375")!],
                report: "two trades differ"
            )
            let kept = try await store.recordDivergence(divergence)
            let keptAgain = try await store.recordDivergence(divergence)
            #expect(kept && !keptAgain)
            #expect(try await store.divergences(limit: 1) == [divergence])
        }
    }

    @Test("orders: intent first, then status updates; one row per client id", arguments: StoreKind.allCases)
    func orders(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let decisionID = TestServices.uniqueName("d")
            let order = OrderRecord(
                clientOrderID: "tb-\(decisionID)-e",
                decisionID: decisionID,
                venue: "paper",
                symbol: "ETHUSDT",
                side: .buy,
                type: .market,
                purpose: .entry,
                quantity: Money(string: "0.125")!,
                reduceOnly: false,
                createdAt: t0
            )
            let stop = OrderRecord(
                clientOrderID: "tb-\(decisionID)-sl",
                decisionID: decisionID,
                venue: "paper",
                symbol: "ETHUSDT",
                side: .sell,
                type: .stopMarket,
                purpose: .stopLoss,
                quantity: Money(string: "0.125")!,
                stopPrice: Money(string: "3100.5")!,
                reduceOnly: true,
                createdAt: t0.addingTimeInterval(1)
            )
            #expect(try await store.recordOrder(order))
            #expect(try await !store.recordOrder(order))
            #expect(try await store.recordOrder(stop))
            try await store.updateOrder(
                clientOrderID: order.clientOrderID,
                status: .filled,
                venueOrderID: "v-1",
                at: t0.addingTimeInterval(2)
            )
            let stored = try #require(try await store.order(clientOrderID: order.clientOrderID))
            #expect(stored.status == .filled)
            #expect(stored.venueOrderID == "v-1")
            #expect(stored.updatedAt == t0.addingTimeInterval(2))
            #expect(
                try await store.orders(decisionID: decisionID).map(\.clientOrderID) == [
                    order.clientOrderID, stop.clientOrderID,
                ]
            )
            let open = try await store.orders(statuses: [.intent, .sent])
            #expect(open.contains(stop) && !open.contains { $0.clientOrderID == order.clientOrderID })
        }
    }

    @Test("fills are keyed by trade id, singly and in batches", arguments: StoreKind.allCases)
    func fills(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let clientID = TestServices.uniqueName("o")
            let fills = (0..<50).map { n in
                FillRecord(
                    venue: "paper",
                    tradeID: "\(clientID)-\(n)",
                    clientOrderID: clientID,
                    symbol: "SOLUSDT",
                    side: .buy,
                    price: Money(string: "150.\(n)")!,
                    quantity: Money(n + 1),
                    fee: Money(string: "0.0004")!,
                    feeAsset: "USDT",
                    time: t0.addingTimeInterval(Double(n))
                )
            }
            #expect(try await store.recordFill(fills[0]))
            #expect(try await !store.recordFill(fills[0]))
            #expect(try await store.recordFills(fills) == 49, "the one already stored is skipped")
            #expect(try await store.recordFills(fills + fills) == 0)
            let stored = try await store.fills(clientOrderID: clientID)
            #expect(stored == fills)
            let venue = TestServices.uniqueName("v")
            let elsewhere = fills.map { fill in
                var moved = fill
                moved.venue = venue
                return moved
            }
            _ = try await store.recordFills(elsewhere)
            #expect(
                try await store.latestFills(venue: venue, symbol: "SOLUSDT", limit: 3)
                    == Array(elsewhere.suffix(3).reversed())
            )
            #expect(try await store.latestFills(venue: venue, symbol: "BTCUSDT", limit: 3).isEmpty)
        }
    }

    @Test("positions upsert; trades, breaker events and equity round-trip", arguments: StoreKind.allCases)
    func positionsTradesEquity(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("p")
            var position = PositionRecord(
                id: id,
                venue: "paper",
                symbol: "XRPUSDT",
                side: .short,
                quantity: 1000,
                entryPrice: Money(string: "0.5123")!,
                leverage: 3,
                stopLoss: Money(string: "0.53")!,
                takeProfit: nil,
                decisionID: "d-\(id)",
                openedAt: t0
            )
            try await store.savePosition(position)
            position.stopLoss = Money(string: "0.52")!
            position.updatedAt = t0.addingTimeInterval(60)
            try await store.savePosition(position)
            #expect(try await store.position(id: id) == position)
            #expect(try await store.openPositions().contains(position))
            position.status = .closed
            try await store.savePosition(position)
            #expect(try await !store.openPositions().contains { $0.id == id })

            let trade = TradeRecord(
                id: "tr-\(id)",
                positionID: id,
                symbol: "XRPUSDT",
                side: .short,
                entryTime: t0,
                entryPrice: Money(string: "0.5123")!,
                exitTime: t0.addingTimeInterval(3600),
                exitPrice: Money(string: "0.5001")!,
                quantity: 1000,
                leverage: 3,
                stopLoss: Money(string: "0.52")!,
                takeProfit: nil,
                pnl: Money(string: "11.78")!,
                fees: Money(string: "0.42")!,
                funding: Money(string: "-0.0123")!,
                exitReason: "take_profit"
            )
            #expect(try await store.recordTrade(trade))
            #expect(try await !store.recordTrade(trade))
            #expect(try await store.trades(since: t0).filter { $0.id == trade.id } == [trade])
            #expect(try await store.trade(id: trade.id) == trade)
            #expect(try await store.trade(id: "tr-none-\(id)") == nil)

            let event = CircuitBreakerEvent(
                id: "cb-\(id)",
                kind: "daily_loss",
                reason: "lost 5.2% today",
                equity: 9480,
                time: t0
            )
            #expect(try await store.recordCircuitBreakerEvent(event))
            #expect(try await !store.recordCircuitBreakerEvent(event))
            #expect(try await store.circuitBreakerEvents(since: t0).contains(event))

            let base = Date(timeIntervalSince1970: Double(Int.random(in: 1_000_000_000...1_500_000_000)))
            let snapshots = (0..<10).map {
                EquitySnapshot(
                    time: base.addingTimeInterval(Double($0)),
                    equity: Money(10_000 + $0),
                    balance: 10_000,
                    unrealizedPnL: Money($0),
                    openPositions: 1
                )
            }
            #expect(try await store.recordEquitySnapshot(snapshots[0]))
            #expect(try await store.recordEquitySnapshots(snapshots) == 9)
            let read = try await store.equitySnapshots(since: base)
            #expect(Array(read.prefix(10)) == snapshots)
        }
    }

    @Test(
        "a close writes the trade, the closed position, the order's status and the closing fill together, once",
        arguments: StoreKind.allCases
    )
    func closeIsAtomic(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("c")
            var position = PositionRecord(
                id: id,
                venue: "paper",
                symbol: "XRPUSDT",
                side: .long,
                quantity: 10,
                entryPrice: 1,
                leverage: 2,
                stopLoss: Money(string: "0.95")!,
                takeProfit: nil,
                decisionID: "d-\(id)",
                openedAt: t0
            )
            try await store.savePosition(position)
            let exit = OrderRecord(
                clientOrderID: "x-\(id)",
                decisionID: "d-\(id)",
                venue: "paper",
                symbol: "XRPUSDT",
                side: .sell,
                type: .market,
                purpose: .exit,
                quantity: 10,
                reduceOnly: true,
                status: .accepted,
                createdAt: t0
            )
            try await store.recordOrder(exit)
            position.status = .closed
            position.updatedAt = t0.addingTimeInterval(60)
            let fill = FillRecord(
                venue: "paper",
                tradeID: "f-\(id)",
                clientOrderID: exit.clientOrderID,
                symbol: "XRPUSDT",
                side: .sell,
                price: Money(string: "1.1")!,
                quantity: 10,
                fee: Money(string: "0.01")!,
                feeAsset: "USDT",
                time: position.updatedAt
            )
            let trade = TradeRecord(
                id: "trade:\(id)",
                positionID: id,
                symbol: "XRPUSDT",
                side: .long,
                entryTime: t0,
                entryPrice: 1,
                exitTime: position.updatedAt,
                exitPrice: Money(string: "1.1")!,
                quantity: 10,
                leverage: 2,
                stopLoss: Money(string: "0.95")!,
                takeProfit: nil,
                pnl: Money(string: "0.99")!,
                fees: Money(string: "0.01")!,
                funding: 0,
                exitReason: "exit"
            )
            let close = CloseRecord(
                trade: trade,
                position: position,
                orders: [.init(clientOrderID: exit.clientOrderID, status: .filled)],
                fills: [fill]
            )
            #expect(try await store.recordClose(close))
            #expect(try await store.trades(since: nil).filter { $0.id == trade.id } == [trade])
            #expect(try await !store.openPositions().contains { $0.id == id })
            #expect(try await store.order(clientOrderID: exit.clientOrderID)?.status == .filled)
            #expect(try await store.fills(clientOrderID: exit.clientOrderID) == [fill])
            #expect(try await !store.recordClose(close), "the same close again is no second trade")
            #expect(try await store.trades(since: nil).filter { $0.id == trade.id }.count == 1)
        }
    }

    @Test("dead letters keep what could not be processed, with why, once", arguments: StoreKind.allCases)
    func deadLetterRecords(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let letter = DeadLetterRecord(
                id: TestServices.uniqueName("dl"),
                source: "executor.venue_events",
                body: "{\"fill\":{}}",
                reason: "no such order",
                time: t0
            )
            let first = try await store.recordDeadLetter(letter)
            let second = try await store.recordDeadLetter(letter)
            let kept = try await store.deadLetters(since: t0).filter { $0.id == letter.id }
            #expect(first && !second && kept == [letter])
        }
    }

    @Test(
        "an account's controls are saved over the last and read back whole; an operator command is recorded once",
        arguments: StoreKind.allCases
    )
    func accountControls(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let account = TestServices.uniqueName("acct")
            #expect(try await store.accountControl(account: account) == nil)
            var control = AccountControl()
            var breakers = control.breakers(limits: TradingHalts.Limits(), equity: 10_000, now: t0)
            _ = breakers.observe(equity: 8_000, now: t0)
            control.breakers = breakers
            control.operatorHalt = AccountControl.Hold(reason: "operator halt", by: "alice", since: t0)
            try await store.saveAccountControl(account: account, AccountControl(), at: t0)
            try await store.saveAccountControl(account: account, control, at: t0.addingTimeInterval(1))
            let restored = try await store.accountControl(account: account)
            #expect(restored == control && restored?.breakers?.halt?.kind == .maxDrawdown && restored?.mode == .halted)

            let command = ControlCommandRecord(
                id: TestServices.uniqueName("cmd"),
                account: account,
                command: "reset-breaker",
                argument: "max_drawdown",
                by: "alice",
                ok: true,
                result: "reset max_drawdown from equity 8000",
                time: t0
            )
            let first = try await store.recordControlCommand(command)
            let second = try await store.recordControlCommand(command)
            let kept = try await store.controlCommands(since: t0).filter { $0.id == command.id }
            #expect(first && !second && kept == [command])
        }
    }

    @Test(
        "a lease has one holder at a time: renewed by its holder, refused to another until it runs out or is given up",
        arguments: StoreKind.allCases
    )
    func leases(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let name = TestServices.uniqueName("lease")
            #expect(try await store.acquireLease(name, holder: "a", now: t0, until: t0 + 15))
            #expect(try await !store.acquireLease(name, holder: "b", now: t0 + 5, until: t0 + 20), "held by a")
            #expect(
                try await store.acquireLease(name, holder: "a", now: t0 + 10, until: t0 + 25),
                "renewed by its holder"
            )
            #expect(
                try await !store.acquireLease(name, holder: "b", now: t0 + 20, until: t0 + 35),
                "renewed: still a's"
            )
            #expect(
                try await store.acquireLease(name, holder: "b", now: t0 + 26, until: t0 + 41),
                "run out: b takes it"
            )
            #expect(try await !store.acquireLease(name, holder: "a", now: t0 + 27, until: t0 + 42), "a lost it")
            try await store.releaseLease(name, holder: "a")  // not a's: nothing happens
            #expect(try await !store.acquireLease(name, holder: "c", now: t0 + 28, until: t0 + 43))
            try await store.releaseLease(name, holder: "b")
            #expect(
                try await store.acquireLease(name, holder: "c", now: t0 + 29, until: t0 + 44),
                "given up: c takes it at once"
            )
        }
    }

    @Test("a message id is processed once per consumer", arguments: StoreKind.allCases)
    func processedMessages(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let id = TestServices.uniqueName("m")
            let before = try await store.isProcessed(messageID: id, consumer: "executor")
            let first = try await store.markProcessed(messageID: id, consumer: "executor", at: t0)
            let second = try await store.markProcessed(messageID: id, consumer: "executor", at: t0)
            let otherConsumer = try await store.markProcessed(messageID: id, consumer: "notifier", at: t0)
            let after = try await store.isProcessed(messageID: id, consumer: "executor")
            #expect(!before && first && !second && otherConsumer && after)
        }
    }
}
