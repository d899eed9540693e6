/// How bad an alert is.
public enum AlertSeverity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case info, warning, critical

    /// Orders severities from info to critical.
    public static func < (a: AlertSeverity, b: AlertSeverity) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// An alert's payload (DESIGN.md): the envelope's type is `alert` and its id is the alert id.
/// Published as `alert.<severity>.<kind>`.
public struct AlertPayload: Sendable, Hashable, Codable {
    public var severity: AlertSeverity
    public var kind: String
    public var title: String
    public var message: String
    public var symbol: String?
    public var fields: [String: JSONValue]?

    /// A `AlertPayload` with the fields given.
    public init(
        severity: AlertSeverity,
        kind: String,
        title: String,
        message: String,
        symbol: String? = nil,
        fields: [String: JSONValue]? = nil
    ) {
        self.severity = severity
        self.kind = kind
        self.title = title
        self.message = message
        self.symbol = symbol
        self.fields = fields
    }

    public var routingKey: String { RoutingKey.alert(severity: severity.rawValue, kind: kind) }
}
