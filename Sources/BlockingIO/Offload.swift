import Foundation

/// Runs a blocking `body` on a new thread of its own and returns its result: for a rare blocking call
/// (a command, one email) that needs no connection kept between calls. The thread ends with the call.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
