/// A PostgreSQL failure with its meaning. The SQLSTATE decides the kind, and each kind
/// has one HTTP answer further up (conflict → 409, unavailable → 503, …).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The server cannot be reached, the connection broke, or it cannot do the work now:
        /// class 08, 57P0x, no SQLSTATE; class 53 (disk full, out of memory, too many
        /// connections); 25006 (read-only: a demoted primary after a failover).
        case unavailable
        /// 23505: a unique constraint refused the row.
        case uniqueViolation
        /// 23503: a foreign key refused the row.
        case foreignKeyViolation
        /// 23514 / 23502: a check or not-null constraint refused the row.
        case constraintViolation
        /// 40001 / 40P01: serialization failure or deadlock; the transaction may be retried.
        case retryable
        /// 57014: statement_timeout (or a cancel); 55P03: a lock not available in time.
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
        case "57014", "55P03": return .timeout
        case "57P01", "57P02", "57P03", "25006": return .unavailable
        default:
            if state.hasPrefix("08") || state.hasPrefix("53") { return .unavailable }
            if state.hasPrefix("22") { return .invalidInput }
            return .other
        }
    }

    /// Whether the server could not be reached at all: no connection, a broken one, a
    /// shutdown, no connection slot left. A reachable server refusing this work (read-only,
    /// disk full, out of memory) is `.unavailable` too, yet it still answers reads, so only
    /// an unreachable one is an outage for the key cache and the host's health flag.
    public var isUnreachable: Bool {
        guard kind == .unavailable else { return false }
        guard let state = sqlState else { return true }
        return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
    }

    public var description: String {
        "PostgreSQL \(sqlState ?? "-----") (\(kind)): \(message)"
    }
}
