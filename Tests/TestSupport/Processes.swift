import Foundation

/// Runs a command to completion and returns its output; throws when it exits non-zero.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw CommandFailed(command: ([executable] + arguments).joined(separator: " "), status: process.terminationStatus, output: text)
    }
    return text
}

public struct CommandFailed: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var output: String
    public var description: String { "`\(command)` exited \(status): \(output)" }
}

/// A RabbitMQ node of a test's own, so the test can stop and restart it without disturbing others.
public struct PrivateRabbitMQ: Sendable {
    public let directory: String
    public let port: Int
    public let name: String

    public init(port: Int) {
        self.port = port
        self.name = "test\(port)"
        self.directory = NSTemporaryDirectory() + "tradebus-rabbitmq-\(port)"
    }

    /// guest works on loopback (the node is configured with `loopback_users = none`).
    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/%2f" }

    private var script: String { TestServices.repositoryRoot.appendingPathComponent("scripts/rabbitmq-node").path }

    public func start() throws { try runCommand(script, ["start", directory, String(port), name]) }
    public func stop() throws { try runCommand(script, ["stop", directory, String(port), name]) }
    public func kill() throws { try runCommand(script, ["kill", directory, String(port), name]) }
}
