/// An HTTP response as a value: status, headers, body bytes.
public struct Response: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response.
    public static func text(_ text: String, status: HTTPStatus = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: HTTPHeaders("Content-Type", contentType), body: Array(text.utf8))
    }

    /// A JSON response from an `Encodable` value, keys in snake_case.
    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: HTTPHeaders("Content-Type", "application/json"), body: JSON.encode(value))
    }

    /// A JSON response from a value written field by field (the fast path: no `Encoder`).
    public static func json<T: JSONFields>(_ value: T, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: HTTPHeaders("Content-Type", "application/json"), body: JSON.encode(value))
    }

    /// 204 with no body.
    public static var noContent: Response { Response(status: .noContent) }
}
