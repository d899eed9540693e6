import Foundation

/// How a reply was constrained to the decision's schema.
public enum OutputMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// OpenAI-compatible `response_format: json_schema` (strict): the server constrains the output.
    case jsonSchema = "json_schema"
    /// OpenAI-compatible `response_format: json_object`: valid JSON, any shape.
    case jsonObject = "json_object"
    /// Anthropic: a forced tool call whose input follows the schema.
    case tool
    /// Nothing constrained the reply; the JSON is found in the text.
    case text
}

/// What a language model answered, before any of it is believed.
public struct ModelReply: Sendable, Hashable {
    public var text: String
    /// The reply hit the length limit (`finish_reason: length`, `stop_reason: max_tokens`).
    public var truncated: Bool
    /// The model refused (OpenAI's `refusal`, Anthropic's `stop_reason: refusal`).
    public var refusal: String?
    public var inputTokens: Int
    public var outputTokens: Int
    /// How the request constrained this reply.
    public var outputMode: OutputMode

    /// A `ModelReply` with the fields given.
    public init(
        text: String,
        truncated: Bool = false,
        refusal: String? = nil,
        inputTokens: Int = 0,
        outputTokens: Int = 0,
        outputMode: OutputMode = .text
    ) {
        self.text = text
        self.truncated = truncated
        self.refusal = refusal
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.outputMode = outputMode
    }
}

/// A figure an answer says it relied on: `rsi14`, `1h.rsi14`, `support`, `close`, or `level` for a
/// price level; checked against the context by ``Grounding``.
public struct Citation: Sendable, Hashable, Codable {
    public var name: String
    public var value: Double
    /// A `Citation` with the fields given.
    public init(name: String, value: Double) {
        self.name = name
        self.value = value
    }
}

/// A valid answer: the proposal and the figures it cites.
public struct ParsedAnswer: Sendable, Hashable {
    public var proposal: TradeProposal
    public var citations: [Citation]
}

/// Reads a model's answer into a ``TradeProposal``, strictly: the JSON object may be wrapped in prose or
/// a code fence, but it must have exactly the schema's fields (plus, optionally, `symbol`, which must
/// be the symbol asked about, and `cited`), with the right types. A refusal names the failing field and
/// its value.
public enum AnswerParser {
    /// The name the schema is sent under (OpenAI's `json_schema.name`, Anthropic's tool name).
    public static let schemaName = "trade_decision"

    static let required: Set<String> = [
        "action", "confidence", "leverage", "entry", "stop_loss", "take_profit", "reasoning",
    ]
    static let optional: Set<String> = ["symbol", "cited"]

    /// The decision's JSON Schema with leverage up to 125 (the most any venue allows).
    public static let schema = schema(maxLeverage: 125)

    /// The decision's JSON Schema, the one definition every provider is sent: strict (every property
    /// required, nothing else allowed), as OpenAI's structured outputs and Anthropic's tool input want;
    /// confidence 0 to 1 and leverage 1 to `maxLeverage`, so a server that constrains its output to the
    /// schema cannot answer outside them.
    public static func schema(maxLeverage: Int) -> JSONValue {
        func property(_ type: JSONValue, _ description: String) -> JSONValue {
            .object(["type": type, "description": .string(description)])
        }
        let nullableNumber: JSONValue = .array([.string("number"), .string("null")])
        let citation: JSONValue = .object([
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "required": .array([.string("name"), .string("value")]),
            "properties": .object([
                "name": .object([
                    "type": .string("string"), "enum": .array(citable.map(JSONValue.string)),
                    "description": .string(
                        "a figure of the state: an indicator key (rsi14, or 1h.rsi14 for another timeframe), "
                            + "close, support, resistance, fundingRate, or level for a price level"
                    ),
                ]),
                "value": property(.string("number"), "its value as the state gives it"),
            ]),
        ])
        return .object([
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "required": .array(
                ["action", "confidence", "leverage", "entry", "stop_loss", "take_profit", "reasoning", "cited"].map(
                    JSONValue.string
                )
            ),
            "properties": .object([
                "action": .object([
                    "type": .string("string"), "enum": .array([.string("LONG"), .string("SHORT"), .string("HOLD")]),
                ]),
                "confidence": .object([
                    "type": .string("number"), "minimum": .number(0), "maximum": .number(1),
                    "description": .string("0 to 1"),
                ]),
                // An enum as well as the bounds: llama.cpp's grammar honours the one, OpenAI the other.
                "leverage": .object([
                    "type": .string("integer"), "minimum": .number(1), "maximum": .number(Double(maxLeverage)),
                    "enum": .array((1...max(1, maxLeverage)).map { .number(Double($0)) }),
                    "description": .string("whole number, 1 to \(maxLeverage)"),
                ]),
                "entry": property(nullableNumber, "the latest price, or null for HOLD"),
                "stop_loss": property(nullableNumber, "price, or null for HOLD"),
                "take_profit": property(nullableNumber, "price, or null for HOLD"),
                "reasoning": property(.string("string"), "short"),
                "cited": .object([
                    "type": .string("array"), "items": citation,
                    "description": .string("the figures of the state the decision relies on"),
                ]),
            ]),
        ])
    }

