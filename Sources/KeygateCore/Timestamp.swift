#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 UTC timestamps from integer microseconds, without Foundation's formatters.
public enum Timestamp {
    public static func rfc3339(microseconds: Int64, fractionDigits: Int = 6) -> String {
        var seconds = time_t(microseconds / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if fractionDigits > 0 {
            let fraction = String(microseconds % 1_000_000)
            text += "." + String((String(repeating: "0", count: 6 - fraction.count) + fraction).prefix(fractionDigits))
        }
        return text + "Z"
    }
}
