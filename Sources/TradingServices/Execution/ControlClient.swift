import Foundation
import TradingCore

/// Sends an operator's command to the executor of an account and waits for its answer: the request
/// on `control.<account>`, the reply on `reply.control.<request id>` into a short-lived queue.
/// `tradebus control`, `tradebus status` and later the cockpit and chat commands all go this way.
public enum ControlClient {
    /// The command could not be delivered or was not answered in time.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Sends `request` and returns the executor's reply, or throws ``Failure`` after `timeout`.
    public static func send(
        _ request: ControlRequest,
        account: String,
        bus: any MessageBus,
        timeout: Duration = .seconds(10),
        source: String = "tradebus-control"
    ) async throws -> ControlReply {
        let request = try request.validated()
        let id = "control-\(UUID().uuidString.lowercased())"
        let replies = QueueSpec(
            name: "reply.control.\(id)",
            bindings: [RoutingKey.controlReply(requestID: id)],
            expiresAfter: .seconds(60)
        )
        try await bus.declare(replies)
        let (stream, continuation) = AsyncStream.makeStream(of: ControlReply.self)
        let consumer = RunningConsumer.start(bus, queue: replies.name) { delivery in
            guard
                let envelope = try? EnvelopeCodec.decode(
                    ControlReply.self,
                    from: delivery.body,
                    expectedType: MessageType.controlReply
                ),
                envelope.correlationID == id
            else { return }
            continuation.yield(envelope.payload)
        }
        defer { continuation.finish() }
        let envelope = Envelope(
            id: id,
            type: MessageType.controlRequest,
            time: Date(),
            correlationID: id,
            source: source,
            payload: request
        )
        do {
            try await bus.publish(envelope, routingKey: RoutingKey.control(account: account))
        } catch let failure as BusError where failure.code == .unroutable {
            try? await consumer.stop()
            throw Failure(
                description:
                    "no executor listens on \(RoutingKey.control(account: account)); is the executor of account '\(account)' running?"
            )
        }
        let reply = await withTaskGroup(of: ControlReply?.self) { group in
            group.addTask { await stream.first { _ in true } }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        continuation.finish()
        try? await consumer.stop()
        guard let reply else {
            throw Failure(
                description:
                    "no reply from the executor of '\(account)' within \(timeout); it may be down or busy, and may still carry out '\(request.command.rawValue)'"
            )
        }
        return reply
    }
}
