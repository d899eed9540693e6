import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TradingCore

/// A REST call to an exchange failed for good; the message says what the exchange answered.
public struct ExchangeRequestError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// A `ExchangeRequestError` with the field given.
    public init(_ description: String) { self.description = description }
}

/// GET requests to one exchange's REST API, inside its request-weight budget. A 429 or 418 stops every
/// request until the exchange's `Retry-After`; 5xx and network errors retry with backoff and jitter;
/// other 4xx answers fail at once with the exchange's own message.
public actor RESTClient {
    /// How one exchange reports its limits and errors.
    public struct Conventions: Sendable {
        public var venue: String
        /// Our budget: keep below the exchange's limit, for other clients on the same IP.
        public var budget: RequestBudget
        /// The header carrying the weight used in the current window, if the exchange sends one.
        public var usedWeightHeader: String?
        /// Answers that mean "slow down" besides 429 and 418 (Bybit: 403).
        public var rateLimitStatuses: Set<Int> = [429, 418]
        /// The exchange's error text from a body.
        public var errorMessage: @Sendable ([UInt8]) -> String?
    }

    public let baseURL: String
    let conventions: Conventions
    let http: HTTPClient
    let logger: Logger
    let timeout: TimeAmount
    let retry: Backoff
    let attempts: Int
    private var budget: RequestBudget

    /// A client for one exchange's REST API, within its request budget.
    public init(
        baseURL: String,
        conventions: Conventions,
        http: HTTPClient = .shared,
        logger: Logger,
        timeout: Duration = .seconds(10),
        retry: Backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(10)),
        attempts: Int = 5
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.conventions = conventions
        self.http = http
        self.logger = logger
        self.timeout = .nanoseconds(timeout.nanoseconds)
        self.retry = retry
        self.attempts = attempts
        self.budget = conventions.budget
    }

    /// The weight used in the current window, as far as we know.
    public func usedWeight() -> Int { budget.used(now: Date()) }

    /// GETs `path` (with its query) spending `weight`; returns the body of a 2xx answer.
    public func get(_ path: String, weight: Int) async throws -> [UInt8] {
        try await send(path, body: nil, weight: weight)
    }

    /// POSTs the JSON `body` to `path` spending `weight` (Hyperliquid's `/info`); returns the body of a
    /// 2xx answer. Retried as a GET is: the requests sent this way only read.
    public func post(_ path: String, json body: [UInt8], weight: Int) async throws -> [UInt8] {
        try await send(path, body: body, weight: weight)
    }

    private func send(_ path: String, body requestBody: [UInt8]?, weight: Int) async throws -> [UInt8] {
        let method = requestBody == nil ? "GET" : "POST"
        var attempt = 0
        while true {
            let wait = budget.reserve(weight: weight, now: Date())
            if wait > 0 {
                logger.debug("waiting for the \(conventions.venue) request budget", metadata: ["seconds": "\(wait)"])
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000) + 1))
                continue
            }
            let failure: String
            var retryAfter: TimeInterval?
            do {
                var request = HTTPClientRequest(url: baseURL + path)
                if let requestBody {
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(bytes: requestBody))
                }
                let response = try await http.execute(request, timeout: timeout)
                let body = Array(try await response.body.collect(upTo: 32 << 20).readableBytesView)
                if let header = conventions.usedWeightHeader,
                    let used = response.headers.first(name: header).flatMap({ Int($0) })
                {
                    budget.observe(used: used, now: Date())
                }
                let status = Int(response.status.code)
                if (200..<300).contains(status) { return body }
                let message = conventions.errorMessage(body) ?? String(decoding: body.prefix(200), as: UTF8.self)
                if conventions.rateLimitStatuses.contains(status) {
                    let seconds = response.headers.first(name: "Retry-After").flatMap { TimeInterval($0) } ?? 1
                    budget.block(for: seconds, now: Date())
                    logger.warning(
                        "\(conventions.venue) asks us to slow down",
                        metadata: ["status": "\(status)", "retry_after": "\(seconds)", "answer": "\(message)"]
                    )
                    retryAfter = seconds
                    failure = "HTTP \(status): \(message)"
                } else if status >= 500 {
                    failure = "HTTP \(status): \(message)"
                } else {
                    throw ExchangeRequestError(
                        "\(conventions.venue) \(method) \(path) failed with HTTP \(status): \(message)"
                    )
                }
            } catch let error as ExchangeRequestError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failure = "\(error)"
            }
            attempt += 1
            if attempt >= attempts {
                throw ExchangeRequestError(
                    "\(conventions.venue) \(method) \(path) failed \(attempts) times; last: \(failure)"
                )
            }
            if retryAfter == nil {
                let delay = retry.delay(attempt: attempt - 1)
                logger.warning(
                    "\(conventions.venue) request failed; retrying",
                    metadata: ["error": "\(failure)", "retry_in": "\(delay)"]
                )
                try await Task.sleep(for: delay)
            }
        }
    }
}

/// Pages a REST candle history: asks for `pageSize` candles' worth of time at a time from `from` until
/// `through`, so any range costs as few requests as the exchange allows.
func pagedCandles(
    from: Int64,
    through: Int64,
    intervalMilliseconds: Int64,
    pageSize: Int,
    fetch: (_ start: Int64, _ end: Int64, _ limit: Int) async throws -> [Candle]
) async throws -> [Candle] {
    var result: [Candle] = []
    var start = from
    while start <= through {
        // Each page's range holds at most `limit` candles, so it does not matter whether the exchange
        // counts the limit from the start (Binance) or from the end (Bybit, newest first).
        let limit = Int(min(Int64(pageSize), (through - start) / intervalMilliseconds + 1))
        let end = min(through, start + Int64(limit - 1) * intervalMilliseconds)
        let page = try await fetch(start, end, limit).filter { $0.openTime >= start && $0.openTime <= end }
        result += page
        start = end + intervalMilliseconds
    }
    return result
}
