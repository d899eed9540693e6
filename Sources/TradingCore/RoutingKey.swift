/// Routing keys of the `tradebus` topic exchange (DESIGN.md, "Messages").
public enum RoutingKey {
    /// The exchange every message is published to.
    public static let exchange = "tradebus"

    /// `md.candle.<venue>.<symbol>.<interval>`: a closed candle.
    public static func candle(venue: String, symbol: String, interval: String) -> String {
        "md.candle.\(part(venue)).\(part(symbol)).\(part(interval))"
    }
    /// `ind.<symbol>.<interval>`: an indicator snapshot.
    public static func indicators(symbol: String, interval: String) -> String {
        "ind.\(part(symbol)).\(part(interval))"
    }
    /// `sig.<symbol>.<interval>`: a signal for the analyst.
    public static func signal(symbol: String, interval: String) -> String { "sig.\(part(symbol)).\(part(interval))" }
    /// `decision.<symbol>`: an analyst's decision for the executor.
    public static func decision(symbol: String) -> String { "decision.\(part(symbol))" }
    /// `shadow.decision.<symbol>`: a shadow analyst's decision, for its own paper account only.
    public static func shadowDecision(symbol: String) -> String { "shadow.decision.\(part(symbol))" }
    /// `order.<status>.<symbol>`: an order accepted, filled, rejected or cancelled.
    public static func order(status: String, symbol: String) -> String { "order.\(part(status)).\(part(symbol))" }
    /// `trade.<event>.<symbol>`: a trade opened or closed.
    public static func trade(_ event: String, symbol: String) -> String { "trade.\(part(event)).\(part(symbol))" }
    /// `alert.<severity>.<kind>`: an alert for the notifier.
    public static func alert(severity: String, kind: String) -> String { "alert.\(part(severity)).\(part(kind))" }
    /// An operator's command to the executor of `account`.
    public static func control(account: String) -> String { "control.\(part(account))" }
    /// `heartbeat.<worker>`: a worker's health and figures, every few seconds.
    public static func heartbeat(worker: String) -> String { "heartbeat.\(part(worker))" }
    /// `progress.<worker>.<symbol>`: a worker's watermark in a lockstep replay.
    public static func progress(worker: String, symbol: String) -> String { "progress.\(part(worker)).\(part(symbol))" }
    /// The executor's answer to the control request `requestID`.
    public static func controlReply(requestID: String) -> String { "reply.control.\(part(requestID))" }

    /// A word of a routing key: dots, `*` and `#` would change the key's meaning, so they become `_`.
    public static func part(_ word: String) -> String {
        if !word.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "#") })
        {
            return word
        }
        return String(word.map { $0 == "." || $0 == "*" || $0 == "#" ? "_" : $0 })
    }
}

/// An AMQP topic binding pattern: words separated by dots, `*` matching exactly one word and `#`
/// matching zero or more words.
public struct TopicPattern: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let words: [Substring]

    /// A topic pattern (`*` one word, `#` any number).
    public init(_ pattern: String) {
        self.pattern = pattern
        self.words = pattern.split(separator: ".", omittingEmptySubsequences: false)
    }

    public var description: String { pattern }

    /// True when `routingKey` matches this pattern, with RabbitMQ's semantics.
    public func matches(_ routingKey: String) -> Bool {
        let key = routingKey.split(separator: ".", omittingEmptySubsequences: false)
        return Self.match(words[...], key[...])
    }

    private static func match(_ pattern: ArraySlice<Substring>, _ key: ArraySlice<Substring>) -> Bool {
        guard let head = pattern.first else { return key.isEmpty }
        if head == "#" {
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var tail = key
            while true {
                if match(rest, tail) { return true }
                if tail.isEmpty { return false }
                tail = tail.dropFirst()
            }
        }
        guard let word = key.first else { return false }
        return (head == "*" || head == word) && match(pattern.dropFirst(), key.dropFirst())
    }
}
