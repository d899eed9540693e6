import Foundation
import TestSupport
import Testing
import TradingServices
import WorkerRuntime

/// Run one at a time with the other process tests: on two cores, parallel processes starve the
/// in-process tests of CPU.
extension MarketDataSystemTests {
    /// The deployment files against the code. What the code reads comes from the built workers
    /// themselves: each one's `--print-config`, run over scenarios that take every branch of its
    /// configuration (the keys built by interpolation, like `\(prefix)_API_KEY`, included). What compose
    /// and Kubernetes set comes from `scripts/check-deploy environments`, which reads `docker-compose
    /// config` and the overlays rendered by `kubectl kustomize` (so it needs scripts/bootstrap's tools).
    /// Then: every variable a deployment sets is one the code reads, every worker accepts (exit 0) the
    /// configuration each deployment gives it, so no required key is missing and no value is invalid,
    /// and the probes, ports, grace periods and scaled queues agree with what the workers use.
    /// Processes are awaited, never waited for on a thread of the shared pool (two threads here): a
    /// blocked pool starves every other test.
    @Suite("Deployment configuration: compose and k8s against the code")
    struct DeploymentConfigTests {
        static let root = TestServices.repositoryRoot
        static let build = root.appendingPathComponent(".build/debug").path
        static let workers = ["feed-ingester", "indicator-worker", "ai-analyst", "executor", "notifier", "cockpit"]
        /// Secrets an operator must set before a program starts (blank in `.env.example` and the Secret
        /// template): stand-ins of the right form, as for the server URLs.
        static let operatorSecrets = ["cockpit": ["COCKPIT_VIEWER_TOKEN": "viewer-token-0123456789"]]

        /// The three server URLs, which a deployment takes from a Secret the operator fills (blank in the
        /// template): stand-ins of the right form, so the workers can parse them.
        static let serverURLs = [
            "AMQP_URL": "amqp://tradebus:secret@rabbitmq.example:5672/%2f",
            "REDIS_URL": "redis://:secret@redis.example:6379/0",
            "DATABASE_URL": "postgres://tradebus:secret@postgres.example:5432/tradebus",
        ]

        /// Environments that together take every branch of each worker's configuration.
        static let scenarios: [String: [[String: String]]] = [
            "feed-ingester": [
                ["FEED_FILE": "/data/candles.csv", "FEED_SYMBOL": "BTCUSDT"],
                ["FEED_FILE": "/data/candles.csv", "FEED_SYMBOL": "BTCUSDT", "REPLAY_LOCKSTEP": "true"],
                ["FEED_SOURCE": "synthetic"],
                ["FEED_SOURCE": "synthetic", "SYNTHETIC_CLOCK": "wall"],
                ["FEED_SOURCE": "binance", "FEED_SYMBOLS": "BTCUSDT"],
                ["FEED_SOURCE": "bybit", "FEED_SYMBOLS": "BTCUSDT"],
                ["FEED_SOURCE": "hyperliquid", "FEED_SYMBOLS": "BTCUSDT"],
            ],
            "indicator-worker": [[:]],
            "ai-analyst": [
                [:],
                [
                    "ANALYST_PROVIDERS": "rules,openai,anthropic", "OPENAI_API_KEY": "key", "ANTHROPIC_API_KEY": "key",
                    "SCAN_INTERVAL_SECONDS": "60", "SCAN_SYMBOLS": "BTCUSDT",
                ],
                [
                    "ANALYST_SHADOW": "openai:gpt-4.1-mini@analyst-v2", "ANALYST_CANARY_PERCENT": "5",
                    "SHADOW_DATABASE_URL": "postgres://tradebus:secret@postgres.example:5432/shadow",
                ],
                ["ANALYST_PROVIDERS": "copy", "COPY_LEADERS": "0xabcdefabcdefabcdefabcdefabcdefabcdef0001:0.5"],
            ],
            "executor": [
                [:],
                [
                    "USE_PAPER_TRADING": "false", "BINANCE_API_KEY": "key", "BINANCE_API_SECRET": "secret",
                    "TRAILING_CALLBACK_PERCENT": "0.01", "REFERENCE_VENUE": "binance",
                ],
                [
                    "USE_PAPER_TRADING": "false", "LIVE_VENUE": "bybit", "BYBIT_API_KEY": "key",
                    "BYBIT_API_SECRET": "secret",
                ],
                [
                    "USE_PAPER_TRADING": "false", "LIVE_VENUE": "hyperliquid",
                    "HYPERLIQUID_ACCOUNT": "0x1111111111111111111111111111111111111111",
                    "HYPERLIQUID_AGENT_KEY": String(repeating: "ab", count: 32),
                ],
            ],
            "notifier": [
                [:],
                [
                    "TELEGRAM_BOT_TOKEN": "token", "TELEGRAM_CHAT_ID": "chat",
                    "DISCORD_WEBHOOK_URL": "https://discord.example/hook",
                    "SLACK_WEBHOOK_URL": "https://slack.example/hook",
                    "NOTIFY_WEBHOOK_URL": "https://hooks.example/tradebus",
                    "NOTIFY_WEBHOOK_SECRET": "secret", "NOTIFY_DAILY_SUMMARY_HOUR": "8",
                    "TELEGRAM_ALLOWED_CHAT_IDS": "42,-100123", "SMTP_URL": "smtp://mail.example:587",
                    "SMTP_FROM": "bot@example.com", "SMTP_TO": "ops@example.com", "SMTP_USERNAME": "user",
                    "SMTP_PASSWORD": "secret",
                ],
            ],
            "cockpit": [
                [
                    "COCKPIT_VIEWER_TOKEN": "viewer-token-0123456789",
                    "COCKPIT_OPERATOR_TOKEN": "operator-token-0123456789",
                ]
            ],
        ]

