import Foundation
import ServiceLifecycle
import TradingCore
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

// A worker for the graceful-shutdown test: the real WorkerRuntime and RabbitMQBus consuming a queue
// with a slow handler that logs when each message starts and finishes.
struct ProbeConfig: Sendable {
    var dependencies: WorkerDependencies
    var queue: String
    var delay: Duration
    var logPath: String
}

/// Appends whole lines with O_APPEND, so concurrent handlers never interleave.
func appendLine(_ line: String, to path: String) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var text = line + "\n"
    text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}

let status = await WorkerMain.run(
    worker: "drain-probe",
    defaultPort: 0,
    summary: "test probe for graceful shutdown",
    configure: { config in
        ProbeConfig(
            dependencies: try WorkerDependencies.configure([.bus], config: config, instance: "drain-probe"),
            queue: try config.required("PROBE_QUEUE"),
            delay: .milliseconds(try config.int("PROBE_DELAY_MS", default: 500, range: 0...60_000)),
            logPath: try config.required("PROBE_LOG")
        )
    },
    start: { probe, context in
        try await probe.dependencies.connect(context)
        let bus = probe.dependencies.bus!
        let consumer = ConsumerService(
            bus: bus,
            queue: probe.queue,
            options: ConsumerOptions(prefetch: 10, concurrency: 3)
        ) { delivery in
            let id = delivery.messageID ?? "?"
            appendLine("start \(id)", to: probe.logPath)
            try await Task.sleep(for: probe.delay)
            appendLine("done \(id)", to: probe.logPath)
        }
        return WorkerPlan(
            services: [consumer],
            checks: { await probe.dependencies.checks() },
            status: { ["worker": "drain-probe"] },
            shutdown: { await probe.dependencies.close() }
        )
    },
    lifecycle: { plan, context in
        try await ServiceGroup(configuration: WorkerMain.serviceGroup(plan, context: context)).run()
    }
)
exit(status)
