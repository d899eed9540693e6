import Foundation

/// When each model's training data ends, so a replay never asks a model about a past it may remember.
/// A backtest over candles from before a model's cutoff measures its memory, not its skill.
///
/// Names match by the longest known prefix (`gpt-4o-mini-2024-07-18` is `gpt-4o-mini`). A model that
/// is not in the table counts as knowing everything up to today.
public struct TrainingCutoffs: Sendable, Hashable {
    /// The providers' published knowledge cutoffs (first day of the month they name).
    public static let published: [String: String] = [
        "gpt-4o": "2023-10-01", "gpt-4o-mini": "2023-10-01", "gpt-4-turbo": "2023-12-01",
        "gpt-4.1": "2024-06-01", "gpt-4.1-mini": "2024-06-01", "gpt-4.1-nano": "2024-06-01",
        "gpt-5": "2024-10-01", "gpt-5-mini": "2024-06-01", "o3": "2024-06-01", "o4-mini": "2024-06-01",
        "claude-3-5-haiku": "2024-07-01", "claude-3-5-sonnet": "2024-04-01", "claude-3-7-sonnet": "2024-11-01",
        "claude-sonnet-4": "2025-03-01", "claude-opus-4": "2025-03-01", "claude-haiku-4-5": "2025-02-01",
        "claude-sonnet-4-5": "2025-07-01",
        "deepseek-chat": "2024-07-01", "gemma3": "2024-08-01", "gemma-3": "2024-08-01",
    ]

    /// Cutoffs by lowercased model-name prefix.
    public var table: [String: Date]

    /// The published table with `overrides` over it.
    public init(overrides: [String: Date] = [:]) {
        var table: [String: Date] = [:]
        for (model, day) in Self.published { table[model] = Self.day(day) }
        for (model, date) in overrides { table[model.lowercased()] = date }
        self.table = table
    }

    /// `model=YYYY-MM-DD,...` (`LLM_TRAINING_CUTOFFS`), or why not.
    public static func parse(_ text: String) -> Result<[String: Date], InvalidAnswer> {
        var found: [String: Date] = [:]
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, !pieces[0].isEmpty, let date = day(pieces[1]) else {
                return .failure(InvalidAnswer("'\(part)' is not model=YYYY-MM-DD"))
            }
            found[pieces[0]] = date
        }
        return .success(found)
    }

    /// `model`'s cutoff, and whether the table knew it (else: `today`).
    public func cutoff(model: String, today: Date) -> (date: Date, known: Bool) {
        let name = model.lowercased()
        let match = table.keys.filter { name.hasPrefix($0) }.max { $0.count < $1.count }
        guard let match, let date = table[match] else { return (today, false) }
        return (date, true)
    }

    /// What a replay from `firstCandle` would ask each of `models` about its own past, one line each;
    /// empty when every model's cutoff is before the data.
    public func lookAhead(models: [String], firstCandle: Date, today: Date) -> [String] {
        models.compactMap { model in
            let (date, known) = cutoff(model: model, today: today)
            guard firstCandle < date else { return nil }
            let when = Self.show(date)
            return known
                ? "\(model) was trained on data up to \(when), and the candles start \(Self.show(firstCandle))"
                : "\(model) is not in the cutoff table (LLM_TRAINING_CUTOFFS), so it counts as knowing everything up to today (\(when))"
        }
    }

    /// A date as the table writes it: YYYY-MM-DD.
    public static func show(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
    }

    /// A YYYY-MM-DD day at 00:00 UTC.
    public static func day(_ text: String) -> Date? {
        guard text.count == 10 else { return nil }
        return try? Date(text + "T00:00:00Z", strategy: .iso8601)
    }
}
