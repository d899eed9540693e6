import Foundation

/// The versioned JSON envelope every message on the bus travels in (DESIGN.md, "Messages").
///
/// ```json
/// {"id": "uuid", "type": "candle.closed", "version": 1, "time": "2026-01-01T00:00:00.000Z",
///  "correlation_id": "uuid", "source": "feed-ingester@host", "payload": { ... }}
/// ```
public struct Envelope<Payload: Codable & Sendable>: Sendable, Codable {
    /// The envelope version this code writes and reads.
    public static var currentVersion: Int { 1 }

    /// Unique per message; consumers use it as their idempotency key.
    public var id: String
    /// What the payload is, e.g. `candle.closed` or `alert`.
    public var type: String
    public var version: Int
    /// When the message was created.
    public var time: Date
    /// The id of the message that started the chain (a candle, usually).
    public var correlationID: String
    /// `worker@host` of the publisher.
    public var source: String
    public var payload: Payload

    /// An envelope around `payload`: a new id, and the correlation id its own id unless given.
    public init(
        id: String = UUID().uuidString.lowercased(),
        type: String,
        version: Int = Self.currentVersion,
        time: Date,
        correlationID: String? = nil,
        source: String,
        payload: Payload
    ) {
        self.id = id
        self.type = type
        self.version = version
        self.time = time
        self.correlationID = correlationID ?? id
        self.source = source
        self.payload = payload
    }

    enum CodingKeys: String, CodingKey {
        case id, type, version, time, source, payload
        case correlationID = "correlation_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        type = try container.decode(String.self, forKey: .type)
        version = try container.decode(Int.self, forKey: .version)
        let timeText = try container.decode(String.self, forKey: .time)
        guard let parsed = EnvelopeTime.parse(timeText) else {
            throw DecodingError.dataCorruptedError(
                forKey: .time,
                in: container,
                debugDescription: "'\(timeText)' is not an ISO 8601 UTC time"
            )
        }
        time = parsed
        correlationID = try container.decode(String.self, forKey: .correlationID)
        source = try container.decode(String.self, forKey: .source)
        payload = try container.decode(Payload.self, forKey: .payload)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(type, forKey: .type)
        try container.encode(version, forKey: .version)
        try container.encode(EnvelopeTime.format(time), forKey: .time)
        try container.encode(correlationID, forKey: .correlationID)
        try container.encode(source, forKey: .source)
        try container.encode(payload, forKey: .payload)
    }
}

/// Why a message body could not be read as an envelope. Consumers dead-letter such messages with
/// `description` as the reason.
public struct EnvelopeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong with the message.
    public enum Code: String, Sendable {
        /// The body is not JSON.
        case notJSON
        /// A required envelope field is missing or has the wrong type.
        case invalidEnvelope
        /// The envelope's version is one this code does not read.
        case unsupportedVersion
        /// The envelope's `type` is not the one the consumer expects.
        case unexpectedType
        /// The payload does not have the shape its type requires.
        case invalidPayload
    }

    public var code: Code
    public var detail: String

    /// A `EnvelopeError` with the fields given.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }
}

/// Encodes and decodes envelopes with typed errors.
public enum EnvelopeCodec {
    /// JSON for an envelope, keys sorted so equal envelopes give equal bytes.
    public static func encode<P>(_ envelope: Envelope<P>) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(envelope))
    }

    /// Reads an envelope, requiring `expectedType` when given.
    public static func decode<P>(
        _ type: P.Type,
        from body: [UInt8],
        expectedType: String? = nil
    ) throws(EnvelopeError) -> Envelope<P> {
        let data = Data(body)
        // The usual case in one pass: the whole envelope, then its frame checked.
        if let envelope = try? JSONDecoder().decode(Envelope<P>.self, from: data) {
            try check(version: envelope.version, type: envelope.type, expectedType: expectedType, as: P.self)
            return envelope
        }
        // Something is wrong: the frame alone (its payload read and thrown away), so a bad payload is
        // told apart from a bad envelope.
        let header: Envelope<Unread>
        do {
            header = try JSONDecoder().decode(Envelope<Unread>.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw EnvelopeError(.notJSON, "body is not JSON (\(body.count) bytes)")
            }
            throw EnvelopeError(.invalidEnvelope, describe(error))
        } catch {
            throw EnvelopeError(.notJSON, "\(error)")
        }
        try check(version: header.version, type: header.type, expectedType: expectedType, as: P.self)
        do {
            return try JSONDecoder().decode(Envelope<P>.self, from: data)
        } catch let error as DecodingError {
            throw EnvelopeError(.invalidPayload, "\(header.type): \(describe(error))")
        } catch {
            throw EnvelopeError(.invalidPayload, "\(header.type): \(error)")
        }
    }

    /// The frame's version and type against what this build reads and the caller expects.
    private static func check<P: Codable & Sendable>(
        version: Int,
        type: String,
        expectedType: String?,
        as payload: P.Type
    ) throws(EnvelopeError) {
        guard version == Envelope<P>.currentVersion else {
            throw EnvelopeError(
                .unsupportedVersion,
                "envelope version \(version); this build reads version \(Envelope<P>.currentVersion)"
            )
        }
        if let expectedType, type != expectedType {
            throw EnvelopeError(.unexpectedType, "type '\(type)', expected '\(expectedType)'")
        }
    }

    /// A payload that is present but not read: the frame alone.
    struct Unread: Codable, Sendable {
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let prefix = path(context)
            return "missing field '\(prefix.isEmpty ? key.stringValue : prefix + "." + key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field '\(path(context))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "field '\(path(context))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// The envelope's time format: ISO 8601 in UTC with milliseconds, `2026-01-01T00:00:00.000Z`.
public enum EnvelopeTime {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let styleWhole = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// The envelope's time format (ISO 8601 with milliseconds, UTC).
    public static func format(_ date: Date) -> String { date.formatted(style) }

    /// Reads a time in the envelope's format, with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        (try? style.parse(text)) ?? (try? styleWhole.parse(text))
    }
}
