import Foundation

/// What a language model answered, before any of it is believed.
public struct ModelReply: Sendable, Hashable {
    public var text: String
    /// The reply hit the length limit (`finish_reason: length`, `stop_reason: max_tokens`).
    public var truncated: Bool
    /// The model refused (OpenAI's `refusal`, Anthropic's `stop_reason: refusal`).
    public var refusal: String?
    public var inputTokens: Int
    public var outputTokens: Int

    /// A `ModelReply` with the fields given.
    public init(
        text: String,
        truncated: Bool = false,
        refusal: String? = nil,
        inputTokens: Int = 0,
        outputTokens: Int = 0
    ) {
        self.text = text
        self.truncated = truncated
        self.refusal = refusal
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// Reads a model's answer into a ``TradeProposal``, strictly: the JSON object may be wrapped in prose or
/// a code fence, but it must have exactly the schema's fields (plus, optionally, `symbol`, which must
/// be the symbol asked about), with the right types.
public enum AnswerParser {
    static let required: Set<String> = [
        "action", "confidence", "leverage", "entry", "stop_loss", "take_profit", "reasoning",
    ]

    /// Reads a model's reply as a proposal for `symbol`, or says why it is invalid.
    public static func proposal(from reply: ModelReply, symbol: String) -> Result<TradeProposal, InvalidAnswer> {
        if let refusal = reply.refusal { return .failure(InvalidAnswer("the model refused: \(refusal.prefix(200))")) }
        if reply.truncated { return .failure(InvalidAnswer("the reply was cut off by the length limit")) }
        guard let json = extractObject(reply.text) else {
            return .failure(InvalidAnswer("no JSON object in the reply"))
        }
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(json.utf8)) else {
            return .failure(InvalidAnswer("the JSON in the reply does not parse"))
        }
        let keys = Set(object.keys)
        let missing = required.subtracting(keys)
        let extra = keys.subtracting(required).subtracting(["symbol"])
        if !missing.isEmpty {
            return .failure(InvalidAnswer("missing fields: \(missing.sorted().joined(separator: ", "))"))
        }
        if !extra.isEmpty {
            return .failure(InvalidAnswer("unexpected fields: \(extra.sorted().joined(separator: ", "))"))
        }
        if let answered = object["symbol"] {
            guard case .string(let text) = answered, text.uppercased() == symbol.uppercased() else {
                return .failure(InvalidAnswer("the answer is about \(answered), not \(symbol)"))
            }
        }
        guard case .string(let actionText) = object["action"],
            let action = TradeAction(rawValue: actionText.uppercased())
        else {
            return .failure(InvalidAnswer("action must be LONG, SHORT or HOLD"))
        }
        guard let confidence = number(object["confidence"]) else {
            return .failure(InvalidAnswer("confidence must be a number"))
        }
        guard let leverageValue = number(object["leverage"]), leverageValue.isFinite,
            leverageValue == leverageValue.rounded(),
            abs(leverageValue) < 1_000
        else {
            return .failure(InvalidAnswer("leverage must be a whole number"))
        }
        var prices: [Double?] = []
        for key in ["entry", "stop_loss", "take_profit"] {
            let value = object[key]
            if value == nil || value == .null {
                prices.append(nil)
            } else if let number = number(value) {
                prices.append(number)
            } else {
                return .failure(InvalidAnswer("\(key) must be a number or null"))
            }
        }
        guard case .string(let reasoning) = object["reasoning"] else {
            return .failure(InvalidAnswer("reasoning must be a string"))
        }
        return .success(
            TradeProposal(
                action: action,
                confidence: confidence,
                leverage: Int(leverageValue),
                entry: prices[0],
                stopLoss: prices[1],
                takeProfit: prices[2],
                reasoning: reasoning
            )
        )
    }

    /// A JSON number (not a bool, not a string).
    static func number(_ value: JSONValue?) -> Double? {
        if case .number(let number) = value { return number }
        return nil
    }

    /// The first balanced `{...}` in `text`, skipping braces inside strings; code fences are fine.
    public static func extractObject(_ text: String) -> String? {
        let characters = Array(text.unicodeScalars)
        var start: Int?
        var depth = 0
        var inString = false
        var escaped = false
        for (index, character) in characters.enumerated() {
            if start == nil {
                if character == "{" {
                    start = index
                    depth = 1
                }
                continue
            }
            if inString {
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    inString = false
                }
                continue
            }
            switch character {
            case "\"": inString = true
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0, let start { return String(String.UnicodeScalarView(characters[start...index])) }
            default: break
            }
        }
        return nil
    }
}
