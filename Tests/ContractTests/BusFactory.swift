import RabbitMQBus
import TestSupport
import Testing
import TradingCore
import TradingServices

/// The two MessageBus implementations the contract suite runs against.
enum BusKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inProcess
    case rabbitMQ

    var testDescription: String { rawValue }

    /// Runs `body` with a fresh bus of this kind and closes it afterwards.
    func withBus(_ body: (any MessageBus) async throws -> Void) async throws {
        switch self {
        case .inProcess:
            try await body(InProcessBus())
        case .rabbitMQ:
            let bus = RabbitMQBus(
                configuration: .init(url: try AMQPURL(TestServices.amqpURL), connectionName: "contract-tests")
            )
            do {
                try await body(bus)
            } catch {
                await bus.shutdown()
                throw error
            }
            await bus.shutdown()
        }
    }
}
