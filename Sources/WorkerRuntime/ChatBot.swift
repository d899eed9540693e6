import Foundation
import Logging
import Notifiers
import ServiceLifecycle
import Synchronization
import TradingCore

/// The Telegram bot's command side: long-polls `getUpdates` and answers the chats on
/// `TELEGRAM_ALLOWED_CHAT_IDS` (every other message is ignored and logged). Reads come from the store
/// and the executor's status; a command that changes the account (`/halt`, `/resume`, `/reset`,
/// `/flatten`) goes only once its inline button is pressed within a minute, over the same
/// `control.<account>` path as `tradebus control` and the cockpit, recorded as `telegram:<chat>`. One
/// bot per token polls (a lease in the store), as Telegram allows only one `getUpdates` at a time.
public struct ChatBotService: Service {
    /// Sends a command to the account's executor and returns its reply.
    public typealias Control = @Sendable (ControlRequest) async throws -> ControlReply

    let api: TelegramBotAPI
    let allowedChats: Set<Int64>
    let store: any TradeStore
    let control: Control
    let logger: Logger
    let holder: String
    /// Seconds a `getUpdates` waits for news.
    let wait: Int
    let now: @Sendable () -> Date
    let confirmations = Confirmations()

    /// The pending confirmations, shared by every update (a class: `Mutex` cannot be copied).
    final class Confirmations: Sendable {
        let state = Mutex(ChatConfirmations())
    }

    /// A `ChatBotService` with the fields given.
    public init(
        api: TelegramBotAPI,
        allowedChats: Set<Int64>,
        store: any TradeStore,
        control: @escaping Control,
        logger: Logger,
        holder: String,
        wait: Int = 25,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.api = api
        self.allowedChats = allowedChats
        self.store = store
        self.control = control
        self.logger = logger
        self.holder = holder
        self.wait = wait
        self.now = now
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await poll() }
        } catch is CancellationError {}
        try? await store.releaseLease("telegram-bot", holder: holder)
    }

    func poll() async throws {
        var offset: Int64?
        var failures = 0
        var waiting = false
        while true {
            // Only the lease's holder polls; another notifier waits its turn.
            let leased =
                (try? await store.acquireLease(
                    "telegram-bot",
                    holder: holder,
                    now: Date(),
                    until: Date().addingTimeInterval(TimeInterval(wait) + 60)
                )) ?? false
            guard leased else {
                if !waiting { logger.notice("chat bot: another notifier polls Telegram; waiting for its lease") }
                waiting = true
                try await Task.sleep(for: .seconds(15))
                continue
            }
            waiting = false
            let updates: [TelegramBotAPI.Update]
            do {
                updates = try await api.updates(offset: offset, wait: wait)
                failures = 0
            } catch {
                failures += 1
                let pause = error.retryAfter ?? .seconds(min(60, 1 << min(failures, 6)))
                logger.warning(
                    "chat bot: getUpdates failed; trying again",
                    metadata: ["error": "\(error.message)", "status": "\(error.status.map(String.init) ?? "-")"]
                )
                try await Task.sleep(for: min(pause, .seconds(300)))
                continue
            }
            for update in updates {
                offset = max(offset ?? 0, update.update_id + 1)
                await handle(update)
            }
        }
    }

    /// Answers one update from an allowed chat; ignores (and logs) any other.
    func handle(_ update: TelegramBotAPI.Update) async {
        if let message = update.message {
            guard allowedChats.contains(message.chat.id) else {
                logger.notice(
                    "chat bot: ignored a message from a chat not allowed",
                    metadata: ["chat": "\(message.chat.id)"]
                )
                return
            }
            let (text, button) = await answer(message.text ?? "", chat: message.chat.id)
            await deliver { () async throws(SinkError) in try await api.send(text, to: message.chat.id, button: button)
            }
        } else if let query = update.callback_query {
            guard let chat = query.message?.chat.id, allowedChats.contains(chat) else {
                logger.notice(
                    "chat bot: ignored a button from a chat not allowed",
                    metadata: ["chat": "\(query.message?.chat.id.description ?? "-")"]
                )
                return
            }
            await pressed(query, chat: chat)
        }
    }

    /// The answer to one message, and the button it carries, if any.
    func answer(_ text: String, chat: Int64) async -> (String, (label: String, data: String)?) {
        let by = "telegram:\(chat)"
        do {
            switch ChatCommand.parse(text) {
            case .failure(let error):
                return ("\(error.message)\n\n\(ChatCommand.helpText)", nil)
            case .success(.help):
                return (ChatCommand.helpText, nil)
            case .success(.status):
                return (try await control(ControlRequest(command: .status, by: by)).text, nil)
            case .success(.positions):
                return (ChatReplies.positions(try await control(ControlRequest(command: .status, by: by))), nil)
            case .success(.halts):
                return (ChatReplies.halts(try await control(ControlRequest(command: .status, by: by))), nil)
            case .success(.trades(let count)):
                return (ChatReplies.trades(try await store.trades(since: nil), count: count), nil)
            case .success(.pnl(let period)):
                let trades = try await store.trades(since: now().addingTimeInterval(-period.seconds))
                return (ChatReplies.pnl(trades, period: period, now: now()), nil)
            case .success(.why(let id)):
                guard let trade = try await store.trade(id: id) else {
                    return ("There is no trade \(id); /trades shows the ids.", nil)
                }
                return (ChatReplies.why(try await TradeExplanation.load(trade, from: store)), nil)
            case .success(.control(let command, let argument)):
                let request = ControlRequest(command: command, argument: argument, by: by)
                let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
                let lifetime = confirmations.state.withLock { state in
                    state.ask(request, chat: chat, id: id, now: now())
                    return Int(state.lifetime)
                }
                let what = "\(command.rawValue)\(argument.map { " \($0)" } ?? "")"
                return (
                    "Send '\(what)' to the executor? Press the button within \(lifetime) s; nothing happens without it.",
                    (label: "Confirm \(what)", data: "confirm:\(id)")
                )
            }
        } catch {
            return ("That failed: \(error). Try again, or look at the cockpit.", nil)
        }
    }

    /// A confirmation button: sends its command if it is still good, and says what came of it.
    func pressed(_ query: TelegramBotAPI.Update.CallbackQuery, chat: Int64) async {
        let id = query.data.flatMap { $0.hasPrefix("confirm:") ? String($0.dropFirst("confirm:".count)) : nil } ?? ""
        let verdict = confirmations.state.withLock { $0.confirm(id, chat: chat, now: now()) }
        let result: String
        switch verdict {
        case .failure(let error):
            result = error.message
        case .success(let request):
            do {
                let reply = try await control(request)
                result = (reply.ok ? "Done: " : "Refused: ") + reply.message
            } catch {
                result = "The executor did not answer: \(error). Look at /status before trying again."
            }
        }
        await deliver { () async throws(SinkError) in try await api.answerButton(query.id, text: result) }
        if let message = query.message {
            await deliver { () async throws(SinkError) in try await api.edit(message.message_id, in: chat, text: result)
            }
        }
    }

    /// One call to Telegram, again after its `retry_after` on a 429 (three tries, waits of at most 60 s).
    func deliver<T>(_ call: () async throws(SinkError) -> T) async {
        for attempt in 1...3 {
            do {
                _ = try await call()
                return
            } catch {
                guard error.status == 429, attempt < 3 else {
                    logger.warning("chat bot: a reply was not delivered", metadata: ["error": "\(error.message)"])
                    return
                }
                try? await Task.sleep(for: min(error.retryAfter ?? .seconds(1), .seconds(60)))
            }
        }
    }
}
