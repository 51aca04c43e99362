import Testing
import HTTP
@testable import KeygateCore

@Suite("Symbol validation")
struct SymbolValidationTests {
    @Test("good symbols and their canonical forms", arguments: [
        ("AAPL", "stock", "AAPL"), ("aapl", "stock", "AAPL"), (" msft ", "stock", "MSFT"), ("BRK.B", "stock", "BRK.B"),
        ("brk-b", "stock", "BRK.B"), ("BRK/B", "stock", "BRK.B"), ("GOOGL", "stock", "GOOGL"), ("F", "stock", "F"),
        ("SPY", "etf", "SPY"), ("QQQ", "etf", "QQQ"),
        ("BTC", "crypto", "BTC"), ("btc", "crypto", "BTC"), ("BTC-USD", "crypto", "BTC-USD"), ("btc/usd", "crypto", "BTC-USD"),
        ("BTC_USDT", "crypto", "BTC-USDT"), ("X:BTCUSD", "crypto", "BTC-USD"), ("x:ethusdt", "crypto", "ETH-USDT"),
        ("BTCUSD", "crypto", "BTC-USD"), ("ETHBTC", "crypto", "ETH-BTC"), ("DOGE", "crypto", "DOGE"), ("SOL-EUR", "crypto", "SOL-EUR"),
    ])
    func good(raw: String, assetClass: String, canonical: String) throws {
        #expect(try SymbolValidation.canonical(raw, assetClass: assetClass) == canonical)
    }

    @Test("bad symbols are 422 naming the field", arguments: [
        ("", "stock"), ("   ", "stock"), ("TOOLONGXX", "stock"), ("1ABC", "stock"), ("AB CD", "stock"), ("BRK.BBB", "stock"),
        ("A.B.C", "stock"), ("AAPL;DROP", "stock"), ("BTC-USD", "stock"), ("ÄPPL", "stock"),
        ("B", "crypto"), ("BTC-USD-EUR", "crypto"), ("X:BTC", "crypto"), ("X:", "crypto"), ("BTC--USD", "crypto"),
        ("'; DROP TABLE tracked_symbols; --", "crypto"), (String(repeating: "A", count: 40), "crypto"),
    ])
    func bad(raw: String, assetClass: String) {
        do {
            _ = try SymbolValidation.canonical(raw, assetClass: assetClass)
            Issue.record("accepted '\(raw)' as \(assetClass)")
        } catch {
            #expect(error.status == .unprocessableContent && error.field == "symbol")
        }
    }

    @Test("asset classes")
    func assetClasses() throws {
        #expect(try SymbolValidation.assetClass("Crypto") == "crypto")
        #expect(throws: Problem.self) { try SymbolValidation.assetClass("bond") }
    }

    @Test("backfill status transitions", arguments: [
        ("pending", "in_progress", true), ("pending", "completed", false), ("pending", "failed", false),
        ("in_progress", "completed", true), ("in_progress", "failed", true), ("in_progress", "pending", true),
        ("completed", "pending", true), ("completed", "in_progress", true), ("completed", "failed", false),
        ("failed", "pending", true), ("failed", "in_progress", true), ("failed", "completed", false),
    ])
    func transitions(from: String, to: String, legal: Bool) {
        #expect((SymbolValidation.transition(from: from, to: to) == nil) == legal)
    }
}