        /// Keys whose value in .env.example is a deployment choice, not the code's default (explained there).
        static let deploymentChoices: Set<String> = ["FEED_SOURCE", "FEED_SYMBOLS"]
        /// Keys whose default depends on other keys, so a deployment leaves them unset.
        static let contextDependent: Set<String> = ["FEED_VENUE", "REQUIRE_REFERENCE_PRICE"]
        /// The notifier's sinks (Sources/Notifiers): a queue per sink, `<prefix>.<sink>`.
        static let sinks = ["telegram", "discord", "slack", "webhook", "email", "log"]

        // MARK: What the code reads

        /// One line of `--print-config`: `KEY=value  # source; help`.
        struct Printed: Sendable {
            var value: String
            var source: String
        }

        struct Code: Sendable {
            /// The keys each worker reads, over all its scenarios.
            var read: [String: Set<String>]
            /// Keys the code treats as secrets (`--print-config` shows `***`).
            var secrets: Set<String>
            /// The defaults seen for each key.
            var defaults: [String: Set<String>]

            var readByAny: Set<String> { read.values.reduce(into: Set()) { $0.formUnion($1) } }

            /// What may be set for `worker`: a key it reads, that key's `_FILE`, or CONFIG_FILE.
            func accepts(_ key: String, worker: String?) -> Bool {
                let keys = worker.map { read[$0] ?? [] } ?? readByAny
                if key == "CONFIG_FILE" || keys.contains(key) { return true }
                return key.hasSuffix("_FILE") && keys.contains(String(key.dropLast(5)))
            }
        }

