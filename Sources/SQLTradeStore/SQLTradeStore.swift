import Foundation
import TradingCore

/// ``TradeStore`` over any ``SQLDatabase``: the statements and row mappings shared by Postgres and
/// SQLite. Every statement is parameterised; idempotent writes use `ON CONFLICT DO NOTHING RETURNING`.
public final class SQLTradeStore: TradeStore {
    public let database: any SQLDatabase

    /// A `SQLTradeStore` with the fields given.
    public init(database: any SQLDatabase) {
        self.database = database
    }

    public func close() async { await database.close() }

    // MARK: Migrations

    public func migrate() async throws {
        let dialect = database.dialect
        try await database.withSession { session in
            try session.execute(dialect.beginMigration)
            defer { try? session.execute(dialect.endMigration) }
            try session.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            let applied = Set(
                try session.query("SELECT version FROM schema_migrations", []).compactMap { $0[0].flatMap(Int.init) }
            )
            for migration in Migrations.all where !applied.contains(migration.version) {
                do {
                    try session.transaction {
                        // Checked again inside the transaction: another process may have applied it.
                        let done = try session.query(
                            "SELECT 1 FROM schema_migrations WHERE version = $1",
                            [.integer(Int64(migration.version))]
                        )
                        guard done.isEmpty else { return }
                        for statement in Migrations.statements(migration, dialect: dialect) {
                            try session.execute(statement)
                        }
                        try session.query(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            [.integer(Int64(migration.version)), .text(migration.name), .text(SQLText.time(Date()))]
                        )
                    }
                } catch {
                    throw StoreError(.migration, "migration \(migration.version) (\(migration.name)) failed: \(error)")
                }
            }
        }
    }

    /// Applied migration versions, ascending.
    public func appliedMigrations() async throws -> [Int] {
        try await database.withSession { session in
            try session.query("SELECT version FROM schema_migrations ORDER BY version", []).compactMap {
                $0[0].flatMap(Int.init)
            }
        }
    }

    // MARK: Helpers

    /// Before any record: what `since: nil` reads from (`Date.distantPast`, year 1, is outside
    /// Postgres's timestamp range as we write it).
    static let beginning = Date(timeIntervalSince1970: -30_610_224_000)  // 1000-01-01

    private func insert(
        _ table: String,
        _ columns: [String],
        _ values: [SQLValue],
        conflict: [String]
    ) async throws -> Bool {
        let sql = Self.insertSQL(table, columns, conflict: conflict)
        return try await database.withSession { session in
            try !session.query(sql, values).isEmpty
        }
    }

    static func insertSQL(_ table: String, _ columns: [String], conflict: [String]) -> String {
        let placeholders = (1...columns.count).map { "$\($0)" }.joined(separator: ", ")
        return "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(placeholders)) "
            + "ON CONFLICT (\(conflict.joined(separator: ", "))) DO NOTHING RETURNING 1"
    }

    func select<T: Sendable>(
        _ sql: String,
        _ parameters: [SQLValue],
        _ map: @escaping @Sendable (RowReader) throws -> T
    ) async throws -> [T] {
        try await database.withSession { session in
            try session.query(sql, parameters).map { try map(RowReader($0)) }
        }
    }

    // MARK: Decisions

    static let decisionColumns = [
        "id", "correlation_id", "symbol", "action", "confidence", "leverage", "entry", "stop_loss", "take_profit",
        "reasoning", "provider", "model", "prompt_version", "candle_time", "created_at", "prompt", "reply",
        "outcome", "llm_cost", "llm_usage",
    ]

    @discardableResult public func recordDecision(_ d: DecisionRecord) async throws -> Bool {
        try await insert(
            "decisions",
            Self.decisionColumns,
            [
                .text(d.id), .text(d.correlationID), .text(d.symbol), .text(d.action.rawValue),
                .text(String(d.confidence)),
                .integer(Int64(d.leverage)), .decimal(d.entry), .decimal(d.stopLoss), .decimal(d.takeProfit),
                .text(d.reasoning),
                .text(d.provider), .text(d.model), .text(d.promptVersion), .time(d.candleTime), .time(d.createdAt),
                .optional(d.prompt), .optional(d.reply), try SQLValue.json(d.outcome), .text(String(d.llmCost)),
                try SQLValue.json(d.usage),
            ],
            conflict: ["id"]
        )
    }

