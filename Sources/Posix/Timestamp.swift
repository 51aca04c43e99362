#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 UTC timestamps from integer microseconds, without Foundation's formatters.
public enum Timestamp {
    public static func rfc3339(microseconds: Int64, fractionDigits: Int = 6) -> String {
        // Floor division: before 1970 the fraction still counts forward from a whole second.
        let fractionMicros = ((microseconds % 1_000_000) + 1_000_000) % 1_000_000
        var seconds = time_t((microseconds - fractionMicros) / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        let digits = min(max(fractionDigits, 0), 6)
        guard (0...9999).contains(year) else {
            return wideYear(year, parts, fractionMicros: fractionMicros, fractionDigits: digits)
        }
        // Every response carries a few of these: fixed-width digits into one buffer.
        return String(unsafeUninitializedCapacity: 27) { buffer in
            var index = 0
            func put(_ value: Int, width: Int) {
                var rest = value
                for position in stride(from: width - 1, through: 0, by: -1) {
                    buffer[index + position] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                index += width
            }
            func put(_ byte: Unicode.Scalar) {
                buffer[index] = UInt8(ascii: byte)
                index += 1
            }
            put(year, width: 4); put("-"); put(Int(parts.tm_mon) + 1, width: 2); put("-"); put(Int(parts.tm_mday), width: 2)
            put("T"); put(Int(parts.tm_hour), width: 2); put(":"); put(Int(parts.tm_min), width: 2); put(":"); put(Int(parts.tm_sec), width: 2)
            if digits > 0 {
                put(".")
                var fraction = Int(fractionMicros)
                for _ in digits..<6 { fraction /= 10 }
                put(fraction, width: digits)
            }
            put("Z")
            return index
        }
    }

    /// Years outside 0...9999 (never stored by keygate, but representable): as many digits as they need.
    private static func wideYear(_ year: Int, _ parts: tm, fractionMicros: Int64, fractionDigits: Int) -> String {
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "\(pad(year, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
        if fractionDigits > 0 {
            text += "." + String(pad(Int(fractionMicros), 6).prefix(fractionDigits))
        }
        return text + "Z"
    }
}

extension Timestamp {
    /// Parses RFC 3339 (`2026-11-21T05:12:19Z`, `…19.5+02:00`) to µs since the epoch.
    public static func parseRFC3339(_ text: String) -> Int64? {
        let t = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= t.count else { return nil }
            var value = 0
            for byte in t[range] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard t.count >= 20, t[4] == UInt8(ascii: "-"), t[7] == UInt8(ascii: "-"), t[10] | 0x20 == UInt8(ascii: "t"),
              t[13] == UInt8(ascii: ":"), t[16] == UInt8(ascii: ":"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var index = 19
        var fraction = 0
        if index < t.count, t[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < t.count, t[index] >= 0x30, t[index] <= 0x39 {
                if digits < 6 { fraction = fraction * 10 + Int(t[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 6)..<6 { fraction *= 10 }
        }
        guard index < t.count else { return nil }
        var offset = 0
        if t[index] | 0x20 == UInt8(ascii: "z") {
            guard index + 1 == t.count else { return nil }
        } else {
            guard t[index] == UInt8(ascii: "+") || t[index] == UInt8(ascii: "-"), index + 6 == t.count,
                  t[index + 3] == UInt8(ascii: ":"), let hours = number(index + 1..<index + 3), let minutes = number(index + 4..<index + 6),
                  hours < 24, minutes < 60 else { return nil }
            offset = (hours * 60 + minutes) * 60 * (t[index] == UInt8(ascii: "-") ? -1 : 1)
        }
        let seconds = daysFromCivil(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        // Only instants keygate can give back as RFC 3339, whose years have four digits:
        // 9999-12-31T23:30:00-01:00 is in year 10000 once in UTC.
        guard (Self.firstSecond..<Self.endSecond).contains(seconds) else { return nil }
        return Int64(seconds) * 1_000_000 + Int64(fraction)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in seconds since the epoch.
    static let firstSecond = -62_135_596_800
    static let endSecond = 253_402_300_800
}
