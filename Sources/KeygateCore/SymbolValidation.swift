import HTTP

/// Symbols per asset class, normalised to one canonical form:
/// - stock / ETF: 1-6 letters or digits starting with a letter, optionally a share class
///   of 1-2 letters after `.` (`BRK.B`; `BRK-B` and `BRK/B` are accepted and become `BRK.B`);
/// - crypto: `BASE` alone (`BTC`), or `BASE-QUOTE` (`BTC-USD`), accepting `BTC/USD`,
///   `BTC_USD`, `BTCUSD` and Polygon's `X:BTCUSD` when the quote is a known currency.
enum SymbolValidation {
    static let assetClasses = ["stock", "crypto", "etf"]
    /// Quote currencies recognised at the end of an unseparated pair, longest first.
    static let quotes = ["USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "BTC", "ETH"]

    static func assetClass(_ value: String) throws(Problem) -> String {
        let lowered = value.lowercased()
        guard assetClasses.contains(lowered) else {
            throw KeyValidation.invalid("asset_class", "must be stock, crypto or etf")
        }
        return lowered
    }

    /// The canonical form of `raw` for `assetClass`, or 422 naming the field.
    static func canonical(_ raw: String, assetClass: String) throws(Problem) -> String {
        let text = raw.trimmingSpaces.uppercased()
        guard !text.isEmpty else { throw KeyValidation.invalid("symbol", "must not be empty") }
        guard text.utf8.count <= 32 else { throw KeyValidation.invalid("symbol", "must be at most 32 characters") }
        let canonical = assetClass == "crypto" ? crypto(text) : equity(text)
        guard let canonical else {
            let example = assetClass == "crypto" ? "BTC, BTC-USD or X:BTCUSD" : "AAPL or BRK.B"
            throw KeyValidation.invalid("symbol", "is not a valid \(assetClass) symbol (e.g. \(example))")
        }
        return canonical
    }

    static func equity(_ text: String) -> String? {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == "." || $0 == "-" || $0 == "/" }
        guard (1...2).contains(parts.count) else { return nil }
        let root = parts[0]
        guard (1...6).contains(root.count), root.first?.isLetter == true, root.allSatisfy({ isAlphanumericASCII($0) }) else { return nil }
        if parts.count == 2 {
            let share = parts[1]
            guard (1...2).contains(share.count), share.allSatisfy({ $0.isASCII && $0.isLetter }) else { return nil }
            return "\(root).\(share)"
        }
        return String(root)
    }

    static func crypto(_ text: String) -> String? {
        var body = Substring(text)
        if body.hasPrefix("X:") { body = body.dropFirst(2) }
        let separated = body.split(omittingEmptySubsequences: false) { $0 == "-" || $0 == "/" || $0 == "_" }
        func asset(_ part: Substring) -> Bool { (2...10).contains(part.count) && part.allSatisfy(isAlphanumericASCII) && part.first?.isLetter == true }
        switch separated.count {
        case 1:
            let whole = separated[0]
            if text.hasPrefix("X:") || whole.count > 5 {
                // An unseparated pair needs a known quote at the end.
                for quote in quotes where whole.hasSuffix(quote) && whole.count > quote.count + 1 {
                    let base = whole.dropLast(quote.count)
                    if asset(base) { return "\(base)-\(quote)" }
                }
                return text.hasPrefix("X:") ? nil : (asset(whole) ? String(whole) : nil)
            }
            return asset(whole) ? String(whole) : nil
        case 2:
            guard asset(separated[0]), asset(separated[1]) else { return nil }
            return "\(separated[0])-\(separated[1])"
        default:
            return nil
        }
    }

    static func isAlphanumericASCII(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber)
    }

    /// Legal backfill status moves; nil means allowed, else the reason it is not.
    static func transition(from: String, to: String) -> String? {
        let legal: [String: Set<String>] = [
            "pending": ["in_progress"],
            "in_progress": ["completed", "failed", "pending"],
            "completed": ["pending", "in_progress"],
            "failed": ["pending", "in_progress"],
        ]
        return legal[from]?.contains(to) == true ? nil : "backfill_status cannot go from \(from) to \(to)"
    }

    static let statuses = ["pending", "in_progress", "completed", "failed"]
}
