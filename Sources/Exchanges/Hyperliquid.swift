import AsyncHTTPClient
import Foundation
import Hyperliquid
import Logging
import Synchronization
import TradingCore

/// Hyperliquid perpetuals, live: each symbol's `candle` subscription, its `activeAssetCtx` (mark
/// price and the hourly funding rate) and its `trades` (the last trade's price is the latest), on one
/// connection, with Hyperliquid's `{"method":"ping"}` every
/// 30 s (it closes a connection silent for 60 s). Symbols are ours (`BTCUSDT`); Hyperliquid's coin is
/// `BTC`. A candle is closed when the next one's first update arrives (``CandleRollover``).
public struct HyperliquidKlineStream: KlineStream {
    public let venue = "hyperliquid"
    /// `wss://api.hyperliquid.xyz` in production.
    public let baseURL: String
    let pingPeriod: Duration
    let heartbeatPeriod: Duration
    let logger: Logger

    /// Hyperliquid's public stream at `baseURL`.
    public init(
        baseURL: String = "wss://api.hyperliquid.xyz",
        pingPeriod: Duration = .seconds(30),
        heartbeatPeriod: Duration = .seconds(30),
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
        var requests: [[UInt8]] = []
        var symbols: [String: String] = [:]
        for stream in streams {
            guard HyperliquidMessages.intervals.contains(stream.interval) else {
                throw ExchangeRequestError("Hyperliquid has no candle interval '\(stream.interval)'")
            }
            let coin = HyperliquidCoins.coin(stream.symbol.uppercased())
            symbols[coin] = stream.symbol.uppercased()
            requests.append(HyperliquidMessages.subscribeCandles(coin: coin, interval: stream.interval))
        }
        for coin in symbols.keys.sorted() {
            requests.append(HyperliquidMessages.subscribeAssetContext(coin: coin))
            requests.append(HyperliquidMessages.subscribeTrades(coin: coin))
        }
        let ours = symbols
        let rollover = Rollover()
        let session = WebSocketSession<KlineStreamEvent>(
            venue: venue,
            url: baseURL + HyperliquidMessages.webSocketPath,
            subscribe: requests,
            heartbeat: (HyperliquidMessages.ping, heartbeatPeriod),
            pingPeriod: pingPeriod,
            decode: { text in
                if let failure = HyperliquidMessages.error(text) {
                    throw ExchangeRequestError("Hyperliquid refused a request: \(failure)")
                }
                if let mark = try HyperliquidMessages.assetContext(text, symbol: { ours[$0] }, now: Date()) {
                    return [.mark(mark)]
                }
                let trades = try HyperliquidMessages.lastTrades(text, symbol: { ours[$0] })
                if !trades.isEmpty { return trades.map { .trade(symbol: $0.symbol, price: $0.price, time: $0.time) } }
                guard let (coin, interval, candle) = try HyperliquidMessages.candle(text), let symbol = ours[coin]
                else { return [] }
                let update = KlineUpdate(
                    venue: "hyperliquid",
                    symbol: symbol,
                    interval: interval,
                    candle: candle,
                    closed: false
                )
                return rollover.state.withLock { $0.observe(update) }.map { .update($0) }
            },
            connected: .connected,
            logger: logger
        )
        try await session.run(receive: receive)
    }
}

/// The session's ``CandleRollover``, shared with its decoder (one connection's messages).
private final class Rollover: Sendable {
    let state = Mutex(CandleRollover())
}

/// Hyperliquid's REST history through `POST /info`: `candleSnapshot` (the newest 5,000 candles exist)
/// and `fundingHistory` (500 a page, oldest first), inside the 1,200-weight-a-minute IP limit (we keep
/// to 80 %): 20 a request, and one more per 60 candles or 20 settlements answered.
public struct HyperliquidMarketHistory: KlineHistory, FundingHistory {
    public let client: RESTClient

    /// Hyperliquid's limits and error format (plain text, or `{"error": …}`).
    public static func conventions() -> RESTClient.Conventions {
        RESTClient.Conventions(
            venue: "hyperliquid",
            budget: RequestBudget(limit: 960, window: 60),
            usedWeightHeader: nil,
            rateLimitStatuses: [429],
            errorMessage: { body in
                struct Answer: Decodable { var error: String }
                return (try? JSONDecoder().decode(Answer.self, from: Data(body))).map { "Hyperliquid: \($0.error)" }
            }
        )
    }

    /// Hyperliquid's history at `baseURL`.
    public init(baseURL: String = "https://api.hyperliquid.xyz", http: HTTPClient = .shared, logger: Logger) {
        client = RESTClient(baseURL: baseURL, conventions: Self.conventions(), http: http, logger: logger)
    }

