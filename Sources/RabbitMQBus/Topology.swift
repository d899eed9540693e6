import Synchronization
import TradingCore

/// Everything declared on the bus, so a reconnect can declare it again on a broker that lost it.
final class Topology: Sendable {
    static let deadLetterExchange = "tradebus.dlx"
    /// The header the consistent-hash exchange of a sharded queue hashes on.
    static let shardHeader = "x-shard-key"
    /// The header that identifies a publish, so a returned (unroutable) message can be matched to it.
    static let publishIDHeader = "x-tb-publish-id"

    let exchange: String
    private let specs = Mutex<[QueueSpec]>([])

    init(exchange: String) {
        self.exchange = exchange
    }

    func add(_ spec: QueueSpec) {
        specs.withLock { specs in
            if !specs.contains(spec) { specs.append(spec) }
        }
    }

    var all: [QueueSpec] { specs.withLock { $0 } }

    /// Declares the exchanges and every known queue on `connection`.
    func declareAll(on connection: AMQPConnection) throws {
        try declareExchanges(on: connection)
        for spec in all { try declare(spec, on: connection) }
    }

    func declareExchanges(on connection: AMQPConnection) throws {
        try connection.declareExchange(exchange, type: "topic")
        try connection.declareExchange(Self.deadLetterExchange, type: "direct")
    }

    /// Declares one spec: its queues with their dead-letter queues, and its bindings. For a sharded
    /// spec, a consistent-hash exchange between the topic exchange and the shard queues.
    func declare(_ spec: QueueSpec, on connection: AMQPConnection) throws {
        if let expiry = spec.expiresAfter {
            // A reply queue: the broker deletes it once unused; nothing in it needs a dead-letter queue.
            let milliseconds = expiry.components.seconds * 1_000 + expiry.components.attoseconds / 1_000_000_000_000_000
            try connection.declareQueue(spec.name, arguments: [("x-expires", .int64(max(1_000, milliseconds)))])
            for pattern in spec.bindings {
                try connection.bindQueue(spec.name, exchange: exchange, routingKey: pattern)
            }
            return
        }
        for queue in spec.queueNames {
            let deadLetterQueue = QueueSpec.deadLetterQueue(of: queue)
            try connection.declareQueue(deadLetterQueue, arguments: [])
            try connection.bindQueue(deadLetterQueue, exchange: Self.deadLetterExchange, routingKey: queue)
            var arguments: [(String, AMQPFieldValue)] = [
                ("x-dead-letter-exchange", .string(Self.deadLetterExchange)),
                ("x-dead-letter-routing-key", .string(queue)),
            ]
            if spec.singleActiveConsumer { arguments.append(("x-single-active-consumer", .bool(true))) }
            try connection.declareQueue(queue, arguments: arguments)
        }
        switch spec.sharding {
        case .none:
            for pattern in spec.bindings {
                try connection.bindQueue(spec.name, exchange: exchange, routingKey: pattern)
            }
        case .byShardKey:
            let shardExchange = "\(spec.name).shards"
            try connection.declareExchange(
                shardExchange,
                type: "x-consistent-hash",
                arguments: [("hash-header", .string(Self.shardHeader))]
            )
            for pattern in spec.bindings {
                try connection.bindExchange(destination: shardExchange, source: exchange, routingKey: pattern)
            }
            for queue in spec.queueNames {
                // The routing key of a consistent-hash binding is the shard's weight.
                try connection.bindQueue(queue, exchange: shardExchange, routingKey: "1")
            }
        }
    }
}
