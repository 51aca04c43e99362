import Testing
import HTTP
@testable import FastCGI

/// Params as the web server sends them, from text.
private func params(_ pairs: [(String, String)]) -> [(name: [UInt8], value: [UInt8])] {
    pairs.map { (Array($0.0.utf8), Array($0.1.utf8)) }
}

private let baseParams: [(String, String)] = [
    ("REQUEST_METHOD", "GET"),
    ("REQUEST_URI", "/healthz"),
    ("HTTPS", "on"),
    ("REMOTE_ADDR", "192.0.2.7"),
    ("REQUEST_ID", "0123456789abcdef0123456789abcdef"),
]

/// Replaces (or with nil removes) params in `baseParams`.
private func with(_ changes: [String: String?]) -> [(name: [UInt8], value: [UInt8])] {
    var pairs = baseParams.filter { changes[$0.0] == nil }
    for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
        if let value { pairs.append((name, value)) }
    }
    return params(pairs)
}

/// Counts body reads and serves `body` (or fewer bytes when it is short).
private final class BodySource {
    let body: [UInt8]
    var requests: [Int] = []
    init(_ body: [UInt8] = []) { self.body = body }
    func read(_ count: Int) -> [UInt8] {
        requests.append(count)
        return Array(body.prefix(count))
    }
}

private func decode(
    _ params: [(name: [UInt8], value: [UInt8])],
    limits: RequestLimits = RequestLimits(),
    body: BodySource = BodySource(),
    makeRequestID: () -> String = { "generated-id" }
) throws(RequestDecodingError) -> Request {
    try RequestDecoder.decode(params: params, limits: limits, readBody: body.read, makeRequestID: makeRequestID)
}

/// The decoding error for `params`, or nil when they decode.
private func failure(
    _ params: [(name: [UInt8], value: [UInt8])],
    limits: RequestLimits = RequestLimits(),
    body: BodySource = BodySource(),
    makeRequestID: () -> String = { "generated-id" }
) -> RequestDecodingError? {
    do {
        _ = try decode(params, limits: limits, body: body, makeRequestID: makeRequestID)
        return nil
    } catch {
        return error
    }
}

@Suite("RequestDecoder")
struct RequestDecoderTests {
    @Test("a full set of params decodes into a Request")
    func happyPath() throws {
        let pairs = params([
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/api/v1/admin/api-keys/k%201?limit=10&x=a+b"),
            ("DOCUMENT_URI", "/ignored"),
            ("QUERY_STRING", "ignored=1"),
            ("HTTPS", "on"),
            ("REMOTE_ADDR", "203.0.113.9"),
            ("REQUEST_ID", "4f2a9c0d1e2b3a4f5c6d7e8f90a1b2c3"),
            ("HTTP_X_API_KEY", "kg_live_abc"),
            ("HTTP_CONTENT_TYPE", "application/json"),
            ("HTTP_USER_AGENT", "curl/8"),
            ("CONTENT_LENGTH", "2"),
        ])
        let source = BodySource(Array("{}".utf8))
        let request = try decode(pairs, body: source, makeRequestID: { Issue.record("makeRequestID called"); return "x" })
        #expect(request.method == "POST")
        #expect(request.path == "/api/v1/admin/api-keys/k%201", "the path stays percent-encoded")
        #expect(request.query == "limit=10&x=a+b")
        #expect(request.queryItems == ["limit": "10", "x": "a b"])
        #expect(request.isHTTPS)
        #expect(request.remoteAddress == "203.0.113.9")
        #expect(request.requestID == "4f2a9c0d1e2b3a4f5c6d7e8f90a1b2c3")
        #expect(request.headers["x-api-key"] == "kg_live_abc")
        #expect(request.headers.fields.map(\.name) == ["x-api-key", "content-type", "user-agent"])
        #expect(request.headers["X-Api-Key"] == "kg_live_abc")
        #expect(request.body == Array("{}".utf8))
        #expect(source.requests == [2])
        #expect(request.pathParameters.isEmpty)
    }

    @Test("HTTP_ params become lower-case dashed header names", arguments: [
        ("HTTP_X_API_KEY", "x-api-key"),
        ("HTTP_HOST", "host"),
        ("HTTP_X_FORWARDED_FOR", "x-forwarded-for"),
        ("HTTP_X_B3_TRACEID", "x-b3-traceid"),
    ])
    func headerNames(param: String, header: String) throws {
        let request = try decode(with([param: "v"]))
        #expect(request.headers.fields.map(\.name) == [header])
        #expect(request.headers.fields.map(\.value) == ["v"])
    }

