// swift-tools-version:6.1
import PackageDescription

/// Strict concurrency everywhere: Swift 6 language mode is set for the whole package.
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
/// Modules on every hot path (the LRU, the connection threads, the domain core) let callers in other
/// modules inline and specialise them in release builds.
let hotPath: [SwiftSetting] = strict + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "TradeBus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tradebus", targets: ["tradebus"]),
        .executable(name: "feed-ingester", targets: ["feed-ingester"]),
        .executable(name: "indicator-worker", targets: ["indicator-worker"]),
        .executable(name: "ai-analyst", targets: ["ai-analyst"]),
        .executable(name: "executor", targets: ["executor"]),
        .executable(name: "notifier", targets: ["notifier"]),
        .executable(name: "cockpit", targets: ["cockpit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // MARK: C libraries (Debian packages; see scripts/bootstrap)
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        /// libsecp256k1's recoverable ECDSA: Hyperliquid's signatures.
        .systemLibrary(name: "CSecp256k1", pkgConfig: "libsecp256k1", providers: [.apt(["libsecp256k1-dev"])]),
        /// libcurl's variadic `curl_easy_setopt`, wrapped: one SMTP send in C.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        /// rabbitmq-c's variadic `amqp_login`, wrapped so Swift can call it.
        .target(name: "CRabbitMQShim", dependencies: ["CRabbitMQ"]),

        // MARK: Domain core: no I/O
        .target(name: "TradingCore", swiftSettings: hotPath),

        // MARK: Services and embedded implementations
        .target(
            name: "TradingServices",
            dependencies: [
                "TradingCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: hotPath
        ),

        // MARK: Adapters, one per outside system
        .target(name: "BlockingIO", swiftSettings: hotPath),
        .target(
            name: "RabbitMQBus",
            dependencies: [
                "TradingCore", "BlockingIO", "CRabbitMQ", "CRabbitMQShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RedisCache",
            dependencies: [
                "TradingCore", "TradingServices", "BlockingIO", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(name: "SQLTradeStore", dependencies: ["TradingCore"], swiftSettings: strict),
        .target(
            name: "PostgresStore",
            dependencies: [
                "TradingCore", "SQLTradeStore", "BlockingIO", "CLibPQ", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SQLiteStore",
            dependencies: ["TradingCore", "SQLTradeStore", "BlockingIO", "CSQLite"],
            swiftSettings: strict
        ),

        /// The exchanges' public APIs: Binance and Bybit WebSocket streams and REST, over NIO.
        .target(
            name: "Exchanges",
            dependencies: [
                "TradingCore", "Hyperliquid",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),

        /// Hyperliquid's wire: Keccak-256, MessagePack, EIP-712 signing of actions (libsecp256k1), the
        /// asset rules (significant figures, `szDecimals`), and the `/info` and WebSocket payloads.
        .target(
            name: "Hyperliquid",
            dependencies: ["TradingCore", "CSecp256k1"],
            swiftSettings: strict
        ),

        /// POSTs to web services over AsyncHTTPClient, shared by the adapters that call them.
        .target(
            name: "HTTPSupport",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        /// LLM providers: the OpenAI-compatible Chat Completions API and Anthropic's Messages API, and the
        /// versioned analyst prompts shipped as resources.
        .target(
            name: "LLMProviders",
            dependencies: [
                "TradingCore", "HTTPSupport", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            resources: [.copy("Prompts")],
            swiftSettings: strict
        ),

        /// Notification sinks: Telegram, Discord, Slack and signed JSON webhooks.
        .target(
            name: "Notifiers",
            dependencies: [
                "TradingCore", "HTTPSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),

        /// Email over SMTP (STARTTLS) through libcurl: the notifier's email sink.
        .target(
            name: "SMTPMail",
            dependencies: ["TradingCore", "BlockingIO", "CCurlShim"],
            swiftSettings: strict
        ),

        /// Live futures venues (Binance USDⓈ-M, Bybit v5 linear) over signed REST and their private
        /// WebSocket streams; the paper venue is in TradingServices.
        .target(
            name: "Venues",
            dependencies: [
                "TradingCore", "HTTPSupport", "Hyperliquid",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "WSClient", package: "swift-websocket"),
            ],
            swiftSettings: strict
        ),

        // MARK: The operator's cockpit (issue 21): its pages, JSON API, tokens and roles
        .target(
            name: "Cockpit",
            dependencies: [
                "TradingCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Templates")],
            swiftSettings: strict
        ),

        // MARK: Runtime shared by every executable
        .target(
            name: "WorkerRuntime",
            dependencies: [
                "Cockpit",
                "TradingCore", "TradingServices", "RabbitMQBus", "RedisCache", "PostgresStore", "SQLiteStore",
                "Exchanges", "LLMProviders", "Notifiers", "Venues", "SMTPMail", "BlockingIO", "Hyperliquid",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),

        /// `tradebus bench ...`: throughput and latency against the real servers.
        .target(
            name: "Benchmarks",
            dependencies: [
                "TradingCore", "TradingServices", "RabbitMQBus", "RedisCache", "PostgresStore", "SQLTradeStore",
                "WorkerRuntime",
            ],
            swiftSettings: strict
        ),

        // MARK: Executables: thin mains that only wire
        .executableTarget(
            name: "cockpit",
            dependencies: [
                "WorkerRuntime", "Cockpit", "TradingCore", "TradingServices", "Exchanges",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "feed-ingester",
            dependencies: [
                "WorkerRuntime", "TradingCore", "TradingServices", "Exchanges", "Venues", "LLMProviders", "Notifiers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "indicator-worker",
            dependencies: [
                "WorkerRuntime", "TradingCore", "TradingServices", "Exchanges", "Venues", "LLMProviders", "Notifiers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ai-analyst",
            dependencies: [
                "WorkerRuntime", "TradingCore", "TradingServices", "Exchanges", "Venues", "LLMProviders", "Notifiers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "executor",
            dependencies: [
                "WorkerRuntime", "TradingCore", "TradingServices", "Exchanges", "Venues", "LLMProviders", "Notifiers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "notifier",
            dependencies: [
                "WorkerRuntime", "TradingCore", "TradingServices", "Exchanges", "Venues", "LLMProviders", "Notifiers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tradebus",
            dependencies: [
                "WorkerRuntime", "Benchmarks", "TradingServices", "SQLTradeStore", "SQLiteStore", "Cockpit",
                "Exchanges", "Hyperliquid",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Data")],
            swiftSettings: strict
        ),

        // MARK: Tests mirror the targets
        .target(
            name: "TestSupport",
            dependencies: [
                "TradingCore", "TradingServices", "WorkerRuntime", "HTTPSupport", "SQLTradeStore", "SQLiteStore",
                "Hyperliquid",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "drain-probe",
            dependencies: ["WorkerRuntime"],
            path: "Tests/DrainProbe",
            swiftSettings: strict
        ),
        .testTarget(name: "TradingCoreTests", dependencies: ["TradingCore"], swiftSettings: strict),
        .testTarget(
            name: "CockpitTests",
            dependencies: [
                "Cockpit", "SQLiteStore", "SQLTradeStore", "HTTPSupport", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "HyperliquidTests", dependencies: ["Hyperliquid", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "BlockingIOTests", dependencies: ["BlockingIO"], swiftSettings: strict),
        .testTarget(
            name: "SMTPMailTests",
            dependencies: ["SMTPMail", "TestSupport", "TradingCore", "WorkerRuntime"],
            swiftSettings: strict
        ),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "HTTPSupportTests", dependencies: ["HTTPSupport", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SQLTradeStoreTests", dependencies: ["SQLTradeStore", "SQLiteStore"], swiftSettings: strict),
        .testTarget(name: "SQLiteStoreTests", dependencies: ["SQLiteStore", "SQLTradeStore"], swiftSettings: strict),
        .testTarget(
            name: "TradingServicesTests",
            dependencies: ["TradingServices", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContractTests",
            dependencies: ["TestSupport", "RabbitMQBus", "RedisCache", "PostgresStore", "SQLiteStore"],
            swiftSettings: strict
        ),
        .testTarget(name: "RabbitMQBusTests", dependencies: ["RabbitMQBus", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "RedisCacheTests",
            dependencies: ["RedisCache", "TestSupport", "WorkerRuntime"],
            swiftSettings: strict
        ),
        .testTarget(name: "PostgresStoreTests", dependencies: ["PostgresStore", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ExchangesTests",
            dependencies: ["Exchanges", "TestSupport", "SQLiteStore", "SQLTradeStore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LLMProvidersTests",
            dependencies: ["LLMProviders", "TradingServices", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "NotifiersTests",
            dependencies: [
                "Notifiers", "TradingServices", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VenuesTests",
            dependencies: [
                "Venues", "Hyperliquid", "Exchanges", "TestSupport", "TradingServices", "SQLTradeStore", "SQLiteStore",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TradeBusTests",
            dependencies: [
                "TestSupport", "WorkerRuntime", "RedisCache", "TradingCore", "SQLTradeStore", "HTTPSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WorkerRuntimeTests",
            dependencies: [
                "WorkerRuntime", "TestSupport", "TradingCore", "TradingServices", "SQLTradeStore", "SQLiteStore",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
