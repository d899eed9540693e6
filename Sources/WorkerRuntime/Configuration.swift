import Configuration
import Foundation
import Synchronization

/// A worker's settings, read through swift-configuration's providers: the environment first
/// (`EnvironmentVariablesProvider`), then an optional file (`CONFIG_FILE`, `KEY=VALUE` lines, a second
/// provider), then the defaults. `KEY_FILE` supplies a secret from a file. Every read is validated
/// here (ranges, choices, units) and recorded, so a bad value stops the worker at start with an error
/// naming the key and its range, and `--print-config` / `tradebus config` show what was used, where it
/// came from, and every secret redacted. Secrets are read as secrets (`isSecret`), so swift-configuration's
/// access reporting redacts them too.
public final class SettingsReader: Sendable {
    /// Where a value came from.
    public enum Source: String, Sendable {
        case environment, file
        case secretFile = "secret file"
        case defaultValue = "default"
        case unset
    }

    /// One key as read.
    public struct Entry: Sendable {
        public var key: String
        public var value: String?
        public var source: Source
        public var secret: Bool
        public var help: String
    }

    /// The sources, in order: the environment, then `CONFIG_FILE`.
    private let environmentReader: ConfigReader
    private let fileReader: ConfigReader
    private let entries = Mutex<[String: Entry]>([:])

    /// `environment` defaults to the process's; `CONFIG_FILE` in it names the optional file.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let fileValues: [String: String]
        if let path = environment["CONFIG_FILE"], !path.isEmpty {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigError(key: "CONFIG_FILE", message: "cannot read '\(path)'")
            }
            fileValues = try Self.parse(text, path: path)
        } else {
            fileValues = [:]
        }
        self.environmentReader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: environment))
        self.fileReader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: fileValues))
    }

    static func parse(_ text: String, path: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(key: "CONFIG_FILE", message: "\(path):\(number + 1): expected KEY=VALUE")
            }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[line[..<equals].trimmingCharacters(in: .whitespaces)] = value
        }
        return values
    }

    /// The raw value and its source, without recording it.
    private func lookup(_ key: String, secret: Bool) throws -> (String, Source)? {
        let configKey = ConfigKey(key)
        if let value = environmentReader.string(forKey: configKey, isSecret: secret), !value.isEmpty {
            return (value, .environment)
        }
        let fileKey = ConfigKey("\(key)_FILE")
        if let path = environmentReader.string(forKey: fileKey) ?? fileReader.string(forKey: fileKey), !path.isEmpty {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigError(key: "\(key)_FILE", message: "cannot read '\(path)'")
            }
            return (contents.trimmingCharacters(in: .whitespacesAndNewlines), .secretFile)
        }
        if let value = fileReader.string(forKey: configKey, isSecret: secret), !value.isEmpty { return (value, .file) }
        return nil
    }

    private func record(_ key: String, _ value: String?, _ source: Source, secret: Bool, help: String) {
        entries.withLock { $0[key] = Entry(key: key, value: value, source: source, secret: secret, help: help) }
    }

    /// A string; `nil` when unset and there is no default.
    public func string(
        _ key: String,
        default defaultValue: String? = nil,
        secret: Bool = false,
        help: String = ""
    ) throws -> String? {
        if let (value, source) = try lookup(key, secret: secret) {
            record(key, value, source, secret: secret, help: help)
            return value
        }
        record(key, defaultValue, defaultValue == nil ? .unset : .defaultValue, secret: secret, help: help)
        return defaultValue
    }

    /// A string that must be set.
    public func required(_ key: String, secret: Bool = false, help: String = "") throws -> String {
        guard let value = try string(key, secret: secret, help: help) else {
            throw ConfigError(key: key, message: "is required but not set (set \(key) or \(key)_FILE)")
        }
        return value
    }

    /// One of `allowed`.
    public func choice(
        _ key: String,
        default defaultValue: String,
        allowed: [String],
        help: String = ""
    ) throws -> String {
        let value = try string(key, default: defaultValue, help: help)!
        guard allowed.contains(value) else {
            throw ConfigError(
                key: key,
                message: "'\(value)' is not allowed; use one of: \(allowed.joined(separator: ", "))"
            )
        }
        return value
    }

    /// A whole number in `range`.
    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int>, help: String = "") throws -> Int
    {
        let text = try string(key, default: String(defaultValue), help: help)!
        guard let value = Int(text), range.contains(value) else {
            throw ConfigError(
                key: key,
                message: "'\(text)' must be a whole number in \(range.lowerBound)...\(range.upperBound)"
            )
        }
        return value
    }

    /// A finite number in `range`; `*_PERCENT` keys are fractions.
    public func double(
        _ key: String,
        default defaultValue: Double,
        range: ClosedRange<Double>,
        help: String = ""
    ) throws -> Double {
        let text = try string(key, default: String(defaultValue), help: help)!
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            var message = "'\(text)' must be a number in \(range.lowerBound)...\(range.upperBound)"
            if key.hasSuffix("_PERCENT"), let value = Double(text), value > range.upperBound, value >= 1,
                range.upperBound <= 1
            {
                // 5 meaning 5 % is refused, never used: every *_PERCENT key is a fraction.
                message +=
                    "; *_PERCENT keys are fractions (0.05 = 5 %), so \(text) would mean \(Int(value * 100)) %: write \(value / 100) for \(text) %"
            }
            throw ConfigError(key: key, message: message)
        }
        return value
    }

    /// true/false (also 1/0, yes/no, on/off).
    public func bool(_ key: String, default defaultValue: Bool, help: String = "") throws -> Bool {
        let text = try string(key, default: defaultValue ? "true" : "false", help: help)!
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigError(key: key, message: "'\(text)' must be true or false")
        }
    }

    /// Every key read so far, sorted by name.
    public var entriesRead: [Entry] { entries.withLock { $0.values.sorted { $0.key < $1.key } } }

    /// `KEY=value  # source` lines with secrets shown as `***`, for `--print-config`.
    public func printable() -> String {
        entriesRead.map { entry in
            let shown: String =
                switch (entry.value, entry.secret) {
                case (nil, _): ""
                case (.some, true): "***"
                case (.some(let value), false): Self.redactURL(value)
                }
            return "\(entry.key)=\(shown)  # \(entry.source.rawValue)\(entry.help.isEmpty ? "" : "; \(entry.help)")"
        }.joined(separator: "\n")
    }

    /// Hides a password inside a URL (`scheme://user:***@host`).
    public static func redactURL(_ text: String) -> String {
        text.replacingOccurrences(of: #"(://[^:/@]*):[^@/]*@"#, with: "$1:***@", options: .regularExpression)
    }
}

/// A configuration value is missing or invalid; the message names the key and what is allowed.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var message: String

    /// A `ConfigError` with the fields given.
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "invalid configuration: \(key) \(message)" }
}
