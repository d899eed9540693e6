/// Exponential backoff with full jitter, capped: the wait before retry number `attempt` (0 for the
/// first retry) is uniform in `0...min(initial × 2^attempt, maximum)`. Full jitter keeps many clients
/// that failed together from retrying together.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration

    /// Delays that start at `initial` and double up to `maximum`, with full jitter.
    public init(initial: Duration, maximum: Duration) {
        precondition(initial > .zero && maximum >= initial, "backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
    }

    /// The ceiling of the wait before retry `attempt`, before jitter.
    public func ceiling(attempt: Int) -> Duration {
        let doubled = initial * (1 << min(max(attempt, 0), 30))
        return min(doubled, maximum)
    }

    /// The wait before retry `attempt`; `unit` is a random number in `0...1` (the jitter).
    public func delay(attempt: Int, unit: Double = .random(in: 0...1)) -> Duration {
        ceiling(attempt: attempt) * min(max(unit, 0), 1)
    }
}
