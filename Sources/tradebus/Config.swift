import ArgumentParser
import Foundation
import WorkerRuntime

/// `tradebus config`: the effective configuration of a worker, or of every worker, as it would start:
/// each key, its value (secrets as `***`, passwords in URLs hidden), where it came from, and what it is for.
struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print the effective configuration of the workers, with sources, secrets redacted; exit 2 if any is invalid."
    )

    @Option(help: "One worker: feed-ingester, indicator-worker, ai-analyst, executor or notifier (default: all).")
    var worker: String?

    func run() throws {
        let names = worker.map { [$0] } ?? WorkerSettings.workers.map(\.name)
        var invalid = false
        for name in names {
            let config = try SettingsReader()
            print("# \(name)")
            do {
                try WorkerSettings.read(worker: name, config)
            } catch {
                invalid = true
                print("# invalid: \(error)")
            }
            print(config.printable())
            print("")
        }
        if invalid { throw ExitCode(2) }
    }
}
