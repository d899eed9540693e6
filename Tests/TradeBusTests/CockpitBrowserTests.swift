import Foundation
import TestSupport
import Testing
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

extension MarketDataSystemTests {
    /// The cockpit in a real browser: headless Chromium, driven by Selenium (`Tests/Browser/cockpit.py`),
    /// against `tradebus run --dashboard` replaying a shared file. `scripts/bootstrap --test` installs
    /// Chromium, its driver and Selenium. With `UPDATE_SCREENSHOTS=1` the screenshots go to
    /// `docs/screenshots/`, where the README shows them.
    @Suite("cockpit in headless Chromium", .serialized)
    struct CockpitBrowserTests {
        let root = TestServices.repositoryRoot
        let viewer = "viewer-\(UUID().uuidString)"
        let operatorToken = "operator-\(UUID().uuidString)"

        @Test(
            "the overview draws the run's equity, a trade page explains it, a viewer cannot halt, the operator can and entries stop, a POST without CSRF is refused"
        )
        func browser() async throws {
            let python = root.appendingPathComponent(".tools/venv/bin/python").path
            guard FileManager.default.isExecutableFile(atPath: python),
                FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
            else {
                Issue.record("Chromium, chromedriver or Selenium is missing: run scripts/bootstrap --test")
                return
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                TestServices.uniqueName("cockpit-browser")
            ).path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let run = try SpawnedProcess(
                executable: root.appendingPathComponent(".build/debug/tradebus").path,
                arguments: [
                    "run", "--data", root.appendingPathComponent("Tests/Fixtures/market-data/XRPUSDT-PERP-5m.csv").path,
                    "--database", "\(directory)/run.sqlite", "--dashboard", "127.0.0.1:0", "--pace", "100",
                ],
                environment: [
                    "COCKPIT_VIEWER_TOKEN": viewer, "COCKPIT_OPERATOR_TOKEN": operatorToken, "ANALYST_PROVIDERS": "",
                    "MAX_LEVERAGE": "", "RISK_PER_TRADE_PERCENT": "", "USE_PAPER_TRADING": "", "INITIAL_CAPITAL": "",
                ]
            )
            var base: String?
            for _ in 0..<600 where base == nil {
                if let match = run.output.firstMatch(of: /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//) {
                    base = String(match.1)
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            guard let base else {
                run.signal(SIGKILL)
                Issue.record("the dashboard did not start: \(run.output)")
                return
            }
            let shots =
                ProcessInfo.processInfo.environment["UPDATE_SCREENSHOTS"] == "1"
                ? root.appendingPathComponent("docs/screenshots").path : directory
            do {
                let report = try await Command.run(
                    python,
                    [
                        root.appendingPathComponent("Tests/Browser/cockpit.py").path, base, viewer, operatorToken,
                        run.outputPath, shots,
                    ]
                )
                #expect(report.contains("all browser checks passed"))
            } catch {
                run.signal(SIGKILL)
                _ = try? await run.waitForExit(timeout: .seconds(10))
                Issue.record("\(error)\nthe run's output:\n\(run.output.suffix(4_000))")
                return
            }
            // The replay is over and the dashboard still served; Ctrl-C stops it cleanly.
            run.signal(SIGINT)
            #expect(try await run.waitForExit(timeout: .seconds(30)) == 0, "\(run.output.suffix(2_000))")
            #expect(run.output.contains("refused by the risk gateway, by reason"))
            #expect(!run.output.contains("Order rejected"), "each refusal goes to the log file, not the terminal")
            let log = try String(contentsOfFile: "\(directory)/run.log", encoding: .utf8)
            #expect(log.contains("Order rejected") && log.contains("decision refused by the risk gateway"))
        }
    }
}
