import Crypto

/// HMAC-SHA256 signatures as web services want them: lowercase hex.
public enum HMACSigning {
    /// HMAC-SHA256 of `message` with `secret`, as lowercase hex (Binance and Bybit request signatures).
    public static func sha256Hex<Bytes: Sequence>(_ message: Bytes, secret: String) -> String
    where Bytes.Element == UInt8 {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(message), using: SymmetricKey(data: Array(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }
}
