import AsyncHTTPClient
import Foundation
import Logging
import TradingCore

/// Binance USDⓈ-M futures, live: the combined kline streams and each symbol's `@markPrice@1s` over one
/// WebSocket connection on the market-data route (`/market/stream`). Binance pings every few minutes
/// and drops a connection after 24 hours; the feed reconnects.
public struct BinanceKlineStream: KlineStream {
    public let venue = "binance"
    /// `wss://fstream.binance.com` in production.
    public let baseURL: String
    let pingPeriod: Duration
    let logger: Logger

    /// Binance's public kline stream at `baseURL`, pinged every `pingPeriod`.
    public init(baseURL: String = "wss://fstream.binance.com", pingPeriod: Duration = .seconds(30), logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.pingPeriod = pingPeriod
        self.logger = logger
    }

    public func session(
        _ streams: [CandleStreamID],
        receive: @escaping @Sendable (KlineStreamEvent) async throws -> Void
    ) async throws {
        let count = streams.count + Set(streams.map { $0.symbol.uppercased() }).count
        guard count <= BinanceMessages.maxStreamsPerConnection else {
            throw ExchangeRequestError(
                "Binance takes at most \(BinanceMessages.maxStreamsPerConnection) streams per connection; asked for \(count) (klines and mark prices)"
            )
        }
        let session = WebSocketSession<KlineStreamEvent>(
            venue: venue,
            url: baseURL + BinanceMessages.combinedStreamPath(streams),
            subscribe: [],
            heartbeat: nil,
            pingPeriod: pingPeriod,
            decode: { text in
                if let mark = try BinanceMessages.markPrice(text) { return [.mark(mark)] }
                return try BinanceMessages.kline(text).map { [.update($0)] } ?? []
            },
            connected: .connected,
            logger: logger
        )
        try await session.run(receive: receive)
    }
}

/// Binance USDⓈ-M futures REST history, `GET /fapi/v1/klines`, inside the request-weight limit
/// (2,400 a minute; we keep to 80% of it and follow `X-MBX-USED-WEIGHT-1M`).
public struct BinanceKlineHistory: KlineHistory {
    public let client: RESTClient

    /// Binance USDⓈ-M's weight limit (per minute) and error format.
    public static func conventions(weightPerMinute: Int = 2_400) -> RESTClient.Conventions {
        RESTClient.Conventions(
            venue: "binance",
            budget: RequestBudget(limit: weightPerMinute * 4 / 5, window: 60),
            usedWeightHeader: "X-MBX-USED-WEIGHT-1M",
            errorMessage: BinanceMessages.errorMessage
        )
    }

    /// Binance's kline history at `baseURL`.
    public init(baseURL: String = "https://fapi.binance.com", http: HTTPClient = .shared, logger: Logger) {
        client = RESTClient(baseURL: baseURL, conventions: Self.conventions(), http: http, logger: logger)
    }

    /// A `BinanceKlineHistory` with the field given.
    public init(client: RESTClient) { self.client = client }

    public func candles(_ stream: CandleStreamID, from: Int64, through: Int64) async throws -> [Candle] {
        guard let length = CandleInterval.milliseconds(stream.interval) else {
            throw ExchangeRequestError("'\(stream.interval)' is not an interval Binance knows")
        }
        return try await pagedCandles(from: from, through: through, intervalMilliseconds: length, pageSize: 1000) {
            start,
            end,
            limit in
            let body = try await client.get(
                BinanceMessages.klinesPath(
                    symbol: stream.symbol,
                    interval: stream.interval,
                    startTime: start,
                    endTime: end,
                    limit: limit
                ),
                weight: BinanceMessages.klinesWeight(limit: limit)
            )
            return try BinanceMessages.restKlines(body)
        }
    }
}

extension BinanceKlineHistory: FundingHistory {
    /// `GET /fapi/v1/fundingRate`, a page of up to 1,000 at a time (it shares a 500-per-5-minutes
    /// limit with `fundingInfo`; each call weighs 1 against the minute's budget here).
    public func fundingRates(symbol: String, from: Date, through: Date) async throws -> [FundingEvent] {
        var events: [FundingEvent] = []
        var start = Int64((from.timeIntervalSince1970 * 1000).rounded(.up))
        let end = Int64((through.timeIntervalSince1970 * 1000).rounded(.down))
        while start <= end {
            let limit = BinanceMessages.maxFundingRatesPerRequest
            let page = try BinanceMessages.fundingRates(
                try await client.get(
                    BinanceMessages.fundingRatePath(symbol: symbol, startTime: start, endTime: end, limit: limit),
                    weight: 1
                )
            )
            events += page
            guard page.count == limit, let last = page.last else { break }
            start = Int64((last.time.timeIntervalSince1970 * 1000).rounded()) + 1
        }
        return events
    }

    /// `GET /fapi/v1/fundingInfo` lists the symbols whose funding interval was changed; for the others,
    /// the spacing of the symbol's last two settlements in `fundingRate` (nil with fewer than two).
    public func fundingInterval(symbol: String) async throws -> Duration? {
        if let hours = try BinanceMessages.fundingIntervalHours(
            try await client.get("/fapi/v1/fundingInfo", weight: 1),
            symbol: symbol
        ) {
            return .seconds(hours * 3600)
        }
        let recent = try BinanceMessages.fundingRates(
            try await client.get("/fapi/v1/fundingRate?symbol=\(symbol.uppercased())&limit=2", weight: 1)
        )
        guard recent.count == 2 else { return nil }
        return .seconds(Int64((recent[1].time.timeIntervalSince(recent[0].time)).rounded()))
    }
}
