import ArgumentParser
import Benchmarks
import Foundation
import TradingCore
import TradingServices

/// `tradebus evaluate`: the analyst over many real contexts, and what came of it: how many answers were
/// valid, how they were constrained, grounded or refused, the HOLD rate, latency and tokens.
struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the analyst about many contexts from candle files; report valid answers, output modes, "
            + "grounding, HOLD rate, latency and tokens.",
        discussion:
            "Contexts are taken at evenly spaced candles of each file, after a warm-up. The analyst's settings "
            + "(GROUNDING, LLM_REPAIR_ATTEMPTS, LLM_* bounds) come from the environment, as for ai-analyst."
    )

    @Option(help: "A candle file; repeat for more.") var data: [String]
    @Option(help: "Contexts in all, shared between the files.") var contexts = 100
    @Option(help: "Candles before the first context, so the indicators are warm.") var warmUp = 100
    @OptionGroup var analyst: AnalystOptions
    @Flag(
        help:
            "Ask each context twice, plain and anonymised, and report how often the action agrees: a model that trades the plain market differently may be remembering it."
    ) var anonymiseProbe = false
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard contexts > 0 else { throw ValidationError("--contexts must be at least 1") }
        guard !data.isEmpty else { throw ValidationError("--data is required") }
    }

    func run() async throws {
        var questions: [AnalysisContext] = []
        for (index, path) in data.enumerated() {
            let (candles, interval) = try AnalystOptions.candles(path)
            let share = contexts / data.count + (index < contexts % data.count ? 1 : 0)
            questions += Self.contexts(
                candles,
                symbol: AnalystOptions.symbol(fromFile: path),
                interval: interval,
                count: share,
                warmUp: warmUp
            )
        }
        let panel = try analyst.panel(anonymise: anonymiseProbe ? false : nil)
        let disguised = anonymiseProbe ? try analyst.panel(anonymise: true) : nil
        var tally = Tally()
        for (index, context) in questions.enumerated() {
            let verdict = await panel.decide(context)
            tally.add(verdict)
            if let disguised {
                let other = await disguised.decide(context)
                tally.probe(plain: verdict, anonymised: other)
            }
            FileHandle.standardError.write(
                Data(
                    "\r\(index + 1)/\(questions.count): in schema \(tally.wellFormed), accepted \(tally.valid), holds \(tally.holds)   "
                        .utf8
                )
            )
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let summary = tally.summary(model: panel.members, prompt: panel.prompt.version)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(tally.text(summary))
        }
    }

    /// Contexts at `count` evenly spaced candles after `warmUp`, each seeing only the candles up to it.
    static func contexts(
        _ candles: [Candle],
        symbol: String,
        interval: String,
        count: Int,
        warmUp: Int
    ) -> [AnalysisContext] {
        guard candles.count > warmUp, count > 0 else { return [] }
        let step = max(1, (candles.count - warmUp) / count)
        let picks = Set(stride(from: warmUp, to: candles.count, by: step).prefix(count))
        var indicators = IndicatorSet()
        var found: [AnalysisContext] = []
        for (index, candle) in candles.enumerated() {
            let snapshot = indicators.update(candle)
            if picks.contains(index) {
                found.append(AnalysisContext(symbol: symbol, interval: interval, timeframes: [interval: snapshot]))
            }
        }
        return found
    }

    /// What the answers came to.
    struct Tally {
        var decisions = 0
        /// Answers in the schema.
        var wellFormed = 0
        /// Answers that passed every check (schema, framework, grounding).
        var valid = 0
        var validFirstTime = 0
        var failed = 0
        var holds = 0
        var modes: [String: Int] = [:]
        var grounding: [String: Int] = [:]
        var reasons: [String: Int] = [:]
        var latencies: [Double] = []
        var inputTokens = 0
        var outputTokens = 0
        var cost = 0.0
        /// The anonymisation probe: contexts asked both ways, and those answered with the same action.
        var probed = 0
        var probeAgreed = 0

        mutating func probe(plain: AnalystPanel.Verdict, anonymised: AnalystPanel.Verdict) {
            probed += 1
            if plain.proposal.action == anonymised.proposal.action { probeAgreed += 1 }
        }

        mutating func add(_ verdict: AnalystPanel.Verdict) {
            decisions += 1
            if verdict.failures.isEmpty && verdict.wellFormed > 0 { wellFormed += 1 }
            if verdict.invalid.isEmpty && verdict.failures.isEmpty {
                valid += 1
                if verdict.refusals.isEmpty { validFirstTime += 1 }
            }
            if !verdict.failures.isEmpty { failed += 1 }
            if verdict.proposal.action == .hold { holds += 1 }
            for mode in verdict.outputModes { modes[String(mode.split(separator: " ").last ?? ""), default: 0] += 1 }
            for found in verdict.grounding {
                grounding[String(found.split(separator: " ").last ?? ""), default: 0] += 1
            }
            for refusal in verdict.refusals {
                // The reason without the model's name or the figures, so alike reasons count together.
                let reason = refusal.split(separator: ":", maxSplits: 1).last.map(String.init) ?? refusal
                let kind =
                    reason.split(separator: "(").first.map {
                        $0.trimmingCharacters(in: .whitespaces)
                    } ?? reason
                reasons[String(kind.prefix(70)), default: 0] += 1
            }
            latencies.append(verdict.latency.timeInterval * 1000)
            inputTokens += verdict.inputTokens
            outputTokens += verdict.outputTokens
            cost += verdict.cost
        }

        struct Summary: Encodable {
            var model: String
            var prompt: String
            var decisions: Int
            var schemaValidRate: Double
            var validRate: Double
            var validFirstTimeRate: Double
            var failed: Int
            var holdRate: Double
            var outputModes: [String: Int]
            var grounding: [String: Int]
            var refusals: [String: Int]
            var latencyP50Ms: Double
            var latencyP99Ms: Double
            var inputTokensPerDecision: Double
            var outputTokensPerDecision: Double
            var llmCost: Double
            var anonymisedAgreement: Double?

            enum CodingKeys: String, CodingKey {
                case model, prompt, decisions, failed, grounding, refusals
                case schemaValidRate = "schema_valid_rate"
                case validRate = "accepted_rate"
                case validFirstTimeRate = "valid_first_time_rate"
                case holdRate = "hold_rate"
                case outputModes = "output_modes"
                case latencyP50Ms = "latency_p50_ms"
                case latencyP99Ms = "latency_p99_ms"
                case inputTokensPerDecision = "input_tokens_per_decision"
                case outputTokensPerDecision = "output_tokens_per_decision"
                case llmCost = "llm_cost"
                case anonymisedAgreement = "anonymised_agreement"
            }
        }

        func summary(model: String, prompt: String) -> Summary {
            let n = Double(max(decisions, 1))
            let sorted = latencies.sorted()
            return Summary(
                model: model,
                prompt: prompt,
                decisions: decisions,
                schemaValidRate: Double(wellFormed) / n,
                validRate: Double(valid) / n,
                validFirstTimeRate: Double(validFirstTime) / n,
                failed: failed,
                holdRate: Double(holds) / n,
                outputModes: modes,
                grounding: grounding,
                refusals: reasons,
                latencyP50Ms: sorted.isEmpty ? 0 : percentile(sorted, 50).rounded(),
                latencyP99Ms: sorted.isEmpty ? 0 : percentile(sorted, 99).rounded(),
                inputTokensPerDecision: Double(inputTokens) / n,
                outputTokensPerDecision: Double(outputTokens) / n,
                llmCost: cost,
                anonymisedAgreement: probed > 0 ? Double(probeAgreed) / Double(probed) : nil
            )
        }

        func text(_ s: Summary) -> String {
            var lines = [
                "\(s.model) (\(s.prompt)), \(s.decisions) decisions",
                String(
                    format:
                        "valid answers (in the schema) %.1f %%; accepted (framework and grounding too) %.1f %% "
                        + "(%.1f %% at the first ask); failed calls %d; HOLD %.1f %%",
                    s.schemaValidRate * 100,
                    s.validRate * 100,
                    s.validFirstTimeRate * 100,
                    s.failed,
                    s.holdRate * 100
                ),
                "output modes: "
                    + s.outputModes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                    .joined(separator: ", "),
                "grounding: "
                    + s.grounding.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                    .joined(separator: ", "),
                String(
                    format: "latency p50 %.0f ms, p99 %.0f ms; tokens per decision %.0f in, %.0f out; cost %.4f USD",
                    s.latencyP50Ms,
                    s.latencyP99Ms,
                    s.inputTokensPerDecision,
                    s.outputTokensPerDecision,
                    s.llmCost
                ),
            ]
            if let agreement = s.anonymisedAgreement {
                lines.append(
                    String(
                        format: "anonymisation probe: the same action plain and anonymised on %.1f %% of %d contexts",
                        agreement * 100,
                        probed
                    )
                )
            }
            if !s.refusals.isEmpty {
                lines.append("refused answers:")
                for (reason, count) in s.refusals.sorted(by: { $0.value > $1.value }) {
                    lines.append("  \(count)  \(reason)")
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}
