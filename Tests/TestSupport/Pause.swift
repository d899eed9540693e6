import Synchronization

/// Holds the next caller at a point until the test releases it, to run something else in between
/// (a decision while a close is being recorded). One-shot: arming it holds one caller.
public final class Pause: Sendable {
    private let state = Mutex<(armed: Bool, held: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// The next call to ``hold()`` waits.
    public func arm() { state.withLock { $0.armed = true } }

    /// Waits if armed (and disarms), else returns at once.
    public func hold() async {
        await withCheckedContinuation { continuation in
            let wait = state.withLock { state in
                guard state.armed else { return false }
                state.armed = false
                state.held.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Whether a caller is being held.
    public var holding: Bool { state.withLock { !$0.held.isEmpty } }

    /// Lets every held caller go on.
    public func release() {
        for continuation in state.withLock({ state in
            defer { state.held = [] }
            return state.held
        }) { continuation.resume() }
    }
}
