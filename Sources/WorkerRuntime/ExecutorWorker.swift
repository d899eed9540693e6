import Foundation
import Hyperliquid
import Logging
import ServiceLifecycle
import Synchronization
import TradingCore
import TradingServices
import Venues

/// Where the executor's orders go.
public enum VenueChoice: Sendable {
    /// The paper venue (the default): no request to any exchange, ever.
    case paper
    /// Live orders with real money, over signed REST.
    case live(LiveVenue)

    /// A live exchange to send orders to, with its keys and URLs.
    public struct LiveVenue: Sendable {
        /// The exchanges live orders can go to.
        public enum Exchange: String, Sendable { case binance, bybit, hyperliquid }
        public var exchange: Exchange
        public var baseURL: String
        /// Binance and Bybit: the API key. Hyperliquid: the account's address (`HYPERLIQUID_ACCOUNT`).
        public var apiKey: String
        /// Binance and Bybit: the API secret. Hyperliquid: the agent wallet's private key.
        public var secret: String
        /// Hyperliquid: how far past the mid an IOC entry or exit may fill (`HYPERLIQUID_SLIPPAGE`).
        public var slippage: Double = 0.02
        public var recvWindow: Int
        /// The share of the exchange's request limit we spend (polling half of it).
        public var rateLimitShare: Double
        /// The private WebSocket stream of fills and order updates (nil: REST polling only).
        public var userStreamURL: String?
    }

    /// Where the exchange's private stream lives for a REST base URL: the exchange's own for its
    /// production and testnet hosts, the same host and port (`ws://`) for a local test server.
    static func userStreamURL(exchange: LiveVenue.Exchange, restURL: String) -> String {
        let local = restURL.replacingOccurrences(of: "https://", with: "wss://").replacingOccurrences(
            of: "http://",
            with: "ws://"
        )
        switch (exchange, restURL) {
        case (.binance, "https://fapi.binance.com"): return "wss://fstream.binance.com/private/ws"
        case (.binance, "https://testnet.binancefuture.com"): return "wss://fstream.binancefuture.com/private/ws"
        case (.binance, _): return local + "/private/ws"
        case (.bybit, "https://api.bybit.com"): return "wss://stream.bybit.com/v5/private"
        case (.bybit, "https://api-testnet.bybit.com"): return "wss://stream-testnet.bybit.com/v5/private"
        case (.bybit, _): return local + "/v5/private"
        case (.hyperliquid, _): return local + "/ws"
        }
    }

    /// `USE_PAPER_TRADING` (default true). Only when it is false are `LIVE_VENUE` and that exchange's
    /// keys read; paper mode never reads them, so it can never sign a request.
    static func read(_ config: SettingsReader) throws -> VenueChoice {
        guard
            !(try config.bool(
                "USE_PAPER_TRADING",
                default: true,
                help: "paper venue (true) or live orders with real money (false)"
            ))
        else { return .paper }
        let exchange = VenueChoice.LiveVenue.Exchange(
            rawValue: try config.choice(
                "LIVE_VENUE",
                default: "binance",
                allowed: ["binance", "bybit", "hyperliquid"],
                help: "exchange for live orders"
            )
        )!
        if exchange == .hyperliquid { return try hyperliquid(config) }
        let prefix = exchange == .binance ? "BINANCE" : "BYBIT"
        let defaultURL = exchange == .binance ? "https://fapi.binance.com" : "https://api.bybit.com"
        let testnetURL = exchange == .binance ? "https://testnet.binancefuture.com" : "https://api-testnet.bybit.com"
        let url = try config.string(
            "\(prefix)_FUTURES_URL",
            default: defaultURL,
            help: "REST base URL (testnet: \(testnetURL))"
        )!
        guard url.hasPrefix("https://") || url.hasPrefix("http://127.0.0.1") || url.hasPrefix("http://localhost") else {
            throw ConfigError(
                key: "\(prefix)_FUTURES_URL",
                message: "must be https:// (plain http only to a local test server): \(url)"
            )
        }
        return .live(
            LiveVenue(
                exchange: exchange,
                baseURL: url,
                apiKey: try config.required(
                    "\(prefix)_API_KEY",
                    secret: true,
                    help: "API key: trading rights only, never withdrawals"
                ),
                secret: try config.required("\(prefix)_API_SECRET", secret: true, help: "API secret"),
                recvWindow: try config.int(
                    "\(prefix)_RECV_WINDOW_MS",
                    default: 5_000,
                    range: 100...60_000,
                    help: "signed requests' validity window"
                ),
                rateLimitShare: try config.double(
                    "VENUE_RATE_LIMIT_SHARE",
                    default: 0.8,
                    range: 0.1...0.95,
                    help: "share of the exchange's request limit we spend; polling gets half of it"
                ),
                userStreamURL: try userStream(
                    config,
                    key: "\(prefix)_USER_STREAM_URL",
                    default: userStreamURL(exchange: exchange, restURL: url)
                )
            )
        )
    }

