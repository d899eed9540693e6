import Foundation
import Testing
import WorkerRuntime

@Suite("SettingsReader")
struct SettingsReaderTests {
    @Test("environment wins over the file, the file over defaults")
    func precedence() throws {
        let file = NSTemporaryDirectory() + "tradebus-\(UUID().uuidString).env"
        try "# comment\nA=from-file\nB='quoted file'\n".write(toFile: file, atomically: true, encoding: .utf8)
        let config = try SettingsReader(environment: ["CONFIG_FILE": file, "A": "from-env"])
        #expect(try config.string("A") == "from-env")
        #expect(try config.string("B") == "quoted file")
        #expect(try config.string("C", default: "default") == "default")
        #expect(try config.string("D") == nil)
    }

    @Test("invalid values stop with an error naming the key and what is allowed")
    func validation() throws {
        let config = try SettingsReader(environment: ["PORT": "70000", "MODE": "fast", "FLAG": "maybe", "RATE": "nan"])
        #expect { try config.int("PORT", default: 1, range: 0...65535) } throws: {
            "\($0)" == "invalid configuration: PORT '70000' must be a whole number in 0...65535"
        }
        #expect { try config.choice("MODE", default: "paper", allowed: ["paper", "live"]) } throws: {
            "\($0)".contains("MODE") && "\($0)".contains("paper, live")
        }
        #expect { try config.bool("FLAG", default: true) } throws: { "\($0)".contains("FLAG") }
        #expect { try config.double("RATE", default: 1, range: 0...1) } throws: { "\($0)".contains("RATE") }
        #expect { try config.required("MISSING") } throws: { "\($0)".contains("MISSING_FILE") }
    }

    @Test("a *_FILE supplies a secret, and --print-config never shows secrets or URL passwords")
    func secrets() throws {
        let file = NSTemporaryDirectory() + "tradebus-secret-\(UUID().uuidString)"
        try "s3cr3t-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        let config = try SettingsReader(environment: [
            "TOKEN_FILE": file, "AMQP_URL": "amqp://user:hunter2@host:5672/%2f",
        ])
        #expect(try config.string("TOKEN", secret: true) == "s3cr3t-token")
        _ = try config.string("AMQP_URL")
        let printed = config.printable()
        #expect(!printed.contains("s3cr3t"))
        #expect(!printed.contains("hunter2"))
        #expect(printed.contains("TOKEN=***  # secret file"))
        #expect(printed.contains("AMQP_URL=amqp://user:***@host:5672/%2f"))
    }

    @Test("an unreadable *_FILE is an error naming that key")
    func missingSecretFile() throws {
        let config = try SettingsReader(environment: ["TOKEN_FILE": "/nonexistent/secret"])
        #expect { try config.string("TOKEN", secret: true) } throws: { "\($0)".contains("TOKEN_FILE") }
    }
}