    @discardableResult public func recordDecisionOutcome(id: String, _ outcome: DecisionOutcome) async throws -> Bool {
        let value = try SQLValue.json(outcome)
        return try await database.withSession { session in
            try !session.query(
                "UPDATE decisions SET outcome = $2 WHERE id = $1 AND outcome IS NULL RETURNING 1",
                [.text(id), value]
            ).isEmpty
        }
    }

    public func recentDecisions(limit: Int) async throws -> [DecisionRecord] {
        try await select(
            "SELECT \(Self.decisionColumns.joined(separator: ", ")) FROM decisions ORDER BY created_at DESC, id DESC LIMIT $1",
            [.integer(Int64(limit))],
            Self.decision
        )
    }

    public func decision(id: String) async throws -> DecisionRecord? {
        try await select(
            "SELECT \(Self.decisionColumns.joined(separator: ", ")) FROM decisions WHERE id = $1",
            [.text(id)],
            Self.decision
        ).first
    }

    public func decisions(symbol: String, candleTimes range: ClosedRange<Date>) async throws -> [DecisionRecord] {
        try await select(
            "SELECT \(Self.decisionColumns.joined(separator: ", ")) FROM decisions WHERE symbol = $1 AND candle_time >= $2 AND candle_time <= $3 ORDER BY candle_time, created_at",
            [.text(symbol), .time(range.lowerBound), .time(range.upperBound)],
            Self.decision
        )
    }

    public func llmSpend(since: Date?) async throws -> LLMSpend {
        let rows = try await select(
            """
            SELECT COALESCE(SUM(llm_cost), 0), COUNT(*),
                COALESCE(SUM(CASE WHEN llm_cost > 0 OR llm_usage IS NOT NULL THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN llm_usage LIKE '%"lookahead"%' THEN 1 ELSE 0 END), 0)
            FROM decisions WHERE created_at >= $1
            """,
            [.time(since ?? Self.beginning)]
        ) { row in
            LLMSpend(
                cost: try row.double(0),
                decisions: try row.int(1),
                modelDecisions: try row.int(2),
                lookAheadDecisions: try row.int(3)
            )
        }
        return rows.first ?? LLMSpend(cost: 0, decisions: 0, modelDecisions: 0)
    }

    @Sendable static func decision(_ row: RowReader) throws -> DecisionRecord {
        var record = DecisionRecord(
            id: try row.text(0),
            correlationID: try row.text(1),
            symbol: try row.text(2),
            action: try row.enumeration(3),
            confidence: try row.double(4),
            leverage: try row.int(5),
            entry: try row.decimalOrNil(6),
            stopLoss: try row.decimalOrNil(7),
            takeProfit: try row.decimalOrNil(8),
            reasoning: try row.text(9),
            provider: try row.text(10),
            model: try row.text(11),
            promptVersion: try row.text(12),
            candleTime: try row.time(13),
            createdAt: try row.time(14),
            prompt: row.textOrNil(15),
            reply: row.textOrNil(16),
            outcome: try row.json(17, DecisionOutcome.self, table: "decisions")
        )
        record.llmCost = try row.double(18)
        record.usage = try row.json(19, LLMUsage.self, table: "decisions")
        return record
    }

    // MARK: Orders

    static let orderColumns = [
        "client_order_id", "decision_id", "venue", "symbol", "side", "type", "purpose", "quantity", "price",
        "stop_price", "reduce_only", "status", "venue_order_id", "created_at", "updated_at",
    ]

    @discardableResult public func recordOrder(_ o: OrderRecord) async throws -> Bool {
        try await insert(
            "orders",
            Self.orderColumns,
            [
                .text(o.clientOrderID), .text(o.decisionID), .text(o.venue), .text(o.symbol), .text(o.side.rawValue),
                .text(o.type.rawValue), .text(o.purpose.rawValue), .decimal(o.quantity), .decimal(o.price),
                .decimal(o.stopPrice),
                .bool(o.reduceOnly), .text(o.status.rawValue), .optional(o.venueOrderID), .time(o.createdAt),
                .time(o.updatedAt),
            ],
            conflict: ["client_order_id"]
        )
    }

    public func updateOrder(
        clientOrderID: String,
        status: OrderStatus,
        venueOrderID: String?,
        at time: Date
    ) async throws {
        _ = try await database.withSession { session in
            try session.query(
                "UPDATE orders SET status = $1, venue_order_id = COALESCE($2, venue_order_id), updated_at = $3 WHERE client_order_id = $4",
                [.text(status.rawValue), .optional(venueOrderID), .time(time), .text(clientOrderID)]
            )
        }
    }

