import Foundation
import HTTPSupport

/// Signed REST requests, as Binance and Bybit document them. The first piece of the live venues:
/// both sign with HMAC-SHA256 and a shared secret, over different strings.
public enum RequestSigning {
    /// HMAC-SHA256 of `message` with `secret`, as lowercase hex.
    public static func hmacSHA256Hex(_ message: String, secret: String) -> String {
        HMACSigning.sha256Hex(message.utf8, secret: secret)
    }

    /// Binance (USDⓈ-M futures and spot): the query string with `recvWindow` and `timestamp`, then
    /// `&signature=<hex HMAC of everything before it>`. The key goes in the `X-MBX-APIKEY` header.
    public static func binanceQuery(
        _ parameters: [(String, String)],
        timestamp: Int64,
        recvWindow: Int = 5_000,
        secret: String
    ) -> String {
        let query = queryString(parameters + [("recvWindow", String(recvWindow)), ("timestamp", String(timestamp))])
        return query + "&signature=" + hmacSHA256Hex(query, secret: secret)
    }

    /// Bybit v5: the `X-BAPI-SIGN` header is the HMAC of `timestamp + apiKey + recvWindow + payload`,
    /// where the payload is the query string of a GET or the JSON body of a POST.
    public static func bybitSignature(
        timestamp: Int64,
        apiKey: String,
        recvWindow: Int = 5_000,
        payload: String,
        secret: String
    ) -> String {
        hmacSHA256Hex("\(timestamp)\(apiKey)\(recvWindow)\(payload)", secret: secret)
    }

    /// The headers of a signed Bybit v5 request: key, timestamp, window and the signature of `payload`.
    public static func bybitHeaders(
        timestamp: Int64,
        apiKey: String,
        recvWindow: Int = 5_000,
        payload: String,
        secret: String
    ) -> [(String, String)] {
        [
            ("X-BAPI-API-KEY", apiKey), ("X-BAPI-TIMESTAMP", String(timestamp)),
            ("X-BAPI-RECV-WINDOW", String(recvWindow)),
            (
                "X-BAPI-SIGN",
                bybitSignature(
                    timestamp: timestamp,
                    apiKey: apiKey,
                    recvWindow: recvWindow,
                    payload: payload,
                    secret: secret
                )
            ),
        ]
    }

    /// `name=value&...` in the order given, values percent-encoded: the query string both venues sign.
    public static func queryString(_ parameters: [(String, String)]) -> String {
        parameters.map { "\($0.0)=\(percentEncoded($0.1))" }.joined(separator: "&")
    }

    static func percentEncoded(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