    /// The private stream's URL: `wss://` (plain `ws://` only to a local test server), or `off`.
    static func userStream(_ config: SettingsReader, key: String, default url: String) throws -> String? {
        let value = try config.string(
            key,
            default: url,
            help: "private stream of fills and order updates (off: REST polling only)"
        )!
        guard value != "off" else { return nil }
        guard value.hasPrefix("wss://") || value.hasPrefix("ws://127.0.0.1") || value.hasPrefix("ws://localhost") else {
            throw ConfigError(
                key: key,
                message: "must be wss:// (plain ws:// only to a local test server), or off: \(value)"
            )
        }
        return value
    }

    /// Hyperliquid: the account traded and the agent (API) wallet that signs for it, which cannot
    /// withdraw. The agent key is a secret (`HYPERLIQUID_AGENT_KEY` or `HYPERLIQUID_AGENT_KEY_FILE`).
    static func hyperliquid(_ config: SettingsReader) throws -> VenueChoice {
        let url = try config.string(
            "HYPERLIQUID_URL",
            default: "https://api.hyperliquid.xyz",
            help: "API base URL (testnet: https://api.hyperliquid-testnet.xyz)"
        )!
        guard url.hasPrefix("https://") || url.hasPrefix("http://127.0.0.1") || url.hasPrefix("http://localhost") else {
            throw ConfigError(
                key: "HYPERLIQUID_URL",
                message: "must be https:// (plain http only to a local test server): \(url)"
            )
        }
        let account = try config.required("HYPERLIQUID_ACCOUNT", help: "the trading account's address (0x + 40 hex)")
        guard account.count == 42, account.hasPrefix("0x"), account.dropFirst(2).allSatisfy(\.isHexDigit) else {
            throw ConfigError(
                key: "HYPERLIQUID_ACCOUNT",
                message: "must be an address, 0x and 40 hex digits: \(account)"
            )
        }
        let key = try config.required(
            "HYPERLIQUID_AGENT_KEY",
            secret: true,
            help: "the agent (API) wallet's private key: it trades, it cannot withdraw"
        )
        var live = LiveVenue(
            exchange: .hyperliquid,
            baseURL: url,
            apiKey: account.lowercased(),
            secret: key,
            recvWindow: 0,
            rateLimitShare: try config.double(
                "VENUE_RATE_LIMIT_SHARE",
                default: 0.8,
                range: 0.1...0.95,
                help: "share of the exchange's request limit we spend; polling gets half of it"
            ),
            userStreamURL: try userStream(
                config,
                key: "HYPERLIQUID_USER_STREAM_URL",
                default: userStreamURL(exchange: .hyperliquid, restURL: url)
            )
        )
        live.slippage = try config.double(
            "HYPERLIQUID_SLIPPAGE",
            default: 0.02,
            range: 0.001...0.1,
            help: "how far past the mid an IOC entry or exit may fill"
        )
        return .live(live)
    }
}

/// executor's configuration: the venue, the risk limits, the circuit breakers and the stop policy.
public struct ExecutorConfiguration: Sendable {
    public var venue: VenueChoice
    public var settings: TradeExecutor.Settings
    public var initialCapital: Money
    public var paperStateFile: String?
    public var paper: PaperExchange.Settings
    /// The venue whose candles price the paper account and move the stops (`*`: every venue).
    public var priceVenue: String
    /// How often the store is reconciled with the venue (`RECONCILE_INTERVAL_SECONDS`).
    public var reconcileInterval: Duration
    /// How long the account's executor lease lasts unrenewed (`EXECUTOR_LEASE_SECONDS`).
    public var leaseDuration: Duration

