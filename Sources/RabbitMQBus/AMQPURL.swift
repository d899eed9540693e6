import Foundation

/// `amqp://user:password@host:port/vhost`, as in AMQP_URL. The vhost is percent-decoded (`%2f` is `/`).
public struct AMQPURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String

    /// A `AMQPURL` with the fields given.
    public init(
        host: String = "127.0.0.1",
        port: Int = 5672,
        user: String = "guest",
        password: String = "guest",
        vhost: String = "/"
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
    }

    /// Parses an AMQP URL; the error names what is wrong.
    public init(_ text: String) throws {
        guard let components = URLComponents(string: text), components.scheme == "amqp" else {
            throw BusConfigurationError("'\(Self.redact(text))' is not an amqp:// URL (amqps is not supported)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw BusConfigurationError("'\(Self.redact(text))' has no host")
        }
        self.host = host
        self.port = components.port ?? 5672
        self.user = components.user?.removingPercentEncoding ?? "guest"
        self.password = components.password?.removingPercentEncoding ?? "guest"
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            self.vhost = "/"
        } else {
            self.vhost = String(path.dropFirst()).removingPercentEncoding ?? "/"
        }
    }

    /// The URL with the password hidden, for logs.
    public var description: String {
        let encodedVhost = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        return "amqp://\(user):***@\(host):\(port)/\(encodedVhost)"
    }

    static func redact(_ text: String) -> String {
        text.replacingOccurrences(of: #":[^:@/]*@"#, with: ":***@", options: .regularExpression)
    }
}

/// The bus configuration is invalid.
public struct BusConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// A `BusConfigurationError` with the field given.
    public init(_ description: String) { self.description = description }
}