    public func order(clientOrderID: String) async throws -> OrderRecord? {
        try await select(
            "SELECT \(Self.orderColumns.joined(separator: ", ")) FROM orders WHERE client_order_id = $1",
            [.text(clientOrderID)],
            Self.order
        ).first
    }

    public func orders(decisionID: String) async throws -> [OrderRecord] {
        try await select(
            "SELECT \(Self.orderColumns.joined(separator: ", ")) FROM orders WHERE decision_id = $1 ORDER BY created_at, client_order_id",
            [.text(decisionID)],
            Self.order
        )
    }

    public func orders(statuses: Set<OrderStatus>) async throws -> [OrderRecord] {
        if statuses.isEmpty { return [] }
        let list = statuses.map(\.rawValue).sorted()
        let placeholders = (1...list.count).map { "$\($0)" }.joined(separator: ", ")
        return try await select(
            "SELECT \(Self.orderColumns.joined(separator: ", ")) FROM orders WHERE status IN (\(placeholders)) ORDER BY created_at, client_order_id",
            list.map { .text($0) },
            Self.order
        )
    }

    @Sendable static func order(_ row: RowReader) throws -> OrderRecord {
        OrderRecord(
            clientOrderID: try row.text(0),
            decisionID: try row.text(1),
            venue: try row.text(2),
            symbol: try row.text(3),
            side: try row.enumeration(4),
            type: try row.enumeration(5),
            purpose: try row.enumeration(6),
            quantity: try row.decimal(7),
            price: try row.decimalOrNil(8),
            stopPrice: try row.decimalOrNil(9),
            reduceOnly: try row.bool(10),
            status: try row.enumeration(11),
            venueOrderID: row.textOrNil(12),
            createdAt: try row.time(13),
            updatedAt: try row.time(14)
        )
    }

    // MARK: Fills

    static let fillColumns = [
        "venue", "trade_id", "client_order_id", "symbol", "side", "price", "quantity", "fee", "fee_asset", "time",
    ]

    static func values(_ f: FillRecord) -> [SQLValue] {
        [
            .text(f.venue), .text(f.tradeID), .text(f.clientOrderID), .text(f.symbol), .text(f.side.rawValue),
            .decimal(f.price), .decimal(f.quantity), .decimal(f.fee), .text(f.feeAsset), .time(f.time),
        ]
    }

    @discardableResult public func recordFill(_ fill: FillRecord) async throws -> Bool {
        try await insert("fills", Self.fillColumns, Self.values(fill), conflict: ["venue", "trade_id"])
    }

    @discardableResult public func recordFills(_ fills: [FillRecord]) async throws -> Int {
        if fills.isEmpty { return 0 }
        let rows = fills.map(Self.values)
        return try await database.withSession { session in
            try session.bulkInsert(
                table: "fills",
                columns: Self.fillColumns,
                rows: rows,
                conflictColumns: ["venue", "trade_id"]
            )
        }
    }

    public func fills(clientOrderID: String) async throws -> [FillRecord] {
        try await select(
            "SELECT \(Self.fillColumns.joined(separator: ", ")) FROM fills WHERE client_order_id = $1 ORDER BY time, trade_id",
            [.text(clientOrderID)],
            Self.fill
        )
    }

    public func latestFills(venue: String, symbol: String, limit: Int) async throws -> [FillRecord] {
        try await select(
            "SELECT \(Self.fillColumns.joined(separator: ", ")) FROM fills WHERE venue = $1 AND symbol = $2 ORDER BY time DESC, trade_id DESC LIMIT \(max(1, limit))",
            [.text(venue), .text(symbol)],
            Self.fill
        )
    }

    @Sendable static func fill(_ row: RowReader) throws -> FillRecord {
        FillRecord(
            venue: try row.text(0),
            tradeID: try row.text(1),
            clientOrderID: try row.text(2),
            symbol: try row.text(3),
            side: try row.enumeration(4),
            price: try row.decimal(5),
            quantity: try row.decimal(6),
            fee: try row.decimal(7),
            feeAsset: try row.text(8),
            time: try row.time(9)
        )
    }

    // MARK: Positions

    static let positionColumns = [
        "id", "venue", "symbol", "side", "quantity", "entry_price", "leverage", "stop_loss", "take_profit",
        "decision_id", "status", "opened_at", "updated_at",
    ]

