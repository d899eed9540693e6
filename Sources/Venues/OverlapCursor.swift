/// Where a venue's fills are read from when their ids are not ordered (Bybit's `execId`,
/// Hyperliquid's `tid`): a time before which everything has been read. Each read goes back
/// ``overlap`` from it (fills may be listed late) and skips the ids already reported, kept with their
/// time while they are inside that overlap.
struct OverlapCursor<ID: Hashable & Sendable>: Sendable {
    /// Everything before this time (ms) has been read.
    var from: Int64
    /// Ids reported, with their time, while inside the overlap.
    var seen: [ID: Int64] = [:]
    /// Fills before this time are not ours (an adopted position's history).
    var floor: Int64 = 0

    /// How far back each read goes again, in milliseconds.
    static var overlap: Int64 { 30_000 }

    /// Where the next read starts.
    var readFrom: Int64 { from - Self.overlap }

    /// Whether the fill `id` at `time` is new: not reported, not before the floor, and inside the
    /// overlap (an older one was read before, and its id forgotten).
    func admits(_ id: ID, at time: Int64) -> Bool { seen[id] == nil && time >= floor && time >= readFrom }

    /// The fill `id` at `time` is reported.
    mutating func take(_ id: ID, at time: Int64) { seen[id] = time }

    /// Everything through `until` has been read; ids older than the overlap are forgotten.
    mutating func advance(to until: Int64) {
        from = max(from, until)
        seen = seen.filter { $0.value >= readFrom }
    }
}
