import Foundation
import SMTPMail
import TestSupport
import Testing
import TradingCore
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The email sink against a local SMTP server (`scripts/smtp-test-server`, aiosmtpd) that, like a
/// provider's submission port, requires STARTTLS and a login, with a certificate made for the test.
@Suite("Email over SMTP (local aiosmtpd server, STARTTLS)", .serialized)
struct EmailSinkTests {
    static let user = "tradebus-alerts"
    static let password = "smtp-secret-\(UUID().uuidString)"

    /// A running server and its files: the certificate to trust and the folder it writes messages to.
    struct Server {
        var url: String
        var caFile: String
        var outbox: String

        func settings(
            to: [String] = ["ops@example.com"],
            caFile: String? = nil,
            password: String = EmailSinkTests.password
        )
            -> EmailSettings
        {
            EmailSettings(
                url: url,
                username: EmailSinkTests.user,
                password: password,
                caFile: caFile ?? self.caFile,
                from: "bot@example.com",
                to: to,
                timeout: .seconds(20)
            )
        }

        /// The messages received, in order.
        func received() -> [String] {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: outbox)) ?? []).filter {
                $0.hasSuffix(".eml")
            }.sorted { Int($0.dropLast(4))! < Int($1.dropLast(4))! }
            return files.compactMap { try? String(contentsOfFile: "\(outbox)/\($0)", encoding: .utf8) }
        }
    }

    func withServer(_ body: (Server) async throws -> Void) async throws {
        let root = TestServices.repositoryRoot
        let python = root.appendingPathComponent(".tools/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("aiosmtpd is missing: run scripts/bootstrap --test")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestServices.uniqueName("smtp"))
            .path
        try FileManager.default.createDirectory(atPath: "\(directory)/outbox", withIntermediateDirectories: true)
        try await Command.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", "\(directory)/key.pem",
                "-out", "\(directory)/cert.pem",
            ]
        )
        let server = try SpawnedProcess(
            executable: python,
            arguments: [
                root.appendingPathComponent("scripts/smtp-test-server").path, "\(directory)/cert.pem",
                "\(directory)/key.pem", Self.user, Self.password, "\(directory)/outbox",
            ],
            environment: [:]
        )
        var port: Int?
        for _ in 0..<200 where port == nil {
            if let match = server.output.firstMatch(of: /listening (\d+)/) {
                port = Int(match.1)
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let port else {
            server.signal(SIGKILL)
            Issue.record("the SMTP server did not start: \(server.output)")
            return
        }
        do {
            try await body(
                Server(url: "smtp://127.0.0.1:\(port)", caFile: "\(directory)/cert.pem", outbox: "\(directory)/outbox")
            )
        } catch {
            server.signal(SIGTERM)
            _ = try? await server.waitForExit(timeout: .seconds(10))
            throw error
        }
        server.signal(SIGTERM)
        _ = try? await server.waitForExit(timeout: .seconds(10))
    }

    func critical(_ id: String = "alert-\(UUID().uuidString)") -> Notice {
        Notice(
            id: id,
            severity: .critical,
            kind: "circuit_breaker",
            title: "Circuit breaker tripped: trading halted",
            lines: ["max_drawdown 15.2 % ≥ 15 %"],
            symbol: nil,
            fields: [("Equity", "8480.00")],
            payload: .null,
            time: Date()
        )
    }

    @Test("a critical alert reaches the server over STARTTLS with a login, and nothing secret is in it")
    func delivered() async throws {
        try await withServer { server in
            let notice = critical()
            try await EmailSink(settings: server.settings()).send(notice)
            let message = try #require(server.received().first)
            #expect(message.contains("Subject: [TradeBus CRITICAL] Circuit breaker tripped: trading halted"))
            #expect(message.contains("max_drawdown 15.2 % ≥ 15 %") && message.contains("Equity: 8480.00"))
            #expect(message.contains("Message-ID: <\(notice.id)@tradebus>"))
            #expect(!message.contains(Self.password) && !message.contains(Self.user))
            let envelope = try String(contentsOfFile: "\(server.outbox)/0.json", encoding: .utf8)
            #expect(envelope.contains("\"tls\": true") && envelope.contains("ops@example.com"))
        }
    }

    @Test("a server whose certificate is not trusted gets nothing: TLS is always verified")
    func untrusted() async throws {
        try await withServer { server in
            // Debian's CA bundle: it does not hold the test's own certificate.
            let error = await #expect(throws: SinkError.self) {
                try await EmailSink(settings: server.settings(caFile: "/etc/ssl/certs/ca-certificates.crt")).send(
                    critical()
                )
            }
            #expect(error?.status == nil && error?.isRetryable == true, "\(String(describing: error))")
            #expect(server.received().isEmpty)
        }
    }

    @Test("a wrong password is refused and named, without the password; a 451 is retried, a 550 is not")
    func refusals() async throws {
        try await withServer { server in
            let wrong = "not-the-password-\(UUID().uuidString)"
            let login = await #expect(throws: SinkError.self) {
                try await EmailSink(settings: server.settings(password: wrong)).send(critical())
            }
            #expect(login.map { !$0.message.contains(wrong) && $0.message.contains("127.0.0.1") } == true)
            let later = EmailSink(settings: server.settings(to: ["later@example.com"]))
            let deferred = await #expect(throws: SinkError.self) { try await later.send(critical("n1")) }
            #expect(deferred?.status == 503 && deferred?.isRetryable == true, "\(String(describing: deferred))")
            try await later.send(critical("n1"))
            #expect(server.received().count == 1)
            let refused = await #expect(throws: SinkError.self) {
                try await EmailSink(settings: server.settings(to: ["refused@example.com"])).send(critical())
            }
            #expect(refused?.status == 400 && refused?.isRetryable == false, "\(String(describing: refused))")
            #expect(server.received().count == 1)
        }
    }

    @Test("a title cannot inject a header, and a non-ASCII subject is encoded")
    func headers() throws {
        var notice = critical("n2")
        notice.title = "Halt\r\nBcc: attacker@example.com"
        let text = EmailSink.message(notice, from: "bot@example.com", to: ["ops@example.com"], date: Date())
        let headers = try #require(text.components(separatedBy: "\r\n\r\n").first)
        #expect(!headers.contains("\r\nBcc:") && headers.contains("Subject: [TradeBus CRITICAL] Halt  Bcc: attacker"))
        // Every line ends in CRLF, in the body too.
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        notice.title = "Équité en baisse"
        let encoded = EmailSink.message(notice, from: "bot@example.com", to: ["ops@example.com"], date: Date())
        #expect(encoded.contains("Subject: =?UTF-8?B?"))
    }
}
