import Testing
import Venues

@Suite("Signed requests")
struct RequestSigningTests {
    /// The example in Binance's API documentation ("SIGNED Endpoint Examples for POST /api/v3/order").
    @Test("Binance's documented signature example")
    func binanceKnownAnswer() {
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
        let query =
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        #expect(
            RequestSigning.hmacSHA256Hex(query, secret: secret)
                == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        )
        let signed = RequestSigning.binanceQuery(
            [
                ("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"),
                ("price", "0.1"),
            ],
            timestamp: 1_499_827_319_559,
            secret: secret
        )
        #expect(signed == query + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")
    }

    @Test("Bybit signs timestamp, key, window and payload, in that order")
    func bybit() {
        let signature = RequestSigning.bybitSignature(
            timestamp: 1_658_384_314_791,
            apiKey: "XXXXXXXXXX",
            recvWindow: 5_000,
            payload: "category=option&symbol=BTC-29JUL22-25000-C",
            secret: "YYYYYYYYYY"
        )
        #expect(
            signature
                == RequestSigning.hmacSHA256Hex(
                    "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C",
                    secret: "YYYYYYYYYY"
                )
        )
        #expect(signature.count == 64 && signature.allSatisfy { $0.isHexDigit })
    }
}