    @Test("non-HTTP_ params never become headers")
    func onlyHTTPParamsAreHeaders() throws {
        let request = try decode(with(["CONTENT_TYPE": "text/plain", "SERVER_NAME": "kg"]))
        #expect(request.headers.fields.isEmpty)
    }

    @Test("a URI without '?' has an empty query; the first '?' splits")
    func uriSplit() throws {
        #expect(try decode(with(["REQUEST_URI": "/a/b"])).query == "")
        let request = try decode(with(["REQUEST_URI": "/a?b=1?c=2"]))
        #expect(request.path == "/a")
        #expect(request.query == "b=1?c=2")
        let empty = try decode(with(["REQUEST_URI": "/a?"]))
        #expect(empty.path == "/a")
        #expect(empty.query == "")
    }

    @Test("HTTPS is on only for 'on' (any case)", arguments: [
        ("on", true), ("ON", true), ("On", true), ("off", false), ("", false), ("1", false), ("yes", false),
    ])
    func httpsFlag(value: String, expected: Bool) throws {
        #expect(try decode(with(["HTTPS": value])).isHTTPS == expected)
    }

    @Test("without an HTTPS param the request is not HTTPS")
    func httpsMissing() throws {
        #expect(try decode(with(["HTTPS": nil])).isHTTPS == false)
    }

    @Test("a missing REMOTE_ADDR is empty, never taken from a header")
    func remoteAddressNotFromHeaders() throws {
        let request = try decode(with(["REMOTE_ADDR": nil, "HTTP_X_FORWARDED_FOR": "10.0.0.1", "HTTP_REMOTE_ADDR": "10.0.0.2"]))
        #expect(request.remoteAddress == "")
    }

    @Test("DOCUMENT_URI is used when REQUEST_URI is absent")
    func documentURIFallback() throws {
        let request = try decode(with(["REQUEST_URI": nil, "DOCUMENT_URI": "/readyz"]))
        #expect(request.path == "/readyz")
    }

    @Test("every method nginx lets through (upper-case letters, '_' and '-') is accepted, for the router to answer",
          arguments: ["GET", "HEAD", "POST", "DELETE", "PATCH", "PROPFIND", "M-SEARCH", "FOO_BAR"])
    func validMethods(method: String) throws {
        #expect(try decode(with(["REQUEST_METHOD": method])).method == method)
    }

    @Test("a missing REQUEST_METHOD is 400")
    func missingMethod() throws {
        let error = try #require(failure(with(["REQUEST_METHOD": nil])))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.detail.contains("method"))
    }

    @Test("a malformed method is 400", arguments: [
        "get", "Get", "", "G T", "GET\r\n", "GE.T", "GET1", "ABCDEFGHIJKLMNOPQ", "GÉT",
    ])
    func malformedMethod(method: String) throws {
        let error = try #require(failure(with(["REQUEST_METHOD": method])))
        #expect(error.problem.status == .badRequest)
    }

    @Test("a 16-letter method is the longest accepted")
    func methodLengthLimit() throws {
        #expect(try decode(with(["REQUEST_METHOD": "ABCDEFGHIJKLMNOP"])).method == "ABCDEFGHIJKLMNOP")
    }

    @Test("a missing REQUEST_URI (and DOCUMENT_URI) is 400")
    func missingURI() throws {
        let error = try #require(failure(with(["REQUEST_URI": nil])))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.detail.contains("URI"))
    }

    @Test("a URI that does not start with '/' is 400", arguments: ["", "healthz", "http://x/healthz", "*", "?a=1"])
    func relativeURI(uri: String) throws {
        let error = try #require(failure(with(["REQUEST_URI": uri])))
        #expect(error.problem.status == .badRequest)
    }

    @Test("a REQUEST_URI that is not UTF-8 is 400")
    func uriNotUTF8() throws {
        var pairs = with(["REQUEST_URI": nil])
        pairs.append((Array("REQUEST_URI".utf8), [0x2F, 0x61, 0xFF, 0x62]))
        let error = try #require(failure(pairs))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.detail.contains("UTF-8"))
    }

    @Test("invalid UTF-8 anywhere in REQUEST_URI is 400: path or query, bad lead, truncated, overlong, surrogate", arguments: [
        [0x2F, 0x61, 0x3F, 0x71, 0x3D, 0xFF] as [UInt8], [0x2F, 0xC3], [0x2F, 0xC0, 0xAF], [0x2F, 0xED, 0xA0, 0x80],
        [0x2F, 0x3F, 0xE2, 0x82], [0x2F, 0x80],
    ])
    func uriInvalidSequences(bytes: [UInt8]) throws {
        var pairs = with(["REQUEST_URI": nil])
        pairs.append((Array("REQUEST_URI".utf8), bytes))
        let error = try #require(failure(pairs))
        #expect(error.problem.detail.contains("UTF-8"))
    }

