import Foundation
import Hyperliquid
import Testing
import TradingCore

/// Known answers from the official Python SDK (scripts/hyperliquid-vectors.py, committed in Vectors/).
@Suite("Hyperliquid signing: Keccak-256, MessagePack and EIP-712 against the official SDK")
struct SigningTests {
    struct Vectors: Decodable {
        struct KeccakVector: Decodable {
            var hex: String?
            var text: String?
            var keccak256: String
        }
        struct Action: Decodable {
            var name: String
            var privateKey: String
            var address: String
            var nonce: UInt64
            var mainnet: Bool
            var vaultAddress: String?
            var expiresAfter: UInt64?
            var input: [String: JSONValue]
            var msgpack: String
            var actionHash: String
            var signature: HyperliquidSignature
        }
        var keccak: [KeccakVector]
        var actions: [Action]
    }

    static let vectors: Vectors = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Vectors/signing.json"
        )
        return try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }()

    /// The action our adapter builds from the vector's inputs.
    static func action(_ input: [String: JSONValue]) throws -> MessagePack {
        func string(_ key: String) -> String? { if case .string(let value)? = input[key] { value } else { nil } }
        func int(_ key: String) -> Int? { if case .number(let value)? = input[key] { Int(value) } else { nil } }
        func bool(_ key: String) -> Bool? { if case .bool(let value)? = input[key] { value } else { nil } }
        switch string("kind") {
        case "order":
            let kind: HyperliquidAction.OrderKind
            guard case .object(let type)? = input["orderType"] else { throw VectorError() }
            if case .object(let limit)? = type["limit"], case .string(let tif)? = limit["tif"] {
                kind = .limit(tif: tif)
            } else if case .object(let trigger)? = type["trigger"], case .string(let px)? = trigger["triggerPx"],
                case .bool(let isMarket)? = trigger["isMarket"], case .string(let tpsl)? = trigger["tpsl"]
            {
                kind = .trigger(triggerPrice: px, isMarket: isMarket, tpsl: tpsl)
            } else {
                throw VectorError()
            }
            return HyperliquidAction.order([
                .init(
                    asset: int("asset")!,
                    isBuy: bool("isBuy")!,
                    price: string("price")!,
                    size: string("size")!,
                    reduceOnly: bool("reduceOnly")!,
                    kind: kind,
                    cloid: string("cloid")
                )
            ])
        case "cancelByCloid": return HyperliquidAction.cancelByCloid(asset: int("asset")!, cloid: string("cloid")!)
        case "cancel": return HyperliquidAction.cancel(asset: int("asset")!, oid: Int64(int("oid")!))
        case "updateLeverage":
            return HyperliquidAction.updateLeverage(
                asset: int("asset")!,
                isCross: bool("isCross")!,
                leverage: int("leverage")!
            )
        default: throw VectorError()
        }
    }
    struct VectorError: Error {}

    @Test("Keccak-256 matches eth_utils on every length around the 136-byte block")
    func keccak() {
        #expect(Self.vectors.keccak.count >= 12)
        for vector in Self.vectors.keccak {
            let input = vector.text.map { Array($0.utf8) } ?? Hex.bytes(vector.hex ?? "") ?? []
            #expect(Hex.string(Keccak256.hash(input)) == vector.keccak256, "\(input.count) bytes")
        }
        // The empty string's hash, as every Ethereum library prints it.
        #expect(
            Hex.string(Keccak256.hash([UInt8]()))
                == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        )
    }

    @Test(
        "each action: the same MessagePack, action hash, signature and signer as the SDK",
        arguments: vectors.actions.indices
    )
    func action(index: Int) throws {
        let vector = Self.vectors.actions[index]
        let action = try Self.action(vector.input)
        #expect(Hex.string(action.encoded(), prefix: false) == vector.msgpack, "\(vector.name)")
        let hash = HyperliquidSigning.actionHash(
            action,
            nonce: vector.nonce,
            vaultAddress: vector.vaultAddress,
            expiresAfter: vector.expiresAfter
        )
        #expect(Hex.string(hash) == vector.actionHash, "\(vector.name)")
        let key = try AgentKey(hex: vector.privateKey)
        #expect(key.address == vector.address)
        let signature = HyperliquidSigning.sign(
            action,
            nonce: vector.nonce,
            key: key,
            mainnet: vector.mainnet,
            vaultAddress: vector.vaultAddress,
            expiresAfter: vector.expiresAfter
        )
        #expect(signature == vector.signature, "\(vector.name)")
        let signer = HyperliquidSigning.signer(
            of: action,
            nonce: vector.nonce,
            signature: vector.signature,
            mainnet: vector.mainnet,
            vaultAddress: vector.vaultAddress,
            expiresAfter: vector.expiresAfter
        )
        #expect(signer == vector.address)
        // The other network, another nonce: someone else (the exchange refuses it as an unknown signer).
        #expect(
            HyperliquidSigning.signer(
                of: action,
                nonce: vector.nonce + 1,
                signature: vector.signature,
                mainnet: vector.mainnet,
                vaultAddress: vector.vaultAddress,
                expiresAfter: vector.expiresAfter
            ) != vector.address
        )
        #expect(
            HyperliquidSigning.signer(
                of: action,
                nonce: vector.nonce,
                signature: vector.signature,
                mainnet: !vector.mainnet,
                vaultAddress: vector.vaultAddress,
                expiresAfter: vector.expiresAfter
            ) != vector.address
        )
    }

    @Test("a key that is not 32 bytes of hex is refused, and a key never prints")
    func keys() throws {
        #expect(throws: SigningError.self) { try AgentKey(hex: "0x1234") }
        #expect(throws: SigningError.self) { try AgentKey(hex: String(repeating: "0", count: 64)) }
        let key = try AgentKey(hex: Self.vectors.actions[0].privateKey)
        #expect(!"\(key)".contains(Self.vectors.actions[0].privateKey.dropFirst(2).prefix(16)))
    }

    @Test("a cloid is the 32 hex digits of our client order id, and names it back")
    func cloids() {
        for purpose in [OrderPurpose.entry, .stopLoss, .takeProfit, .exit] {
            let id = ClientOrderID.make(decisionID: "dec-42", purpose: purpose)
            let cloid = HyperliquidAction.cloid(id)
            #expect(cloid.count == 34 && cloid.hasPrefix("0x"))
            #expect(ClientOrderID.fromDigits(String(cloid.dropFirst(2))) == id)
        }
        #expect(
            HyperliquidAction.cloid(ClientOrderID.make(decisionID: "dec-42", purpose: .entry))
                != HyperliquidAction.cloid(ClientOrderID.make(decisionID: "dec-42", purpose: .exit))
        )
        // Another program's id still makes a cloid of the right form, the same every time.
        #expect(HyperliquidAction.cloid("manual-order").count == 34)
        #expect(HyperliquidAction.cloid("manual-order") == HyperliquidAction.cloid("manual-order"))
    }
}
