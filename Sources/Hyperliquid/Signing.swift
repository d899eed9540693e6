import CSecp256k1

/// An ECDSA signature as Hyperliquid's `/exchange` takes it: `r` and `s` as `0x` hex with no leading
/// zeros (what the Python SDK's `to_hex` writes), `v` 27 or 28.
public struct HyperliquidSignature: Sendable, Hashable, Codable {
    public var r: String
    public var s: String
    public var v: Int

    /// A `HyperliquidSignature` with the fields given.
    public init(r: String, s: String, v: Int) {
        self.r = r
        self.s = s
        self.v = v
    }
}

/// A signing error: what failed and what to do.
public struct SigningError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }
}

/// An agent (API) wallet's private key: it signs orders and cannot withdraw. Never printed.
public struct AgentKey: Sendable, CustomStringConvertible {
    let secret: [UInt8]
    /// The agent's address (`0x` + 40 hex), from its public key.
    public let address: String

    /// The key from 64 hex digits (with or without `0x`).
    public init(hex: String) throws(SigningError) {
        guard let bytes = Hex.bytes(hex.trimmingWhitespace()), bytes.count == 32 else {
            throw SigningError(
                code: "key_format",
                message: "the Hyperliquid agent key is not 32 bytes of hex; give the agent wallet's private key"
            )
        }
        guard bytes.withUnsafeBufferPointer({ secp256k1_ec_seckey_verify(Secp256k1.context, $0.baseAddress!) }) == 1
        else {
            throw SigningError(code: "key_range", message: "the Hyperliquid agent key is not a valid secp256k1 key")
        }
        self.secret = bytes
        var publicKey = secp256k1_pubkey()
        _ = bytes.withUnsafeBufferPointer { secp256k1_ec_pubkey_create(Secp256k1.context, &publicKey, $0.baseAddress!) }
        self.address = Secp256k1.address(of: publicKey)
    }

    public var description: String { "AgentKey(\(address), secret redacted)" }
}

/// libsecp256k1, and the one context every call shares.
enum Secp256k1 {
    /// Created once and never freed. Safe to share across threads: signing, recovery and key checks
    /// take the context as `const` (libsecp256k1's documented thread-safety rule), and nothing here
    /// randomizes or otherwise changes it after creation.
    nonisolated(unsafe) static let context: OpaquePointer = secp256k1_context_create(
        UInt32(SECP256K1_CONTEXT_NONE)
    )!

    /// The Ethereum address of a public key: the last 20 bytes of the Keccak-256 of its 64 raw bytes.
    static func address(of publicKey: secp256k1_pubkey) -> String {
        var key = publicKey
        var output = [UInt8](repeating: 0, count: 65)
        var length = 65
        _ = secp256k1_ec_pubkey_serialize(context, &output, &length, &key, UInt32(SECP256K1_EC_UNCOMPRESSED))
        return Hex.string(Array(Keccak256.hash(output[1...])[12...]))
    }
}

/// How Hyperliquid signs an L1 action (orders, cancels, leverage): the Keccak-256 of the action's
/// MessagePack, the nonce and the vault flag is the `connectionId` of a "phantom agent", signed as
/// EIP-712 typed data in the domain `Exchange`, version 1, chain 1337.
public enum HyperliquidSigning {
    /// The action hash: `keccak(msgpack(action) ‖ nonce (8 bytes, big-endian) ‖ vault flag
    /// [‖ 0x00 ‖ expiresAfter])`.
    public static func actionHash(
        _ action: MessagePack,
        nonce: UInt64,
        vaultAddress: String? = nil,
        expiresAfter: UInt64? = nil
    ) -> [UInt8] {
        var data = action.encoded()
        MessagePack.appendBigEndian(nonce, bytes: 8, to: &data)
        if let vaultAddress, let vault = Hex.bytes(vaultAddress) {
            data.append(1)
            data += vault
        } else {
            data.append(0)
        }
        if let expiresAfter {
            data.append(0)
            MessagePack.appendBigEndian(expiresAfter, bytes: 8, to: &data)
        }
        return Keccak256.hash(data)
    }

