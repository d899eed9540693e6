/// Keccak-256 as Ethereum uses it: the original Keccak padding (0x01 ... 0x80), not SHA3-256's
/// (0x06). Hashes for EIP-712, action hashes and addresses. Tested against known vectors.
public enum Keccak256 {
    /// The 32-byte Keccak-256 of `bytes`.
    public static func hash<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var state = [UInt64](repeating: 0, count: 25)
        var block = [UInt8]()
        block.reserveCapacity(rate)
        for byte in bytes {
            block.append(byte)
            if block.count == rate {
                absorb(block, into: &state)
                block.removeAll(keepingCapacity: true)
            }
        }
        // Padding: 0x01 after the message, 0x80 in the block's last byte (both in one byte when they meet).
        let used = block.count
        block.append(contentsOf: [UInt8](repeating: 0, count: rate - used))
        block[used] ^= 0x01
        block[rate - 1] ^= 0x80
        absorb(block, into: &state)
        var digest = [UInt8]()
        digest.reserveCapacity(32)
        for lane in state[0..<4] {
            for shift in stride(from: 0, to: 64, by: 8) {
                digest.append(UInt8(truncatingIfNeeded: lane >> UInt64(shift)))
            }
        }
        return digest
    }

    /// The Keccak-256 of a string's UTF-8.
    public static func hash(_ text: String) -> [UInt8] { hash(Array(text.utf8)) }

    /// 1600 - 2 × 256 bits.
    static let rate = 136

    static func absorb(_ block: [UInt8], into state: inout [UInt64]) {
        for lane in 0..<(rate / 8) {
            var value: UInt64 = 0
            for byte in 0..<8 { value |= UInt64(block[lane * 8 + byte]) << UInt64(8 * byte) }
            state[lane] ^= value
        }
        permute(&state)
    }

    static let roundConstants: [UInt64] = [
        0x0000_0000_0000_0001, 0x0000_0000_0000_8082, 0x8000_0000_0000_808A, 0x8000_0000_8000_8000,
        0x0000_0000_0000_808B, 0x0000_0000_8000_0001, 0x8000_0000_8000_8081, 0x8000_0000_0000_8009,
        0x0000_0000_0000_008A, 0x0000_0000_0000_0088, 0x0000_0000_8000_8009, 0x0000_0000_8000_000A,
        0x0000_0000_8000_808B, 0x8000_0000_0000_008B, 0x8000_0000_0000_8089, 0x8000_0000_0000_8003,
        0x8000_0000_0000_8002, 0x8000_0000_0000_0080, 0x0000_0000_0000_800A, 0x8000_0000_8000_000A,
        0x8000_0000_8000_8081, 0x8000_0000_0000_8080, 0x0000_0000_8000_0001, 0x8000_0000_8000_8008,
    ]
    /// Rotation offsets, by lane index x + 5y.
    static let rotations: [UInt64] = [
        0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
    ]

    /// Keccak-f[1600]: 24 rounds of θ, ρ, π, χ, ι.
    static func permute(_ a: inout [UInt64]) {
        var b = [UInt64](repeating: 0, count: 25)
        var c = [UInt64](repeating: 0, count: 5)
        for round in 0..<24 {
            for x in 0..<5 { c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] }
            for x in 0..<5 {
                let d = c[(x + 4) % 5] ^ rotate(c[(x + 1) % 5], 1)
                for y in stride(from: 0, to: 25, by: 5) { a[y + x] ^= d }
            }
            for x in 0..<5 {
                for y in 0..<5 {
                    // π: lane (x, y) goes to (y, 2x + 3y), rotated by ρ.
                    b[y + 5 * ((2 * x + 3 * y) % 5)] = rotate(a[x + 5 * y], rotations[x + 5 * y])
                }
            }
            for y in stride(from: 0, to: 25, by: 5) {
                for x in 0..<5 { a[y + x] = b[y + x] ^ (~b[y + (x + 1) % 5] & b[y + (x + 2) % 5]) }
            }
            a[0] ^= roundConstants[round]
        }
    }

    @inline(__always) static func rotate(_ value: UInt64, _ by: UInt64) -> UInt64 {
        by == 0 ? value : (value << by) | (value >> (64 - by))
    }
}

/// Hex with and without `0x`, as the wire writes bytes.
public enum Hex {
    /// Lower-case hex with a `0x` prefix.
    public static func string(_ bytes: [UInt8], prefix: Bool = true) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return (prefix ? "0x" : "") + String(decoding: out, as: UTF8.self)
    }

    /// The bytes of a hex string (with or without `0x`), or nil when it is not hex of whole bytes.
    public static func bytes(_ text: String) -> [UInt8]? {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard digits.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            out.append(byte)
            index = next
        }
        return out
    }
}
