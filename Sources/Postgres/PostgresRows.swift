import Posix

/// A query result, fully read: column names and text-format values. The values of every
/// row sit back to back in one byte buffer with one span per cell, not in an array per
/// cell (a key lookup returns some twenty cells per request).
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    @usableFromInline let bytes: [UInt8]
    /// Per cell, row by row: where its bytes start and how many; NULL has count -1.
    @usableFromInline let spans: [Span]
    /// Rows the command touched (INSERT/UPDATE/DELETE), from PQcmdTuples.
    public let affectedRows: Int
    /// Rows returned (also for a result without columns).
    public let count: Int

    @usableFromInline
    struct Span: Sendable {
        @usableFromInline let start: Int
        @usableFromInline let count: Int32
        init(start: Int, count: Int32) { self.start = start; self.count = count }
    }

    init(columns: [String], count: Int, bytes: [UInt8], spans: [Span], affectedRows: Int) {
        self.columns = columns
        self.count = count
        self.bytes = bytes
        self.spans = spans
        self.affectedRows = affectedRows
    }
    public var first: PostgresRow? { count == 0 ? nil : PostgresRow(rows: self, row: 0) }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var index = 0
        let total = count
        return AnyIterator {
            guard index < total else { return nil }
            defer { index += 1 }
            return PostgresRow(rows: self, row: index)
        }
    }
}

/// One row; values decode on access and say which column was wrong. The accessors are
/// inlinable so that callers in other modules get them specialised for the type they
/// decode (unspecialised, every value went through runtime type metadata).
public struct PostgresRow: Sendable {
    @usableFromInline let rows: PostgresRows
    @usableFromInline let base: Int

    init(rows: PostgresRows, row: Int) {
        self.rows = rows
        base = row * rows.columns.count
    }

    /// The cell's bytes (a slice of the result's buffer), nil for NULL.
    @usableFromInline
    func raw(_ column: String) throws(PostgresDecodingError) -> ArraySlice<UInt8>? {
        guard let index = rows.columns.firstIndex(of: column) else { throw .missingColumn(column) }
        let span = rows.spans[base + index]
        guard span.count >= 0 else { return nil }
        return rows.bytes[span.start..<span.start + Int(span.count)]
    }

    public func isNull(_ column: String) throws(PostgresDecodingError) -> Bool {
        try raw(column) == nil
    }

    @inlinable
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresDecodingError) -> T {
        guard let bytes = try raw(column) else { throw .unexpectedNull(column) }
        guard let value = T(postgresText: bytes) else { throw .invalidValue(column: column, type: "\(T.self)") }
        return value
    }

    @inlinable
    public func decode<T: PostgresDecodable>(_ column: String, as type: T?.Type = T?.self) throws(PostgresDecodingError) -> T? {
        guard let bytes = try raw(column) else { return nil }
        guard let value = T(postgresText: bytes) else { throw .invalidValue(column: column, type: "\(T.self)") }
        return value
    }
}

public enum PostgresDecodingError: Error, CustomStringConvertible, Equatable {
    case missingColumn(String)
    case unexpectedNull(String)
    case invalidValue(column: String, type: String)

    public var description: String {
        switch self {
        case .missingColumn(let column): return "no column \(column) in the result"
        case .unexpectedNull(let column): return "column \(column) is NULL"
        case .invalidValue(let column, let type): return "column \(column) does not decode as \(type)"
        }
    }
}

/// A type readable from PostgreSQL's text output format.
public protocol PostgresDecodable {
    init?(postgresText: ArraySlice<UInt8>)
}

extension String: PostgresDecodable {
    public init?(postgresText: ArraySlice<UInt8>) {
        guard let text = utf8Text(postgresText) else { return nil }
        self = text
    }
}

/// The bytes as a String when they are UTF-8. Not the generic `String(validating:as:)`,
/// which instantiated type metadata for every value of every row.
func utf8Text(_ bytes: ArraySlice<UInt8>) -> String? {
    let text = String(decoding: bytes, as: UTF8.self)
    return bytes.allSatisfy({ $0 < 0x80 }) || text.utf8.elementsEqual(bytes) ? text : nil
}

