import Foundation
import Logging
import Metrics
import NIOCore
import TradingCore
import WSClient

/// One WebSocket connection to an exchange: connects, sends the subscription, keeps the connection
/// alive (protocol pings, and the exchange's own heartbeat if it has one), decodes each text message and
/// hands the kline updates on. A message that cannot be read is logged and counted, never fatal.
struct WebSocketSession<Event: Sendable>: Sendable {
    let venue: String
    let url: String
    /// Text messages sent right after connecting (subscriptions).
    let subscribe: [[UInt8]]
    /// An application-level heartbeat and its period (Bybit's `{"op":"ping"}`).
    let heartbeat: (message: [UInt8], period: Duration)?
    /// How often a protocol ping goes out; a connection whose pong does not come back in time is closed.
    let pingPeriod: Duration
    /// Decodes a text message; throws for one that is not the exchange's format.
    let decode: @Sendable ([UInt8]) throws -> [Event]
    /// Handed on once the connection is up and subscribed, if anything.
    var connected: Event?
    let logger: Logger

    func run(receive: @escaping @Sendable (Event) async throws -> Void) async throws {
        let connected = self.connected
        let venue = self.venue
        let subscribe = self.subscribe
        let heartbeat = self.heartbeat
        let decode = self.decode
        let logger = self.logger
        let malformed = Counter(label: "tradebus_feed_malformed_messages_total", dimensions: [("venue", venue)])
        let client = WebSocketClient(
            url: url,
            configuration: WebSocketClientConfiguration(
                maxFrameSize: 1 << 22,
                autoPing: .enabled(timePeriod: pingPeriod)
            ),
            logger: logger
        ) { inbound, outbound, _ in
            for message in subscribe {
                try await outbound.write(.text(String(decoding: message, as: UTF8.self)))
            }
            if let connected { try await receive(connected) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let heartbeat {
                    group.addTask {
                        while true {
                            try await Task.sleep(for: heartbeat.period)
                            try await outbound.write(.text(String(decoding: heartbeat.message, as: UTF8.self)))
                        }
                    }
                }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    guard case .text(let text) = message else { continue }
                    let updates: [Event]
                    do {
                        updates = try decode(Array(text.utf8))
                    } catch {
                        malformed.increment()
                        logger.warning(
                            "unreadable message from \(venue) skipped",
                            metadata: ["error": "\(error)", "message": "\(text.prefix(200))"]
                        )
                        continue
                    }
                    for update in updates { try await receive(update) }
                }
                group.cancelAll()
            }
        }
        let close = try await client.run()
        logger.info(
            "\(venue) closed the connection",
            metadata: ["code": "\(close.map { "\($0.closeCode)" } ?? "none")", "reason": "\(close?.reason ?? "")"]
        )
    }
}
