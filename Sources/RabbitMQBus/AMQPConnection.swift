import CRabbitMQ
import CRabbitMQShim

#if canImport(Glibc)
import Glibc
#endif

/// rabbitmq-c's method ids are macros with casts, which Swift does not import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicCancelOK: amqp_method_number_t = 0x003C_001F
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

/// A failure reported by rabbitmq-c or by the broker.
struct AMQPError: Error, CustomStringConvertible {
    var description: String
    /// The broker's reply code, when it closed the channel or connection (404, 406, 320, ...).
    var replyCode: UInt16?
    init(_ description: String, replyCode: UInt16? = nil) {
        self.description = description
        self.replyCode = replyCode
    }
}

/// A header or argument value.
enum AMQPFieldValue {
    case string(String)
    case bool(Bool)
    case int64(Int64)
}

/// A frame read from the connection, copied out of rabbitmq-c's buffers.
enum AMQPFrame {
    case ack(deliveryTag: UInt64, multiple: Bool)
    case nack(deliveryTag: UInt64, multiple: Bool)
    case returned(replyCode: UInt16, routingKey: String, headers: [String: String])
    case deliver(deliveryTag: UInt64, redelivered: Bool, routingKey: String, message: AMQPMessage)
    case cancelOK
    case cancelledByBroker
    case closed(AMQPError)
    case other
}

/// A message's content as read from the broker.
struct AMQPMessage {
    var body: [UInt8]
    var headers: [String: String]
    var messageID: String?
    var correlationID: String?
}

/// One rabbitmq-c connection with one channel. Not thread-safe: it belongs to a single
/// `ConnectionThread`, and every call happens there. Owns the `amqp_connection_state_t` and frees it
/// in `deinit`; no other type touches rabbitmq-c.
final class AMQPConnection {
    static let channel: amqp_channel_t = 1
    private let state: amqp_connection_state_t
    private(set) var isOpen = false

    init() {
        state = amqp_new_connection()
    }

    deinit {
        if isOpen {
            _ = amqp_channel_close(state, Self.channel, Int32(AMQP_REPLY_SUCCESS))
            _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
        }
        amqp_destroy_connection(state)
    }

    /// Connects, logs in and opens channel 1.
    func open(url: AMQPURL, heartbeatSeconds: Int, connectionName: String, timeoutSeconds: Int) throws {
        guard let socket = amqp_tcp_socket_new(state) else { throw AMQPError("could not create a TCP socket") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        let status = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("cannot connect to \(url.host):\(url.port): \(Self.statusText(status))")
        }
        _ = amqp_set_handshake_timeout(state, &timeout)
        _ = amqp_set_rpc_timeout(state, &timeout)
        let login = tradebus_amqp_login_plain(
            state,
            url.vhost,
            0,
            131_072,
            Int32(heartbeatSeconds),
            url.user,
            url.password,
            connectionName
        )
        try check(login, "login to \(url)")
        _ = amqp_channel_open(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "channel.open")
        isOpen = true
    }

    /// Closes politely; the handle is freed in `deinit`.
    func close() {
        guard isOpen else { return }
        isOpen = false
        _ = amqp_channel_close(state, Self.channel, Int32(AMQP_REPLY_SUCCESS))
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }

    var socketDescriptor: Int32? {
        guard isOpen else { return nil }
        let fd = amqp_get_sockfd(state)
        return fd >= 0 ? fd : nil
    }

    var hasBufferedInput: Bool {
        isOpen && (amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0)
    }

    // MARK: Topology

    func declareExchange(_ name: String, type: String, arguments: [(String, AMQPFieldValue)] = []) throws {
        withBytes([name, type]) { bytes in
            withTable(arguments) { table in
                _ = amqp_exchange_declare(state, Self.channel, bytes[0], bytes[1], 0, 1, 0, 0, table)
            }
        }
        try check(amqp_get_rpc_reply(state), "exchange.declare \(name)")
    }

