import Foundation
import Hyperliquid
import Testing
import TradingCore

@Suite("Hyperliquid market messages")
struct MarketMessagesTests {
    func update(_ openTime: Int64, close: Double) -> KlineUpdate {
        KlineUpdate(
            venue: "hyperliquid",
            symbol: "BTCUSDT",
            interval: "1m",
            candle: Candle(openTime: openTime, open: 1, high: 2, low: 0.5, close: close, volume: 3),
            closed: false
        )
    }

    @Test("a candle is closed, as it last stood, by the first update of the next; older updates are dropped")
    func rollover() {
        var rollover = CandleRollover()
        #expect(rollover.observe(update(0, close: 1)) == [update(0, close: 1)])
        #expect(rollover.observe(update(0, close: 1.5)) == [update(0, close: 1.5)])
        var closed = update(0, close: 1.5)
        closed.closed = true
        #expect(rollover.observe(update(60_000, close: 1.7)) == [closed, update(60_000, close: 1.7)])
        #expect(rollover.observe(update(0, close: 9)).isEmpty)
    }

    @Test("the candle push, the asset context (next settlement at the next hour), the error channel")
    func messages() throws {
        let push =
            #"{"channel":"candle","data":{"t":1767225600000,"T":1767225659999,"s":"BTC","i":"1m","o":"87000.0","c":"87010.5","h":"87020.0","l":"86990.0","v":"12.345","n":99}}"#
        let candle = try #require(try HyperliquidMessages.candle(Array(push.utf8)))
        #expect(candle.coin == "BTC" && candle.interval == "1m")
        #expect(
            candle.candle
                == Candle(
                    openTime: 1_767_225_600_000,
                    open: 87000,
                    high: 87020,
                    low: 86990,
                    close: 87010.5,
                    volume: 12.345
                )
        )
        #expect(try HyperliquidMessages.candle(Array(#"{"channel":"pong"}"#.utf8)) == nil)
        #expect(throws: ExchangeMessageError.self) { try HyperliquidMessages.candle(Array("not json".utf8)) }

        let context =
            #"{"channel":"activeAssetCtx","data":{"coin":"BTC","ctx":{"funding":"0.0000125","openInterest":"1","prevDayPx":"1","dayNtlVlm":"1","premium":"0","oraclePx":"87000","markPx":"87001.5","midPx":"87001","impactPxs":["87000","87002"],"dayBaseVlm":"1"}}}"#
        let now = Date(timeIntervalSince1970: 1_767_225_630)
        let mark = try #require(
            try HyperliquidMessages.assetContext(
                Array(context.utf8),
                symbol: { $0 == "BTC" ? "BTCUSDT" : nil },
                now: now
            )
        )
        #expect(mark.symbol == "BTCUSDT" && mark.markPrice == Money(string: "87001.5")!)
        #expect(mark.fundingRate == Money(string: "0.0000125")!)
        #expect(mark.nextFundingTime == Date(timeIntervalSince1970: 1_767_229_200))
        #expect(
            HyperliquidMessages.error(Array(#"{"channel":"error","data":"Invalid subscription"}"#.utf8))
                == "Invalid subscription"
        )
        #expect(HyperliquidMessages.error(Array(push.utf8)) == nil)
    }

    @Test("trades: the last trade of each coin followed; others ignored; another channel is nothing; a bad px is named")
    func trades() throws {
        let push = Array(
            #"{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"100.5","sz":"1","time":2000,"hash":"0x1","tid":7,"users":["0xa","0xb"]},{"coin":"BTC","side":"A","px":"100.25","sz":"1","time":1000,"hash":"0x2","tid":6,"users":["0xa","0xb"]},{"coin":"ETH","side":"A","px":"3000","sz":"1","time":3000,"hash":"0x3","tid":8,"users":["0xa","0xb"]}]}"#
                .utf8
        )
        let last = try HyperliquidMessages.lastTrades(push) { $0 == "BTC" ? "BTCUSDT" : nil }
        #expect(last.count == 1 && last[0].symbol == "BTCUSDT" && last[0].price == Money(string: "100.5")!)
        #expect(last[0].time == Date(timeIntervalSince1970: 2))
        #expect(try HyperliquidMessages.lastTrades(Array(#"{"channel":"pong"}"#.utf8)) { $0 }.isEmpty)
        #expect(throws: (any Error).self) {
            try HyperliquidMessages.lastTrades(
                Array(#"{"channel":"trades","data":[{"coin":"BTC","px":"-1","time":1,"tid":1}]}"#.utf8)
            ) { $0 }
        }
    }
}