        /// Runs `program --print-config` with exactly `environment` (nothing inherited).
        static func printConfig(_ program: String, _ environment: [String: String]) async throws -> [String: Printed] {
            let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            let output = try await Command.run(
                "/usr/bin/env",
                ["-i"] + assignments + ["\(build)/\(program)", "--print-config"]
            )
            var printed: [String: Printed] = [:]
            for line in output.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "="), let marker = line.range(of: "  # ") else { continue }
                let key = String(line[..<equals])
                let value = String(line[line.index(after: equals)..<marker.lowerBound])
                let source = line[marker.upperBound...].split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
                printed[key] = Printed(value: value, source: source)
            }
            return printed
        }

        static func code() async throws -> Code {
            var code = Code(read: [:], secrets: [], defaults: [:])
            for worker in workers {
                for scenario in scenarios[worker] ?? [] {
                    let printed: [String: Printed]
                    do {
                        printed = try await printConfig(worker, serverURLs.merging(scenario) { $1 })
                    } catch {
                        throw ScenarioFailed(description: "\(worker) --print-config with \(scenario): \(error)")
                    }
                    code.read[worker, default: []].formUnion(printed.keys)
                    for (key, line) in printed {
                        if line.value == "***" { code.secrets.insert(key) }
                        if line.source == "default" { code.defaults[key, default: []].insert(line.value) }
                    }
                }
            }
            return code
        }

        struct ScenarioFailed: Error, CustomStringConvertible { var description: String }

        /// `tradebus migrate` reads the store's keys only.
        static func migrateKeys() async throws -> Set<String> {
            let reader = try SettingsReader(environment: ["DATABASE_URL": serverURLs["DATABASE_URL"]!])
            let store = try Infrastructure.store(reader)
            await store.close()
            return Set(reader.entriesRead.map(\.key))
        }

        // MARK: What the deployments set

        struct Deployment: Decodable, Sendable {
            struct Target: Decodable, Sendable {
                var target: String
                var name: String
                var program: String
                var arguments: [String]
                var shared: [String: String]
                var own: [String: String]
                var operatorSupplied: [String]
                var healthPorts: [Int]
                var stopGraceSeconds: Int?

                var place: String { "\(target) \(name)" }
                var isWorker: Bool { DeploymentConfigTests.workers.contains(program) }

                /// The container's environment; a blank server URL the operator supplies gets a stand-in.
                var environment: [String: String] {
                    var environment = shared.merging(own) { $1 }
                    for key in operatorSupplied where (environment[key] ?? "").isEmpty {
                        if let url = DeploymentConfigTests.serverURLs[key] { environment[key] = url }
                    }
                    for (key, value) in DeploymentConfigTests.operatorSecrets[program] ?? [:]
                    where (environment[key] ?? "").isEmpty {
                        environment[key] = value
                    }
                    return environment
                }
            }

            struct EnvExample: Decodable, Sendable {
                var set: [String: String]
                var commented: [String]
            }

            struct Scalers: Decodable, Sendable {
                var target: String
                var queues: [String: [String]]
            }

            var composeVariables: [String]
            var envExample: EnvExample
            var targets: [Target]
            var configMaps: [String: [String: String]]
            var secretTemplate: [String: String]
            var scalers: [Scalers]
        }

        static func deployment() async throws -> Deployment {
            let file = NSTemporaryDirectory() + "tradebus-deploy-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try await Command.run(root.appendingPathComponent("scripts/check-deploy").path, ["environments", file])
            return try JSONDecoder().decode(Deployment.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        }

        // MARK: Tests

        @Test("the scenarios reach every configuration key named in WorkerRuntime")
        func scenariosCoverTheCode() async throws {
            let code = try await Self.code()
            let sources = Self.root.appendingPathComponent("Sources/WorkerRuntime")
            var named: Set<String> = []
            for file in try FileManager.default.contentsOfDirectory(atPath: sources.path) where file.hasSuffix(".swift")
            {
                let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
                let pattern = try Regex(#""([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)""#)
                for match in text.matches(of: pattern) {
                    named.insert(String(text[match.range].dropFirst().dropLast()))
                }
            }
            #expect(named.count > 50)
            let unreached = named.subtracting(code.readByAny).subtracting(["CONFIG_FILE"])
            #expect(
                unreached.isEmpty,
                "no scenario makes a worker read \(unreached.sorted()): add one to DeploymentConfigTests.scenarios"
            )
            // The keys built by interpolation are reached too.
            let interpolated =
                code.read["executor"]!.isSuperset(of: [
                    "BINANCE_API_KEY", "BYBIT_API_SECRET", "BYBIT_FUTURES_URL", "BINANCE_RECV_WINDOW_MS",
                ])
                && code.read["feed-ingester"]!.isSuperset(of: [
                    "BINANCE_WS_URL", "BYBIT_REST_URL", "HYPERLIQUID_WS_URL",
                ])
            #expect(interpolated)
        }

        @Test("every variable compose and Kubernetes set is one the code reads")
        func everyVariableIsRead() async throws {
            let code = try await Self.code()
            let deployment = try await Self.deployment()
            let migrate = try await Self.migrateKeys()
            #expect(
                migrate == [
                    "DATABASE_URL", "DATABASE_POOL_SIZE", "DATABASE_CONNECT_TIMEOUT_SECONDS",
                    "DATABASE_STATEMENT_TIMEOUT_MS",
                ]
            )
            let targets = Set(deployment.targets.map(\.target))
            #expect(targets == ["compose", "k8s/overlays/dev", "k8s/overlays/prod"])
            for target in deployment.targets {
                if target.isWorker {
                    for key in target.own.keys.sorted() {
                        let read = code.accepts(key, worker: target.program)
                        #expect(read, "\(target.place) sets \(key), which \(target.program) does not read")
                    }
                    let composeVariables = target.target == "compose" ? Set(deployment.composeVariables) : []
                    for key in target.shared.keys.sorted() where !composeVariables.contains(key) {
                        let read = code.accepts(key, worker: nil)
                        #expect(read, "\(target.place) gets \(key) (shared configuration), which no worker reads")
                    }
                } else {
                    #expect(
                        target.program == "tradebus" && target.arguments == ["migrate"],
                        "\(target.place) runs \(target.program) \(target.arguments)"
                    )
                    for key in target.environment.keys.sorted() {
                        #expect(
                            migrate.contains(key),
                            "\(target.place) sets \(key), which `tradebus migrate` does not read"
                        )
                    }
                    #expect(!(target.environment["DATABASE_URL"] ?? "").isEmpty, "\(target.place) has no DATABASE_URL")
                }
            }
            for worker in Self.workers {
                for place in targets {
                    #expect(
                        deployment.targets.contains { $0.target == place && $0.program == worker },
                        "\(place) does not run \(worker)"
                    )
                }
            }
        }

        @Test("each worker accepts the configuration each deployment gives it, and serves health where it is probed")
        func workersAcceptTheirConfiguration() async throws {
            let deployment = try await Self.deployment()
            for target in deployment.targets where target.isWorker {
                let printed: [String: Printed]
                do {
                    printed = try await Self.printConfig(target.program, target.environment)
                } catch {
                    Issue.record(
                        "\(target.place): \(target.program) refuses its configuration (a required key unset or a value invalid): \(error)"
                    )
                    continue
                }
                let port = printed["HTTP_PORT"].flatMap { Int($0.value) }
                #expect(!target.healthPorts.isEmpty, "\(target.place) has no healthcheck or probe")
                for probed in target.healthPorts {
                    #expect(
                        probed == port,
                        "\(target.place) probes port \(probed); \(target.program) serves /health on \(port.map(String.init) ?? "?")"
                    )
                }
                let grace = printed["SHUTDOWN_GRACE_SECONDS"].flatMap { Int($0.value) } ?? 0
                // After the drain, the ServiceGroup gives cancelled work 5 s more.
                #expect(
                    (target.stopGraceSeconds ?? 0) > grace + 5,
                    "\(target.place) is killed after \(target.stopGraceSeconds ?? 0) s; the worker may drain for \(grace) + 5 s"
                )
            }
        }

        @Test(".env.example lists every key with its default, and its secrets are blank")
        func envExample() async throws {
            let code = try await Self.code()
            let deployment = try await Self.deployment()
            let example = deployment.envExample
            let composeVariables = Set(deployment.composeVariables)
            let listed = Set(example.set.keys).union(example.commented)
            for key in listed.sorted() where !composeVariables.contains(key) {
                let read = code.accepts(key, worker: nil)
                #expect(read, ".env.example lists \(key), which no worker reads")
            }
            // The server URLs are built in docker-compose.yml from the passwords.
            let setByCompose = deployment.targets.filter { $0.target == "compose" }.reduce(into: Set<String>()) {
                $0.formUnion($1.own.keys)
            }
            let missing = code.readByAny.subtracting(listed).subtracting(setByCompose)
            #expect(missing.isEmpty, ".env.example does not list \(missing.sorted())")
            for (key, value) in example.set.sorted(by: { $0.key < $1.key }) {
                if code.secrets.contains(key) || (composeVariables.contains(key) && key.hasSuffix("PASSWORD")) {
                    #expect(value.isEmpty, ".env.example gives the secret \(key) a value")
                    continue
                }
                guard !composeVariables.contains(key), !Self.deploymentChoices.contains(key) else { continue }
                let defaults = code.defaults[key] ?? []
                if value.isEmpty {
                    #expect(
                        defaults.isEmpty || defaults.contains(""),
                        ".env.example leaves \(key) blank; its default is \(defaults.sorted())"
                    )
                } else {
                    let matches = defaults.contains {
                        $0 == value || (Double($0) != nil && Double($0) == Double(value))
                    }
                    #expect(
                        matches,
                        ".env.example has \(key)=\(value); the code's default is \(defaults.isEmpty ? "none" : defaults.sorted().joined(separator: " or "))"
                    )
                }
            }
        }

        @Test("Kubernetes: the ConfigMap holds no secret, the Secret template no value, and every key is somewhere")
        func kubernetesConfiguration() async throws {
            let code = try await Self.code()
            let deployment = try await Self.deployment()
            for (key, value) in deployment.secretTemplate.sorted(by: { $0.key < $1.key }) {
                #expect(value.isEmpty, "k8s/secret-template gives \(key) a value")
                let read = code.accepts(key, worker: nil)
                #expect(read, "k8s/secret-template has \(key), which no worker reads")
            }
            let secretLike = code.secrets.union(Self.serverURLs.keys)
            for (place, data) in deployment.configMaps.sorted(by: { $0.key < $1.key }) {
                #expect(!data.isEmpty, "\(place) has no ConfigMap tradebus-config")
                for key in data.keys.sorted() {
                    #expect(
                        !secretLike.contains(key),
                        "\(place): \(key) is a secret (or holds a password) but is in the ConfigMap"
                    )
                }
                let own = deployment.targets.filter { $0.target == place }.reduce(into: Set<String>()) {
                    $0.formUnion($1.own.keys)
                }
                let missing = code.readByAny.subtracting(data.keys).subtracting(deployment.secretTemplate.keys)
                    .subtracting(own)
                    .subtracting(Self.contextDependent)
                #expect(
                    missing.isEmpty,
                    "\(place) sets \(missing.sorted()) nowhere (ConfigMap, Secret or a container's env)"
                )
            }
            for secret in code.secrets.sorted() {
                #expect(deployment.secretTemplate[secret] != nil, "k8s/secret-template lacks the secret \(secret)")
            }
        }

        @Test("KEDA scales ai-analyst and notifier on the queues they consume")
        func scaledQueues() async throws {
            let deployment = try await Self.deployment()
            #expect(deployment.scalers.count == 2)
            for scalers in deployment.scalers {
                #expect(
                    scalers.queues["ai-analyst"] == [SignalAnalyst.signalQueue.name],
                    "\(scalers.target): ai-analyst scales on \(scalers.queues["ai-analyst"] ?? [])"
                )
                let prefix = deployment.configMaps[scalers.target]?["NOTIFIER_QUEUE_PREFIX"] ?? "notifier"
                let sinkQueues = Set(Self.sinks.map { SinkDispatcher.queue(for: $0, prefix: prefix).name })
                let queues = scalers.queues["notifier"] ?? []
                #expect(!queues.isEmpty, "\(scalers.target): notifier has no trigger")
                for queue in queues {
                    #expect(
                        sinkQueues.contains(queue),
                        "\(scalers.target): notifier scales on \(queue), which is none of \(sinkQueues.sorted())"
                    )
                }
                // The log sink is on by default, so its queue always exists.
                #expect(queues.contains(SinkDispatcher.queue(for: "log", prefix: prefix).name))
            }
        }
    }
}