    func bindExchange(destination: String, source: String, routingKey: String) throws {
        withBytes([destination, source, routingKey]) { bytes in
            _ = amqp_exchange_bind(state, Self.channel, bytes[0], bytes[1], bytes[2], amqp_empty_table)
        }
        try check(amqp_get_rpc_reply(state), "exchange.bind \(source) -> \(destination) '\(routingKey)'")
    }

    func declareQueue(_ name: String, arguments: [(String, AMQPFieldValue)]) throws {
        withBytes([name]) { bytes in
            withTable(arguments) { table in
                _ = amqp_queue_declare(state, Self.channel, bytes[0], 0, 1, 0, 0, table)
            }
        }
        try check(amqp_get_rpc_reply(state), "queue.declare \(name)")
    }

    /// Messages ready in `name` (a passive queue.declare); a missing queue is an error that closes the channel.
    func messageCount(_ name: String) throws -> Int {
        var count = 0
        withBytes([name]) { bytes in
            if let ok = amqp_queue_declare(state, Self.channel, bytes[0], 1, 0, 0, 0, amqp_empty_table) {
                count = Int(ok.pointee.message_count)
            }
        }
        try check(amqp_get_rpc_reply(state), "queue.declare (passive) \(name)")
        return count
    }

    /// Drops every ready message of `name`; returns how many.
    func purge(_ name: String) throws -> Int {
        var count = 0
        withBytes([name]) { bytes in
            if let ok = amqp_queue_purge(state, Self.channel, bytes[0]) { count = Int(ok.pointee.message_count) }
        }
        try check(amqp_get_rpc_reply(state), "queue.purge \(name)")
        return count
    }

    func bindQueue(_ queue: String, exchange: String, routingKey: String) throws {
        withBytes([queue, exchange, routingKey]) { bytes in
            _ = amqp_queue_bind(state, Self.channel, bytes[0], bytes[1], bytes[2], amqp_empty_table)
        }
        try check(amqp_get_rpc_reply(state), "queue.bind \(queue) <- \(exchange) '\(routingKey)'")
    }

    // MARK: Publishing

    func enableConfirms() throws {
        _ = amqp_confirm_select(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "confirm.select")
    }

    /// Sends basic.publish with `mandatory` set and persistent delivery.
    func publish(
        exchange: String,
        routingKey: String,
        body: [UInt8],
        messageID: String?,
        correlationID: String?,
        headers: [(String, AMQPFieldValue)]
    ) throws {
        let status: Int32 = withBytes([exchange, routingKey, "application/json", messageID ?? "", correlationID ?? ""])
        { bytes in
            withTable(headers) { table in
                var properties = amqp_basic_properties_t()
                // Content type (bit 15), delivery mode (bit 12), headers (bit 13).
                properties._flags = amqp_flags_t((1 << 15) | (1 << 12) | (1 << 13))
                properties.content_type = bytes[2]
                properties.delivery_mode = 2
                properties.headers = table
                if messageID != nil {
                    properties._flags |= amqp_flags_t(1 << 7)
                    properties.message_id = bytes[3]
                }
                if correlationID != nil {
                    properties._flags |= amqp_flags_t(1 << 10)
                    properties.correlation_id = bytes[4]
                }
                return body.withUnsafeBytes { raw in
                    let content = amqp_bytes_t(
                        len: raw.count,
                        bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)
                    )
                    return amqp_basic_publish(state, Self.channel, bytes[0], bytes[1], 1, 0, &properties, content)
                }
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("basic.publish to '\(routingKey)' failed: \(Self.statusText(status))")
        }
    }

    // MARK: Consuming

    func setPrefetch(_ count: Int) throws {
        _ = amqp_basic_qos(state, Self.channel, 0, UInt16(clamping: count), 0)
        try check(amqp_get_rpc_reply(state), "basic.qos")
    }

    /// Starts consuming with manual acks; returns the consumer tag.
    func consume(queue: String) throws -> String {
        var tag = ""
        withBytes([queue]) { bytes in
            if let ok = amqp_basic_consume(state, Self.channel, bytes[0], amqp_empty_bytes, 0, 0, 0, amqp_empty_table) {
                tag = Self.string(ok.pointee.consumer_tag)
            }
        }
        try check(amqp_get_rpc_reply(state), "basic.consume \(queue)")
        return tag
    }

