import Foundation

/// How the paper venue walks through a candle when lower-timeframe candles of its period are known
/// (`--detail`): each of them in turn is a step of its own, so that liquidation, stops, targets and
/// the stop policy's moves (trailing, break-even, ATR) happen in the order the path shows. Without
/// them, the candle is one step and, inside it, the stop comes first.
public enum IntrabarPath {
    /// One step: the prices over it, when it is over, the funding settlement inside it, and the mark.
    public struct Step: Sendable, Hashable {
        public var candle: Candle
        public var time: Date
        public var funding: FundingEvent?
        public var mark: Candle?
    }

    /// The steps of `candle`, which closes at `close`: its `detail` candles (those inside it, in time
    /// order), each ending where the next begins and the last at `close`. The funding settlement goes
    /// to the step holding its time, and each step's mark is the step moved by the candle's basis (the
    /// mark's open less the candle's), held inside the mark's range. No detail: the candle alone.
    public static func steps(
        candle: Candle,
        close: Date,
        funding: FundingEvent?,
        mark: Candle?,
        detail: [Candle]?
    ) -> [Step] {
        let closeMillis = Int64((close.timeIntervalSince1970 * 1000).rounded())
        let parts = (detail ?? []).filter { $0.openTime >= candle.openTime && $0.openTime < closeMillis }
            .sorted { $0.openTime < $1.openTime }
        guard !parts.isEmpty else { return [Step(candle: candle, time: close, funding: funding, mark: mark)] }
        let fundingMillis = funding.map { Int64(($0.time.timeIntervalSince1970 * 1000).rounded(.down)) }
        var steps: [Step] = []
        steps.reserveCapacity(parts.count)
        for (index, part) in parts.enumerated() {
            let end = index + 1 < parts.count ? parts[index + 1].openTime : closeMillis
            var step = Step(
                candle: part,
                time: Date(timeIntervalSince1970: Double(end) / 1000),
                funding: nil,
                mark: nil
            )
            if let fundingMillis, fundingMillis < end, index == 0 || fundingMillis >= part.openTime {
                if !steps.contains(where: { $0.funding != nil }) { step.funding = funding }
            }
            if let mark {
                let shift = mark.open - candle.open
                func held(_ price: Double) -> Double { min(max(price + shift, mark.low), mark.high) }
                step.mark = Candle(
                    openTime: part.openTime,
                    open: held(part.open),
                    high: held(part.high),
                    low: held(part.low),
                    close: held(part.close),
                    volume: 0
                )
            }
            steps.append(step)
        }
        if funding != nil, !steps.contains(where: { $0.funding != nil }) { steps[steps.count - 1].funding = funding }
        return steps
    }
}
