import HTTP
import Postgres

/// The one mapping from a database failure to an HTTP answer.
enum DatabaseProblem {
    static func from(_ error: PostgresError, logger: Logger, requestID: String) -> any Error {
        switch error.kind {
        case .unavailable, .timeout, .retryable:
            logger.warning("database unavailable", [("request_id", requestID), ("error", error.description)])
            return Problem.unavailable("The database is unavailable; retry shortly.", retryAfterSeconds: 2)
        case .uniqueViolation:
            return Problem(.conflict, detail: "A resource with these values already exists.")
        case .foreignKeyViolation:
            return Problem(.unprocessableContent, detail: "A referenced resource does not exist.")
        case .constraintViolation, .invalidInput:
            return Problem(.unprocessableContent, detail: "The database refused a value as invalid.")
        case .other:
            // A bug or an operator problem: logged in full, answered without internals.
            logger.error("database error", [("request_id", requestID), ("error", error.description)])
            return error
        }
    }
}
