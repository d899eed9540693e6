import AsyncHTTPClient
import Foundation
import Logging
import TradingCore

/// Bybit v5 linear, live: the public `kline.<interval>.<symbol>` topics, subscribed ten at a time,
/// with Bybit's `{"op":"ping"}` heartbeat every 20 seconds as its documentation asks.
public struct BybitKlineStream: KlineStream {
    public let venue = "bybit"
    /// `wss://stream.bybit.com` in production.
    public let baseURL: String
    let pingPeriod: Duration
    let heartbeatPeriod: Duration
    let logger: Logger

    /// Bybit's public kline stream at `baseURL`.
    public init(
        baseURL: String = "wss://stream.bybit.com",
        pingPeriod: Duration = .seconds(30),
        heartbeatPeriod: Duration = .seconds(20),
        logger: Logger
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.pingPeriod = pingPeriod
        self.heartbeatPeriod = heartbeatPeriod
        self.logger = logger
    }

    public func session(
        _ streams: [CandleStreamID],
        receive: @escaping @Sendable (KlineStreamEvent) async throws -> Void
    ) async throws {
        var topics: [String] = []
        for stream in streams {
            guard let topic = BybitMessages.topic(symbol: stream.symbol, interval: stream.interval) else {
                throw ExchangeRequestError("Bybit has no kline interval '\(stream.interval)'")
            }
            topics.append(topic)
        }
        let requests = stride(from: 0, to: topics.count, by: BybitMessages.topicsPerSubscribe).map { start in
            BybitMessages.subscribe(
                Array(topics[start..<min(start + BybitMessages.topicsPerSubscribe, topics.count)]),
                requestID: "tradebus-\(start)"
            )
        }
        let session = WebSocketSession(
            venue: venue,
            url: baseURL + BybitMessages.publicLinearPath,
            subscribe: requests,
            heartbeat: (BybitMessages.ping, heartbeatPeriod),
            pingPeriod: pingPeriod,
            decode: { text in
                if let failure = BybitMessages.subscriptionFailure(text) {
                    throw ExchangeRequestError("Bybit refused the subscription: \(failure)")
                }
                return try BybitMessages.klines(text)
            },
            logger: logger
        )
        try await session.run(receive: receive)
    }
}

/// Bybit v5 REST history, `GET /v5/market/kline?category=linear`, inside Bybit's IP limit
/// (600 requests per 5 s; we keep to 80%). Bybit answers 403 when it is exceeded.
public struct BybitKlineHistory: KlineHistory {
    public let client: RESTClient

    /// Bybit v5's limits and error format.
    public static func conventions() -> RESTClient.Conventions {
        RESTClient.Conventions(
            venue: "bybit",
            budget: RequestBudget(limit: 480, window: 5),
            usedWeightHeader: nil,
            rateLimitStatuses: [403, 429],
            errorMessage: { body in
                struct Answer: Decodable {
                    var retCode: Int
                    var retMsg: String
                }
                return (try? JSONDecoder().decode(Answer.self, from: Data(body))).map {
                    "Bybit retCode \($0.retCode): \($0.retMsg)"
                }
            }
        )
    }

    /// Bybit's kline history at `baseURL`.
    public init(baseURL: String = "https://api.bybit.com", http: HTTPClient = .shared, logger: Logger) {
        client = RESTClient(baseURL: baseURL, conventions: Self.conventions(), http: http, logger: logger)
    }

    /// A `BybitKlineHistory` with the field given.
    public init(client: RESTClient) { self.client = client }

    public func candles(_ stream: CandleStreamID, from: Int64, through: Int64) async throws -> [Candle] {
        guard let length = CandleInterval.milliseconds(stream.interval) else {
            throw ExchangeRequestError("'\(stream.interval)' is not an interval Bybit knows")
        }
        return try await pagedCandles(
            from: from,
            through: through,
            intervalMilliseconds: length,
            pageSize: BybitMessages.maxKlinesPerRequest
        ) { start, end, limit in
            guard
                let path = BybitMessages.klinesPath(
                    symbol: stream.symbol,
                    interval: stream.interval,
                    start: start,
                    end: end,
                    limit: limit
                )
            else {
                throw ExchangeRequestError("Bybit has no kline interval '\(stream.interval)'")
            }
            return try BybitMessages.restKlines(try await client.get(path, weight: 1))
        }
    }
}
