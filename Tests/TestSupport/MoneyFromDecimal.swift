import Foundation
import TradingCore

/// The local exchanges keep `Decimal`, as a model of the venue apart from our code: an amount of
/// theirs read as ours (exactly; it traps on more than 20 places, which no venue sends).
public func money(_ value: Decimal) -> Money { Money(exactly: value)! }