    /// Inserts or replaces a position.
    static let positionUpsert: String = {
        let columns = positionColumns
        let placeholders = (1...columns.count).map { "$\($0)" }.joined(separator: ", ")
        let updates = columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        return
            "INSERT INTO positions (\(columns.joined(separator: ", "))) VALUES (\(placeholders)) ON CONFLICT (id) DO UPDATE SET \(updates)"
    }()

    static func values(_ p: PositionRecord) -> [SQLValue] {
        [
            .text(p.id), .text(p.venue), .text(p.symbol), .text(p.side.rawValue), .decimal(p.quantity),
            .decimal(p.entryPrice),
            .integer(Int64(p.leverage)), .decimal(p.stopLoss), .decimal(p.takeProfit), .text(p.decisionID),
            .text(p.status.rawValue), .time(p.openedAt), .time(p.updatedAt),
        ]
    }

    public func savePosition(_ p: PositionRecord) async throws {
        let values = Self.values(p)
        _ = try await database.withSession { session in try session.query(Self.positionUpsert, values) }
    }

    public func position(id: String) async throws -> PositionRecord? {
        try await select(
            "SELECT \(Self.positionColumns.joined(separator: ", ")) FROM positions WHERE id = $1",
            [.text(id)],
            Self.position
        ).first
    }

    public func openPositions() async throws -> [PositionRecord] {
        try await select(
            "SELECT \(Self.positionColumns.joined(separator: ", ")) FROM positions WHERE status = $1 ORDER BY opened_at, id",
            [.text(PositionRecord.Status.open.rawValue)],
            Self.position
        )
    }

    @Sendable static func position(_ row: RowReader) throws -> PositionRecord {
        PositionRecord(
            id: try row.text(0),
            venue: try row.text(1),
            symbol: try row.text(2),
            side: try row.enumeration(3),
            quantity: try row.decimal(4),
            entryPrice: try row.decimal(5),
            leverage: try row.int(6),
            stopLoss: try row.decimalOrNil(7),
            takeProfit: try row.decimalOrNil(8),
            decisionID: try row.text(9),
            status: try row.enumeration(10),
            openedAt: try row.time(11),
            updatedAt: try row.time(12)
        )
    }

    // MARK: Trades

    static let tradeColumns = [
        "id", "position_id", "symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price", "quantity",
        "leverage", "stop_loss", "take_profit", "pnl", "fees", "funding", "exit_reason",
    ]

    static func values(_ t: TradeRecord) -> [SQLValue] {
        [
            .text(t.id), .text(t.positionID), .text(t.symbol), .text(t.side.rawValue), .time(t.entryTime),
            .decimal(t.entryPrice),
            .time(t.exitTime), .decimal(t.exitPrice), .decimal(t.quantity), .integer(Int64(t.leverage)),
            .decimal(t.stopLoss),
            .decimal(t.takeProfit), .decimal(t.pnl), .decimal(t.fees), .decimal(t.funding), .text(t.exitReason),
        ]
    }

    @discardableResult public func recordTrade(_ t: TradeRecord) async throws -> Bool {
        try await insert("trades", Self.tradeColumns, Self.values(t), conflict: ["id"])
    }

    @discardableResult public func recordClose(_ close: CloseRecord) async throws -> Bool {
        let trade = Self.insertSQL("trades", Self.tradeColumns, conflict: ["id"])
        let fill = Self.insertSQL("fills", Self.fillColumns, conflict: ["venue", "trade_id"])
        let update =
            "UPDATE orders SET status = $1, venue_order_id = COALESCE($2, venue_order_id), updated_at = $3 WHERE client_order_id = $4"
        return try await database.withSession { session in
            try session.transaction {
                let new = try !session.query(trade, Self.values(close.trade)).isEmpty
                _ = try session.query(Self.positionUpsert, Self.values(close.position))
                for record in close.fills { _ = try session.query(fill, Self.values(record)) }
                for order in close.orders {
                    _ = try session.query(
                        update,
                        [
                            .text(order.status.rawValue), .optional(order.venueOrderID),
                            .time(close.position.updatedAt), .text(order.clientOrderID),
                        ]
                    )
                }
                return new
            }
        }
    }

    // MARK: Dead letters

    @discardableResult public func recordDeadLetter(_ letter: DeadLetterRecord) async throws -> Bool {
        try await insert(
            "dead_letters",
            ["id", "source", "body", "reason", "time"],
            [.text(letter.id), .text(letter.source), .text(letter.body), .text(letter.reason), .time(letter.time)],
            conflict: ["id"]
        )
    }

