import Foundation

/// A trade event's payload: `trade.opened.<symbol>` and `trade.closed.<symbol>` (the executor publishes them).
public struct TradeEventPayload: Sendable, Hashable, Codable {
    public var symbol: String
    public var side: PositionSide
    public var quantity: Double
    public var leverage: Int
    public var entryPrice: Double
    public var exitPrice: Double?
    public var stopLoss: Double?
    public var takeProfit: Double?
    /// Realised PnL after fees and funding (closed trades).
    public var pnl: Double?
    public var exitReason: String?
    public var decisionID: String?

    /// A `TradeEventPayload` with the fields given.
    public init(
        symbol: String,
        side: PositionSide,
        quantity: Double,
        leverage: Int,
        entryPrice: Double,
        exitPrice: Double? = nil,
        stopLoss: Double? = nil,
        takeProfit: Double? = nil,
        pnl: Double? = nil,
        exitReason: String? = nil,
        decisionID: String? = nil
    ) {
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.leverage = leverage
        self.entryPrice = entryPrice
        self.exitPrice = exitPrice
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.pnl = pnl
        self.exitReason = exitReason
        self.decisionID = decisionID
    }

    enum CodingKeys: String, CodingKey {
        case symbol, side, quantity, leverage, pnl
        case entryPrice = "entry_price"
        case exitPrice = "exit_price"
        case stopLoss = "stop_loss"
        case takeProfit = "take_profit"
        case exitReason = "exit_reason"
        case decisionID = "decision_id"
    }
}

/// An order event's payload: `order.<status>.<symbol>`.
public struct OrderEventPayload: Sendable, Hashable, Codable {
    public var symbol: String
    public var clientOrderID: String
    public var side: OrderSide
    public var status: String
    public var quantity: Double
    public var price: Double?
    public var reason: String?

    /// A `OrderEventPayload` with the fields given.
    public init(
        symbol: String,
        clientOrderID: String,
        side: OrderSide,
        status: String,
        quantity: Double,
        price: Double? = nil,
        reason: String? = nil
    ) {
        self.symbol = symbol
        self.clientOrderID = clientOrderID
        self.side = side
        self.status = status
        self.quantity = quantity
        self.price = price
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case symbol, side, status, quantity, price, reason
        case clientOrderID = "client_order_id"
    }
}

extension MessageType {
    public static let tradeOpened = "trade.opened"
    public static let tradeClosed = "trade.closed"
    public static let order = "order"
}

/// What a sink sends: one message, rendered from an alert, a trade or an order event by
/// ``NoticeTemplates``. Its id is the message's id, the key of at-most-once per sink.
public struct Notice: Sendable, Hashable {
    public var id: String
    public var severity: AlertSeverity
    /// `trade_opened`, `trade_closed`, `order_<status>`, or the alert's kind.
    public var kind: String
    public var title: String
    public var lines: [String]
    public var symbol: String?
    public var fields: [(String, String)]
    /// The original payload, for the JSON webhook.
    public var payload: JSONValue
    public var time: Date

    /// A `Notice` with the fields given.
    public init(
        id: String,
        severity: AlertSeverity,
        kind: String,
        title: String,
        lines: [String],
        symbol: String?,
        fields: [(String, String)],
        payload: JSONValue,
        time: Date
    ) {
        self.id = id
        self.severity = severity
        self.kind = kind
        self.title = title
        self.lines = lines
        self.symbol = symbol
        self.fields = fields
        self.payload = payload
        self.time = time
    }

    /// The plain text: title, lines, then fields.
    public var text: String {
        ([title] + lines + fields.map { "\($0.0): \($0.1)" }).joined(separator: "\n")
    }

