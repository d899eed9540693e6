/// A MessagePack value, encoded as Python's `msgpack.packb` does (the bytes Hyperliquid hashes):
/// maps keep their insertion order, integers take their smallest form, strings are `str` and
/// bytes `bin`.
public indirect enum MessagePack: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case binary([UInt8])
    case array([MessagePack])
    /// Keys in the order they are written: Hyperliquid hashes the order the SDK builds.
    case map([(String, MessagePack)])

    public static func == (lhs: MessagePack, rhs: MessagePack) -> Bool { lhs.encoded() == rhs.encoded() }
    public func hash(into hasher: inout Hasher) { hasher.combine(encoded()) }

    /// The MessagePack bytes.
    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(0xC0)
        case .bool(let value): out.append(value ? 0xC3 : 0xC2)
        case .int(let value): Self.appendInteger(value, to: &out)
        case .string(let text):
            let bytes = Array(text.utf8)
            switch bytes.count {
            case 0..<32: out.append(0xA0 | UInt8(bytes.count))
            case 32..<256: out += [0xD9, UInt8(bytes.count)]
            case 256..<65_536:
                out.append(0xDA)
                Self.appendBigEndian(UInt64(bytes.count), bytes: 2, to: &out)
            default:
                out.append(0xDB)
                Self.appendBigEndian(UInt64(bytes.count), bytes: 4, to: &out)
            }
            out += bytes
        case .binary(let bytes):
            switch bytes.count {
            case 0..<256: out += [0xC4, UInt8(bytes.count)]
            case 256..<65_536:
                out.append(0xC5)
                Self.appendBigEndian(UInt64(bytes.count), bytes: 2, to: &out)
            default:
                out.append(0xC6)
                Self.appendBigEndian(UInt64(bytes.count), bytes: 4, to: &out)
            }
            out += bytes
        case .array(let items):
            Self.appendHeader(items.count, fix: 0x90, sixteen: 0xDC, thirtyTwo: 0xDD, to: &out)
            for item in items { item.append(to: &out) }
        case .map(let pairs):
            Self.appendHeader(pairs.count, fix: 0x80, sixteen: 0xDE, thirtyTwo: 0xDF, to: &out)
            for (key, value) in pairs {
                MessagePack.string(key).append(to: &out)
                value.append(to: &out)
            }
        }
    }

    static func appendHeader(_ count: Int, fix: UInt8, sixteen: UInt8, thirtyTwo: UInt8, to out: inout [UInt8]) {
        switch count {
        case 0..<16: out.append(fix | UInt8(count))
        case 16..<65_536:
            out.append(sixteen)
            appendBigEndian(UInt64(count), bytes: 2, to: &out)
        default:
            out.append(thirtyTwo)
            appendBigEndian(UInt64(count), bytes: 4, to: &out)
        }
    }

    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value >= 0 {
            switch value {
            case 0..<128: out.append(UInt8(value))
            case 128..<256: out += [0xCC, UInt8(value)]
            case 256..<65_536:
                out.append(0xCD)
                appendBigEndian(UInt64(value), bytes: 2, to: &out)
            case 65_536..<4_294_967_296:
                out.append(0xCE)
                appendBigEndian(UInt64(value), bytes: 4, to: &out)
            default:
                out.append(0xCF)
                appendBigEndian(UInt64(value), bytes: 8, to: &out)
            }
        } else {
            switch value {
            case -32..<0: out.append(UInt8(bitPattern: Int8(value)))
            case -128 ..< -32: out += [0xD0, UInt8(bitPattern: Int8(value))]
            case -32_768 ..< -128:
                out.append(0xD1)
                appendBigEndian(UInt64(bitPattern: value), bytes: 2, to: &out)
            case -2_147_483_648 ..< -32_768:
                out.append(0xD2)
                appendBigEndian(UInt64(bitPattern: value), bytes: 4, to: &out)
            default:
                out.append(0xD3)
                appendBigEndian(UInt64(bitPattern: value), bytes: 8, to: &out)
            }
        }
    }

    static func appendBigEndian(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
        for index in stride(from: bytes - 1, through: 0, by: -1) {
            out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * index)))
        }
    }
}
