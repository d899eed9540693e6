import Foundation
import Logging
import Notifiers
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing
import TradingCore

@testable import WorkerRuntime

/// The Telegram bot's commands against a local Bot API server (`FakeTelegramBot`), on a SQLite record
/// with one trade; the executor's control path is a recorder answering as the executor does.
@Suite("Telegram chat bot (local Bot API server, SQLite store)")
struct ChatBotTests {
    static let token = "123456:TEST-token-abcdef"
    static let allowed: Int64 = 42
    static let stranger: Int64 = 7

    /// The bot running against a fake Telegram; `body` gets the fake, the commands sent to the executor,
    /// and a way to move the bot's clock on.
    func withBot(
        _ body: (
            FakeTelegramBot, @escaping @Sendable () -> [ControlRequest], @escaping @Sendable (TimeInterval) -> Void
        )
            async throws -> Void
    ) async throws {
        let telegram = try await FakeTelegramBot.start(token: Self.token)
        let store = try await SeededTrade.store()
        let sent = Mutex<[ControlRequest]>([])
        let offset = Mutex<TimeInterval>(0)
        let status = SeededTrade.status
        let bot = ChatBotService(
            api: TelegramBotAPI(apiBase: telegram.base, token: Self.token),
            allowedChats: [Self.allowed],
            store: store,
            control: { request in
                sent.withLock { $0.append(request) }
                return ControlReply(ok: true, message: "\(request.command.rawValue) done", status: status)
            },
            logger: Logger(label: "chat-bot-test"),
            holder: "test-\(UUID().uuidString)",
            wait: 1,
            now: { Date().addingTimeInterval(offset.withLock { $0 }) }
        )
        let group = ServiceGroup(services: [bot], logger: Logger(label: "chat-bot-test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(telegram, { sent.withLock { $0 } }, { seconds in offset.withLock { $0 += seconds } })
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await store.close()
        await telegram.stop()
    }

    /// The bot's next message to `chat` after `count` earlier ones.
    func reply(_ telegram: FakeTelegramBot, to chat: Int64, after count: Int) async -> FakeTelegramBot.Sent? {
        _ = await eventually(timeout: .seconds(15)) {
            telegram.sent.filter { $0.method == "sendMessage" && $0.chat == chat }.count > count
        }
        let messages = telegram.sent.filter { $0.method == "sendMessage" && $0.chat == chat }
        return messages.count > count ? messages[count] : nil
    }

    @Test("each command answers: status, positions, trades, pnl, halts, why, help, and a clear error otherwise")
    func commands() async throws {
        try await withBot { telegram, sent, _ in
            let cases: [(String, [String])] = [
                ("/status", ["account default on paper: NORMAL", "ETHUSDT"]),
                (
                    "/positions",
                    ["ETHUSDT SHORT 1.5 @ 3000 x3, now 2950 (+75.00 USD), stop 3090, liquidation 32.6 % away"]
                ),
                ("/trades", ["BTCUSDT LONG +39.90 USD (take_profit)", "/why t1"]),
                ("/pnl month", ["PnL over the last month:"]),
                ("/halts", ["Mode NORMAL", "daily_loss: ok", "max_drawdown: ok"]),
                ("/help", ["/why TRADE_ID"]),
                ("/trades 99", ["/trades takes a count from 1 to 50", "/status: mode"]),
                ("/explode", ["there is no /explode"]),
                ("/why nope", ["There is no trade nope"]),
            ]
            for (index, (command, parts)) in cases.enumerated() {
                telegram.type(command, chat: Self.allowed)
                let answer = try #require(await reply(telegram, to: Self.allowed, after: index), "\(command)")
                for part in parts { #expect(answer.text?.contains(part) == true, "\(command): \(answer.text ?? "")") }
            }
            #expect(sent().allSatisfy { $0.command == .status && $0.by == "telegram:42" })
        }
    }

    @Test("/why names the trade's decision, its risk checks with their figures, and its fills")
    func why() async throws {
        try await withBot { telegram, _, _ in
            telegram.type("/why t1", chat: Self.allowed)
            let answer = try #require(await reply(telegram, to: Self.allowed, after: 0)?.text)
            for part in [
                "BTCUSDT LONG", "+39.90 USD (take_profit)", "MACD crossed up over rising RSI", "Risk checks:",
                "✓ stop_distance: 2.06 % (0.50 % to 7.00 %)", "Fill BUY 0.01",
            ] {
                #expect(answer.contains(part), "\(part) in \(answer)")
            }
        }
    }

    @Test("a chat not on TELEGRAM_ALLOWED_CHAT_IDS gets nothing, its commands and buttons do nothing")
    func stranger() async throws {
        try await withBot { telegram, sent, _ in
            telegram.type("/status", chat: Self.stranger)
            telegram.type("/halt", chat: Self.stranger)
            telegram.press("confirm:anything", chat: Self.stranger)
            // The allowed chat's command after them is answered: the stranger's were read and dropped.
            telegram.type("/help", chat: Self.allowed)
            #expect(await reply(telegram, to: Self.allowed, after: 0) != nil)
            #expect(telegram.sent.allSatisfy { $0.chat == Self.allowed || $0.method == "answerCallbackQuery" })
            #expect(!telegram.sent.contains { $0.method == "answerCallbackQuery" })
            #expect(sent().isEmpty)
        }
    }

    @Test("/flatten goes only once its button is pressed, in the same chat, within a minute, and only once")
    func confirmation() async throws {
        try await withBot { telegram, sent, advance in
            telegram.type("/flatten btcusdt", chat: Self.allowed)
            let asked = try #require(await reply(telegram, to: Self.allowed, after: 0))
            let button = try #require(asked.button)
            #expect(asked.text?.contains("flatten BTCUSDT") == true && button.hasPrefix("confirm:"))
            try await Task.sleep(for: .seconds(2))
            #expect(sent().isEmpty, "nothing without the button")
            telegram.press(button, chat: Self.stranger)
            try await Task.sleep(for: .milliseconds(500))
            #expect(sent().isEmpty, "another chat's press does nothing")
            telegram.press(button, chat: Self.allowed)
            #expect(await eventually { sent().count == 1 })
            let request = try #require(sent().first)
            #expect(request.command == .flatten && request.argument == "BTCUSDT" && request.by == "telegram:42")
            #expect(
                await eventually {
                    telegram.sent.contains { $0.method == "editMessageText" && $0.text == "Done: flatten done" }
                }
            )
            // Pressed again: nothing waits for it any more.
            telegram.press(button, chat: Self.allowed)
            #expect(await eventually { telegram.sent.filter { $0.method == "answerCallbackQuery" }.count == 2 })
            #expect(telegram.sent.last { $0.method == "answerCallbackQuery" }?.text?.contains("nothing waits") == true)
            #expect(sent().count == 1)

            // A halt confirmed after its minute is over does nothing.
            telegram.type("/halt", chat: Self.allowed)
            let halt = try #require(await reply(telegram, to: Self.allowed, after: 1)?.button)
            advance(61)
            telegram.press(halt, chat: Self.allowed)
            #expect(await eventually { telegram.sent.filter { $0.method == "answerCallbackQuery" }.count == 3 })
            #expect(telegram.sent.last { $0.method == "answerCallbackQuery" }?.text?.contains("expired") == true)
            #expect(sent().count == 1)
        }
    }

    @Test("a 429 from Telegram is waited out for its retry_after, and the answer still arrives")
    func throttled() async throws {
        try await withBot { telegram, _, _ in
            // Let the first long poll start, then throttle the next calls: a getUpdates and the reply.
            try await Task.sleep(for: .milliseconds(300))
            telegram.type("/help", chat: Self.allowed)
            _ = await eventually { telegram.sent.isEmpty == false }
            telegram.throttle([1])
            let started = ContinuousClock.now
            telegram.type("/halts", chat: Self.allowed)
            let answer = try #require(await reply(telegram, to: Self.allowed, after: 1))
            #expect(answer.text?.contains("Mode NORMAL") == true)
            #expect(ContinuousClock.now - started >= .seconds(1))
        }
    }
}
