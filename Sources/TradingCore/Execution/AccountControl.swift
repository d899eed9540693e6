import Foundation

extension MessageType {
    public static let controlRequest = "control.request"
    public static let controlReply = "control.reply"
}

/// A command to an executor over `control.<account>` (`tradebus control …`), and who sent it.
public struct ControlRequest: Sendable, Hashable, Codable {
    /// An operator's command.
    public enum Command: String, Sendable, Hashable, Codable, CaseIterable {
        /// No new entries until `resume`; exits, stops and flattens still go.
        case halt
        case resume
        /// `reset-breaker NAME`: daily_loss, consecutive_losses, max_drawdown or all.
        case resetBreaker = "reset-breaker"
        /// `flatten SYMBOL` or `flatten all`: close at market.
        case flatten
        /// `reducing on|off`: no new entries while on.
        case reducing
        /// The account as the executor sees it.
        case status
    }

    public var command: Command
    public var argument: String?
    /// Who asks: recorded with the command and its result.
    public var by: String

    /// A `ControlRequest` with the fields given.
    public init(command: Command, argument: String? = nil, by: String) {
        self.command = command
        self.argument = argument
        self.by = by
    }

    /// Checks the argument; the message names what is allowed.
    public func validated() throws(ControlError) -> ControlRequest {
        var request = self
        request.argument = argument?.trimmingCharacters(in: .whitespaces)
        let value = request.argument ?? ""
        switch command {
        case .halt, .resume, .status:
            guard value.isEmpty else { throw ControlError("'\(command.rawValue)' takes no argument; got '\(value)'") }
            request.argument = nil
        case .resetBreaker:
            guard value == "all" || TradingHalts.Halt.Kind(rawValue: value) != nil else {
                let names = TradingHalts.Halt.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                throw ControlError("reset-breaker needs a breaker: \(names) or all; got '\(value)'")
            }
        case .flatten:
            guard value == "all" || (!value.isEmpty && value.allSatisfy { $0.isLetter || $0.isNumber }) else {
                throw ControlError("flatten needs a symbol (BTCUSDT) or all; got '\(value)'")
            }
            request.argument = value == "all" ? value : value.uppercased()
        case .reducing:
            guard value == "on" || value == "off" else {
                throw ControlError("reducing needs on or off; got '\(value)'")
            }
        }
        guard !by.isEmpty else { throw ControlError("a command must say who sends it (--by)") }
        return request
    }
}

/// A command the executor refused, and why.
public struct ControlError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// A `ControlError` with the field given.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The executor's answer to a ``ControlRequest``.
public struct ControlReply: Sendable, Hashable, Codable {
    public var ok: Bool
    public var message: String
    public var status: AccountStatus?

    /// A `ControlReply` with the fields given.
    public init(ok: Bool, message: String, status: AccountStatus? = nil) {
        self.ok = ok
        self.message = message
        self.status = status
    }
}

/// What holds an account's entries back: its circuit breakers, an operator's halt, and REDUCING mode.
/// Persisted by the executor on every change and restored at start, so a restart clears nothing.
public struct AccountControl: Sendable, Hashable, Codable {
    /// An operator's halt or a REDUCING mode: why, who and since when.
    public struct Hold: Sendable, Hashable, Codable {
        public var reason: String
        public var by: String
        public var since: Date
        /// A `Hold` with the fields given.
        public init(reason: String, by: String, since: Date) {
            self.reason = reason
            self.by = by
            self.since = since
        }
    }

    /// Whether new entries may go: normal, halted or reducing.
    public enum Mode: String, Sendable, Hashable, Codable {
        /// Entries go.
        case normal
        /// No new entries; stops, closes and flattens still go.
        case reducing
        /// A breaker or an operator halted entries; exits still go.
        case halted
    }

    /// `nil` until the first equity reading.
    public var breakers: TradingHalts?
    public var operatorHalt: Hold?
    public var reducing: Hold?

    /// Normal: no halt, not reducing.
    public init() {}

    public var mode: Mode {
        if operatorHalt != nil || breakers?.halt != nil { return .halted }
        return reducing == nil ? .normal : .reducing
    }

    /// Why a new entry is refused now, or `nil` when entries may go.
    public var entryBlock: String? {
        if let operatorHalt { return "halted by \(operatorHalt.by): \(operatorHalt.reason)" }
        if let halt = breakers?.halt { return halt.reason }
        if let reducing { return "REDUCING (\(reducing.by)): \(reducing.reason)" }
        return nil
    }

    /// The breakers, made from `equity` the first time.
    public mutating func breakers(limits: TradingHalts.Limits, equity: Money, now: Date) -> TradingHalts {
        if let breakers { return breakers }
        let fresh = TradingHalts(limits: limits, equity: equity, now: now)
        breakers = fresh
        return fresh
    }