/// Numbers arrive as decimal text.
public protocol PostgresDecimalDecodable: PostgresDecodable, LosslessStringConvertible {}

extension PostgresDecimalDecodable {
    public init?(postgresText: ArraySlice<UInt8>) {
        guard let value = Self(String(decoding: postgresText, as: UTF8.self)) else { return nil }
        self = value
    }
}

/// Integers are read digit by digit (no String in between): a key record has a dozen.
public protocol PostgresIntegerDecodable: PostgresDecodable, FixedWidthInteger {}

extension PostgresIntegerDecodable {
    public init?(postgresText: ArraySlice<UInt8>) {
        guard let value = decimalInteger(postgresText).flatMap({ Self(exactly: $0) }) else { return nil }
        self = value
    }
}

/// `-?[0-9]+` as an Int64; nil when malformed or out of range.
func decimalInteger(_ text: ArraySlice<UInt8>) -> Int64? {
    var index = text.startIndex
    let negative = index < text.endIndex && text[index] == UInt8(ascii: "-")
    if negative { index += 1 }
    guard index < text.endIndex else { return nil }
    var value: Int64 = 0
    while index < text.endIndex {
        let digit = text[index] &- 0x30
        guard digit < 10 else { return nil }
        let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
        let (next, overflowB) = negative ? shifted.subtractingReportingOverflow(Int64(digit)) : shifted.addingReportingOverflow(Int64(digit))
        guard !overflowA, !overflowB else { return nil }
        value = next
        index += 1
    }
    return value
}

extension Int: PostgresIntegerDecodable {}
extension Int64: PostgresIntegerDecodable {}
extension Double: PostgresDecimalDecodable {}

extension Bool: PostgresDecodable {
    public init?(postgresText: ArraySlice<UInt8>) {
        guard postgresText.count == 1, let byte = postgresText.first else { return nil }
        switch byte {
        case UInt8(ascii: "t"): self = true
        case UInt8(ascii: "f"): self = false
        default: return nil
        }
    }
}

