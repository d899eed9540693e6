import Foundation
import Synchronization

/// The signed-in browsers: a random session id in an HttpOnly, SameSite=Strict cookie, with the role its
/// token gave and a CSRF token that every form must carry back. Sessions live in memory: a restart signs
/// everyone out, which is the safe way round.
public struct CockpitSessions: Sendable {
    /// One signed-in browser.
    public struct Session: Sendable, Hashable {
        public var role: CockpitRole
        /// Every form posts it back; a POST without it, or with another session's, is refused.
        public var csrf: String
        public var expires: Date
    }

    /// How long a session lasts without being used.
    public let lifetime: TimeInterval
    var sessions: [String: Session] = [:]

    /// Sessions that last `lifetime` seconds from their last use (8 hours by default).
    public init(lifetime: TimeInterval = 8 * 3600) { self.lifetime = lifetime }

    /// A new session for `role`, returning its id.
    public mutating func open(_ role: CockpitRole, now: Date) -> (id: String, session: Session) {
        if sessions.count > 10_000 { sessions = sessions.filter { $0.value.expires > now } }
        let id = Self.randomToken()
        let session = Session(role: role, csrf: Self.randomToken(), expires: now.addingTimeInterval(lifetime))
        sessions[id] = session
        return (id, session)
    }

    /// The live session `id`, its expiry pushed back; nil when unknown or expired.
    public mutating func touch(_ id: String, now: Date) -> Session? {
        guard var session = sessions[id] else { return nil }
        guard session.expires > now else {
            sessions[id] = nil
            return nil
        }
        session.expires = now.addingTimeInterval(lifetime)
        sessions[id] = session
        return session
    }

    /// Signs `id` out.
    public mutating func close(_ id: String) { sessions[id] = nil }

    /// 32 random bytes as hex, from the system's generator.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }
            .joined()
    }

    /// The cookie's name.
    public static let cookie = "tradebus_session"

    /// The `Set-Cookie` value for session `id`: HttpOnly and SameSite=Strict always, Secure when the
    /// browser reached us over TLS.
    public static func setCookie(_ id: String, secure: Bool, maxAge: TimeInterval) -> String {
        "\(cookie)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(maxAge))" + (secure ? "; Secure" : "")
    }

    /// The session id in a `Cookie` header, if any.
    public static func sessionID(cookieHeader: String?) -> String? {
        guard let cookieHeader else { return nil }
        for part in cookieHeader.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix("\(cookie)=") { return String(pair.dropFirst(cookie.count + 1)) }
        }
        return nil
    }
}

/// The sessions, shared by every request (a class: `Mutex` cannot be copied with the service).
final class SharedSessions: Sendable {
    let state: Mutex<CockpitSessions>
    init(_ sessions: CockpitSessions) { state = Mutex(sessions) }
}