    /// Carries out halt, resume, reset-breaker and reducing (flatten and status are the executor's);
    /// returns what changed, and the breakers an operator reset cleared.
    public mutating func apply(
        _ request: ControlRequest,
        equity: Money,
        now: Date
    ) throws(ControlError) -> (message: String, cleared: [TradingHalts.Halt]) {
        switch request.command {
        case .halt:
            guard operatorHalt == nil else { return ("already halted by \(operatorHalt!.by)", []) }
            operatorHalt = Hold(reason: "operator halt", by: request.by, since: now)
            return ("halted: no new entries; exits, stops and flattens still go", [])
        case .resume:
            guard let held = operatorHalt else {
                return (
                    "not halted by an operator"
                        + (breakers?.halt.map { "; breaker \($0.kind.rawValue) still holds" } ?? ""), []
                )
            }
            operatorHalt = nil
            let still = entryBlock.map { "; entries still refused: \($0)" } ?? "; entries allowed"
            return ("resumed (halted by \(held.by) since \(held.since))" + still, [])
        case .resetBreaker:
            let kind = request.argument == "all" ? nil : TradingHalts.Halt.Kind(rawValue: request.argument ?? "")
            guard var current = breakers else { return ("no breaker has tripped yet", []) }
            let cleared = current.reset(kind, now: now, equity: equity)
            breakers = current
            let names = cleared.map(\.kind.rawValue).joined(separator: ", ")
            return (
                cleared.isEmpty
                    ? "\(request.argument ?? "") was not tripped; its figures start again from equity \(equity)"
                    : "reset \(names) from equity \(equity)", cleared
            )
        case .reducing:
            if request.argument == "on" {
                reducing = Hold(reason: "set by an operator", by: request.by, since: now)
                return ("REDUCING: no new entries; stops, closes and flattens still go", [])
            }
            guard reducing != nil else { return ("not in REDUCING mode", []) }
            reducing = nil
            return ("REDUCING off" + (entryBlock.map { "; entries still refused: \($0)" } ?? "; entries allowed"), [])
        case .flatten, .status:
            throw ControlError("\(request.command.rawValue) is carried out by the executor, not the account's controls")
        }
    }
}

/// The account as its executor sees it, for `tradebus status` and the cockpit.
public struct AccountStatus: Sendable, Hashable, Codable {
    /// One open position, as the status shows it.
    public struct Position: Sendable, Hashable, Codable {
        public var symbol: String
        public var side: PositionSide
        public var quantity: Money
        public var entryPrice: Money
        public var stopLoss: Money?
        /// Stop orders working at the venue for it.
        public var workingStops: Int
        public var leverage: Int
        /// The estimated liquidation price, and how far the entry is from it (a fraction).
        public var liquidationPrice: Money?
        public var liquidationDistance: Money?
        /// The venue's price for the symbol now (its last trade; the paper venue's last candle close).
        public var price: Money?
        /// The profit or loss at `price`, before fees.
        public var unrealizedPnL: Money? {
            guard let price else { return nil }
            return (side == .long ? price - entryPrice : entryPrice - price) * quantity
        }
        /// A `Position` with the fields given.
        public init(
            symbol: String,
            side: PositionSide,
            quantity: Money,
            entryPrice: Money,
            stopLoss: Money?,
            workingStops: Int,
            leverage: Int,
            liquidationPrice: Money?,
            liquidationDistance: Money?,
            price: Money? = nil
        ) {
            self.price = price
            self.symbol = symbol
            self.side = side
            self.quantity = quantity
            self.entryPrice = entryPrice
            self.stopLoss = stopLoss
            self.workingStops = workingStops
            self.leverage = leverage
            self.liquidationPrice = liquidationPrice
            self.liquidationDistance = liquidationDistance
        }
    }

    public var account: String
    public var venue: String
    public var mode: AccountControl.Mode
    public var control: AccountControl
    public var equity: Money?
    public var positions: [Position]
    public var lastReconciliation: ReconciliationReport?
    /// The venue account's request budget (none on the paper venue).
    public var rateLimit: RateLimitStatus?
    public var time: Date

    /// An `AccountStatus` with the fields given.
    public init(
        account: String,
        venue: String,
        control: AccountControl,
        equity: Money?,
        positions: [Position],
        lastReconciliation: ReconciliationReport?,
        rateLimit: RateLimitStatus? = nil,
        time: Date
    ) {
        self.rateLimit = rateLimit
        self.account = account
        self.venue = venue
        self.mode = control.mode
        self.control = control
        self.equity = equity
        self.positions = positions
        self.lastReconciliation = lastReconciliation
        self.time = time
    }
}

/// What one reconciliation pass found and did.
public struct ReconciliationReport: Sendable, Hashable, Codable {
    public var time: Date
    /// One line per mismatch and what was done about it; empty when store and venue agreed.
    public var findings: [String]
    /// Mismatches it could not resolve (they put the account in REDUCING mode).
    public var unresolved: [String]

    /// A `ReconciliationReport` with the fields given.
    public init(time: Date, findings: [String] = [], unresolved: [String] = []) {
        self.time = time
        self.findings = findings
        self.unresolved = unresolved
    }
}