    /// Reads and checks the executor's keys; a bad one stops it at start, naming the key.
    public static func read(_ config: SettingsReader) throws -> ExecutorConfiguration {
        let venue = try VenueChoice.read(config)
        let framework = try TradingFramework.read(config)
        var limits = RiskLimits()
        limits.minConfidence = framework.minConfidence
        limits.maxLeverage = framework.maxLeverage
        limits.minStopFraction = Money(finite: framework.minStopFraction)!
        limits.maxStopFraction = Money(finite: framework.maxStopFraction)!
        limits.minRewardRisk = Money(finite: framework.minRewardRisk)!
        func fraction(_ key: String, _ value: Double, _ range: ClosedRange<Double>, _ help: String) throws -> Money {
            Money(finite: try config.double(key, default: value, range: range, help: help))!
        }
        limits.minProfitUSD = try fraction(
            "MIN_PROFIT_USD",
            1,
            0...1_000_000,
            "profit at take-profit after fees, at least"
        )
        limits.riskPerTradeFraction = try fraction(
            "RISK_PER_TRADE_PERCENT",
            0.01,
            0.0001...0.5,
            "equity lost at the stop (0.01 = 1%)"
        )
        limits.maxPositionFraction = try fraction(
            "MAX_POSITION_PERCENT",
            0.25,
            0.001...1,
            "margin of one position, of equity"
        )
        limits.maxOpenPositions = try config.int(
            "MAX_OPEN_POSITIONS",
            default: 3,
            range: 1...100,
            help: "positions open at once"
        )
        limits.maxDecisionAge = try config.double(
            "MAX_DECISION_AGE_SECONDS",
            default: 120,
            range: 1...86_400,
            help: "older decisions are refused"
        )
        limits.maxPriceMoveFraction = try fraction(
            "MAX_PRICE_MOVE_PERCENT",
            0.01,
            0...0.5,
            "price move since the decision"
        )
        // At most 5 %: a limit written in percent where a fraction belongs (0.5 for 0.5 %, a hundred
        // times too lenient) is refused at start, never used.
        limits.maxPriceDeviationFraction = try fraction(
            "MAX_PRICE_DEVIATION_PERCENT",
            0.005,
            0...0.05,
            "venue against reference price"
        )
        limits.liquidationBufferFraction = try fraction(
            "LIQUIDATION_BUFFER_PERCENT",
            0.25,
            0...0.95,
            "stop before liquidation, of the distance"
        )
        limits.takerFeeRate = try fraction("TAKER_FEE_RATE", 0.0005, 0...0.01, "taker fee")
        var settings = TradeExecutor.Settings()
        settings.referenceVenue = try config.string(
            "REFERENCE_VENUE",
            help: "venue whose latest price is the reference (price:<venue>:<symbol>)"
        )
        limits.requireReferencePrice = try config.bool(
            "REQUIRE_REFERENCE_PRICE",
            default: settings.referenceVenue != nil,
            help: "no trade without a reference price"
        )
        settings.limits = limits
        settings.halts.dailyLossFraction = try fraction(
            "DAILY_LOSS_LIMIT_PERCENT",
            0.05,
            0.001...1,
            "daily loss that halts trading"
        )
        settings.halts.maxConsecutiveLosses = try config.int(
            "MAX_CONSECUTIVE_LOSSES",
            default: 3,
            range: 1...100,
            help: "losing trades in a row that halt trading"
        )
        settings.halts.maxDrawdownFraction = try fraction(
            "MAX_DRAWDOWN_PERCENT",
            0.15,
            0.001...1,
            "drawdown from the peak that halts trading"
        )
        let trailingCallback = try config.double(
            "TRAILING_CALLBACK_PERCENT",
            default: 0,
            range: 0...0.5,
            help: "0: no trailing stop"
        )
        settings.policy = StopPolicy(
            trailingActivationR: trailingCallback > 0
                ? try fraction("TRAILING_ACTIVATION_R", 1, 0...100, "R in favour before trailing") : nil,
            trailingCallbackFraction: trailingCallback > 0 ? Money(finite: trailingCallback) : nil,
            breakEvenAfterOneR: try config.bool("BREAK_EVEN_AFTER_1R", default: false, help: "stop to entry after +1R"),
            atrMultiple: try atrMultiple(config)
        )
        settings.closeOnOpposite = try config.bool(
            "CLOSE_ON_OPPOSITE_DECISION",
            default: true,
            help: "an opposing decision closes the position"
        )
        settings.account = try config.string(
            "EXECUTOR_ACCOUNT",
            default: "default",
            help: "account name in queue names"
        )!
        settings.shadow =
            try config.choice(
                "EXECUTOR_DECISIONS",
                default: "live",
                allowed: ["live", "shadow"],
                help: "live: the panel's decisions; shadow: ANALYST_SHADOW's, on paper only"
            ) == "shadow"
        settings.kernel.stopProtectionTimeout = try config.double(
            "STOP_PROTECTION_TIMEOUT_SECONDS",
            default: 5,
            range: 1...60,
            help: "a position without a stop this long is flattened"
        )
        settings.kernel.orderUnknownTimeout = try config.double(
            "ORDER_UNKNOWN_TIMEOUT_SECONDS",
            default: 30,
            range: 5...3_600,
            help: "an unknown order is queried this long, then settled by the venue"
        )
        settings.kernel.protectionCheckInterval = min(2, settings.kernel.stopProtectionTimeout / 2)
        settings.adoptPolicy = TradeExecutor.AdoptPolicy(
            rawValue: try config.choice(
                "ADOPT_POLICY",
                default: "protect",
                allowed: TradeExecutor.AdoptPolicy.allCases.map(\.rawValue),
                help:
                    "a position at the venue the executor did not open: protect (stop at MAX_STOP_LOSS_PERCENT), flatten, or ignore"
            )
        )!
        var paper = PaperExchange.Settings()
        paper.slippageFraction = try fraction(
            "PAPER_SLIPPAGE_PERCENT",
            0.0005,
            0...0.1,
            "paper fills move this against the taker (with PAPER_SLIPPAGE_MODEL=volume, the least they move)"
        )
        paper.slippageModel = PaperExchange.SlippageModel(
            rawValue: try config.choice(
                "PAPER_SLIPPAGE_MODEL",
                default: "fixed",
                allowed: PaperExchange.SlippageModel.allCases.map(\.rawValue),
                help: "fixed, or volume: slippage grows with the order's share of the candle's quote volume"
            )
        )!
        paper.volumeImpact = try fraction(
            "PAPER_SLIPPAGE_VOLUME_IMPACT",
            0.1,
            0...100,
            "volume model: slippage added per unit of the order's notional over the candle's quote volume"
        )
        paper.slippageCap = try fraction(
            "PAPER_SLIPPAGE_CAP_PERCENT",
            0.01,
            0...0.5,
            "volume model: the most slippage can be"
        )
        paper.spreadFraction = try fraction(
            "PAPER_SPREAD_PERCENT",
            0,
            0...0.1,
            "a fixed bid-ask spread; paper taker fills pay half of it"
        )
        paper.liquidationFeeRate = try fraction(
            "PAPER_LIQUIDATION_FEE_PERCENT",
            0.0125,
            0...0.1,
            "the clearance fee of a paper liquidation, on the notional at the liquidation price (Binance BTCUSDT: 1.25)"
        )
        paper.takerFeeRate = limits.takerFeeRate
        if settings.shadow, case .live = venue {
            throw ConfigError(
                key: "EXECUTOR_DECISIONS",
                message: "is shadow: a shadow analyst's decisions trade on paper only (USE_PAPER_TRADING=true)"
            )
        }
        return ExecutorConfiguration(
            venue: venue,
            settings: settings,
            initialCapital: try fraction(
                "INITIAL_CAPITAL",
                10_000,
                1...1_000_000_000,
                "paper account's starting balance (USD)"
            ),
            paperStateFile: try config.string(
                "PAPER_STATE_FILE",
                default: ".tradebus/paper-default.json",
                help: "where the paper venue keeps its state"
            ),
            paper: paper,
            priceVenue: try config.string(
                "EXECUTOR_PRICE_VENUE",
                default: "*",
                help: "venue of the candles that price the paper account (*: all)"
            )!,
            reconcileInterval: .seconds(
                try config.int(
                    "RECONCILE_INTERVAL_SECONDS",
                    default: 30,
                    range: 5...3_600,
                    help: "store against venue: positions, open orders, stops, recent fills"
                )
            ),
            leaseDuration: .seconds(
                try config.int(
                    "EXECUTOR_LEASE_SECONDS",
                    default: 15,
                    range: 3...300,
                    help: "one active executor per account: a standby takes over this long after it stops renewing"
                )
            )
        )
    }
}

