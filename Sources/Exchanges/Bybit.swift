import AsyncHTTPClient
import Foundation
import Logging
import TradingCore

/// Bybit v5 linear, live: the public `kline.<interval>.<symbol>` topics and each symbol's
/// `tickers.<symbol>` (mark price, funding rate, next funding time), subscribed ten at a time, with
/// Bybit's `{"op":"ping"}` heartbeat every 20 seconds as its documentation asks.
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
        for symbol in Set(streams.map { $0.symbol.uppercased() }).sorted() {
            topics.append(BybitMessages.tickerTopic(symbol: symbol))
        }
        let requests = stride(from: 0, to: topics.count, by: BybitMessages.topicsPerSubscribe).map { start in
            BybitMessages.subscribe(
                Array(topics[start..<min(start + BybitMessages.topicsPerSubscribe, topics.count)]),
                requestID: "tradebus-\(start)"
            )
        }
        let session = WebSocketSession<KlineStreamEvent>(
            venue: venue,
            url: baseURL + BybitMessages.publicLinearPath,
            subscribe: requests,
            heartbeat: (BybitMessages.ping, heartbeatPeriod),
            pingPeriod: pingPeriod,
            decode: { text in
                if let failure = BybitMessages.subscriptionFailure(text) {
                    throw ExchangeRequestError("Bybit refused the subscription: \(failure)")
                }
                if let mark = try BybitMessages.ticker(text) { return [.mark(mark)] }
                return try BybitMessages.klines(text).map { .update($0) }
            },
            connected: .connected,
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

extension BybitKlineHistory: FundingHistory {
    /// `GET /v5/market/funding/history`, newest first, a page of up to 200 at a time, walking back.
    public func fundingRates(symbol: String, from: Date, through: Date) async throws -> [FundingEvent] {
        var events: [FundingEvent] = []
        let start = Int64((from.timeIntervalSince1970 * 1000).rounded(.up))
        var end = Int64((through.timeIntervalSince1970 * 1000).rounded(.down))
        while start <= end {
            let limit = BybitMessages.maxFundingRatesPerRequest
            let page = try BybitMessages.fundingHistory(
                try await client.get(
                    BybitMessages.fundingHistoryPath(symbol: symbol, startTime: start, endTime: end, limit: limit),
                    weight: 1
                )
            )
            events = page + events
            guard page.count == limit, let first = page.first else { break }
            end = Int64((first.time.timeIntervalSince1970 * 1000).rounded()) - 1
        }
        return events
    }

    /// The symbol's `fundingInterval` (minutes) in `GET /v5/market/instruments-info`.
    public func fundingInterval(symbol: String) async throws -> Duration? {
        try BybitMessages.fundingIntervalMinutes(
            try await client.get(BybitMessages.instrumentPath(symbol: symbol), weight: 1),
            symbol: symbol
        ).map { .seconds($0 * 60) }
    }
}
