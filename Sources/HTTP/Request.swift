/// One HTTP request as nginx handed it over, as a value.
public struct Request: Sendable {
    public var method: String
    /// The path, still percent-encoded (as in REQUEST_URI), without the query.
    public var path: String
    /// The raw query string, without `?`.
    public var query: String
    public var headers: HTTPHeaders
    /// The client address as nginx saw the connection (REMOTE_ADDR); never a client header.
    public var remoteAddress: String
    /// Whether nginx said the request arrived over TLS (`HTTPS=on`).
    public var isHTTPS: Bool
    /// nginx's `$request_id`, or one keygate made when nginx sent none.
    public var requestID: String
    public var body: [UInt8]
    /// For nginx `auth_request` subrequests: the original request's URI and method, and
    /// the scope the protected location demands (`KEYGATE_*` FastCGI params, which only
    /// nginx's configuration can set; clients can only produce `HTTP_*` params).
    public var originalURI: String?
    public var originalMethod: String?
    public var requiredScope: String?
    /// Parameters the router captured from the path pattern, percent-decoded.
    public var pathParameters: [String: String] = [:]

    public init(
        method: String,
        path: String,
        query: String = "",
        headers: HTTPHeaders = HTTPHeaders(),
        remoteAddress: String = "",
        isHTTPS: Bool = true,
        requestID: String = "",
        body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.isHTTPS = isHTTPS
        self.requestID = requestID
        self.body = body
    }

    /// Query parameters, percent-decoded; the first of a repeated name wins.
    public var queryItems: [String: String] {
        QueryString.parse(query)
    }

    /// A path parameter the route declared; a route asking for one it lacks is a bug,
    /// reported as a 404 rather than a crash.
    public func parameter(_ name: String) throws(Problem) -> String {
        guard let value = pathParameters[name] else {
            throw Problem(.notFound, detail: "No such resource.")
        }
        return value
    }
}