extension ExecutorConfiguration {
    /// `ATR_STOP_MULTIPLE`: 0 (the default) is off; else the stop trails that many ATR(14) behind the close.
    static func atrMultiple(_ config: SettingsReader) throws -> Money? {
        let multiple = try config.double(
            "ATR_STOP_MULTIPLE",
            default: 0,
            range: 0...50,
            help: "ATR-adaptive stop: ATRs behind the close (0: off)"
        )
        return multiple > 0 ? Money(finite: multiple) : nil
    }

    /// The configured venue.
    public func makeVenue(logger: Logger) throws -> any Venue {
        switch venue {
        case .paper:
            if let file = paperStateFile {
                try FileManager.default.createDirectory(
                    atPath: URL(fileURLWithPath: file).deletingLastPathComponent().path,
                    withIntermediateDirectories: true
                )
            }
            return try PaperVenue(balance: initialCapital, settings: paper, path: paperStateFile)
        case .live(let live):
            logger.warning(
                "LIVE TRADING: orders go to \(live.exchange.rawValue) with real money",
                metadata: ["url": "\(live.baseURL)"]
            )
            switch live.exchange {
            case .binance:
                return BinanceFuturesVenue(
                    baseURL: live.baseURL,
                    apiKey: live.apiKey,
                    secret: live.secret,
                    recvWindow: live.recvWindow,
                    logger: logger,
                    rateLimitShare: live.rateLimitShare,
                    streamURL: live.userStreamURL
                )
            case .hyperliquid:
                let key: AgentKey
                do { key = try AgentKey(hex: live.secret) } catch {
                    throw ConfigError(key: "HYPERLIQUID_AGENT_KEY", message: error.message)
                }
                return HyperliquidPerpsVenue(
                    baseURL: live.baseURL,
                    account: live.apiKey,
                    key: key,
                    slippage: Money(finite: live.slippage) ?? Money(string: "0.02")!,
                    logger: logger,
                    rateLimitShare: live.rateLimitShare,
                    streamURL: live.userStreamURL
                )
            case .bybit:
                return BybitLinearVenue(
                    baseURL: live.baseURL,
                    apiKey: live.apiKey,
                    secret: live.secret,
                    recvWindow: live.recvWindow,
                    logger: logger,
                    rateLimitShare: live.rateLimitShare,
                    streamURL: live.userStreamURL
                )
            }
        }
    }
}