    public func deadLetters(since: Date?) async throws -> [DeadLetterRecord] {
        try await select(
            "SELECT id, source, body, reason, time FROM dead_letters WHERE time >= $1 ORDER BY time, id",
            [.time(since ?? Self.beginning)]
        ) { row in
            DeadLetterRecord(
                id: try row.text(0),
                source: try row.text(1),
                body: try row.text(2),
                reason: try row.text(3),
                time: try row.time(4)
            )
        }
    }

    // MARK: Leases

    public func acquireLease(_ name: String, holder: String, now: Date, until: Date) async throws -> Bool {
        // One statement: the row is taken only if free, run out, or ours; the answer says whether it was.
        let sql =
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) "
            + "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            + "WHERE leases.holder = excluded.holder OR leases.expires_at < $4 RETURNING holder"
        let values: [SQLValue] = [.text(name), .text(holder), .time(until), .time(now)]
        return try await database.withSession { session in try !session.query(sql, values).isEmpty }
    }

    public func releaseLease(_ name: String, holder: String) async throws {
        let values: [SQLValue] = [.text(name), .text(holder)]
        _ = try await database.withSession { session in
            try session.query("DELETE FROM leases WHERE name = $1 AND holder = $2", values)
        }
    }

    // MARK: Account controls and operator commands

    public func saveAccountControl(account: String, _ control: AccountControl, at time: Date) async throws {
        let state = String(decoding: try JSONEncoder().encode(control), as: UTF8.self)
        let sql =
            "INSERT INTO account_controls (account, state, updated_at) VALUES ($1, $2, $3) "
            + "ON CONFLICT (account) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
        let values: [SQLValue] = [.text(account), .text(state), .time(time)]
        _ = try await database.withSession { session in try session.query(sql, values) }
    }

    /// Names a file a replay ran on (`kind`: `data`, `funding`, `mark` or `detail`), so that
    /// `tradebus diff` can backtest the same candles.
    public func recordRunSource(kind: String, path: String, at time: Date) async throws {
        let sql =
            "INSERT INTO run_sources (kind, path, recorded_at) VALUES ($1, $2, $3) "
            + "ON CONFLICT (kind) DO UPDATE SET path = excluded.path, recorded_at = excluded.recorded_at"
        let values: [SQLValue] = [.text(kind), .text(path), .time(time)]
        _ = try await database.withSession { session in try session.query(sql, values) }
    }

    /// The files a replay named (``recordRunSource(kind:path:at:)``), by kind.
    public func runSources() async throws -> [String: String] {
        let rows = try await select("SELECT kind, path FROM run_sources", []) { (try $0.text(0), try $0.text(1)) }
        return Dictionary(rows, uniquingKeysWith: { a, _ in a })
    }

    public func accountControl(account: String) async throws -> AccountControl? {
        let states = try await select("SELECT state FROM account_controls WHERE account = $1", [.text(account)]) {
            try $0.text(0)
        }
        guard let state = states.first else { return nil }
        do {
            return try JSONDecoder().decode(AccountControl.self, from: Data(state.utf8))
        } catch {
            throw StoreError(
                .corruptRow,
                "account_controls for '\(account)' does not decode (\(error)); fix or delete the row, then start again"
            )
        }
    }

    @discardableResult public func recordControlCommand(_ c: ControlCommandRecord) async throws -> Bool {
        try await insert(
            "control_commands",
            ["id", "account", "command", "argument", "requested_by", "ok", "result", "time"],
            [
                .text(c.id), .text(c.account), .text(c.command), c.argument.map(SQLValue.text) ?? .null, .text(c.by),
                .bool(c.ok), .text(c.result), .time(c.time),
            ],
            conflict: ["id"]
        )
    }

    public func controlCommands(since: Date?) async throws -> [ControlCommandRecord] {
        try await select(
            "SELECT id, account, command, argument, requested_by, ok, result, time FROM control_commands WHERE time >= $1 ORDER BY time, id",
            [.time(since ?? Self.beginning)]
        ) { row in
            ControlCommandRecord(
                id: try row.text(0),
                account: try row.text(1),
                command: try row.text(2),
                argument: row.textOrNil(3),
                by: try row.text(4),
                ok: try row.bool(5),
                result: try row.text(6),
                time: try row.time(7)
            )
        }
    }

    // MARK: Alerts

    @discardableResult public func recordAlert(_ a: AlertRecord) async throws -> Bool {
        try await insert(
            "alerts",
            ["id", "time", "severity", "kind", "title", "message", "symbol", "fields"],
            [
                .text(a.id), .time(a.time), .text(a.alert.severity.rawValue), .text(a.alert.kind), .text(a.alert.title),
                .text(a.alert.message), .optional(a.alert.symbol), try SQLValue.json(a.alert.fields),
            ],
            conflict: ["id"]
        )
    }

    public func recentAlerts(limit: Int) async throws -> [AlertRecord] {
        try await select(
            "SELECT id, time, severity, kind, title, message, symbol, fields FROM alerts ORDER BY time DESC, id DESC LIMIT $1",
            [.integer(Int64(limit))]
        ) { row in
            AlertRecord(
                id: try row.text(0),
                time: try row.time(1),
                alert: AlertPayload(
                    severity: try row.enumeration(2),
                    kind: try row.text(3),
                    title: try row.text(4),
                    message: try row.text(5),
                    symbol: row.textOrNil(6),
                    fields: try row.json(7, [String: JSONValue].self, table: "alerts")
                )
            )
        }
    }

    // MARK: Backtests

    @discardableResult public func recordBacktest(_ b: BacktestRecord) async throws -> Bool {
        try await insert(
            "backtests",
            ["id", "time", "symbol", "interval", "record"],
            [.text(b.id), .time(b.time), .text(b.symbol), .text(b.interval), try SQLValue.json(b)],
            conflict: ["id"]
        )
    }

    public func backtests(limit: Int) async throws -> [BacktestRecord] {
        try await records("backtests", BacktestRecord.self, limit: limit)
    }

    @discardableResult public func recordDivergence(_ d: DivergenceRecord) async throws -> Bool {
        try await insert(
            "divergence_reports",
            ["id", "time", "symbol", "record"],
            [.text(d.id), .time(d.time), .text(d.symbol), try SQLValue.json(d)],
            conflict: ["id"]
        )
    }

    public func divergences(limit: Int) async throws -> [DivergenceRecord] {
        try await records("divergence_reports", DivergenceRecord.self, limit: limit)
    }

    /// The newest rows of a table that keeps each record whole as JSON in its `record` column.
    func records<T: Decodable & Sendable>(_ table: String, _ type: T.Type, limit: Int) async throws -> [T] {
        try await select(
            "SELECT record FROM \(table) ORDER BY time DESC, id DESC LIMIT $1",
            [.integer(Int64(limit))]
        ) { row in
            guard let record = try row.json(0, T.self, table: table) else {
                throw StoreError(.corruptRow, "\(table): record is NULL")
            }
            return record
        }
    }

    public func trades(since: Date?) async throws -> [TradeRecord] {
        try await select(
            "SELECT \(Self.tradeColumns.joined(separator: ", ")) FROM trades WHERE exit_time >= $1 ORDER BY exit_time, id",
            [.time(since ?? Self.beginning)],
            Self.trade
        )
    }

    public func trade(id: String) async throws -> TradeRecord? {
        try await select(
            "SELECT \(Self.tradeColumns.joined(separator: ", ")) FROM trades WHERE id = $1",
            [.text(id)],
            Self.trade
        ).first
    }

    /// A row of `tradeColumns` as a trade.
    @Sendable static func trade(_ row: RowReader) throws -> TradeRecord {
        TradeRecord(
            id: try row.text(0),
            positionID: try row.text(1),
            symbol: try row.text(2),
            side: try row.enumeration(3),
            entryTime: try row.time(4),
            entryPrice: try row.decimal(5),
            exitTime: try row.time(6),
            exitPrice: try row.decimal(7),
            quantity: try row.decimal(8),
            leverage: try row.int(9),
            stopLoss: try row.decimalOrNil(10),
            takeProfit: try row.decimalOrNil(11),
            pnl: try row.decimal(12),
            fees: try row.decimal(13),
            funding: try row.decimal(14),
            exitReason: try row.text(15)
        )
    }

    // MARK: Circuit breakers

    @discardableResult public func recordCircuitBreakerEvent(_ e: CircuitBreakerEvent) async throws -> Bool {
        try await insert(
            "circuit_breaker_events",
            ["id", "kind", "reason", "equity", "time"],
            [.text(e.id), .text(e.kind), .text(e.reason), .decimal(e.equity), .time(e.time)],
            conflict: ["id"]
        )
    }

    public func circuitBreakerEvents(since: Date?) async throws -> [CircuitBreakerEvent] {
        try await select(
            "SELECT id, kind, reason, equity, time FROM circuit_breaker_events WHERE time >= $1 ORDER BY time, id",
            [.time(since ?? Self.beginning)]
        ) { row in
            CircuitBreakerEvent(
                id: try row.text(0),
                kind: try row.text(1),
                reason: try row.text(2),
                equity: try row.decimal(3),
                time: try row.time(4)
            )
        }
    }

    // MARK: Equity

    static let equityColumns = ["time", "equity", "balance", "unrealized_pnl", "open_positions"]

    static func values(_ s: EquitySnapshot) -> [SQLValue] {
        [
            .time(s.time), .decimal(s.equity), .decimal(s.balance), .decimal(s.unrealizedPnL),
            .integer(Int64(s.openPositions)),
        ]
    }

    @discardableResult public func recordEquitySnapshot(_ snapshot: EquitySnapshot) async throws -> Bool {
        try await insert("equity_snapshots", Self.equityColumns, Self.values(snapshot), conflict: ["time"])
    }

    @discardableResult public func recordEquitySnapshots(_ snapshots: [EquitySnapshot]) async throws -> Int {
        if snapshots.isEmpty { return 0 }
        let rows = snapshots.map(Self.values)
        return try await database.withSession { session in
            try session.bulkInsert(
                table: "equity_snapshots",
                columns: Self.equityColumns,
                rows: rows,
                conflictColumns: ["time"]
            )
        }
    }

    public func equitySnapshots(since: Date?) async throws -> [EquitySnapshot] {
        try await select(
            "SELECT \(Self.equityColumns.joined(separator: ", ")) FROM equity_snapshots WHERE time >= $1 ORDER BY time",
            [.time(since ?? Self.beginning)]
        ) { row in
            EquitySnapshot(
                time: try row.time(0),
                equity: try row.decimal(1),
                balance: try row.decimal(2),
                unrealizedPnL: try row.decimal(3),
                openPositions: try row.int(4)
            )
        }
    }

    // MARK: Processed messages

    @discardableResult public func markProcessed(
        messageID: String,
        consumer: String,
        at time: Date
    ) async throws -> Bool {
        try await insert(
            "processed_messages",
            ["consumer", "message_id", "processed_at"],
            [.text(consumer), .text(messageID), .time(time)],
            conflict: ["consumer", "message_id"]
        )
    }

    public func isProcessed(messageID: String, consumer: String) async throws -> Bool {
        try await !select(
            "SELECT 1 FROM processed_messages WHERE consumer = $1 AND message_id = $2",
            [.text(consumer), .text(messageID)]
        ) { _ in 1 }.isEmpty
    }
}