    @Test("a UTF-8 path and query outside ASCII decode as sent")
    func uriNonASCII() throws {
        let request = try decode(with(["REQUEST_URI": "/symbols/żółw?note=€uro"]))
        #expect(request.path == "/symbols/żółw")
        #expect(request.query == "note=€uro")
    }

    @Test("REQUEST_URI wins over DOCUMENT_URI whichever comes first")
    func requestURIWins() throws {
        let first = try decode(params([("REQUEST_METHOD", "GET"), ("DOCUMENT_URI", "/index"), ("REQUEST_URI", "/healthz?a=1")]))
        #expect(first.path == "/healthz")
        #expect(first.query == "a=1")
        let second = try decode(params([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/healthz"), ("DOCUMENT_URI", "/index")]))
        #expect(second.path == "/healthz")
    }

    @Test("a path whose escapes decode to invalid UTF-8 (or are malformed) is 400", arguments: [
        "/keys/%FF", "/keys/%C3%28", "/keys/%ED%A0%80", "/keys/%zz", "/keys/%4",
    ])
    func pathEscapes(uri: String) throws {
        let error = try #require(failure(with(["REQUEST_URI": uri])))
        #expect(error.problem.status == .badRequest)
    }

    @Test("a query parameter that does not decode is 400 naming it, not a parameter left out", arguments: [
        ("/a?x=%FF&y=1", "x"), ("/a?y=1&status=revoked%zz", "status"), ("/a?user_id=%", "user_id"), ("/a?%FF=1", "%FF"),
        ("/a?limit=%C3", "limit"),
    ])
    func queryEscapes(uri: String, name: String) throws {
        let error = try #require(failure(with(["REQUEST_URI": uri])))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.field == name)
        #expect(try decode(with(["REQUEST_URI": "/a?x=%C3%A9&y=1+2&flag"])).queryItems == ["x": "é", "y": "1 2", "flag": ""])
    }

    @Test("a NUL in the query, escaped or raw, is 400; '%25' + '00' is no NUL", arguments: [
        "/a?x=%00", "/a?x=1&y=a%00b", "/a?%00=1", "/a?x=%2500%00",
    ])
    func queryNUL(uri: String) throws {
        let error = try #require(failure(with(["REQUEST_URI": uri])))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.detail.contains("NUL"))
    }

    @Test("a query without NUL passes, raw NUL bytes do not")
    func queryWithoutNUL() throws {
        #expect(try decode(with(["REQUEST_URI": "/a?x=%2500&y=%200"])).queryItems == ["x": "%00", "y": " 0"])
        var pairs = with(["REQUEST_URI": nil])
        pairs.append((Array("REQUEST_URI".utf8), Array("/a?x=1".utf8) + [0]))
        #expect(try #require(failure(pairs)).problem.detail.contains("NUL"))
    }

    @Test("an oversized param value is 431 naming it")
    func oversizedParam() throws {
        let limits = RequestLimits(maxBodyBytes: 1 << 20, maxParamBytes: 64)
        let header = try #require(failure(with(["HTTP_COOKIE": String(repeating: "c", count: 65)]), limits: limits))
        #expect(header.problem.status == .headerFieldsTooLarge)
        #expect(header.problem.detail.contains("HTTP_COOKIE"))
        let uri = try #require(failure(with(["REQUEST_URI": "/" + String(repeating: "a", count: 64)]), limits: limits))
        #expect(uri.problem.status == .headerFieldsTooLarge)
        #expect(uri.problem.detail.contains("REQUEST_URI"))
    }

    @Test("a param exactly at the limit is accepted")
    func paramAtLimit() throws {
        let limits = RequestLimits(maxBodyBytes: 1 << 20, maxParamBytes: 64)
        let request = try decode(with(["HTTP_COOKIE": String(repeating: "c", count: 64)]), limits: limits)
        #expect(request.headers["cookie"]?.utf8.count == 64)
    }

    @Test("431 wins over an otherwise malformed request, and keeps the request id")
    func oversizedBeforeOtherChecks() throws {
        let limits = RequestLimits(maxBodyBytes: 1 << 20, maxParamBytes: 8)
        let error = try #require(failure(params([
            ("REQUEST_ID", "abc123"), ("HTTP_X", String(repeating: "x", count: 9)),
        ]), limits: limits))
        #expect(error.problem.status == .headerFieldsTooLarge)
        #expect(error.requestID == "abc123")
    }

    @Test("CONTENT_LENGTH over the limit is 413 without reading the body")
    func bodyTooLarge() throws {
        let source = BodySource([UInt8](repeating: 0x41, count: 2048))
        let limits = RequestLimits(maxBodyBytes: 1024)
        let error = try #require(failure(with(["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "1025"]), limits: limits, body: source))
        #expect(error.problem.status == .contentTooLarge)
        #expect(source.requests.isEmpty)
    }

    @Test("CONTENT_LENGTH equal to the limit is read")
    func bodyAtLimit() throws {
        let source = BodySource([UInt8](repeating: 0x41, count: 1024))
        let request = try decode(with(["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "1024"]), limits: RequestLimits(maxBodyBytes: 1024), body: source)
        #expect(request.body.count == 1024)
        #expect(source.requests == [1024])
    }

    @Test("a huge CONTENT_LENGTH is refused without reading", arguments: ["999999999999999999", "1000000000000000000000"])
    func hugeContentLength(value: String) throws {
        let source = BodySource()
        let error = try #require(failure(with(["CONTENT_LENGTH": value]), body: source))
        #expect([413, 400].contains(error.problem.status.code))
        #expect(source.requests.isEmpty)
    }

    @Test("a body shorter than CONTENT_LENGTH is 400")
    func shortBody() throws {
        let source = BodySource(Array("{\"a\"".utf8))
        let error = try #require(failure(with(["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "10"]), body: source))
        #expect(error.problem.status == .badRequest)
        #expect(error.problem.detail.contains("shorter"))
        #expect(source.requests == [10])
    }

    @Test("a non-numeric CONTENT_LENGTH is 400 without reading", arguments: ["abc", "-1", "+5", " 5", "5 ", "0x10", "1e3", "١٢"])
    func nonNumericContentLength(value: String) throws {
        let source = BodySource([UInt8](repeating: 0, count: 100))
        let error = try #require(failure(with(["CONTENT_LENGTH": value]), body: source))
        #expect(error.problem.status == .badRequest)
        #expect(source.requests.isEmpty)
    }

    @Test("an empty or zero CONTENT_LENGTH reads nothing", arguments: ["", "0", "000"])
    func emptyBody(value: String) throws {
        let source = BodySource([1, 2, 3])
        let request = try decode(with(["CONTENT_LENGTH": value]), body: source)
        #expect(request.body.isEmpty)
        #expect(source.requests.isEmpty)
    }

    @Test("no CONTENT_LENGTH means no body is read")
    func noContentLength() throws {
        let source = BodySource([1, 2, 3])
        let request = try decode(with([:]), body: source)
        #expect(request.body.isEmpty)
        #expect(source.requests.isEmpty)
    }

    @Test("a valid REQUEST_ID is kept", arguments: ["abc", "ABC-123-def", String(repeating: "a", count: 64)])
    func validRequestID(id: String) throws {
        var called = false
        let request = try decode(with(["REQUEST_ID": id]), makeRequestID: { called = true; return "generated" })
        #expect(request.requestID == id)
        #expect(!called)
    }

    @Test("a missing or unusable REQUEST_ID is replaced by makeRequestID's value", arguments: [
        nil, "", "has space", "line\nbreak", "quote\"d", "a;b", "ümlaut", "under_score", "semi:colon",
        String(repeating: "a", count: 65),
    ])
    func badRequestID(id: String?) throws {
        var pairs = with(["REQUEST_ID": nil])
        if let id { pairs += params([("REQUEST_ID", id)]) }
        let request = try decode(pairs, makeRequestID: { "generated-42" })
        #expect(request.requestID == "generated-42")
    }

    @Test("a REQUEST_ID that is not UTF-8 is replaced")
    func requestIDNotUTF8() throws {
        var pairs = with(["REQUEST_ID": nil])
        pairs.append((Array("REQUEST_ID".utf8), [0x61, 0xC3]))
        #expect(try decode(pairs).requestID == "generated-id")
    }

    @Test("a decoding error carries nginx's request id")
    func errorCarriesRequestID() throws {
        let error = try #require(failure(with(["REQUEST_METHOD": "get"])))
        #expect(error.requestID == "0123456789abcdef0123456789abcdef")
    }

    @Test("a decoding error without a usable id carries the generated one, made once")
    func errorCarriesGeneratedID() throws {
        var calls = 0
        let error = try #require(failure(with(["REQUEST_ID": "bad id", "REQUEST_URI": nil]), makeRequestID: { calls += 1; return "gen-7" }))
        #expect(error.problem.status == .badRequest)
        #expect(error.requestID == "gen-7")
        #expect(calls == 1)
    }
}
