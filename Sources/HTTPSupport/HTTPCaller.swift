import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An HTTP answer, whatever its status.
public struct HTTPAnswer: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    /// The first header of that name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Why no answer came: a ``Code`` to act on, and what the connection said.
public struct HTTPCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Equatable {
        /// No answer within the deadline.
        case timeout
        /// No connection, or it broke.
        case connection
    }

    public var code: Code
    /// What the connection said (empty for a timeout).
    public var detail: String

    /// A `HTTPCallError` with the fields given.
    public init(_ code: Code, detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// No answer within the deadline.
    public static let timeout = HTTPCallError(.timeout)

    /// No connection, or it broke: `reason` says how.
    public static func connection(_ reason: String) -> HTTPCallError { HTTPCallError(.connection, detail: reason) }

    public var description: String {
        switch code {
        case .timeout: "timed out"
        case .connection: "connection failed: \(detail)"
        }
    }
}

/// HTTP calls over AsyncHTTPClient with a deadline, for the adapters that call web services (LLM providers,
/// notification sinks): every status is an answer; only no answer at all is an error.
public struct HTTPCaller: Sendable {
    public let http: HTTPClient

    /// A `HTTPCaller` with the field given.
    public init(http: HTTPClient = .shared) { self.http = http }

    /// A POST with `body`; every HTTP status is an answer, only no answer is an error.
    public func post(
        _ url: String,
        headers: [(String, String)],
        body: [UInt8],
        timeout: Duration
    ) async throws(HTTPCallError) -> HTTPAnswer {
        try await send("POST", url, headers: headers, body: body, timeout: timeout)
    }

    /// Any method; `body` may be empty.
    public func send(
        _ method: String,
        _ url: String,
        headers: [(String, String)],
        body: [UInt8] = [],
        timeout: Duration
    ) async throws(HTTPCallError) -> HTTPAnswer {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let (seconds, attoseconds) = timeout.components
        do {
            let response = try await http.execute(
                request,
                timeout: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            )
            let bytes = Array(try await response.body.collect(upTo: 8 << 20).readableBytesView)
            return HTTPAnswer(
                status: Int(response.status.code),
                headers: response.headers.map { ($0.name, $0.value) },
                body: bytes
            )
        } catch let error as HTTPClientError
            where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout
        {
            throw .timeout
        } catch {
            throw .connection("\(error)")
        }
    }
}
