import Foundation
import HTTPSupport
import Hummingbird
import TestSupport
import Testing

/// HMAC signing against published vectors, and the HTTP caller against a local server.
@Suite("HTTP support")
struct HTTPSupportTests {
    @Test("HMAC-SHA256 matches RFC 4231's test case 2 and Binance's documented example")
    func hmac() {
        #expect(
            HMACSigning.sha256Hex("what do ya want for nothing?".utf8, secret: "Jefe")
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )
        let query =
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        #expect(
            HMACSigning.sha256Hex(
                query.utf8,
                secret: "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
            )
                == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        )
    }

    @Test(
        "every status is an answer, with its headers and body; no answer in time is a timeout; no server is a connection error"
    )
    func caller() async throws {
        let router = Router()
        router.post("echo") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            var response = Response(status: .accepted, body: .init(byteBuffer: body))
            response.headers[.init("X-Seen")!] = request.headers[.init("X-Sent")!] ?? "none"
            return response
        }
        router.get("missing") { _, _ in Response(status: .notFound) }
        router.get("slow") { _, _ -> Response in
            try await Task.sleep(for: .seconds(2))
            return Response(status: .ok)
        }
        let server = try await LocalServer.start(router, label: "http-support-test")
        let caller = HTTPCaller()
        let echo = try await caller.post(
            server.baseURL + "/echo",
            headers: [("X-Sent", "yes")],
            body: Array("hello".utf8),
            timeout: .seconds(5)
        )
        #expect(echo.status == 202 && echo.text == "hello" && echo.header("x-seen") == "yes")
        let missing = try await caller.send("GET", server.baseURL + "/missing", headers: [], timeout: .seconds(5))
        #expect(missing.status == 404)
        await #expect {
            _ = try await caller.send("GET", server.baseURL + "/slow", headers: [], timeout: .milliseconds(200))
        } throws: {
            "\($0)" == "timed out"
        }
        await server.stop()
        await #expect {
            _ = try await caller.send("GET", server.baseURL + "/missing", headers: [], timeout: .seconds(2))
        } throws: {
            "\($0)".hasPrefix("connection failed")
        }
    }
}
