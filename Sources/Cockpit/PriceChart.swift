import Foundation
import TradingCore

/// A trade on its price: the candles around it as high-low bars with their closes joined, and the entry,
/// stop, target and exit drawn across, the entry and exit marked at their times. Inline SVG.
struct PriceChart {
    static let width = 900.0, height = 360.0, left = 70.0, right = 880.0, top = 20.0, bottom = 330.0

    /// The SVG, or nil without candles.
    static func svg(candles: [Candle], interval: Int64, trade: TradeRecord) -> String? {
        guard let first = candles.first, let last = candles.last else { return nil }
        var levels: [(name: String, price: Double, color: String)] = [
            ("entry", trade.entryPrice.doubleValue, "#1f77b4"), ("exit", trade.exitPrice.doubleValue, "#6a3d9a"),
        ]
        if let stop = trade.stopLoss { levels.append(("stop", stop.doubleValue, "#d62728")) }
        if let target = trade.takeProfit { levels.append(("target", target.doubleValue, "#2ca02c")) }
        let low = min(candles.map(\.low).min()!, levels.map(\.price).min()!)
        let high = max(candles.map(\.high).max()!, levels.map(\.price).max()!)
        let span = max(high - low, 1e-12)
        let start = Double(first.openTime)
        let end = Double(last.openTime + interval)
        func x(_ milliseconds: Double) -> Double {
            left + (right - left) * (milliseconds - start) / max(end - start, 1)
        }
        func y(_ price: Double) -> Double { bottom - (bottom - top) * (price - low) / span }
        let barWidth = max((right - left) / Double(candles.count) * 0.6, 1)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" id="price-chart" class="chart" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="11" data-candles="\(candles.count)">
            <rect width="100%" height="100%" fill="white"/>
            <text x="4" y="\(top + 4)">\(Self.price(high))</text><text x="4" y="\(bottom)">\(Self.price(low))</text>

            """
        func f(_ value: Double) -> String { String(format: "%.1f", value) }
        for candle in candles {
            let middle = f(x(Double(candle.openTime) + Double(interval) / 2))
            let color = candle.close >= candle.open ? "#26a269" : "#c01c28"
            svg +=
                "<line x1=\"\(middle)\" y1=\"\(f(y(candle.high)))\" x2=\"\(middle)\" y2=\"\(f(y(candle.low)))\" "
                + "stroke=\"\(color)\" stroke-width=\"\(f(barWidth))\"/>"
        }
        for level in levels {
            let height = f(y(level.price))
            svg +=
                "<line class=\"level-\(level.name)\" x1=\"\(f(left))\" y1=\"\(height)\" x2=\"\(f(right))\" y2=\"\(height)\" "
                + "stroke=\"\(level.color)\" stroke-dasharray=\"5,3\"/>"
                // The exit's label on the left: it often sits on the stop's or the target's line.
                + "<text x=\"\(f(level.name == "exit" ? left + 5 : right - 110))\" y=\"\(f(y(level.price) - 3))\" fill=\"\(level.color)\">"
                + "\(level.name) \(Self.price(level.price))</text>"
        }
        for (name, time, price) in [
            ("entry", trade.entryTime, trade.entryPrice), ("exit", trade.exitTime, trade.exitPrice),
        ] {
            svg +=
                "<circle class=\"mark-\(name)\" cx=\"\(f(x(time.timeIntervalSince1970 * 1000)))\" "
                + "cy=\"\(f(y(price.doubleValue)))\" r=\"5\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>"
        }
        return svg + "</svg>"
    }

    static func price(_ value: Double) -> String {
        value.formatted(.number.precision(.significantDigits(1...7)).grouping(.never))
    }
}