extension PostgresBytes: PostgresDecodable {
    /// bytea in either output format: hex (`\x0a1b…`, the default) or escape (`\\` for a
    /// backslash, `\ooo` in octal, other bytes as they are), which a database or role set
    /// to `bytea_output = escape` gives (a session setting would not survive PgBouncer).
    public init?(postgresText: ArraySlice<UInt8>) {
        let text = Array(postgresText)
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else {
            self.init(escapeFormat: text)
            return
        }
        guard text.count % 2 == 0 else { return nil }
        func nibble(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2 - 1)
        var index = 2
        while index < text.count {
            guard let high = nibble(text[index]), let low = nibble(text[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes)
    }

    private init?(escapeFormat text: [UInt8]) {
        func octal(_ byte: UInt8) -> UInt8? {
            (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte) ? byte - UInt8(ascii: "0") : nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count)
        var index = 0
        while index < text.count {
            guard text[index] == UInt8(ascii: "\\") else {
                bytes.append(text[index])
                index += 1
                continue
            }
            if index + 1 < text.count, text[index + 1] == UInt8(ascii: "\\") {
                bytes.append(UInt8(ascii: "\\"))
                index += 2
            } else if index + 3 < text.count, let a = octal(text[index + 1]), let b = octal(text[index + 2]), let c = octal(text[index + 3]), a <= 3 {
                bytes.append(a << 6 | b << 3 | c)
                index += 4
            } else {
                return nil
            }
        }
        self.init(bytes)
    }
}

extension Array: PostgresDecodable where Element == String {
    /// A one-dimensional array in output format, as text: `{a,"b c"}` (NULL elements are
    /// refused). Also for cidr[] and other types whose elements print as text.
    public init?(postgresText: ArraySlice<UInt8>) {
        guard postgresText.first == UInt8(ascii: "{"), postgresText.last == UInt8(ascii: "}") else { return nil }
        var elements: [String] = []
        var index = postgresText.startIndex + 1
        let end = postgresText.endIndex - 1
        if index == end { self = []; return }
        while index < end {
            if postgresText[index] == UInt8(ascii: "\"") {
                var current: [UInt8] = []
                index += 1
                while index < end && postgresText[index] != UInt8(ascii: "\"") {
                    if postgresText[index] == UInt8(ascii: "\\") { index += 1 }
                    guard index < end else { return nil }
                    current.append(postgresText[index])
                    index += 1
                }
                index += 1 // closing quote
                guard let text = utf8Text(current[...]) else { return nil }
                elements.append(text)
            } else {
                let start = index
                while index < end && postgresText[index] != UInt8(ascii: ",") { index += 1 }
                let element = postgresText[start..<index]
                if element.elementsEqual("NULL".utf8) { return nil } // unquoted NULL
                guard let text = utf8Text(element) else { return nil }
                elements.append(text)
            }
            if index < end {
                guard postgresText[index] == UInt8(ascii: ",") else { return nil }
                index += 1
            }
        }
        self = elements
    }
}

/// `timestamptz` as microseconds since the Unix epoch, parsed from the text output in
/// the ISO date style (`2026-11-21 05:12:19.123456+00`, any offset, with or without
/// fraction, years of four to six digits). Connections make sure of that style (see `PostgresConnection`).
public struct PostgresTimestamp: PostgresDecodable, PostgresBindable, Sendable, Equatable, Comparable {
    public let microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.microseconds < rhs.microseconds }

    public init?(postgresText: ArraySlice<UInt8>) {
        let text = Array(postgresText)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= text.count else { return nil }
            var value = 0
            for byte in text[range] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        // The year has four digits or more (timestamptz reaches year 294276; an expiry
        // given as 9999-12-31T23:30:00-01:00 is stored in year 10000).
        guard let dash = text.firstIndex(of: UInt8(ascii: "-")), dash >= 4, dash <= 6 else { return nil }
        let shift = dash - 4
        guard text.count >= 22 + shift, text[7 + shift] == UInt8(ascii: "-"), text[10 + shift] == UInt8(ascii: " "),
              let year = number(0..<dash), let month = number(5 + shift..<7 + shift), let day = number(8 + shift..<10 + shift),
              let hour = number(11 + shift..<13 + shift), let minute = number(14 + shift..<16 + shift),
              let second = number(17 + shift..<19 + shift) else { return nil }
        var index = 19 + shift
        var fraction = 0
        if index < text.count && text[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < text.count, text[index] >= 0x30, text[index] <= 0x39 {
                if digits < 6 { fraction = fraction * 10 + Int(text[index] - 0x30); digits += 1 }
                index += 1
            }
            while digits < 6 { fraction *= 10; digits += 1 }
        }
        guard index < text.count, text[index] == UInt8(ascii: "+") || text[index] == UInt8(ascii: "-") else { return nil }
        let sign = text[index] == UInt8(ascii: "-") ? -1 : 1
        guard let offsetHours = number(index + 1..<index + 3) else { return nil }
        index += 3
        // Then optionally :mm and :ss (historical zone offsets have seconds), and nothing
        // else: a " BC" is refused rather than misread.
        var offset = offsetHours * 3600
        for scale in [60, 1] where index < text.count {
            guard text[index] == UInt8(ascii: ":"), let part = number(index + 1..<index + 3) else { return nil }
            offset += part * scale
            index += 3
        }
        guard index == text.count else { return nil }
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - sign * offset
        // PostgreSQL's last years (to 294276) lie beyond Int64 µs since 1970: refused, not a trap.
        let (scaled, overflow) = Int64(seconds).multipliedReportingOverflow(by: 1_000_000)
        let (total, carry) = scaled.addingReportingOverflow(Int64(fraction))
        guard !overflow, !carry else { return nil }
        microseconds = total
    }

    /// Sent as RFC 3339 (`2026-11-21T05:12:19.123456Z`), which timestamptz input accepts.
    public var postgresText: [UInt8]? {
        Array(Timestamp.rfc3339(microseconds: microseconds).utf8)
    }
}
