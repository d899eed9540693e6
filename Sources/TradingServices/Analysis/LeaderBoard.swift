import Foundation
import TradingCore

/// Each followed leader judged beside our copy of them (``LeaderReport``): their recent fills and
/// equity from the venue, our copied trades from the record. Read at most once a `maxAge` (a fill read
/// weighs 120 of Hyperliquid's 1,200 a minute), so an open cockpit page does not spend the budget.
public actor LeaderBoard {
    let leaders: [Leader]
    let source: any LeaderSource
    let store: any TradeStore
    let capital: Money
    let maxAge: Duration
    var cached: (at: ContinuousClock.Instant, reports: [LeaderReport])?

    /// A board of `leaders` read from `source` and `store`; our copies are judged from `capital`.
    public init(
        leaders: [Leader],
        source: any LeaderSource,
        store: any TradeStore,
        capital: Money,
        maxAge: Duration = .seconds(60)
    ) {
        self.leaders = leaders
        self.source = source
        self.store = store
        self.capital = capital
        self.maxAge = maxAge
    }

    /// The reports, in the order of `COPY_LEADERS`; a leader who cannot be read throws, naming them.
    public func reports() async throws -> [LeaderReport] {
        if let cached, ContinuousClock.now - cached.at < maxAge { return cached.reports }
        let ours = try await store.trades(since: nil)
        var reports: [LeaderReport] = []
        for leader in leaders {
            let fills: [LeaderFill]
            let account: LeaderAccount
            do {
                fills = try await source.recentFills(leader.address)
                account = try await source.account(leader.address)
            } catch {
                throw CopyError("the leader \(leader.address) could not be read: \(error)")
            }
            reports.append(
                LeaderReport(leader: leader, fills: fills, equity: account.equity, ourTrades: ours, ourCapital: capital)
            )
        }
        cached = (ContinuousClock.now, reports)
        return reports
    }
}