/// Reconciles with the venue (retrying with backoff until it can), then keeps the store and the venue
/// in step: the venue's events every second (live venues), a full reconciliation every
/// `interval`, and one at once after the venue or the store answers again following a failure.
public struct ReconcileService: Service {
    public let executor: TradeExecutor
    /// Live venues report fills on their own time; the paper venue's come with the candles.
    public let pollEvents: Bool
    public let interval: Duration
    public let logger: Logger

    /// A `ReconcileService` with the fields given.
    public init(
        executor: TradeExecutor,
        pollEvents: Bool,
        interval: Duration,
        logger: Logger
    ) {
        self.executor = executor
        self.pollEvents = pollEvents
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var attempt = 0
                let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
                while !Task.isCancelled {
                    do {
                        try await executor.reconcile()
                        logger.info("reconciled with the venue; orders may go")
                        break
                    } catch {
                        logger.error(
                            "cannot reconcile with the venue; no new orders until it answers",
                            metadata: ["error": "\(error)"]
                        )
                        // A request budget that frees at a known time is tried again then, not after a longer backoff.
                        if let wait = (error as? VenueError)?.retryAfter {
                            try await Task.sleep(for: .milliseconds(Int(wait * 1000) + 100))
                        } else {
                            try await Task.sleep(for: backoff.delay(attempt: attempt))
                        }
                        attempt += 1
                    }
                }
                var last = ContinuousClock.now
                var failing = false
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    do {
                        if failing || ContinuousClock.now - last >= interval {
                            try await executor.reconcile()
                            if failing { logger.notice("the venue and the store answer again; reconciled") }
                            last = ContinuousClock.now
                        } else if pollEvents {
                            try await executor.processVenueEvents()
                        }
                        failing = false
                    } catch {
                        failing = true
                        logger.error(
                            "venue events or reconciliation failed; reconciling as soon as they answer",
                            metadata: ["error": "\(error)"]
                        )
                    }
                }
            }
        } catch is CancellationError {}
    }
}

/// Keeps the venue's private stream of fills and order updates connected, and hands what it brings
/// to the executor at once. When it is down, ``ReconcileService``'s polling carries on alone; it
/// connects again with backoff.
public struct UserStreamService: Service {
    public let venue: any Venue
    public let executor: TradeExecutor
    public let logger: Logger