    /// Equal when the ids are: the same message delivered twice is one notice.
    public static func == (a: Notice, b: Notice) -> Bool {
        a.id == b.id && a.severity == b.severity && a.kind == b.kind && a.title == b.title && a.lines == b.lines
            && a.symbol == b.symbol
            && a.fields.map(\.0) == b.fields.map(\.0) && a.fields.map(\.1) == b.fields.map(\.1)
            && a.payload == b.payload && a.time == b.time
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// The message templates: trade opened or closed, circuit breaker tripped, stale feed, analyst failure,
/// the daily summary, and a plain form for any other alert or order event.
public enum NoticeTemplates {
    static func price(_ value: Double?) -> String { value.map { String(format: "%.8g", $0) } ?? "-" }
    static func money(_ value: Double) -> String { (value >= 0 ? "+" : "") + String(format: "%.2f", value) }

    /// The notice for one envelope body of type `alert`, `trade.opened`, `trade.closed` or `order`.
    public static func notice(from body: [UInt8]) throws -> Notice {
        let header = try EnvelopeCodec.decode(JSONValue.self, from: body)
        switch header.type {
        case MessageType.alert:
            let envelope = try EnvelopeCodec.decode(AlertPayload.self, from: body)
            return alert(envelope.payload, id: envelope.id, time: envelope.time, raw: header.payload)
        case MessageType.tradeOpened, MessageType.tradeClosed:
            let envelope = try EnvelopeCodec.decode(TradeEventPayload.self, from: body)
            return trade(
                envelope.payload,
                opened: header.type == MessageType.tradeOpened,
                id: envelope.id,
                time: envelope.time,
                raw: header.payload
            )
        case MessageType.order:
            let envelope = try EnvelopeCodec.decode(OrderEventPayload.self, from: body)
            let o = envelope.payload
            return Notice(
                id: envelope.id,
                severity: o.status == "rejected" || o.status == "failed" ? .warning : .info,
                kind: "order_\(o.status)",
                title: "Order \(o.status): \(o.side.rawValue) \(o.symbol)",
                lines: o.reason.map { [$0] } ?? [],
                symbol: o.symbol,
                fields: [
                    ("Quantity", price(o.quantity)), ("Price", price(o.price)), ("Client order id", o.clientOrderID),
                ],
                payload: header.payload,
                time: envelope.time
            )
        default:
            throw EnvelopeError(
                .unexpectedType,
                "a notifier takes alert, trade.opened, trade.closed or order messages, not '\(header.type)'"
            )
        }
    }

    /// The notice for a trade opened or closed.
    public static func trade(_ t: TradeEventPayload, opened: Bool, id: String, time: Date, raw: JSONValue) -> Notice {
        var fields = [
            ("Side", t.side.rawValue), ("Leverage", "\(t.leverage)x"), ("Quantity", price(t.quantity)),
            ("Entry", price(t.entryPrice)),
        ]
        if opened {
            fields += [("Stop loss", price(t.stopLoss)), ("Take profit", price(t.takeProfit))]
        } else {
            fields += [("Exit", price(t.exitPrice)), ("PnL", t.pnl.map(money) ?? "-"), ("Reason", t.exitReason ?? "-")]
        }
        let title =
            opened
            ? "Trade opened: \(t.side.rawValue) \(t.symbol)"
            : "Trade closed: \(t.side.rawValue) \(t.symbol) \(t.pnl.map(money) ?? "")"
        return Notice(
            id: id,
            severity: .info,
            kind: opened ? "trade_opened" : "trade_closed",
            title: title,
            lines: [],
            symbol: t.symbol,
            fields: fields,
            payload: raw,
            time: time
        )
    }

    /// The notice for an alert.
    public static func alert(_ a: AlertPayload, id: String, time: Date, raw: JSONValue) -> Notice {
        let fields = (a.fields ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, describe($0.value)) }
        let title: String
        switch a.kind {
        case "circuit_breaker": title = "Circuit breaker tripped: trading halted"
        case "feed_stale": title = "Market data feed stale"
        case "analyst_invalid", "analyst_failed": title = "Analyst failure"
        case "daily_summary": title = "Daily summary"
        default: title = a.title
        }
        let icon = a.severity == .critical ? "🔴" : a.severity == .warning ? "🟠" : "🔵"
        return Notice(
            id: id,
            severity: a.severity,
            kind: a.kind,
            title: "\(icon) \(title)",
            lines: [a.title == title ? nil : a.title, a.message].compactMap { $0 },
            symbol: a.symbol,
            fields: (a.symbol.map { [("Symbol", $0)] } ?? []) + fields,
            payload: raw,
            time: time
        )
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "-"
        case .bool(let b): "\(b)"
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(format: "%.8g", n)
        case .string(let s): s
        case .array(let items): items.map(describe).joined(separator: ", ")
        case .object(let object):
            object.sorted { $0.key < $1.key }.map { "\($0.key)=\(describe($0.value))" }.joined(separator: ", ")
        }
    }

    /// The daily summary alert: PnL, win rate, trades and drawdown over the day.
    public static func dailySummary(day: String, trades: [TradeRecord], maxDrawdown: Double) -> AlertPayload {
        let pnls = trades.map(\.pnl.doubleValue)
        let wins = pnls.filter { $0 > 0 }.count
        let total = pnls.reduce(0, +)
        let rate = trades.isEmpty ? 0 : Double(wins) / Double(trades.count)
        return AlertPayload(
            severity: .info,
            kind: "daily_summary",
            title: "Daily summary \(day)",
            message:
                "PnL \(money(total)), \(trades.count) trades, win rate \(String(format: "%.0f", rate * 100))%, max drawdown \(String(format: "%.2f", maxDrawdown * 100))%",
            fields: [
                "pnl": .number(total), "trades": .number(Double(trades.count)), "win_rate": .number(rate),
                "max_drawdown": .number(maxDrawdown), "day": .string(day),
            ]
        )
    }
}

/// Telegram's MarkdownV2: every character it reserves escaped with a backslash, as its Bot API asks.
public enum MarkdownV2 {
    static let reserved: Set<Character> = [
        "_", "*", "[", "]", "(", ")", "~", "`", ">", "#", "+", "-", "=", "|", "{", "}", ".", "!", "\\",
    ]

    /// Escapes `text` for Telegram's HTML parse mode.
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.count)
        for character in text {
            if reserved.contains(character) { result.append("\\") }
            result.append(character)
        }
        return result
    }

    /// A notice as a MarkdownV2 message: the title in bold, then the lines, then the fields.
    public static func render(_ notice: Notice) -> String {
        var parts = ["*\(escape(notice.title))*"]
        parts += notice.lines.map(escape)
        parts += notice.fields.map { "\(escape($0.0)): `\(escapeCode($0.1))`" }
        return parts.joined(separator: "\n")
    }

    /// Inside `code`, only ` and \ need escaping.
    static func escapeCode(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "`", with: "\\`")
    }
}
