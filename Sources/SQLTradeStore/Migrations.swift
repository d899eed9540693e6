import Foundation

/// The schema, as versioned migrations shipped in the package. `{DECIMAL}`, `{TIME}`, `{BOOL}` and
/// `{FLOAT}` are replaced by the dialect's types. Append new migrations; never edit an applied one.
public enum Migrations {
    /// One schema change, applied once, in order.
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    public static let all: [Migration] = [
        Migration(
            version: 1,
            name: "initial schema",
            sql: """
                CREATE TABLE decisions (
                    id TEXT PRIMARY KEY,
                    correlation_id TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    action TEXT NOT NULL,
                    confidence {FLOAT} NOT NULL,
                    leverage INTEGER NOT NULL,
                    entry {DECIMAL},
                    stop_loss {DECIMAL},
                    take_profit {DECIMAL},
                    reasoning TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    model TEXT NOT NULL,
                    prompt_version TEXT NOT NULL,
                    candle_time {TIME} NOT NULL,
                    created_at {TIME} NOT NULL,
                    prompt TEXT,
                    reply TEXT
                );
                CREATE INDEX decisions_symbol_candle_time ON decisions (symbol, candle_time);
                CREATE TABLE orders (
                    client_order_id TEXT PRIMARY KEY,
                    decision_id TEXT NOT NULL,
                    venue TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    side TEXT NOT NULL,
                    type TEXT NOT NULL,
                    purpose TEXT NOT NULL,
                    quantity {DECIMAL} NOT NULL,
                    price {DECIMAL},
                    stop_price {DECIMAL},
                    reduce_only {BOOL} NOT NULL,
                    status TEXT NOT NULL,
                    venue_order_id TEXT,
                    created_at {TIME} NOT NULL,
                    updated_at {TIME} NOT NULL
                );
                CREATE INDEX orders_decision_id ON orders (decision_id);
                CREATE INDEX orders_status ON orders (status);
                CREATE TABLE fills (
                    venue TEXT NOT NULL,
                    trade_id TEXT NOT NULL,
                    client_order_id TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    side TEXT NOT NULL,
                    price {DECIMAL} NOT NULL,
                    quantity {DECIMAL} NOT NULL,
                    fee {DECIMAL} NOT NULL,
                    fee_asset TEXT NOT NULL,
                    time {TIME} NOT NULL,
                    PRIMARY KEY (venue, trade_id)
                );
                CREATE INDEX fills_client_order_id ON fills (client_order_id);
                CREATE TABLE positions (
                    id TEXT PRIMARY KEY,
                    venue TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    side TEXT NOT NULL,
                    quantity {DECIMAL} NOT NULL,
                    entry_price {DECIMAL} NOT NULL,
                    leverage INTEGER NOT NULL,
                    stop_loss {DECIMAL},
                    take_profit {DECIMAL},
                    decision_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    opened_at {TIME} NOT NULL,
                    updated_at {TIME} NOT NULL
                );
                CREATE INDEX positions_status ON positions (status);
                CREATE TABLE trades (
                    id TEXT PRIMARY KEY,
                    position_id TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    side TEXT NOT NULL,
                    entry_time {TIME} NOT NULL,
                    entry_price {DECIMAL} NOT NULL,
                    exit_time {TIME} NOT NULL,
                    exit_price {DECIMAL} NOT NULL,
                    quantity {DECIMAL} NOT NULL,
                    leverage INTEGER NOT NULL,
                    stop_loss {DECIMAL},
                    take_profit {DECIMAL},
                    pnl {DECIMAL} NOT NULL,
                    fees {DECIMAL} NOT NULL,
                    funding {DECIMAL} NOT NULL,
                    exit_reason TEXT NOT NULL
                );
                CREATE INDEX trades_exit_time ON trades (exit_time);
                CREATE TABLE circuit_breaker_events (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    equity {DECIMAL} NOT NULL,
                    time {TIME} NOT NULL
                );
                CREATE TABLE equity_snapshots (
                    time {TIME} PRIMARY KEY,
                    equity {DECIMAL} NOT NULL,
                    balance {DECIMAL} NOT NULL,
                    unrealized_pnl {DECIMAL} NOT NULL,
                    open_positions INTEGER NOT NULL
                );
                CREATE TABLE processed_messages (
                    consumer TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    processed_at {TIME} NOT NULL,
                    PRIMARY KEY (consumer, message_id)
                );
                """
        ),
        Migration(
            version: 2,
            name: "dead letters",
            sql: """
                CREATE TABLE dead_letters (
                    id TEXT PRIMARY KEY,
                    source TEXT NOT NULL,
                    body TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    time {TIME} NOT NULL
                );
                """
        ),
        Migration(
            version: 3,
            name: "account controls and operator commands",
            sql: """
                CREATE TABLE account_controls (
                    account TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    updated_at {TIME} NOT NULL
                );
                CREATE TABLE control_commands (
                    id TEXT PRIMARY KEY,
                    account TEXT NOT NULL,
                    command TEXT NOT NULL,
                    argument TEXT,
                    requested_by TEXT NOT NULL,
                    ok {BOOL} NOT NULL,
                    result TEXT NOT NULL,
                    time {TIME} NOT NULL
                );
                CREATE INDEX control_commands_time ON control_commands (time);
                """
        ),
        Migration(
            version: 4,
            name: "leases",
            sql: """
                CREATE TABLE leases (
                    name TEXT PRIMARY KEY,
                    holder TEXT NOT NULL,
                    expires_at {TIME} NOT NULL
                );
                """
        ),
        Migration(
            version: 5,
            name: "run sources",
            sql: """
                CREATE TABLE run_sources (
                    kind TEXT PRIMARY KEY,
                    path TEXT NOT NULL,
                    recorded_at {TIME} NOT NULL
                );
                """
        ),
        Migration(
            version: 6,
            name: "market record",
            sql: """
                CREATE TABLE market_candles (
                    venue TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    interval TEXT NOT NULL,
                    open_time BIGINT NOT NULL,
                    open {FLOAT} NOT NULL,
                    high {FLOAT} NOT NULL,
                    low {FLOAT} NOT NULL,
                    close {FLOAT} NOT NULL,
                    volume {FLOAT} NOT NULL,
                    PRIMARY KEY (venue, symbol, interval, open_time)
                );
                CREATE TABLE funding_rates (
                    venue TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    funding_time {TIME} NOT NULL,
                    rate {DECIMAL} NOT NULL,
                    mark_price {DECIMAL},
                    PRIMARY KEY (venue, symbol, funding_time)
                );
                CREATE INDEX funding_rates_symbol_time ON funding_rates (symbol, funding_time);
                """
        ),
        Migration(
            version: 7,
            name: "decision outcomes and alerts",
            sql: """
                ALTER TABLE decisions ADD COLUMN outcome TEXT;
                CREATE INDEX decisions_created_at ON decisions (created_at);
                CREATE TABLE alerts (
                    id TEXT PRIMARY KEY,
                    time {TIME} NOT NULL,
                    severity TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    title TEXT NOT NULL,
                    message TEXT NOT NULL,
                    symbol TEXT,
                    fields TEXT
                );
                CREATE INDEX alerts_time ON alerts (time);
                """
        ),
        Migration(
            version: 8,
            name: "backtests",
            sql: """
                CREATE TABLE backtests (
                    id TEXT PRIMARY KEY,
                    time {TIME} NOT NULL,
                    symbol TEXT NOT NULL,
                    interval TEXT NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX backtests_time ON backtests (time);
                """
        ),
        Migration(
            version: 9,
            name: "divergence reports",
            sql: """
                CREATE TABLE divergence_reports (
                    id TEXT PRIMARY KEY,
                    time {TIME} NOT NULL,
                    symbol TEXT NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX divergence_reports_time ON divergence_reports (time);
                """
        ),
        Migration(
            version: 10,
            name: "LLM cost and usage per decision",
            sql: """
                ALTER TABLE decisions ADD COLUMN llm_cost {FLOAT} NOT NULL DEFAULT 0;
                ALTER TABLE decisions ADD COLUMN llm_usage TEXT
                """
        ),
    ]

    /// The migration's SQL in `dialect`, split into statements.
    static func statements(_ migration: Migration, dialect: SQLDialect) -> [String] {
        migration.sql
            .replacingOccurrences(of: "{DECIMAL}", with: dialect.decimalType)
            .replacingOccurrences(of: "{TIME}", with: dialect.timeType)
            .replacingOccurrences(of: "{BOOL}", with: dialect.booleanType)
            .replacingOccurrences(of: "{FLOAT}", with: dialect.floatType)
            .split(separator: ";")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
    }
}
