/// The one place errors become responses: RFC 9457 problem+json with `request_id`.
public enum ProblemRenderer {
    /// Base of the `type` URIs; each names a section of the API documentation.
    static let typeBase = "https://keygate.dev/problems/"

    public static func response(for error: any Error, requestID: String) -> Response {
        if let error = error as? any HTTPError {
            return render(status: error.status, title: error.title, detail: error.detail,
                          field: (error as? Problem)?.field, headers: error.headers, requestID: requestID)
        }
        // Unknown errors say nothing about internals.
        return render(status: .internalServerError, title: "Internal Server Error",
                      detail: "The server could not complete the request.", field: nil,
                      headers: HTTPHeaders(), requestID: requestID)
    }

    static func render(status: HTTPStatus, title: String, detail: String, field: String?, headers: HTTPHeaders, requestID: String) -> Response {
        let body = ProblemBody(
            type: typeBase + slug(status),
            title: title,
            status: status.code,
            detail: detail,
            field: field,
            requestId: requestID
        )
        var allHeaders = headers
        allHeaders.set("Content-Type", "application/problem+json")
        return Response(status: status, headers: allHeaders, body: JSON.encode(body))
    }

    private static func slug(_ status: HTTPStatus) -> String {
        status.reason.lowercased().split(separator: " ").joined(separator: "-")
    }
}

struct ProblemBody: JSONFields {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let field: String?
    let requestId: String

    /// `field` only when there is one.
    var jsonFields: [JSONField] {
        var fields = [
            JSONField("type", .string(type)),
            JSONField("title", .string(title)),
            JSONField("status", .integer(status)),
            JSONField("detail", .string(detail)),
        ]
        if let field { fields.append(JSONField("field", .string(field))) }
        fields.append(JSONField("request_id", .string(requestId)))
        return fields
    }
}