    public func candles(_ stream: CandleStreamID, from: Int64, through: Int64) async throws -> [Candle] {
        guard HyperliquidMessages.intervals.contains(stream.interval),
            let length = CandleInterval.milliseconds(stream.interval)
        else {
            throw ExchangeRequestError("Hyperliquid has no candle interval '\(stream.interval)'")
        }
        let coin = HyperliquidCoins.coin(stream.symbol.uppercased())
        return try await pagedCandles(
            from: from,
            through: through,
            intervalMilliseconds: length,
            pageSize: HyperliquidMessages.maxCandlesPerRequest
        ) { start, end, limit in
            try HyperliquidMessages.candles(
                try await client.post(
                    HyperliquidMessages.infoPath,
                    json: HyperliquidMessages.candleSnapshotRequest(
                        coin: coin,
                        interval: stream.interval,
                        startTime: start,
                        endTime: end
                    ),
                    weight: 20 + (limit + 59) / 60
                )
            )
        }
    }

    /// Settlements a page of 500 at a time, walking forward from `from`.
    public func fundingRates(symbol: String, from: Date, through: Date) async throws -> [FundingEvent] {
        let coin = HyperliquidCoins.coin(symbol.uppercased())
        var events: [FundingEvent] = []
        var start = Int64((from.timeIntervalSince1970 * 1000).rounded(.up))
        let end = Int64((through.timeIntervalSince1970 * 1000).rounded(.down))
        while start <= end {
            let page = try HyperliquidMessages.fundingHistory(
                try await client.post(
                    HyperliquidMessages.infoPath,
                    json: HyperliquidMessages.fundingHistoryRequest(coin: coin, startTime: start, endTime: end),
                    weight: 20 + HyperliquidMessages.maxFundingRatesPerRequest / 20
                )
            ).filter { $0.time >= from && $0.time <= through }
            events += page
            guard page.count == HyperliquidMessages.maxFundingRatesPerRequest, let last = page.last else { break }
            start = Int64((last.time.timeIntervalSince1970 * 1000).rounded()) + 1
        }
        return events
    }

    /// Hourly, for every perpetual.
    public func fundingInterval(symbol: String) async throws -> Duration? { HyperliquidMessages.fundingInterval }
}

/// Followed traders on Hyperliquid, where every account is public: the `userFills` subscription for
/// each leader (a snapshot of recent fills first, then each fill as it happens) with the ping heartbeat,
/// and their equity and stop triggers through `clearinghouseState` (weight 2) and `frontendOpenOrders`
/// (weight 20), inside the same request budget as the history.
public struct HyperliquidLeaders: LeaderSource {
    public let webSocketURL: String
    let client: RESTClient
    let heartbeatPeriod: Duration
    let logger: Logger

    /// Leaders read at `webSocketURL` (`wss://api.hyperliquid.xyz`) and `restURL`.
    public init(
        webSocketURL: String = "wss://api.hyperliquid.xyz",
        restURL: String = "https://api.hyperliquid.xyz",
        heartbeatPeriod: Duration = .seconds(30),
        http: HTTPClient = .shared,
        logger: Logger
    ) {
        self.webSocketURL = webSocketURL.hasSuffix("/") ? String(webSocketURL.dropLast()) : webSocketURL
        self.client = RESTClient(
            baseURL: restURL,
            conventions: HyperliquidMarketHistory.conventions(),
            http: http,
            logger: logger
        )
        self.heartbeatPeriod = heartbeatPeriod
        self.logger = logger
    }

    public func account(_ leader: String) async throws -> LeaderAccount {
        let state = try await client.post(
            HyperliquidMessages.infoPath,
            json: HyperliquidLeaderMessages.stateRequest(user: leader),
            weight: 2
        )
        let orders = try await client.post(
            HyperliquidMessages.infoPath,
            json: HyperliquidLeaderMessages.openOrdersRequest(user: leader),
            weight: 20
        )
        return try HyperliquidLeaderMessages.account(state: state, openOrders: orders)
    }

    public func recentFills(_ leader: String) async throws -> [LeaderFill] {
        // 20, and 1 more per 20 items returned: up to 2,000 fills is 120 of the 1,200 a minute.
        try HyperliquidLeaderMessages.recentFills(
            try await client.post(
                HyperliquidMessages.infoPath,
                json: HyperliquidLeaderMessages.fillsRequest(user: leader),
                weight: 120
            )
        )
    }

    public func fills(
        _ leaders: [String],
        receive: @escaping @Sendable (LeaderFillBatch) async throws -> Void
    ) async throws {
        let session = WebSocketSession<LeaderFillBatch>(
            venue: "hyperliquid",
            url: webSocketURL + HyperliquidMessages.webSocketPath,
            subscribe: leaders.map { HyperliquidLeaderMessages.subscribeFills(user: $0) },
            heartbeat: (HyperliquidMessages.ping, heartbeatPeriod),
            pingPeriod: .seconds(30),
            decode: { text in
                if let failure = HyperliquidMessages.error(text) {
                    throw ExchangeRequestError("Hyperliquid refused a request: \(failure)")
                }
                return try HyperliquidLeaderMessages.fills(text).map { [$0] } ?? []
            },
            logger: logger
        )
        try await session.run(receive: receive)
    }
}