    /// The EIP-712 digest of `Agent(string source,bytes32 connectionId)`: source "a" on mainnet, "b"
    /// on testnet.
    public static func agentDigest(connectionID: [UInt8], mainnet: Bool) -> [UInt8] {
        let domainType = Keccak256.hash(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        )
        var chainID = [UInt8](repeating: 0, count: 32)
        chainID[30] = 0x05  // 1337 = 0x0539
        chainID[31] = 0x39
        let domain = Keccak256.hash(
            domainType + Keccak256.hash("Exchange") + Keccak256.hash("1") + chainID + [UInt8](repeating: 0, count: 32)
        )
        let agentType = Keccak256.hash("Agent(string source,bytes32 connectionId)")
        let message = Keccak256.hash(agentType + Keccak256.hash(mainnet ? "a" : "b") + connectionID)
        return Keccak256.hash([0x19, 0x01] + domain + message)
    }

    /// Signs an L1 action with the agent's key (RFC 6979 nonces, low s, as the official SDK).
    public static func sign(
        _ action: MessagePack,
        nonce: UInt64,
        key: AgentKey,
        mainnet: Bool,
        vaultAddress: String? = nil,
        expiresAfter: UInt64? = nil
    ) -> HyperliquidSignature {
        let digest = agentDigest(
            connectionID: actionHash(action, nonce: nonce, vaultAddress: vaultAddress, expiresAfter: expiresAfter),
            mainnet: mainnet
        )
        var signature = secp256k1_ecdsa_recoverable_signature()
        _ = key.secret.withUnsafeBufferPointer { secret in
            secp256k1_ecdsa_sign_recoverable(Secp256k1.context, &signature, digest, secret.baseAddress!, nil, nil)
        }
        var compact = [UInt8](repeating: 0, count: 64)
        var recoveryID: Int32 = 0
        _ = secp256k1_ecdsa_recoverable_signature_serialize_compact(
            Secp256k1.context,
            &compact,
            &recoveryID,
            &signature
        )
        return HyperliquidSignature(
            r: minimalHex(Array(compact[0..<32])),
            s: minimalHex(Array(compact[32..<64])),
            v: 27 + Int(recoveryID)
        )
    }

    /// The address that signed an L1 action, or nil when the signature is not one (what the exchange
    /// checks: the signer must be the account or one of its agents).
    public static func signer(
        of action: MessagePack,
        nonce: UInt64,
        signature: HyperliquidSignature,
        mainnet: Bool,
        vaultAddress: String? = nil,
        expiresAfter: UInt64? = nil
    ) -> String? {
        let digest = agentDigest(
            connectionID: actionHash(action, nonce: nonce, vaultAddress: vaultAddress, expiresAfter: expiresAfter),
            mainnet: mainnet
        )
        guard let r = Hex.bytes(padded(signature.r)), let s = Hex.bytes(padded(signature.s)),
            r.count == 32, s.count == 32, signature.v == 27 || signature.v == 28
        else { return nil }
        var recoverable = secp256k1_ecdsa_recoverable_signature()
        guard
            secp256k1_ecdsa_recoverable_signature_parse_compact(
                Secp256k1.context,
                &recoverable,
                r + s,
                Int32(signature.v - 27)
            ) == 1
        else { return nil }
        var publicKey = secp256k1_pubkey()
        guard secp256k1_ecdsa_recover(Secp256k1.context, &publicKey, &recoverable, digest) == 1 else { return nil }
        return Secp256k1.address(of: publicKey)
    }

    /// `0x` hex of a big-endian number with no leading zeros.
    static func minimalHex(_ bytes: [UInt8]) -> String {
        let digits = Hex.string(bytes, prefix: false).drop { $0 == "0" }
        return "0x" + (digits.isEmpty ? "0" : String(digits))
    }

    /// 64 hex digits from a `0x` number of up to 64.
    static func padded(_ hex: String) -> String {
        let digits = hex.hasPrefix("0x") ? String(hex.dropFirst(2)) : hex
        return digits.count >= 64 ? digits : String(repeating: "0", count: 64 - digits.count) + digits
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(self.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
