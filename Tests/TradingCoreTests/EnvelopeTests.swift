import Foundation
import Testing
import TradingCore

@Suite("Envelope")
struct EnvelopeTests {
    struct Price: Codable, Sendable, Equatable {
        var symbol: String
        var price: Double
    }

    @Test("encodes the DESIGN.md shape and decodes back")
    func roundTrip() throws {
        let time = Date(timeIntervalSince1970: 1_767_225_600.25)
        let envelope = Envelope(
            id: "id-1",
            type: "price",
            time: time,
            correlationID: "corr-1",
            source: "test@host",
            payload: Price(symbol: "BTCUSDT", price: 97000.5)
        )
        let bytes = try EnvelopeCodec.encode(envelope)
        let json = String(decoding: bytes, as: UTF8.self)
        #expect(
            json
                == #"{"correlation_id":"corr-1","id":"id-1","payload":{"price":97000.5,"symbol":"BTCUSDT"},"source":"test@host","time":"2026-01-01T00:00:00.250Z","type":"price","version":1}"#
        )
        let decoded = try EnvelopeCodec.decode(Price.self, from: bytes, expectedType: "price")
        #expect(decoded.payload == envelope.payload)
        #expect(decoded.time == time)
        #expect(decoded.correlationID == "corr-1")
    }

    @Test("a new envelope is its own correlation root")
    func correlationDefaultsToID() {
        let envelope = Envelope(type: "t", time: Date(), source: "s", payload: Price(symbol: "X", price: 1))
        #expect(envelope.correlationID == envelope.id)
    }

    @Test(
        "decoding failures are typed",
        arguments: [
            ("not json at all", EnvelopeError.Code.notJSON),
            (#"{"id":"1","type":"price","version":1}"#, .invalidEnvelope),
            (
                #"{"id":"1","type":"price","version":2,"time":"2026-01-01T00:00:00.000Z","correlation_id":"1","source":"s","payload":{}}"#,
                .unsupportedVersion
            ),
            (
                #"{"id":"1","type":"candle","version":1,"time":"2026-01-01T00:00:00.000Z","correlation_id":"1","source":"s","payload":{}}"#,
                .unexpectedType
            ),
            (
                #"{"id":"1","type":"price","version":1,"time":"2026-01-01T00:00:00.000Z","correlation_id":"1","source":"s","payload":{"symbol":"X"}}"#,
                .invalidPayload
            ),
            (
                #"{"id":"1","type":"price","version":1,"time":"yesterday","correlation_id":"1","source":"s","payload":{}}"#,
                .invalidEnvelope
            ),
        ]
    )
    func typedErrors(body: String, code: EnvelopeError.Code) {
        #expect {
            _ = try EnvelopeCodec.decode(Price.self, from: Array(body.utf8), expectedType: "price")
        } throws: { error in
            (error as? EnvelopeError)?.code == code
        }
    }
}

@Suite("Alert payload")
struct AlertPayloadTests {
    @Test("has the shape DESIGN.md gives, and its routing key")
    func shape() throws {
        let alert = AlertPayload(
            severity: .critical,
            kind: "circuit_breaker",
            title: "Halted",
            message: "daily loss limit",
            symbol: "BTCUSDT",
            fields: ["loss": .number(512.5)]
        )
        let envelope = Envelope(
            id: "a-1",
            type: MessageType.alert,
            time: Date(timeIntervalSince1970: 0),
            source: "s",
            payload: alert
        )
        let json = String(decoding: try EnvelopeCodec.encode(envelope), as: UTF8.self)
        #expect(
            json.contains(
                #""payload":{"fields":{"loss":512.5},"kind":"circuit_breaker","message":"daily loss limit","severity":"critical","symbol":"BTCUSDT","title":"Halted"}"#
            )
        )
        #expect(alert.routingKey == "alert.critical.circuit_breaker")
        #expect(AlertSeverity.info < .warning && .warning < .critical)
    }
}
