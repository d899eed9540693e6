import BlockingIO
import CCurlShim
import Foundation
import TradingCore

/// Where and how email goes: an SMTP server with STARTTLS (or SMTPS), its login, and the addresses.
public struct EmailSettings: Sendable {
    /// `smtp://host:587` (STARTTLS) or `smtps://host:465`.
    public var url: String
    public var username: String?
    public var password: String?
    /// The certificates the server's is checked against (nil: the system's). It is always checked.
    public var caFile: String?
    /// Refuse to send without TLS (on by default; a local relay on loopback may turn it off).
    public var requireTLS: Bool
    public var from: String
    public var to: [String]
    public var timeout: Duration

    /// `EmailSettings` with the fields given.
    public init(
        url: String,
        username: String?,
        password: String?,
        caFile: String?,
        requireTLS: Bool = true,
        from: String,
        to: [String],
        timeout: Duration = .seconds(30)
    ) {
        self.url = url
        self.username = username
        self.password = password
        self.caFile = caFile
        self.requireTLS = requireTLS
        self.from = from
        self.to = to
        self.timeout = timeout
    }
}

/// Alerts by email over SMTP, through libcurl (STARTTLS, the server's certificate checked). One plain
/// text message per notice; its Message-ID comes from the notice's id, so a mail client shows a notice
/// delivered twice once. A 4xx reply or no connection is worth another try; a 5xx is not.
public struct EmailSink: NotificationSink {
    public let name = "email"
    public let rateLimits = [RateLimit(count: 10, per: .seconds(60))]
    let settings: EmailSettings

    /// A sink sending with `settings`.
    public init(settings: EmailSettings) { self.settings = settings }

    public func send(_ notice: Notice) async throws(SinkError) {
        let message = Self.message(notice, from: settings.from, to: settings.to, date: Date())
        let settings = self.settings
        let result: (code: Int32, reply: Int, error: String)
        do {
            result = try await offload { Self.perform(settings, message: message) }
        } catch {
            throw SinkError(status: nil, message: "email: \(error)")
        }
        guard result.code != 0 else { return }
        // SMTP replies map onto the dispatcher's HTTP-like rule: 4xx (try later) as 503, 5xx as 400.
        let status: Int? =
            (400..<500).contains(result.reply) ? 503 : (500..<600).contains(result.reply) ? 400 : nil
        throw SinkError(
            status: status,
            message: "email via \(Self.host(settings.url)): \(result.error) (SMTP reply \(result.reply))"
        )
    }

    /// The server's host and port, for messages: never the login.
    static func host(_ url: String) -> String {
        URLComponents(string: url).map { "\($0.host ?? "?"):\($0.port.map(String.init) ?? "default port")" } ?? "?"
    }

    static func perform(_ settings: EmailSettings, message: String) -> (code: Int32, reply: Int, error: String) {
        var error = [CChar](repeating: 0, count: 256)
        var reply = 0
        let recipients = settings.to.map { strdup("<\($0)>") }
        defer { for recipient in recipients { free(recipient) } }
        let bytes = Array(message.utf8)
        let code = recipients.map { UnsafePointer($0) }.withUnsafeBufferPointer { list in
            bytes.withUnsafeBufferPointer { body in
                body.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { text in
                    tb_smtp_send(
                        settings.url,
                        settings.username,
                        settings.password,
                        settings.caFile,
                        settings.requireTLS ? 1 : 0,
                        "<\(settings.from)>",
                        list.baseAddress,
                        list.count,
                        text,
                        bytes.count,
                        Int(settings.timeout.components.seconds),
                        &error,
                        &reply
                    )
                }
            }
        }
        return (code, reply, String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// The message as RFC 5322 text with CRLF line ends: headers without line breaks (no header can be
    /// injected through a title), a plain UTF-8 body, and lines that start with a dot doubled is the
    /// server's job (libcurl does it).
    public static func message(_ notice: Notice, from: String, to: [String], date: Date) -> String {
        func header(_ text: String) -> String {
            text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        }
        let subject = "[TradeBus \(notice.severity.rawValue.uppercased())] \(header(notice.title))"
        let encodedSubject =
            subject.allSatisfy(\.isASCII)
            ? subject : "=?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let id = notice.id.filter { $0.isLetter || $0.isNumber || "-._:".contains($0) }
        let lines =
            [
                "From: TradeBus <\(from)>",
                "To: \(to.map { "<\($0)>" }.joined(separator: ", "))",
                "Subject: \(encodedSubject)",
                "Date: \(formatter.string(from: date))",
                "Message-ID: <\(id)@tradebus>",
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: 8bit",
                "",
            ] + notice.text.components(separatedBy: .newlines)
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
