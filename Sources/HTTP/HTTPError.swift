/// An error that knows the HTTP answer it stands for. One place (`ProblemRenderer`)
/// turns any of these into a problem+json response; any other error becomes a
/// generic 500 that reveals nothing.
public protocol HTTPError: Error {
    var status: HTTPStatus { get }
    /// A short, fixed summary of the problem type (RFC 9457 `title`).
    var title: String { get }
    /// What went wrong with this request, for the caller (RFC 9457 `detail`).
    var detail: String { get }
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`, …).
    var headers: HTTPHeaders { get }
}

extension HTTPError {
    public var title: String { status.reason }
    public var headers: HTTPHeaders { HTTPHeaders() }
}

/// The general-purpose `HTTPError`: a status, a detail, and optionally the field at fault.
public struct Problem: HTTPError, Equatable {
    public let status: HTTPStatus
    public let title: String
    public let detail: String
    /// The request field the problem is about, for 400/422 answers.
    public let field: String?
    public var headers: HTTPHeaders

    public init(_ status: HTTPStatus, title: String? = nil, detail: String, field: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.title = title ?? status.reason
        self.detail = detail
        self.field = field
        self.headers = headers
    }

    public static func notFound(_ detail: String = "No route matches this path.") -> Problem {
        Problem(.notFound, detail: detail)
    }

    public static func methodNotAllowed(allowed: [String]) -> Problem {
        Problem(
            .methodNotAllowed,
            detail: "This resource supports \(allowed.joined(separator: ", ")).",
            headers: HTTPHeaders("Allow", allowed.joined(separator: ", "))
        )
    }

    public static func unavailable(_ detail: String, retryAfterSeconds: Int = 5) -> Problem {
        Problem(.serviceUnavailable, detail: detail, headers: HTTPHeaders("Retry-After", String(retryAfterSeconds)))
    }
}
