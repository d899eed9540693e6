import Foundation

/// A command typed to the chat bot (`/status`, `/why TRADE_ID`, `/halt`, …), parsed with no I/O.
public enum ChatCommand: Sendable, Hashable {
    /// The period `/pnl` sums.
    public enum Period: String, Sendable, Hashable, CaseIterable {
        case day, week, month

        /// How far back it reaches.
        public var seconds: TimeInterval {
            switch self {
            case .day: 86_400
            case .week: 7 * 86_400
            case .month: 30 * 86_400
            }
        }
    }

    case help
    case status
    case positions
    case trades(count: Int)
    case pnl(Period)
    case halts
    case why(tradeID: String)
    /// A command that changes the account: it waits for its confirmation button.
    case control(ControlRequest.Command, argument: String?)

    /// What the bot answers to `/help` and to a command it does not know.
    public static let helpText = """
        /status: mode, equity, breakers and positions
        /positions: open positions with their stops
        /trades [n]: the last n trades (default 5)
        /pnl [day|week|month]: realised PnL, fees and funding
        /halts: halts and breakers
        /why TRADE_ID: why a trade was made, and how it went
        /halt, /resume, /reset BREAKER, /flatten SYMBOL|all: each asks for a confirmation first
        """

    /// The command in `text`, or what is wrong with it. `/cmd@botname` is taken as `/cmd`.
    public static func parse(_ text: String) -> Result<ChatCommand, ChatCommandError> {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let first = words.first, first.hasPrefix("/") else {
            return .failure(ChatCommandError("commands start with /; send /help for the list"))
        }
        let name = String(first.dropFirst().prefix { $0 != "@" }).lowercased()
        let arguments = Array(words.dropFirst())
        func one(_ what: String) -> Result<String, ChatCommandError> {
            guard arguments.count == 1 else {
                return .failure(ChatCommandError("/\(name) takes \(what)"))
            }
            return .success(arguments[0])
        }
        switch name {
        case "help", "start": return .success(.help)
        case "status": return .success(.status)
        case "positions": return .success(.positions)
        case "halts": return .success(.halts)
        case "trades":
            guard let text = arguments.first else { return .success(.trades(count: 5)) }
            guard arguments.count == 1, let count = Int(text), (1...50).contains(count) else {
                return .failure(
                    ChatCommandError("/trades takes a count from 1 to 50, not '\(arguments.joined(separator: " "))'")
                )
            }
            return .success(.trades(count: count))
        case "pnl":
            guard let text = arguments.first else { return .success(.pnl(.day)) }
            guard arguments.count == 1, let period = Period(rawValue: text.lowercased()) else {
                return .failure(
                    ChatCommandError("/pnl takes day, week or month, not '\(arguments.joined(separator: " "))'")
                )
            }
            return .success(.pnl(period))
        case "why": return one("a trade id, as /trades shows it").map { .why(tradeID: $0) }
        case "halt", "resume":
            guard arguments.isEmpty else { return .failure(ChatCommandError("/\(name) takes no argument")) }
            return .success(.control(name == "halt" ? .halt : .resume, argument: nil))
        case "reset":
            return one("a breaker: daily_loss, consecutive_losses, max_drawdown or all").flatMap {
                validated(.resetBreaker, $0)
            }
        case "flatten":
            return one("a symbol or all").flatMap {
                validated(.flatten, $0.lowercased() == "all" ? "all" : $0.uppercased())
            }
        default:
            return .failure(ChatCommandError("there is no /\(name); send /help for the list"))
        }
    }

    static func validated(
        _ command: ControlRequest.Command,
        _ argument: String
    ) -> Result<ChatCommand, ChatCommandError> {
        do {
            let request = try ControlRequest(command: command, argument: argument, by: "chat").validated()
            return .success(.control(request.command, argument: request.argument))
        } catch {
            return .failure(ChatCommandError(error.message))
        }
    }
}

/// Why the bot could not take a command, said to the chat.
public struct ChatCommandError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// A `ChatCommandError` saying `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Control commands waiting for their confirmation button, pure: events and time in, a verdict out.
/// A confirmation lasts `lifetime`; it is good once, and only in the chat that asked.
public struct ChatConfirmations: Sendable {
    /// One command waiting.
    public struct Pending: Sendable, Hashable {
        public var request: ControlRequest
        public var chat: Int64
        public var expires: Date
    }

    public let lifetime: TimeInterval
    var pending: [String: Pending] = [:]

    /// Confirmations that last `lifetime` seconds (60 by default).
    public init(lifetime: TimeInterval = 60) { self.lifetime = lifetime }

    /// Keeps `request` from `chat` under `id` (the button's data) until it expires.
    public mutating func ask(_ request: ControlRequest, chat: Int64, id: String, now: Date) {
        pending = pending.filter { $0.value.expires > now }
        pending[id] = Pending(request: request, chat: chat, expires: now.addingTimeInterval(lifetime))
    }

    /// The command the button `id` confirms, taken out; or why it cannot go.
    public mutating func confirm(_ id: String, chat: Int64, now: Date) -> Result<ControlRequest, ChatCommandError> {
        guard let waiting = pending[id], waiting.chat == chat else {
            return .failure(
                ChatCommandError("nothing waits for this confirmation (already done, or from another chat)")
            )
        }
        pending[id] = nil
        guard waiting.expires > now else {
            return .failure(ChatCommandError("this confirmation expired; send the command again"))
        }
        return .success(waiting.request)
    }
}
