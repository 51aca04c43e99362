/// Query-string and percent-decoding, byte-exact and UTF-8 validating.
public enum QueryString {
    /// `a=1&b=x%20y` → ["a": "1", "b": "x y"]; pairs that do not decode are dropped
    /// (requests whose query holds one are refused first: `firstInvalidName`).
    public static func parse(_ query: String) -> [String: String] {
        var items: [String: String] = [:]
        // Bytes, not Characters: a combining mark after "&" or "=" must not hide the separator.
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(Substring(parts[0]), plusAsSpace: true) else { continue }
            let value = parts.count > 1 ? percentDecode(Substring(parts[1]), plusAsSpace: true) : ""
            if let value, items[name] == nil { items[name] = value }
        }
        return items
    }

    /// The name (as sent) of the first pair whose name or value does not decode or holds a
    /// NUL; nil when every pair is good. A route that read such a pair would see the
    /// parameter as absent: a filter dropped instead of refused.
    public static func firstInvalidName(_ query: String) -> Substring? {
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            for part in parts {
                guard let decoded = percentDecode(Substring(part), plusAsSpace: true), !decoded.utf8.contains(0) else {
                    return Substring(parts[0])
                }
            }
        }
        return nil
    }

    /// Decodes `%XX` escapes; nil for a malformed escape or bytes that are not UTF-8.
    public static func percentDecode(_ text: Substring, plusAsSpace: Bool = false) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusAsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(utf8Bytes: bytes)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
