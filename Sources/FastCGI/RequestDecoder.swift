import HTTP

/// Limits applied while turning FastCGI params and stdin into a `Request`.
public struct RequestLimits: Sendable {
    /// Largest body accepted; a larger Content-Length is answered 413 without reading it.
    public var maxBodyBytes: Int
    /// Largest single param (header) value; larger is answered 431.
    public var maxParamBytes: Int

    public init(maxBodyBytes: Int = 1 << 20, maxParamBytes: Int = 16 << 10) {
        self.maxBodyBytes = maxBodyBytes
        self.maxParamBytes = maxParamBytes
    }
}

/// A request that could not be decoded: the answer to give, and the id to give it under.
public struct RequestDecodingError: Error {
    public let problem: Problem
    public let requestID: String
}

/// CGI params (+ body) → `Request`. Pure: the libfcgi part only supplies bytes, so this
/// is tested without a socket.
public enum RequestDecoder {
    /// - Parameters:
    ///   - params: name/value byte pairs as the web server sent them.
    ///   - readBody: reads up to `n` bytes of stdin; returns fewer only at end of stream.
    ///   - makeRequestID: used when nginx sent no usable `REQUEST_ID`.
    public static func decode(
        params: [(name: [UInt8], value: [UInt8])],
        limits: RequestLimits,
        readBody: (Int) -> [UInt8],
        makeRequestID: () -> String
    ) throws(RequestDecodingError) -> Request {
        var values: [String: [UInt8]] = [:]
        var headers = HTTPHeaders()
        var oversized: String?
        for (nameBytes, value) in params {
            guard let name = String(validating: nameBytes, as: UTF8.self) else { continue }
            if value.count > limits.maxParamBytes { oversized = name }
            if name.hasPrefix("HTTP_") {
                headers.add(headerName(fromParam: name), String(decoding: value, as: UTF8.self))
            } else {
                values[name] = value
            }
        }
        // Values below go into logs and responses: keep them short and printable.
        let requestID = values["REQUEST_ID"].flatMap(validRequestID) ?? makeRequestID()
        func fail(_ problem: Problem) -> RequestDecodingError {
            RequestDecodingError(problem: problem, requestID: requestID)
        }
        if let oversized {
            throw fail(Problem(.headerFieldsTooLarge, detail: "The \(oversized.hasPrefix("HTTP_") ? "header" : "parameter") '\(oversized)' is too large."))
        }
        guard let methodBytes = values["REQUEST_METHOD"], let method = String(validating: methodBytes, as: UTF8.self),
              !method.isEmpty, method.utf8.count <= 16, method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }) else {
            throw fail(Problem(.badRequest, detail: "The request method is missing or malformed."))
        }
        guard let uriBytes = values["REQUEST_URI"] ?? values["DOCUMENT_URI"], uriBytes.first == UInt8(ascii: "/") else {
            throw fail(Problem(.badRequest, detail: "The request URI is missing or malformed."))
        }
        guard let uri = String(validating: uriBytes, as: UTF8.self) else {
            throw fail(Problem(.badRequest, detail: "The request URI is not valid UTF-8."))
        }
        let (path, query) = splitURI(uri)
        guard QueryString.percentDecode(Substring(path)) != nil else {
            throw fail(Problem(.badRequest, detail: "The request path does not decode to valid UTF-8."))
        }
        let isHTTPS = values["HTTPS"].map { String(decoding: $0, as: UTF8.self).lowercased() == "on" } ?? false
        let remoteAddress = values["REMOTE_ADDR"].map { String(decoding: $0, as: UTF8.self) } ?? ""

        var body: [UInt8] = []
        if let lengthBytes = values["CONTENT_LENGTH"], !lengthBytes.isEmpty {
            guard lengthBytes.count <= 18, lengthBytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let length = Int(String(decoding: lengthBytes, as: UTF8.self)) else {
                throw fail(Problem(.badRequest, detail: "Content-Length is not a number."))
            }
            guard length <= limits.maxBodyBytes else {
                throw fail(Problem(.contentTooLarge, detail: "The request body exceeds \(limits.maxBodyBytes) bytes."))
            }
            if length > 0 {
                body = readBody(length)
                guard body.count == length else {
                    throw fail(Problem(.badRequest, detail: "The request body is shorter than its Content-Length."))
                }
            }
        }
        return Request(method: method, path: path, query: query, headers: headers,
                       remoteAddress: remoteAddress, isHTTPS: isHTTPS, requestID: requestID, body: body)
    }

    /// `HTTP_X_API_KEY` → `x-api-key`.
    static func headerName(fromParam name: String) -> String {
        String(name.dropFirst(5).lowercased().map { $0 == "_" ? "-" : $0 })
    }

    static func splitURI(_ uri: String) -> (path: String, query: String) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri, "") }
        let path = String(uri[..<mark])
        let query = String(uri[uri.utf8.index(after: mark)...])
        return (path, query)
    }

    /// nginx's `$request_id` is 32 hex digits; accept short alphanumeric ids, refuse the rest.
    static func validRequestID(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, bytes.count <= 64,
              bytes.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == UInt8(ascii: "-") }) else {
            return nil
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
