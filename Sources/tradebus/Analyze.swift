import ArgumentParser
import Foundation
import Logging
import TradingCore
import TradingServices
import WorkerRuntime

/// Which analyst `analyze` and `evaluate` ask: the provider, its server and model, over the same
/// environment keys as ai-analyst.
struct AnalystOptions: ParsableArguments {
    enum Provider: String, ExpressibleByArgument, CaseIterable { case rules, openai, anthropic }

    @Option(help: "rules, openai or anthropic.") var provider: Provider = .rules
    @Option(help: "The provider's base URL.") var baseURL: String?
    @Option(help: "The model.") var model: String?
    @Option(help: "A file holding the API key (else OPENAI_API_KEY / ANTHROPIC_API_KEY).") var apiKeyFile: String?
    @Flag(help: "Show the models the context anonymised: no symbol, dates moved, prices rescaled (LLM_ANONYMISE).")
    var anonymise = false

    /// The analyst's configuration: the environment, with these options over it.
    func configuration() throws -> AnalystConfiguration {
        var environment = ProcessInfo.processInfo.environment
        environment["ANALYST_PROVIDERS"] = provider.rawValue
        let prefix = provider == .anthropic ? "ANTHROPIC" : "OPENAI"
        if let baseURL { environment["\(prefix)_BASE_URL"] = baseURL }
        if let model { environment["\(prefix)_MODEL"] = model }
        if let apiKeyFile {
            environment["\(prefix)_API_KEY_FILE"] = apiKeyFile
            environment["\(prefix)_API_KEY"] = nil
        }
        if anonymise { environment["LLM_ANONYMISE"] = "true" }
        do { return try AnalystConfiguration.read(try SettingsReader(environment: environment)) } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The panel, logging only errors (a command's output is its answer).
    func panel(anonymise: Bool? = nil) throws -> AnalystPanel {
        var logger = Logger(label: "tradebus.analyze")
        logger.logLevel = .error
        var configuration = try configuration()
        if let anonymise { configuration.anonymise = anonymise }
        return try configuration.panel(cache: nil, logger: logger)
    }

    /// A file's symbol: its name up to the first '-'.
    static func symbol(fromFile path: String) -> String {
        (URL(fileURLWithPath: path).lastPathComponent.split(separator: "-").first.map(String.init) ?? "SYMBOL")
            .uppercased()
    }

    /// The candles of a file and their interval.
    static func candles(_ path: String) throws -> (candles: [Candle], interval: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read --data '\(path)'")
        }
        let candles: [Candle]
        do { candles = try CandleFile.parse(text) } catch { throw ValidationError("\(path): \(error)") }
        guard let interval = CandleInterval.detect(candles) else {
            throw ValidationError("\(path): cannot tell the candles' interval")
        }
        return (candles, interval)
    }
}

/// `tradebus analyze`: the analyst once, on the state after the last candle of a file.
struct Analyze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the analyst once about the state after the last candle of a file; prints the decision as JSON.",
        discussion:
            "Limits (MIN_AI_CONFIDENCE, MAX_LEVERAGE, MIN_/MAX_STOP_LOSS_PERCENT, ...) and LLM_* bounds come from the environment, as for ai-analyst."
    )

    @Option(help: "A candle file (any format tradebus indicators reads).") var data: String
    @Option(help: "The symbol; by default the file name up to its first '-'.") var symbol: String?
    @OptionGroup var analyst: AnalystOptions
    @Flag(help: "Also print, on stderr, the prompt, each raw reply and why any answer was refused.") var verbose = false

    func run() async throws {
        let (candles, interval) = try AnalystOptions.candles(data)
        let symbol = self.symbol ?? AnalystOptions.symbol(fromFile: data)
        let panel = try analyst.panel()
        let context = AnalysisContext.after(candles, symbol: symbol, interval: interval)
        // One question only warns: a replay or a backtest refuses (--allow-lookahead).
        let asOf = Date(timeIntervalSince1970: Double(context.candleTime) / 1000)
        for finding in try analyst.configuration().lookAhead(firstCandle: asOf) {
            FileHandle.standardError.write(Data("tradebus analyze: look-ahead warning: \(finding)\n".utf8))
        }
        let verdict = await panel.decide(context)
        if verbose { FileHandle.standardError.write(Data(Self.explain(verdict).utf8)) }
        let p = verdict.proposal
        let output: [String: JSONValue] = [
            "action": .string(p.action.rawValue), "confidence": .number(p.confidence),
            "leverage": .number(Double(p.leverage)),
            "entry": p.entry.map(JSONValue.number) ?? .null, "stop_loss": p.stopLoss.map(JSONValue.number) ?? .null,
            "take_profit": p.takeProfit.map(JSONValue.number) ?? .null, "reasoning": .string(p.reasoning),
            "provider": .string(verdict.provider), "model": .string(verdict.model),
            "attempts": .number(Double(verdict.attempts)),
            "prompt_version": .string(verdict.promptVersion),
            "output_modes": .array(verdict.outputModes.map(JSONValue.string)),
            "grounding": .array(verdict.grounding.map(JSONValue.string)),
            "refused": .array(verdict.refusals.map(JSONValue.string)),
            "llm_cost": .number(verdict.cost),
            "tokens": .object([
                "input": .number(Double(verdict.inputTokens)), "output": .number(Double(verdict.outputTokens)),
            ]),
            "latency_ms": .number((verdict.latency.timeInterval * 1000).rounded()),
            "anonymised": verdict.anonymisation.map(JSONValue.string) ?? .null,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(output), as: UTF8.self))
    }

    /// The prompt, each raw reply and the reasons, for a person reading why a model did not trade.
    static func explain(_ verdict: AnalystPanel.Verdict) -> String {
        var text = "== prompt (\(verdict.promptVersion))\n\(verdict.prompt ?? "(none: \(verdict.provider) decided)")\n"
        for reply in verdict.replies { text += "== reply \(reply)\n" }
        if verdict.replies.isEmpty { text += "== no reply\n" }
        for failure in verdict.failures { text += "== failed: \(failure)\n" }
        for refusal in verdict.refusals { text += "== refused: \(refusal)\n" }
        text += "== decision: \(verdict.proposal.action.rawValue): \(verdict.proposal.reasoning)\n"
        return text
    }
}
