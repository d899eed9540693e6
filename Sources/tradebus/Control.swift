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
            print(Self.render(reply))
        }
        if !reply.ok { throw ExitCode(1) }
    }

    /// The reply as an operator reads it.
    static func render(_ reply: ControlReply) -> String {
        var lines = [(reply.ok ? "ok: " : "refused: ") + reply.message]
        guard let status = reply.status else { return lines.joined(separator: "\n") }
        lines.append(
            "account \(status.account) on \(status.venue): \(status.mode.rawValue.uppercased())"
                + (status.equity.map { ", equity \($0)" } ?? "")
        )
        if let halt = status.control.operatorHalt { lines.append("  operator halt by \(halt.by) since \(halt.since)") }
        if let reducing = status.control.reducing {
            lines.append("  REDUCING by \(reducing.by) since \(reducing.since): \(reducing.reason)")
        }
        if let breakers = status.control.breakers {
            for kind in TradingHalts.Halt.Kind.allCases {
                let state =
                    breakers.tripped.first { $0.kind == kind }.map { "TRIPPED since \($0.since): \($0.reason)" } ?? "ok"
                lines.append("  breaker \(kind.rawValue): \(state)")
            }
            lines.append(
                "  day's realised PnL \(breakers.dayRealised), losses in a row \(breakers.consecutiveLosses), equity peak \(breakers.peakEquity)"
            )
        } else {
            lines.append("  breakers: no equity reading yet")
        }
        lines.append(status.positions.isEmpty ? "no open positions" : "positions:")
        for p in status.positions {
            let stop = p.stopLoss.map { "stop \($0)" } ?? "NO STOP"
            let liquidation = p.liquidationPrice.map { "liquidation ~\($0)" } ?? ""
            let distance =
                p.liquidationDistance.map {
                    " (\(($0.doubleValue * 100).formatted(.number.precision(.fractionLength(1)))) % away)"
                }
                ?? ""
            lines.append(
                "  \(p.symbol) \(p.side.rawValue) \(p.quantity) @ \(p.entryPrice) x\(p.leverage), \(stop), \(p.workingStops) stop order(s), \(liquidation)\(distance)"
            )
        }
        if let limit = status.rateLimit {
            var line =
                "\(limit.venue) request budget: \(limit.used) of \(limit.limit) per \(Int(limit.windowSeconds)) s (polling up to \(limit.pollLimit))"
            if let until = limit.blockedUntil {
                line += limit.banned ? "; BANNED until \(until)" : "; told to wait until \(until)"
            }
            lines.append(line)
        }
        if let report = status.lastReconciliation {
            lines.append(
                "last reconciliation \(report.time): "
                    + (report.findings.isEmpty ? "store and venue agree" : "\(report.findings.count) finding(s)")
            )
            for finding in report.findings { lines.append("  - \(finding)") }
            for open in report.unresolved { lines.append("  ! unresolved: \(open)") }
        } else {
            lines.append("no reconciliation yet")
        }
        return lines.joined(separator: "\n")
    }
}