    /// Cancels the consumer. Deliveries that arrive before cancel-ok are kept for `nextFrame()`.
    func cancel(consumerTag: String) throws {
        withBytes([consumerTag]) { bytes in
            _ = amqp_basic_cancel(state, Self.channel, bytes[0])
        }
        try check(amqp_get_rpc_reply(state), "basic.cancel")
    }

    /// Acks one delivery, or with `multiple` every unacknowledged delivery up to and including it.
    func ack(_ deliveryTag: UInt64, multiple: Bool = false) throws {
        let status = amqp_basic_ack(state, Self.channel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw AMQPError("basic.ack failed: \(Self.statusText(status))") }
    }

    func requeue(_ deliveryTag: UInt64) throws {
        let status = amqp_basic_nack(state, Self.channel, deliveryTag, 0, 1)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("basic.nack failed: \(Self.statusText(status))")
        }
    }

    // MARK: Frames

    /// The next frame if one can be read without blocking; nil when none is waiting. Throws when the
    /// connection is lost.
    func nextFrame() throws -> AMQPFrame? {
        var frame = amqp_frame_t()
        var noWait = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &noWait)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("connection lost: \(Self.statusText(status))")
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return .other }
        let method = frame.payload.method
        switch method.id {
        case AMQPMethod.basicAck:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .ack(deliveryTag: ack.delivery_tag, multiple: ack.multiple != 0)
        case AMQPMethod.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .nack(deliveryTag: nack.delivery_tag, multiple: nack.multiple != 0)
        case AMQPMethod.basicReturn:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let routingKey = Self.string(returned.routing_key)
            let message = try readContent(channel: frame.channel, keepInternalHeaders: true)
            return .returned(replyCode: returned.reply_code, routingKey: routingKey, headers: message.headers)
        case AMQPMethod.basicDeliver:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let routingKey = Self.string(deliver.routing_key)
            let message = try readContent(channel: frame.channel)
            return .deliver(
                deliveryTag: deliver.delivery_tag,
                redelivered: deliver.redelivered != 0,
                routingKey: routingKey,
                message: message
            )
        case AMQPMethod.basicCancelOK:
            return .cancelOK
        case AMQPMethod.basicCancel:
            return .cancelledByBroker
        case AMQPMethod.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            isOpen = false
            return .closed(
                AMQPError(
                    "broker closed the channel: \(close.reply_code) \(Self.string(close.reply_text))",
                    replyCode: close.reply_code
                )
            )
        case AMQPMethod.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            isOpen = false
            return .closed(
                AMQPError(
                    "broker closed the connection: \(close.reply_code) \(Self.string(close.reply_text))",
                    replyCode: close.reply_code
                )
            )
        default:
            return .other
        }
    }

    /// Frees rabbitmq-c's frame buffers once nothing read is still referenced.
    func releaseBuffers() {
        amqp_maybe_release_buffers(state)
    }

    private func readContent(channel: amqp_channel_t, keepInternalHeaders: Bool = false) throws -> AMQPMessage {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        try check(reply, "reading message content")
        defer { amqp_destroy_message(&message) }
        let properties = message.properties
        var headers: [String: String] = [:]
        if properties._flags & amqp_flags_t(1 << 13) != 0, let entries = properties.headers.entries {
            for index in 0..<Int(properties.headers.num_entries) {
                let entry = entries[index]
                let key = Self.string(entry.key)
                // The bus's own bookkeeping headers are not the application's.
                if !keepInternalHeaders && (key.hasPrefix("x-tb-") || key == "x-shard-key") { continue }
                headers[key] = Self.fieldText(entry.value)
            }
        }
        let body: [UInt8]
        if message.body.len > 0, let bytes = message.body.bytes {
            body = Array(UnsafeRawBufferPointer(start: bytes, count: message.body.len))
        } else {
            body = []
        }
        return AMQPMessage(
            body: body,
            headers: headers,
            messageID: properties._flags & amqp_flags_t(1 << 7) != 0 ? Self.string(properties.message_id) : nil,
            correlationID: properties._flags & amqp_flags_t(1 << 10) != 0 ? Self.string(properties.correlation_id) : nil
        )
    }

    // MARK: Helpers

    private func check(_ reply: amqp_rpc_reply_t, _ context: String) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw AMQPError("\(context): \(Self.statusText(reply.library_error))")
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            isOpen = false
            if reply.reply.id == AMQPMethod.connectionClose {
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                throw AMQPError(
                    "\(context): broker closed the connection: \(close.reply_code) \(Self.string(close.reply_text))",
                    replyCode: close.reply_code
                )
            }
            if reply.reply.id == AMQPMethod.channelClose {
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                throw AMQPError(
                    "\(context): broker closed the channel: \(close.reply_code) \(Self.string(close.reply_text))",
                    replyCode: close.reply_code
                )
            }
            throw AMQPError("\(context): unexpected broker method \(reply.reply.id)")
        default:
            throw AMQPError("\(context): no reply")
        }
    }

    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let pointer = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
    }

    private static func fieldText(_ value: amqp_field_value_t) -> String {
        switch Int32(value.kind) {
        case Int32(AMQP_FIELD_KIND_UTF8.rawValue), Int32(AMQP_FIELD_KIND_BYTES.rawValue):
            return string(value.value.bytes)
        case Int32(AMQP_FIELD_KIND_BOOLEAN.rawValue):
            return value.value.boolean != 0 ? "true" : "false"
        case Int32(AMQP_FIELD_KIND_I64.rawValue), Int32(AMQP_FIELD_KIND_TIMESTAMP.rawValue):
            return String(value.value.i64)
        case Int32(AMQP_FIELD_KIND_U64.rawValue):
            return String(value.value.u64)
        case Int32(AMQP_FIELD_KIND_I32.rawValue):
            return String(value.value.i32)
        case Int32(AMQP_FIELD_KIND_U32.rawValue):
            return String(value.value.u32)
        default:
            return ""
        }
    }

    /// Copies `strings` into one buffer that lives for the duration of `body`, as amqp_bytes_t.
    private func withBytes<R>(_ strings: [String], _ body: ([amqp_bytes_t]) throws -> R) rethrows -> R {
        let total = strings.reduce(0) { $0 + $1.utf8.count }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { buffer.deallocate() }
        var result: [amqp_bytes_t] = []
        result.reserveCapacity(strings.count)
        var offset = 0
        for string in strings {
            let start = buffer.advanced(by: offset)
            let count = string.utf8.count
            var copy = string
            copy.withUTF8 { utf8 in
                if let base = utf8.baseAddress, utf8.count > 0 { start.copyMemory(from: base, byteCount: utf8.count) }
            }
            result.append(amqp_bytes_t(len: count, bytes: count > 0 ? start : nil))
            offset += count
        }
        return try body(result)
    }

    /// Builds an AMQP field table that lives for the duration of `body`.
    private func withTable<R>(_ fields: [(String, AMQPFieldValue)], _ body: (amqp_table_t) throws -> R) rethrows -> R {
        if fields.isEmpty { return try body(amqp_empty_table) }
        var strings: [String] = []
        for (key, value) in fields {
            strings.append(key)
            if case .string(let text) = value { strings.append(text) }
        }
        return try withBytes(strings) { bytes in
            let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: fields.count)
            defer { entries.deallocate() }
            var next = 0
            for (index, (_, value)) in fields.enumerated() {
                var entry = amqp_table_entry_t()
                entry.key = bytes[next]
                next += 1
                switch value {
                case .string:
                    entry.value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                    entry.value.value.bytes = bytes[next]
                    next += 1
                case .bool(let flag):
                    entry.value.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                    entry.value.value.boolean = flag ? 1 : 0
                case .int64(let number):
                    entry.value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                    entry.value.value.i64 = number
                }
                (entries + index).initialize(to: entry)
            }
            return try body(amqp_table_t(num_entries: Int32(fields.count), entries: entries))
        }
    }
}