    /// A `UserStreamService` with the fields given.
    public init(
        venue: any Venue,
        executor: TradeExecutor,
        logger: Logger
    ) {
        self.venue = venue
        self.executor = executor
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
                var attempt = 0
                while !Task.isCancelled {
                    let started = ContinuousClock.now
                    do {
                        try await venue.streamUserData {
                            do { try await executor.processVenueEvents() } catch {
                                logger.warning(
                                    "venue events from the stream wait for the next poll",
                                    metadata: ["error": "\(error)"]
                                )
                            }
                        }
                    } catch is CancellationError {
                        return
                    } catch {
                        logger.warning(
                            "the venue's user-data stream ended; connecting again",
                            metadata: ["error": "\(error)"]
                        )
                    }
                    // A connection that lasted a while starts the backoff over.
                    attempt = ContinuousClock.now - started > .seconds(60) ? 0 : attempt + 1
                    try await Task.sleep(for: backoff.delay(attempt: attempt))
                }
            }
        } catch is CancellationError {}
    }
}

/// The executor worker's service: holds the account's executor lease (`executor:<account>` in the
/// store) and runs the trading services (`active`: reconciliation, the decision, candle and control
/// consumers, the user stream) only while it does. A standby polls nothing, reconciles nothing, manages no stop and consumes nothing: it waits
/// for the lease. The holder renews it every third of `duration` and gives it up at shutdown. One that
/// cannot renew it (the store down, or the lease taken) stops trading before the lease runs out, and
/// the process exits with an error so that its supervisor starts it again, as a standby.
public struct ExecutorService: Service {
    struct Lost: Error, CustomStringConvertible {
        var description: String
    }

    public let store: any TradeStore
    public let name: String
    public let holder: String
    public let duration: Duration
    public let logger: Logger
    public let active: [any Service]
    /// Whether this process holds the lease (for the status page).
    public final class Holding: Sendable {
        private let flag = Atomic<Bool>(false)
        /// A `Holding` with the fields given.
        public init() {}
        /// Whether this process holds the lease now.
        public var value: Bool { flag.load(ordering: .relaxed) }
        func set(_ value: Bool) { flag.store(value, ordering: .relaxed) }
    }

    public let holding: Holding

    /// A `ExecutorService` with the fields given.
    public init(
        store: any TradeStore,
        name: String,
        holder: String,
        duration: Duration,
        logger: Logger,
        active: [any Service],
        holding: Holding
    ) {
        self.store = store
        self.name = name
        self.holder = holder
        self.duration = duration
        self.logger = logger
        self.active = active
        self.holding = holding
    }

    public func run() async throws {
        let renewEvery = duration / 3
        let taken: ContinuousClock.Instant
        do {
            taken = try await cancelWhenGracefulShutdown {
                var waiting = false
                while true {
                    let started = ContinuousClock.now
                    if (try? await take()) == true { return started + duration }
                    if !waiting {
                        logger.notice(
                            "standby: another executor holds the account's lease; waiting for it",
                            metadata: ["lease": "\(name)"]
                        )
                    }
                    waiting = true
                    try await Task.sleep(for: renewEvery)
                }
            }
        } catch is CancellationError {
            return
        }
        holding.set(true)
        logger.notice(
            "holding the account's lease: this executor trades it",
            metadata: ["lease": "\(name)", "holder": "\(holder)"]
        )
        defer { holding.set(false) }
        try await withThrowingDiscardingTaskGroup { group in
            for service in active { group.addTask { try await service.run() } }
            group.addTask {
                do {
                    try await cancelWhenGracefulShutdown {
                        var validUntil = taken
                        while true {
                            try await Task.sleep(for: renewEvery)
                            let started = ContinuousClock.now
                            if (try? await take()) == true {
                                validUntil = started + duration
                            } else if ContinuousClock.now + renewEvery / 2 >= validUntil {
                                // Stop before the lease runs out: another executor may take it then.
                                throw Lost(
                                    description:
                                        "the account's lease \(name) could not be renewed before it runs out; stopping so that only one executor trades it"
                                )
                            } else {
                                logger.error("the lease was not renewed; trying again", metadata: ["lease": "\(name)"])
                            }
                        }
                    }
                } catch is CancellationError {}
            }
        }
        try? await store.releaseLease(name, holder: holder)
        logger.notice("gave up the account's lease", metadata: ["lease": "\(name)"])
    }

    func take() async throws -> Bool {
        let now = Date()
        return try await store.acquireLease(
            name,
            holder: holder,
            now: now,
            until: now.addingTimeInterval(Double(duration.components.seconds))
        )
    }
}
