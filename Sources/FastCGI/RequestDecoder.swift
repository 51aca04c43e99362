#if canImport(Glibc)
import Glibc
#endif
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
/// is tested without a socket. Params are consumed one at a time straight from
/// libfcgi's buffers; only the ones keygate reads are copied.
public struct RequestDecoder {
    /// REQUEST_URI, or DOCUMENT_URI where nginx sent no REQUEST_URI, as read.
    private enum Target {
        case malformed
        case invalidUTF8
        case valid(path: String, query: String)
    }

    private enum Length {
        case absent
        case malformed
        case value(Int)
    }

    private var method: String?
    private var requestURI: Target?
    private var documentURI: Target?
    private var isHTTPS = false
    private var remoteAddress = ""
    private var requestID: String?
    private var contentLength = Length.absent
    private var originalURI: String?
    private var originalMethod: String?
    private var requiredScope: String?
    private var headers = HTTPHeaders()
    private var oversized: String?
    private var methodMalformed = false
    private let limits: RequestLimits

    public init(limits: RequestLimits) {
        self.limits = limits
    }

    /// Takes one `NAME=value` param.
    public mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if value.count > limits.maxParamBytes {
            oversized = String(decoding: name, as: UTF8.self)
        }
        if name.count > 5 && Self.hasPrefix(name, "HTTP_") {
            headers.add(Self.headerName(fromParam: name), String(decoding: value, as: UTF8.self))
            return
        }
        switch name.count {
        case 5 where Self.equals(name, "HTTPS"):
            isHTTPS = value.count == 2 && value[0] | 0x20 == UInt8(ascii: "o") && value[1] | 0x20 == UInt8(ascii: "n")
        case 10 where Self.equals(name, "REQUEST_ID"):
            requestID = Self.validRequestID(value)
        case 11 where Self.equals(name, "REMOTE_ADDR"):
            remoteAddress = String(decoding: value, as: UTF8.self)
        case 11 where Self.equals(name, "REQUEST_URI"):
            requestURI = Self.target(value)
        case 12 where Self.equals(name, "DOCUMENT_URI"):
            // Only a fallback: not worth reading when REQUEST_URI came first (as nginx sends it).
            if requestURI == nil { documentURI = Self.target(value) }
        case 14 where Self.equals(name, "REQUEST_METHOD"):
            // What nginx's parser lets through: A-Z, '_' and '-' (M-SEARCH); the router answers 405.
            if !value.isEmpty, value.count <= 16, value.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5a) || $0 == 0x5f || $0 == 0x2d }) {
                method = String(decoding: value, as: UTF8.self)
            } else {
                methodMalformed = true
            }
        case 14 where Self.equals(name, "CONTENT_LENGTH"):
            contentLength = Self.length(value)
        case 20 where Self.equals(name, "KEYGATE_ORIGINAL_URI"):
            originalURI = value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        case 23 where Self.equals(name, "KEYGATE_ORIGINAL_METHOD"):
            originalMethod = value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        case 22 where Self.equals(name, "KEYGATE_REQUIRED_SCOPE"):
            requiredScope = value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        default:
            break
        }
    }

    // Param names are compared with memcmp against static strings: no lazily
    // initialised globals (swift_once) and no generic iteration per param.
    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount && hasPrefix(bytes, literal)
    }

    private static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard let base = bytes.baseAddress, bytes.count >= literal.utf8CodeUnitCount else { return false }
        return memcmp(base, literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }

    /// Validates what was collected and reads the body.
    /// - Parameters:
    ///   - readBody: reads up to `n` bytes of stdin; returns fewer only at end of stream.
    ///   - makeRequestID: used when nginx sent no usable `REQUEST_ID`.
    public func finish(readBody: (Int) -> [UInt8], makeRequestID: () -> String) throws(RequestDecodingError) -> Request {
        // Values below go into logs and responses: keep them short and printable.
        let requestID = self.requestID ?? makeRequestID()
        func fail(_ problem: Problem) -> RequestDecodingError {
            RequestDecodingError(problem: problem, requestID: requestID)
        }
        if let oversized {
            throw fail(Problem(.headerFieldsTooLarge, detail: "The \(oversized.hasPrefix("HTTP_") ? "header" : "parameter") '\(oversized)' is too large."))
        }
        guard let method, !methodMalformed else {
            throw fail(Problem(.badRequest, detail: "The request method is missing or malformed."))
        }
        let path: String, query: String
        switch requestURI ?? documentURI {
        case .valid(let validPath, let validQuery)?:
            (path, query) = (validPath, validQuery)
        case .invalidUTF8?:
            throw fail(Problem(.badRequest, detail: "The request URI is not valid UTF-8."))
        case .malformed?, nil:
            throw fail(Problem(.badRequest, detail: "The request URI is missing or malformed."))
        }
        if path.utf8.contains(UInt8(ascii: "%")) && QueryString.percentDecode(Substring(path)) == nil {
            throw fail(Problem(.badRequest, detail: "The request path does not decode to valid UTF-8."))
        }
        // Every parameter decodes, and none holds a NUL (PostgreSQL text cannot): checked here,
        // once for every route, so no route sees a malformed filter as an absent one.
        if let name = QueryString.firstInvalidName(query) {
            let shown = String(name.unicodeScalars.prefix(64).filter { $0.value >= 0x20 })
            throw fail(Problem(.badRequest, detail: "The query parameter '\(shown)' does not decode: a malformed %-escape, bytes that are not UTF-8, or a NUL.",
                               field: shown))
        }
        var body: [UInt8] = []
        switch contentLength {
        case .absent:
            break
        case .malformed:
            throw fail(Problem(.badRequest, detail: "Content-Length is not a number."))
        case .value(let length):
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
        var request = Request(method: method, path: path, query: query, headers: headers,
                              remoteAddress: remoteAddress, isHTTPS: isHTTPS, requestID: requestID, body: body)
        request.originalURI = originalURI
        request.originalMethod = originalMethod
        request.requiredScope = requiredScope
        return request
    }

    /// Convenience over `add` + `finish` for whole param lists (tests, tools).
    public static func decode(
        params: [(name: [UInt8], value: [UInt8])],
        limits: RequestLimits,
        readBody: (Int) -> [UInt8],
        makeRequestID: () -> String
    ) throws(RequestDecodingError) -> Request {
        var decoder = RequestDecoder(limits: limits)
        for (name, value) in params {
            name.withUnsafeBytes { nameBytes in
                value.withUnsafeBytes { valueBytes in decoder.add(name: nameBytes, value: valueBytes) }
            }
        }
        return try decoder.finish(readBody: readBody, makeRequestID: makeRequestID)
    }

    /// `HTTP_X_API_KEY` → `x-api-key`.
    static func headerName(fromParam name: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: name.count - 5) { buffer in
            for (index, byte) in name.dropFirst(5).enumerated() {
                switch byte {
                case UInt8(ascii: "_"): buffer[index] = UInt8(ascii: "-")
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): buffer[index] = byte | 0x20
                default: buffer[index] = byte
                }
            }
            return name.count - 5
        }
    }

    /// A request target: must start with `/` and be UTF-8; split at the first `?`.
    private static func target(_ bytes: UnsafeRawBufferPointer) -> Target {
        guard bytes.first == UInt8(ascii: "/") else { return .malformed }
        guard let mark = bytes.firstIndex(of: UInt8(ascii: "?")) else {
            return String(utf8Bytes: bytes).map { .valid(path: $0, query: "") } ?? .invalidUTF8
        }
        guard let path = String(utf8Bytes: UnsafeRawBufferPointer(rebasing: bytes[..<mark])),
              let query = String(utf8Bytes: UnsafeRawBufferPointer(rebasing: bytes[(mark + 1)...])) else { return .invalidUTF8 }
        return .valid(path: path, query: query)
    }

    /// CONTENT_LENGTH: empty is no body; otherwise at most 18 decimal digits.
    private static func length(_ bytes: UnsafeRawBufferPointer) -> Length {
        guard !bytes.isEmpty else { return .absent }
        guard bytes.count <= 18 else { return .malformed }
        var value = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { return .malformed }
            value = value * 10 + Int(byte - 0x30)
        }
        return .value(value)
    }

    /// nginx's `$request_id` is 32 hex digits; accept short alphanumeric ids, refuse the rest.
    static func validRequestID(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard !bytes.isEmpty, bytes.count <= 64,
              bytes.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == UInt8(ascii: "-") }) else {
            return nil
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
