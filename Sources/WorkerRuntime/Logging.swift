import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How log lines are written.
public enum LogFormat: String, Sendable {
    /// `2026-01-01T00:00:00.000Z info [correlation] label: message key=value`
    case text
    /// One JSON object per line.
    case json
}

/// The correlation id of the work in hand, carried by a task local so every log line written while
/// handling a message shows the chain it belongs to.
public enum CorrelationID {
    @TaskLocal public static var current: String?

    /// Runs `body` with `id` as the correlation id of every log line it writes.
    public static func with<T>(_ id: String?, _ body: () async throws -> T) async rethrows -> T {
        try await $current.withValue(id, operation: body)
    }
}

/// A swift-log handler that writes text or JSON lines to stderr (or a file), each with a correlation id: the
/// task-local one, else the `correlation_id` metadata, else the process's own id.
public struct TradeBusLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: LogFormat
    private let processCorrelationID: String
    private let file: LogFile?

    /// A handler for `label` writing at `level` and above, in `format`, to stderr or to `file`.
    public init(
        label: String,
        level: Logger.Level,
        format: LogFormat,
        processCorrelationID: String,
        file: LogFile? = nil
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.processCorrelationID = processCorrelationID
        self.file = file
    }

    /// Metadata of this handler, by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line: text or JSON, with the correlation id.
    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let correlation =
            CorrelationID.current ?? merged.removeValue(forKey: "correlation_id").map { "\($0)" }
            ?? processCorrelationID
        merged.removeValue(forKey: "correlation_id")
        let line = Self.render(
            time: Date(),
            level: event.level,
            label: label,
            message: "\(event.message)",
            correlationID: correlation,
            metadata: merged,
            format: format
        )
        if let file { file.write(line) } else { StandardError.write(line) }
    }

    static func render(
        time: Date,
        level: Logger.Level,
        label: String,
        message: String,
        correlationID: String,
        metadata: Logger.Metadata,
        format: LogFormat
    ) -> String {
        let timestamp = time.formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
        )
        switch format {
        case .text:
            let fields = metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            return "\(timestamp) \(level) [\(correlationID)] \(label): \(message)\(fields)\n"
        case .json:
            var object: [String: String] = [
                "time": timestamp, "level": level.rawValue, "logger": label, "message": message,
                "correlation_id": correlationID,
            ]
            for (key, value) in metadata where object[key] == nil { object[key] = "\(value)" }
            let data =
                (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data()
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }
}

/// Serialised writes to stderr, so lines from different threads never interleave.
enum StandardError {
    private static let lock = Mutex(())

    static func write(_ line: String) {
        lock.withLock { _ in
            var line = line
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }
}

/// A log file, shared by every logger of a run; writes are serialised (`tradebus run`'s log, where every
/// refusal and every other info line goes while the terminal shows only what matters).
public final class LogFile: Sendable {
    let handle: Mutex<FileHandle>
    /// Opens `path` for appending, creating it and its folder.
    public init(path: String) throws {
        try? FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
            withIntermediateDirectories: true
        )
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ConfigError(key: "log file", message: "\(path) cannot be opened for writing")
        }
        handle.seekToEndOfFile()
        self.handle = Mutex(handle)
    }
    func write(_ line: String) { handle.withLock { $0.write(Data(line.utf8)) } }
}
