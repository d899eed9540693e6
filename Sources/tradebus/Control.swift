import ArgumentParser
import Foundation
import Logging
import TradingCore
import TradingServices
import WorkerRuntime

/// `tradebus control …`: an operator's command to the executor of an account, over the bus.
struct Control: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send an operator command to an executor (AMQP_URL) and print its reply.",
        discussion: """
            Commands: halt, resume, reset-breaker daily_loss|consecutive_losses|max_drawdown|all, \
            flatten SYMBOL|all, reducing on|off, status. The executor checks and records each one (who, \
            when, what, result). Exit status 1 when the executor refuses it, 2 when nobody answers.
            """
    )

    @Argument(help: "halt, resume, reset-breaker, flatten, reducing or status.") var command: String
    @Argument(help: "The breaker, the symbol, or on/off.") var argument: String?
    @OptionGroup var options: ControlOptions

    func run() async throws {
        guard let command = ControlRequest.Command(rawValue: command) else {
            throw ValidationError(
                "unknown command '\(command)': one of \(ControlRequest.Command.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        try await options.send(ControlRequest(command: command, argument: argument, by: options.by))
    }
}

/// `tradebus status`: the account as its executor sees it.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show an account's mode, halts and breakers, positions with stops and distance to liquidation, and the last reconciliation."
    )
    @OptionGroup var options: ControlOptions

    func run() async throws {
        try await options.send(ControlRequest(command: .status, by: options.by))
    }
}

struct ControlOptions: ParsableArguments {
    @Option(help: "The executor's account (EXECUTOR_ACCOUNT).") var account =
        ProcessInfo.processInfo.environment["EXECUTOR_ACCOUNT"] ?? "default"
    @Option(help: "Who sends the command (recorded).") var by =
        ProcessInfo.processInfo.environment["USER"] ?? "operator"
    @Option(help: "Seconds to wait for the reply.") var timeout = 10.0
    @Flag(help: "Print the reply as JSON.") var json = false

    func send(_ unchecked: ControlRequest) async throws {
        let request: ControlRequest
        do { request = try unchecked.validated() } catch { throw ValidationError(error.message) }
        var logger = Logger(label: "tradebus-control")
        logger.logLevel = .warning
        let bus = try Infrastructure.bus(try SettingsReader(), instance: "tradebus-control", logger: logger)
        try await bus.connect()
        let reply: ControlReply
        do {
            reply = try await ControlClient.send(
                request,
                account: account,
                bus: bus,
                timeout: .milliseconds(Int(timeout * 1_000))
            )
        } catch let failure as ControlClient.Failure {
            await bus.shutdown()
            FileHandle.standardError.write(Data("tradebus control: \(failure)\n".utf8))
            throw ExitCode(2)
        }
        await bus.shutdown()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(reply), as: UTF8.self))
        } else {
            print(reply.text)
        }
        if !reply.ok { throw ExitCode(1) }
    }
}
