import TradingCore

/// The L1 actions TradeBus sends to `POST /exchange`, built field by field in the order the official
/// SDK builds them (the order is hashed).
public enum HyperliquidAction {
    /// How an order rests: a limit with a time in force, or a trigger (stop or target).
    public enum OrderKind: Sendable, Hashable {
        /// `Ioc` (market entries and exits with a price bound), `Gtc` or `Alo`.
        case limit(tif: String)
        /// A trigger at `triggerPrice` (mark price), sent as a market order when it fires; `tpsl` is
        /// `sl` or `tp`.
        case trigger(triggerPrice: String, isMarket: Bool, tpsl: String)
    }

    /// One order of an `order` action, its prices and size already as wire decimals.
    public struct Order: Sendable, Hashable {
        public var asset: Int
        public var isBuy: Bool
        public var price: String
        public var size: String
        public var reduceOnly: Bool
        public var kind: OrderKind
        public var cloid: String?

        /// An `Order` with the fields given.
        public init(
            asset: Int,
            isBuy: Bool,
            price: String,
            size: String,
            reduceOnly: Bool,
            kind: OrderKind,
            cloid: String?
        ) {
            self.asset = asset
            self.isBuy = isBuy
            self.price = price
            self.size = size
            self.reduceOnly = reduceOnly
            self.kind = kind
            self.cloid = cloid
        }

        var wire: MessagePack {
            let type: MessagePack
            switch kind {
            case .limit(let tif): type = .map([("limit", .map([("tif", .string(tif))]))])
            case .trigger(let triggerPrice, let isMarket, let tpsl):
                type = .map([
                    (
                        "trigger",
                        .map([
                            ("isMarket", .bool(isMarket)), ("triggerPx", .string(triggerPrice)),
                            ("tpsl", .string(tpsl)),
                        ])
                    )
                ])
            }
            var fields: [(String, MessagePack)] = [
                ("a", .int(Int64(asset))), ("b", .bool(isBuy)), ("p", .string(price)), ("s", .string(size)),
                ("r", .bool(reduceOnly)), ("t", type),
            ]
            if let cloid { fields.append(("c", .string(cloid))) }
            return .map(fields)
        }
    }

    /// `{"type":"order","orders":[…],"grouping":"na"}`.
    public static func order(_ orders: [Order], grouping: String = "na") -> MessagePack {
        .map([("type", .string("order")), ("orders", .array(orders.map(\.wire))), ("grouping", .string(grouping))])
    }

    /// `{"type":"cancelByCloid","cancels":[{"asset":…,"cloid":…}]}`.
    public static func cancelByCloid(asset: Int, cloid: String) -> MessagePack {
        .map([
            ("type", .string("cancelByCloid")),
            ("cancels", .array([.map([("asset", .int(Int64(asset))), ("cloid", .string(cloid))])])),
        ])
    }

    /// `{"type":"cancel","cancels":[{"a":…,"o":…}]}`.
    public static func cancel(asset: Int, oid: Int64) -> MessagePack {
        .map([("type", .string("cancel")), ("cancels", .array([.map([("a", .int(Int64(asset))), ("o", .int(oid))])]))])
    }

    /// `{"type":"updateLeverage","asset":…,"isCross":…,"leverage":…}`.
    public static func updateLeverage(asset: Int, isCross: Bool, leverage: Int) -> MessagePack {
        .map([
            ("type", .string("updateLeverage")), ("asset", .int(Int64(asset))), ("isCross", .bool(isCross)),
            ("leverage", .int(Int64(leverage))),
        ])
    }

    /// Hyperliquid's client order id (`0x` + 32 hex) for one of ours: its 32 hex digits, which name it
    /// back (``ClientOrderID/fromDigits(_:)``). Ids of another form are hashed to 128 bits.
    public static func cloid(_ clientOrderID: String) -> String {
        if ClientOrderID.isOurs(clientOrderID) { return "0x" + clientOrderID.suffix(32) }
        let first = StableHash.fnv1a(clientOrderID.utf8)
        let second = StableHash.fnv1a(clientOrderID.utf8, seed: first ^ 0x9E37_79B9_7F4A_7C15)
        return "0x" + ClientOrderID.hex(first) + ClientOrderID.hex(second)
    }
}

extension MessagePack {
    /// The value as JSON, keys in order: the `action` of the `/exchange` body is the hashed one.
    public var json: String {
        var out = ""
        appendJSON(to: &out)
        return out
    }

    func appendJSON(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .string(let text): Self.appendJSONString(text, to: &out)
        case .binary(let bytes): Self.appendJSONString(Hex.string(bytes), to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.appendJSON(to: &out)
            }
            out += "]"
        case .map(let pairs):
            out += "{"
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { out += "," }
                Self.appendJSONString(key, to: &out)
                out += ":"
                value.appendJSON(to: &out)
            }
            out += "}"
        }
    }

    static func appendJSONString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
