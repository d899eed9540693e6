import Foundation

/// One measured figure.
public struct BenchFigure: Sendable, Codable {
    public var name: String
    public var value: Double
    public var unit: String
    public var note: String?

    /// A `BenchFigure` with the fields given.
    public init(_ name: String, _ value: Double, _ unit: String, note: String? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.note = note
    }
}

/// A benchmark's figures and the goals checked against them.
public struct BenchReport: Sendable, Codable {
    public var benchmark: String
    public var machine: String
    public var date: String
    public var figures: [BenchFigure] = []
    public var goals: [String] = []

    /// An empty report for `benchmark`, stamped with this machine and the time.
    public init(benchmark: String) {
        self.benchmark = benchmark
        self.machine = Self.machineDescription()
        self.date = ISO8601DateFormatter().string(from: Date())
    }

    /// Adds a measured figure.
    public mutating func add(_ figure: BenchFigure) { figures.append(figure) }

    /// Records a goal and whether the figures met it.
    public mutating func goal(_ description: String, met: Bool) {
        goals.append("\(met ? "MET " : "MISSED") \(description)")
    }

    /// The report as aligned text lines, for a terminal.
    public func text() -> String {
        var lines = ["\(benchmark) benchmark — \(machine) — \(date)"]
        for figure in figures {
            let value =
                figure.value >= 100 ? String(format: "%.0f", figure.value) : String(format: "%.3f", figure.value)
            lines.append(
                "  \(figure.name.padding(toLength: 52, withPad: " ", startingAt: 0)) \(value) \(figure.unit)\(figure.note.map { "  (\($0))" } ?? "")"
            )
        }
        lines.append(contentsOf: goals.map { "  goal: \($0)" })
        return lines.joined(separator: "\n")
    }

    /// The report as pretty-printed JSON.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    static func machineDescription() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return
            "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB, \(cpu)"
    }
}

/// Percentile of sorted values (nearest rank).
public func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// Runs `body` with `resource`, then `close` on every path, awaited: nothing outlives the benchmark.
func using<Resource: Sendable, Result>(
    _ resource: Resource,
    close: (Resource) async -> Void,
    body: (Resource) async throws -> Result
) async throws -> Result {
    do {
        let result = try await body(resource)
        await close(resource)
        return result
    } catch {
        await close(resource)
        throw error
    }
}

/// Seconds elapsed while `body` runs.
func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Monotonic nanoseconds, comparable across threads of this process.
func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}
