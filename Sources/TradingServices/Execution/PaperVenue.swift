import Foundation
import TradingCore

/// The paper venue: ``PaperExchange`` behind the ``Venue`` port. Its state (balance, positions,
/// orders, unacknowledged events) is written to a file after every change, atomically, so it
/// outlives an executor that crashes, as a real exchange would. Paper mode never sends a signed request.
public actor PaperVenue: Venue {
    public nonisolated let name = "paper"
    public nonisolated let isLive = false
    let path: String?
    private var exchange: PaperExchange

    /// A paper account with `balance`, kept in `path` (nil: in memory only), resumed from it if it exists.
    /// The account (balance, orders, positions) is resumed; the settings are always `settings`, so a
    /// changed fee, slippage or spread applies from the restart on.
    public init(balance: Money, settings: PaperExchange.Settings = .init(), path: String?) throws {
        self.path = path
        if let path, let data = FileManager.default.contents(atPath: path) {
            exchange = try JSONDecoder().decode(PaperExchange.self, from: data)
            exchange.apply(settings)
        } else {
            exchange = PaperExchange(settings: settings, balance: balance)
        }
    }

    func save() throws(VenueError) {
        guard let path else { return }
        do {
            let data = try JSONEncoder().encode(exchange)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw VenueError(.unreachable, "cannot save the paper venue's state to \(path): \(error)")
        }
    }

    public func filters(symbol: String) async throws(VenueError) -> ExchangeFilters { exchange.settings.filters }
    public func marginTiers(symbol: String) async throws(VenueError) -> MarginTiers? { exchange.settings.marginTiers }

    public func account() async throws(VenueError) -> (equity: Money, availableMargin: Money) {
        (exchange.equity, exchange.availableMargin)
    }

    public func submit(_ request: VenueOrderRequest) async throws(VenueError) -> VenueOrder {
        let result = exchange.submit(request)
        try save()
        return try result.get()
    }

    public func order(clientOrderID: String, symbol: String) async throws(VenueError) -> VenueOrder? {
        exchange.order(clientOrderID: clientOrderID)
    }

    public func positions() async throws(VenueError) -> [VenuePosition] { exchange.openPositions }

    public func placeStop(symbol: String, _ stop: ExecutionKernel.StopOrder) async throws(VenueError) {
        let result = exchange.placeStop(symbol: symbol, stop)
        try save()
        try result.get()
    }

    public func cancelStop(symbol: String, clientID: String) async throws(VenueError) {
        exchange.cancelStop(symbol: symbol, clientID: clientID)
        try save()
    }

    public func workingStops(symbol: String) async throws(VenueError) -> [ExecutionKernel.StopOrder] {
        exchange.workingStops(symbol: symbol)
    }

    public func placeTarget(symbol: String, side: OrderSide, price: Money, clientID: String) async throws(VenueError) {
        let result = exchange.placeTarget(symbol: symbol, side: side, price: price, clientID: clientID)
        try save()
        try result.get()
    }

    public func events() async throws(VenueError) -> [VenueEvent] { exchange.pendingEvents }

    public func acknowledgeEvents(_ count: Int) async throws(VenueError) {
        exchange.acknowledgeEvents(count)
        try save()
    }

    public func price(symbol: String) async throws(VenueError) -> Money? { exchange.price(symbol: symbol) }

    /// Nothing to do: the paper venue's own state outlives the executor, in its file.
    public func resume(_ state: VenueResume) async throws(VenueError) {}

    public func observe(
        symbol: String,
        candle: Candle,
        time: Date,
        atr: Double?,
        funding: FundingEvent?,
        mark: Candle?
    ) async throws(VenueError) {
        try exchange.onCandle(symbol: symbol, candle: candle, time: time, funding: funding, mark: mark)
        try save()
    }

    public func finishCandle(symbol: String) async throws(VenueError) {
        exchange.finishCandle(symbol: symbol)
        try save()
    }
}
