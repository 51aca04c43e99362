/// A PostgreSQL failure with its meaning. The SQLSTATE decides the kind, and each kind
/// has one HTTP answer further up (conflict → 409, unavailable → 503, …).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The server cannot be reached or the connection broke (class 08, 57P0x, no SQLSTATE).
        case unavailable
        /// 23505: a unique constraint refused the row.
        case uniqueViolation
        /// 23503: a foreign key refused the row.
        case foreignKeyViolation
        /// 23514 / 23502: a check or not-null constraint refused the row.
        case constraintViolation
        /// 40001 / 40P01: serialization failure or deadlock; the transaction may be retried.
        case retryable
        /// 57014: statement_timeout (or a cancel).
        case timeout
        /// Class 22: data the server could not accept (bad encoding, out of range, bad syntax of a value).
        case invalidInput
        /// Anything else: a bug or an operator problem, never the caller's fault.
        case other
    }

    public let kind: Kind
    public let sqlState: String?
    public let message: String

    public init(kind: Kind, sqlState: String?, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
    }

    public init(sqlState: String?, message: String) {
        self.init(kind: Self.kind(for: sqlState), sqlState: sqlState, message: message)
    }

    static func kind(for sqlState: String?) -> Kind {
        guard let state = sqlState, state.utf8.count == 5 else { return .unavailable }
        switch state {
        case "23505": return .uniqueViolation
        case "23503": return .foreignKeyViolation
        case "23514", "23502": return .constraintViolation
        case "40001", "40P01": return .retryable
        case "57014": return .timeout
        case "57P01", "57P02", "57P03", "53300": return .unavailable
        default:
            if state.hasPrefix("08") { return .unavailable }
            if state.hasPrefix("22") { return .invalidInput }
            return .other
        }
    }

    public var description: String {
        "PostgreSQL \(sqlState ?? "-----") (\(kind)): \(message)"
    }
}