extension SQLValue {
    static func time(_ date: Date) -> SQLValue { .text(SQLText.time(date)) }
    static func decimal(_ value: Money) -> SQLValue { .text(SQLText.decimal(value)) }
    static func decimal(_ value: Money?) -> SQLValue { value.map { .text(SQLText.decimal($0)) } ?? .null }
    static func optional(_ text: String?) -> SQLValue { text.map { .text($0) } ?? .null }
    static func bool(_ flag: Bool) -> SQLValue { .integer(flag ? 1 : 0) }
    /// `value` as JSON text, or NULL.
    static func json<T: Encodable>(_ value: T?) throws -> SQLValue {
        guard let value else { return .null }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return .text(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// Reads typed columns from a text row, with an error naming the column that is wrong.
struct RowReader {
    let row: SQLRow
    init(_ row: SQLRow) { self.row = row }

    func textOrNil(_ index: Int) -> String? { index < row.count ? row[index] : nil }

    func text(_ index: Int) throws -> String {
        guard let value = textOrNil(index) else { throw StoreError(.corruptRow, "column \(index) is NULL") }
        return value
    }

    func int(_ index: Int) throws -> Int {
        guard let value = Int(try text(index)) else {
            throw StoreError(.corruptRow, "column \(index) is not an integer")
        }
        return value
    }

    func double(_ index: Int) throws -> Double {
        guard let value = Double(try text(index)) else {
            throw StoreError(.corruptRow, "column \(index) is not a number")
        }
        return value
    }

    func bool(_ index: Int) throws -> Bool {
        switch try text(index) {
        case "t", "true", "1": return true
        case "f", "false", "0": return false
        case let other: throw StoreError(.corruptRow, "column \(index) is not a boolean: \(other)")
        }
    }

    func decimal(_ index: Int) throws -> Money {
        guard let value = try decimalOrNil(index) else { throw StoreError(.corruptRow, "column \(index) is NULL") }
        return value
    }

    func decimalOrNil(_ index: Int) throws -> Money? {
        guard let text = textOrNil(index) else { return nil }
        guard let value = Money(rounding: text) else {
            throw StoreError(.corruptRow, "column \(index) is not a decimal: \(text)")
        }
        return value
    }

    /// The column's JSON as `T`, or nil when it is NULL.
    func json<T: Decodable>(_ index: Int, _ type: T.Type, table: String) throws -> T? {
        guard let text = textOrNil(index) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw StoreError(.corruptRow, "\(table): column \(index) is not the JSON expected (\(error))")
        }
    }

    func time(_ index: Int) throws -> Date {
        let text = try text(index)
        guard let value = SQLText.date(text) else {
            throw StoreError(.corruptRow, "column \(index) is not a time: \(text)")
        }
        return value
    }

    func enumeration<T: RawRepresentable>(_ index: Int) throws -> T where T.RawValue == String {
        let text = try text(index)
        guard let value = T(rawValue: text) else {
            throw StoreError(.corruptRow, "column \(index): unknown value '\(text)'")
        }
        return value
    }
}

// MARK: The market data a live run traded on

extension SQLTradeStore: MarketRecord {
    public func recordCandles(venue: String, symbol: String, interval: String, _ candles: [Candle]) async throws {
        let rows: [[SQLValue]] = candles.map { c in
            [
                .text(venue), .text(symbol), .text(interval), .integer(c.openTime), .text(String(c.open)),
                .text(String(c.high)), .text(String(c.low)), .text(String(c.close)), .text(String(c.volume)),
            ]
        }
        _ = try await database.withSession { session in
            try session.bulkInsert(
                table: "market_candles",
                columns: ["venue", "symbol", "interval", "open_time", "open", "high", "low", "close", "volume"],
                rows: rows,
                conflictColumns: ["venue", "symbol", "interval", "open_time"]
            )
        }
    }

    public func candles(symbol: String, interval: String, from: Int64, through: Int64) async throws -> [Candle] {
        try await select(
            "SELECT open_time, open, high, low, close, volume FROM market_candles "
                + "WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND open_time <= $4 ORDER BY open_time",
            [.text(symbol), .text(interval), .integer(from), .integer(through)]
        ) { row in
            Candle(
                openTime: Int64(try row.int(0)),
                open: try row.double(1),
                high: try row.double(2),
                low: try row.double(3),
                close: try row.double(4),
                volume: try row.double(5)
            )
        }
    }

    /// The candle streams kept (``recordCandles(venue:symbol:interval:_:)``): symbol and interval, with
    /// how many candles each has.
    public func recordedStreams() async throws -> [(symbol: String, interval: String, candles: Int)] {
        try await select(
            "SELECT symbol, interval, COUNT(*) FROM market_candles GROUP BY symbol, interval ORDER BY symbol, interval",
            []
        ) { (try $0.text(0), try $0.text(1), try $0.int(2)) }
    }

    public func recordFunding(venue: String, symbol: String, _ events: [FundingEvent]) async throws {
        let sql =
            "INSERT INTO funding_rates (venue, symbol, funding_time, rate, mark_price) VALUES ($1, $2, $3, $4, $5) "
            + "ON CONFLICT (venue, symbol, funding_time) DO UPDATE SET rate = excluded.rate, "
            + "mark_price = COALESCE(excluded.mark_price, funding_rates.mark_price)"
        try await database.withSession { session in
            for event in events {
                try session.query(
                    sql,
                    [.text(venue), .text(symbol), .time(event.time), .decimal(event.rate), .decimal(event.markPrice)]
                )
            }
        }
    }

    public func funding(symbol: String, from: Date, through: Date) async throws -> [FundingEvent] {
        try await select(
            "SELECT funding_time, rate, mark_price FROM funding_rates "
                + "WHERE symbol = $1 AND funding_time >= $2 AND funding_time <= $3 ORDER BY funding_time",
            [.text(symbol), .time(from), .time(through)]
        ) { row in
            FundingEvent(time: try row.time(0), rate: try row.decimal(1), markPrice: try row.decimalOrNil(2))
        }
    }
}
