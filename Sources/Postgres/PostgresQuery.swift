/// A value that can be sent as a query parameter, in PostgreSQL's text format.
public protocol PostgresBindable {
    /// The parameter's text; nil is SQL NULL.
    var postgresText: [UInt8]? { get }
}

extension String: PostgresBindable {
    public var postgresText: [UInt8]? { Array(utf8) }
}

extension Substring: PostgresBindable {
    public var postgresText: [UInt8]? { Array(utf8) }
}

extension Int: PostgresBindable {
    public var postgresText: [UInt8]? { Array(String(self).utf8) }
}

extension Int64: PostgresBindable {
    public var postgresText: [UInt8]? { Array(String(self).utf8) }
}

extension Int32: PostgresBindable {
    public var postgresText: [UInt8]? { Array(String(self).utf8) }
}

extension Double: PostgresBindable {
    public var postgresText: [UInt8]? { Array(String(self).utf8) }
}

extension Bool: PostgresBindable {
    public var postgresText: [UInt8]? { self ? [0x74] : [0x66] }
}

extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    public var postgresText: [UInt8]? { self?.postgresText }
}

extension Array: PostgresBindable where Element == String {
    /// A text[] literal: `{"a","b \"c\""}`.
    public var postgresText: [UInt8]? {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, element) in enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            for byte in element.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// Raw bytes sent as `bytea` (hex format).
public struct PostgresBytes: PostgresBindable, Sendable, Equatable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var postgresText: [UInt8]? {
        func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }
        var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        out.reserveCapacity(2 + 2 * bytes.count)
        for byte in bytes {
            out.append(digit(byte >> 4))
            out.append(digit(byte & 0x0f))
        }
        return out
    }
}

/// Bytes sent as text exactly as given, unvalidated (for callers holding raw input).
public struct PostgresRawText: PostgresBindable, Sendable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresText: [UInt8]? { bytes }
}

/// SQL with its parameters. Interpolated values never become SQL text: each one is a
/// `$n` placeholder bound separately (postgres-nio's `PostgresQuery` shape):
///
///     try connection.query("SELECT id FROM api_keys WHERE key_hash = \(hash)")
///
/// Raw SQL (migrations, DDL) needs the visibly named `PostgresQuery(unsafeSQL:)`.
public struct PostgresQuery: ExpressibleByStringInterpolation, Sendable {
    public private(set) var sql: String
    public private(set) var parameters: [[UInt8]?]

    public init(unsafeSQL sql: String) {
        self.sql = sql
        self.parameters = []
    }

    init(sql: String, parameters: [[UInt8]?]) {
        self.sql = sql
        self.parameters = parameters
    }

    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        sql = stringInterpolation.sql
        parameters = stringInterpolation.parameters
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var parameters: [[UInt8]?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        public mutating func appendInterpolation(_ value: some PostgresBindable) {
            parameters.append(value.postgresText)
            sql += "$\(parameters.count)"
        }

        public mutating func appendInterpolation(_ value: (some PostgresBindable)?) {
            parameters.append(value?.postgresText)
            sql += "$\(parameters.count)"
        }

        /// A trusted SQL fragment (a column name from a fixed list, never input).
        public mutating func appendInterpolation(unsafeSQL fragment: String) {
            sql += fragment
        }
    }
}

/// A statement whose SQL is fixed (a static, built once) and whose `$1…` placeholders are
/// bound per call: a hot path does not rebuild its text for every request. Run with
/// `PostgresConnection.query(_:_:)`, which keeps it prepared under `name` where the
/// connection allows prepared statements.
public struct PostgresStatement: Sendable {
    public let name: String
    public let sql: String

    public init(name: String, unsafeSQL sql: String) {
        self.name = name
        self.sql = sql
    }
}
