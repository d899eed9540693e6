import Foundation
import Logging
import Testing

@testable import WorkerRuntime

@Suite("Log lines")
struct LogFormatTests {
    @Test("JSON lines carry the correlation id and metadata")
    func jsonLine() throws {
        let line = TradeBusLogHandler.render(
            time: Date(timeIntervalSince1970: 0),
            level: .warning,
            label: "executor",
            message: "order sent",
            correlationID: "corr-9",
            metadata: ["symbol": "BTCUSDT"],
            format: .json
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["correlation_id"] == "corr-9")
        #expect(object["message"] == "order sent")
        #expect(object["level"] == "warning")
        #expect(object["symbol"] == "BTCUSDT")
        #expect(line.hasSuffix("}\n"))
    }

    @Test("text lines carry the correlation id")
    func textLine() {
        let line = TradeBusLogHandler.render(
            time: Date(timeIntervalSince1970: 0),
            level: .info,
            label: "feed",
            message: "hello",
            correlationID: "c1",
            metadata: [:],
            format: .text
        )
        #expect(line.contains("info [c1] feed: hello"))
    }
}