    /// The names a citation may take: each figure of a snapshot by its JSON key, bare (any timeframe)
    /// or for one of the usual timeframes (`1h.rsi14`), and the context's own figures.
    public static let citable: [String] = {
        let figures = IndicatorSnapshot.figureKeys
        let timeframes = ["1m", "5m", "15m", "1h", "4h", "1d"]
        return ["level", "fundingRate", "todayPnL", "position.entry"] + figures
            + timeframes.flatMap { interval in figures.map { "\(interval).\($0)" } }
    }()

    /// Reads a model's reply as a proposal for `symbol`, or says why it is invalid.
    public static func proposal(from reply: ModelReply, symbol: String) -> Result<TradeProposal, InvalidAnswer> {
        answer(from: reply, symbol: symbol).map(\.proposal)
    }

    /// Reads a model's reply as a proposal for `symbol` and the figures it cites, or says precisely why
    /// it is invalid: no JSON object, cut off, or the failing field and its value.
    public static func answer(from reply: ModelReply, symbol: String) -> Result<ParsedAnswer, InvalidAnswer> {
        if let refusal = reply.refusal { return .failure(InvalidAnswer("the model refused: \(refusal.prefix(200))")) }
        guard let json = extractObject(reply.text) else {
            if !reply.text.contains("{") {
                let start = reply.text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(60)
                return .failure(
                    InvalidAnswer(
                        "no JSON object in the reply"
                            + (start.isEmpty ? " (it is empty)" : " (it begins \(shown(.string(String(start)))))")
                            + (reply.truncated ? "; it was also cut off by the length limit" : "")
                    )
                )
            }
            if reply.truncated {
                return .failure(
                    InvalidAnswer("the reply was cut off by the length limit before its JSON object closed")
                )
            }
            return .failure(InvalidAnswer("no complete JSON object in the reply: a '{' is never closed"))
        }
        // Even a complete object is not believed when the model was stopped mid-answer.
        if reply.truncated { return .failure(InvalidAnswer("the reply was cut off by the length limit")) }
        let object: [String: JSONValue]
        do { object = try JSONDecoder().decode([String: JSONValue].self, from: Data(json.utf8)) } catch {
            return .failure(InvalidAnswer("the JSON object in the reply does not parse: \(json.prefix(80))"))
        }
        let keys = Set(object.keys)
        let missing = required.subtracting(keys)
        let extra = keys.subtracting(required).subtracting(optional)
        if !missing.isEmpty {
            return .failure(InvalidAnswer("missing fields: \(missing.sorted().joined(separator: ", "))"))
        }
        if !extra.isEmpty {
            return .failure(InvalidAnswer("unexpected fields: \(extra.sorted().joined(separator: ", "))"))
        }
        if let answered = object["symbol"] {
            guard case .string(let text) = answered, text.uppercased() == symbol.uppercased() else {
                return .failure(InvalidAnswer("the answer is about \(shown(answered)), not \(symbol)"))
            }
        }
        guard case .string(let actionText) = object["action"],
            let action = TradeAction(rawValue: actionText.uppercased())
        else {
            return .failure(InvalidAnswer("action must be LONG, SHORT or HOLD, not \(shown(object["action"]))"))
        }
        guard let confidence = number(object["confidence"]) else {
            return .failure(InvalidAnswer("confidence must be a number, not \(shown(object["confidence"]))"))
        }
        guard let leverageValue = number(object["leverage"]), leverageValue.isFinite,
            leverageValue == leverageValue.rounded(),
            abs(leverageValue) < 1_000
        else {
            return .failure(
                InvalidAnswer("leverage must be a whole number below 1000, not \(shown(object["leverage"]))")
            )
        }
        var prices: [Double?] = []
        for key in ["entry", "stop_loss", "take_profit"] {
            let value = object[key]
            if value == nil || value == .null {
                prices.append(nil)
            } else if let number = number(value) {
                prices.append(number)
            } else {
                return .failure(InvalidAnswer("\(key) must be a number or null, not \(shown(value))"))
            }
        }
        guard case .string(let reasoning) = object["reasoning"] else {
            return .failure(InvalidAnswer("reasoning must be a string, not \(shown(object["reasoning"]))"))
        }
        var citations: [Citation] = []
        switch object["cited"] {
        case nil, .null?: break
        case .array(let items)?:
            for item in items {
                guard case .object(let fields) = item, case .string(let name)? = fields["name"],
                    let value = number(fields["value"]), fields.count == 2
                else {
                    return .failure(
                        InvalidAnswer("each of cited must be {\"name\": text, \"value\": number}, not \(shown(item))")
                    )
                }
                citations.append(Citation(name: name, value: value))
            }
        case let other?:
            return .failure(InvalidAnswer("cited must be a list, not \(shown(other))"))
        }
        let proposal = TradeProposal(
            action: action,
            confidence: confidence,
            leverage: Int(leverageValue),
            entry: prices[0],
            stopLoss: prices[1],
            takeProfit: prices[2],
            reasoning: reasoning
        )
        return .success(ParsedAnswer(proposal: proposal, citations: citations))
    }

    /// A JSON number (not a bool, not a string).
    static func number(_ value: JSONValue?) -> Double? {
        if case .number(let number) = value { return number }
        return nil
    }

    /// A value as it appeared, compact and short, for a reason.
    static func shown(_ value: JSONValue?) -> String {
        guard let value else { return "nothing" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        return text.count > 80 ? text.prefix(77) + "..." : text
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
