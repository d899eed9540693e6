import Foundation
import Testing
import TradingCore

@Suite("Notices, MarkdownV2, routes and rate limits")
struct NotificationTests {
    @Test("MarkdownV2 escapes every character Telegram reserves, and nothing else")
    func markdown() {
        #expect(MarkdownV2.escape(##"_*[]()~`>#+-=|{}.!\"##) == ##"\_\*\[\]\(\)\~\`\>\#\+\-\=\|\{\}\.\!\\"##)
        #expect(MarkdownV2.escape("BTCUSDT 97 000 ok: 5% €") == "BTCUSDT 97 000 ok: 5% €")
        let notice = NoticeTemplates.trade(
            TradeEventPayload(
                symbol: "BTC-USDT",
                side: .long,
                quantity: 0.5,
                leverage: 3,
                entryPrice: 97_000.5,
                exitPrice: 98_000,
                pnl: 499.75,
                exitReason: "take_profit"
            ),
            opened: false,
            id: "t1",
            time: Date(),
            raw: .null
        )
        let text = MarkdownV2.render(notice)
        #expect(text.hasPrefix(#"*Trade closed: LONG BTC\-USDT \+499\.75*"#))
        #expect(
            text.contains("PnL: `+499.75`") && text.contains("Exit: `98000`") && text.contains("Reason: `take_profit`")
        )
    }

    @Test(
        "templates: trade opened and closed, circuit breaker, stale feed, analyst failure, daily summary, order events"
    )
    func templates() throws {
        let opened = NoticeTemplates.trade(
            TradeEventPayload(
                symbol: "ETHUSDT",
                side: .short,
                quantity: 2,
                leverage: 4,
                entryPrice: 3_000,
                stopLoss: 3_090,
                takeProfit: 2_820
            ),
            opened: true,
            id: "o",
            time: Date(),
            raw: .null
        )
        #expect(opened.kind == "trade_opened" && opened.title == "Trade opened: SHORT ETHUSDT")
        #expect(
            opened.fields.map(\.0) == ["Side", "Leverage", "Quantity", "Entry", "Stop loss", "Take profit"]
                && opened.fields[1].1 == "4x"
        )
        for (kind, title) in [
            ("circuit_breaker", "Circuit breaker tripped"), ("feed_stale", "Market data feed stale"),
            ("analyst_invalid", "Analyst failure"),
        ] {
            let notice = NoticeTemplates.alert(
                AlertPayload(severity: .critical, kind: kind, title: "t", message: "m"),
                id: "a",
                time: Date(),
                raw: .null
            )
            #expect(notice.title.contains(title) && notice.lines.contains("m") && notice.kind == kind)
        }
        let trade = TradeRecord(
            id: "t",
            positionID: "p",
            symbol: "X",
            side: .long,
            entryTime: Date(),
            entryPrice: 1,
            exitTime: Date(),
            exitPrice: 2,
            quantity: 1,
            leverage: 1,
            stopLoss: nil,
            takeProfit: nil,
            pnl: 10,
            fees: 0,
            funding: 0,
            exitReason: "tp"
        )
        var loser = trade
        loser.pnl = -4
        let summary = NoticeTemplates.dailySummary(
            day: "2026-11-21",
            trades: [trade, loser, trade],
            maxDrawdown: 0.031
        )
        #expect(
            summary.kind == "daily_summary"
                && summary.message == "PnL +16.00, 3 trades, win rate 67%, max drawdown 3.10%"
        )

        let order = Envelope(
            id: "ord",
            type: MessageType.order,
            time: Date(),
            source: "t",
            payload: OrderEventPayload(
                symbol: "X",
                clientOrderID: "c1",
                side: .buy,
                status: "rejected",
                quantity: 1,
                reason: "min notional"
            )
        )
        let notice = try NoticeTemplates.notice(from: try EnvelopeCodec.encode(order))
        #expect(notice.kind == "order_rejected" && notice.severity == .warning && notice.id == "ord")
        let candle = Envelope(type: MessageType.candleClosed, time: Date(), source: "t", payload: ["x": 1])
        #expect(throws: EnvelopeError.self) { try NoticeTemplates.notice(from: try EnvelopeCodec.encode(candle)) }
    }

    @Test("routes: severity floor and kind patterns; NOTIFY_ROUTES parses or says what is wrong")
    func routes() throws {
        let routes = try SinkRoute.parse("telegram:warning; slack:info:trade_*,daily_summary ;webhook:critical:*")
        func notice(_ severity: AlertSeverity, _ kind: String) -> Notice {
            Notice(
                id: "n",
                severity: severity,
                kind: kind,
                title: "",
                lines: [],
                symbol: nil,
                fields: [],
                payload: .null,
                time: Date()
            )
        }
        #expect(
            routes["telegram"]?.accepts(notice(.warning, "anything")) == true
                && routes["telegram"]?.accepts(notice(.info, "x")) == false
        )
        #expect(
            routes["slack"]?.accepts(notice(.info, "trade_closed")) == true
                && routes["slack"]?.accepts(notice(.info, "daily_summary")) == true
        )
        #expect(routes["slack"]?.accepts(notice(.critical, "feed_stale")) == false)
        #expect(routes["webhook"]?.accepts(notice(.critical, "x")) == true)
        #expect(SinkRoute(minSeverity: .info, kinds: ["a*c*e"]).accepts(notice(.info, "abcde")))
        #expect(!SinkRoute(minSeverity: .info, kinds: ["a*c*e"]).accepts(notice(.info, "abcd")))
        #expect(throws: RouteSyntaxError.self) { try SinkRoute.parse("telegram") }
        #expect(throws: RouteSyntaxError.self) { try SinkRoute.parse("telegram:loud") }
    }

    @Test("a token bucket allows a burst of its size, then one per interval")
    func bucket() {
        var bucket = TokenBucket(RateLimit(count: 5, per: .seconds(2)), now: 100)
        let burst = (0..<5).map { _ in bucket.take(now: 100) }
        #expect(burst == [0, 0, 0, 0, 0])
        #expect(abs(bucket.take(now: 100) - 0.4) < 1e-9)
        #expect(bucket.wait(now: 100.2) > 0 && bucket.take(now: 100.4) == 0)
        #expect(abs(bucket.wait(now: 100.4) - 0.4) < 1e-9)
    }
}
