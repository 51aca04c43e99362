import Testing
import HTTP
@testable import FastCGI

/// Splits encoded output into header lines (without CRLF) and the body.
private func parse(_ bytes: [UInt8]) throws -> (lines: [String], body: [UInt8]) {
    let separator: [UInt8] = [13, 10, 13, 10]
    var end: Int?
    if bytes.count >= 4 {
        for index in 0...(bytes.count - 4) where Array(bytes[index..<index + 4]) == separator {
            end = index
            break
        }
    }
    let headerEnd = try #require(end, "no blank line ending the header block")
    let head = String(decoding: bytes[..<headerEnd], as: UTF8.self)
    let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
    return (lines, Array(bytes[(headerEnd + 4)...]))
}

@Suite("ResponseEncoder")
struct ResponseEncoderTests {
    @Test("status line, headers, Content-Length, X-Request-Id, blank line, body")
    func layout() throws {
        let response = Response(status: .created, headers: HTTPHeaders([("Content-Type", "application/json"), ("Location", "/k/1")]),
                                body: Array(#"{"id":1}"#.utf8))
        let bytes = ResponseEncoder.encode(response, requestID: "rid-1", omitBody: false)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text == "Status: 201 Created\r\nContent-Type: application/json\r\nLocation: /k/1\r\nCache-Control: no-store\r\nContent-Length: 8\r\nX-Request-Id: rid-1\r\n\r\n{\"id\":1}")
    }

    @Test("Cache-Control defaults to no-store; a route's own value is kept alone")
    func cacheControl() throws {
        let plain = try parse(ResponseEncoder.encode(.noContent, requestID: "r", omitBody: false))
        #expect(plain.lines.filter { $0.lowercased().hasPrefix("cache-control:") } == ["Cache-Control: no-store"])
        let own = try parse(ResponseEncoder.encode(Response(headers: HTTPHeaders([("cache-control", "max-age=60")])), requestID: "r", omitBody: false))
        #expect(own.lines.filter { $0.lowercased().hasPrefix("cache-control:") } == ["cache-control: max-age=60"])
    }

    @Test("the Status line carries code and reason", arguments: [HTTPStatus.ok, .notFound, .methodNotAllowed, .serviceUnavailable])
    func statusLine(status: HTTPStatus) throws {
        let (lines, _) = try parse(ResponseEncoder.encode(Response(status: status), requestID: "r", omitBody: false))
        #expect(lines.first == "Status: \(status.code) \(status.reason)")
    }

    @Test("Content-Length counts body bytes, not characters")
    func contentLengthBytes() throws {
        let response = Response.text("żółw €")
        let (lines, body) = try parse(ResponseEncoder.encode(response, requestID: "r", omitBody: false))
        #expect(lines.contains("Content-Length: \(Array("żółw €".utf8).count)"))
        #expect(body == Array("żółw €".utf8))
    }

    @Test("an empty body has Content-Length 0 and no default Content-Type")
    func emptyBody() throws {
        let (lines, body) = try parse(ResponseEncoder.encode(.noContent, requestID: "r", omitBody: false))
        #expect(lines == ["Status: 204 No Content", "Cache-Control: no-store", "Content-Length: 0", "X-Request-Id: r"])
        #expect(body.isEmpty)
    }

    @Test("a body without Content-Type gets application/octet-stream; an existing one (any case) is kept alone")
    func defaultContentType() throws {
        let bare = try parse(ResponseEncoder.encode(Response(body: [1, 2, 3]), requestID: "r", omitBody: false))
        #expect(bare.lines.contains("Content-Type: application/octet-stream"))
        let typed = try parse(ResponseEncoder.encode(Response(headers: HTTPHeaders([("content-type", "text/csv")]), body: [1]), requestID: "r", omitBody: false))
        #expect(typed.lines.filter { $0.lowercased().hasPrefix("content-type:") } == ["content-type: text/csv"])
    }

    @Test("a header whose name or value holds CR or LF is dropped; the others stay")
    func crlfDropped() throws {
        let headers = HTTPHeaders([
            ("X-Good", "1"),
            ("X-Bad", "a\r\nSet-Cookie: evil=1"),
            ("X-Bad-LF", "a\nb"),
            ("X-Bad-CR", "a\rb"),
            ("X-Evil\r\nInjected", "v"),
            ("X-Also-Good", "2"),
        ])
        let bytes = ResponseEncoder.encode(Response(headers: headers, body: Array("ok".utf8)), requestID: "r", omitBody: false)
        let (lines, body) = try parse(bytes)
        #expect(lines.contains("X-Good: 1"))
        #expect(lines.contains("X-Also-Good: 2"))
        #expect(!lines.contains { $0.hasPrefix("X-Bad") || $0.contains("evil") || $0.contains("Injected") })
        #expect(body == Array("ok".utf8))
        // No bare CR or LF anywhere in the header block: every line ends with CRLF.
        let head = bytes[..<(bytes.count - body.count)]
        for (index, byte) in zip(head.indices, head) {
            if byte == 13 { #expect(head[index + 1] == 10) }
            if byte == 10 { #expect(head[index - 1] == 13) }
        }
    }

    @Test("HEAD omits the body but keeps the GET Content-Length")
    func headOmitsBody() throws {
        let response = Response.json(["status": "ok"])
        let get = ResponseEncoder.encode(response, requestID: "r", omitBody: false)
        let head = ResponseEncoder.encode(response, requestID: "r", omitBody: true)
        let parsedGet = try parse(get)
        let parsedHead = try parse(head)
        #expect(parsedHead.body.isEmpty)
        #expect(parsedHead.lines == parsedGet.lines)
        #expect(parsedHead.lines.contains("Content-Length: \(response.body.count)"))
        #expect(response.body.count > 0)
        #expect(Array(get.prefix(head.count)) == head)
    }

    @Test("X-Request-Id carries the id given")
    func requestIDHeader() throws {
        let (lines, _) = try parse(ResponseEncoder.encode(Response(), requestID: "0123456789abcdef", omitBody: false))
        #expect(lines.last == "X-Request-Id: 0123456789abcdef")
    }

    @Test("repeated headers are all written, in order")
    func repeatedHeaders() throws {
        var headers = HTTPHeaders()
        headers.add("Vary", "a")
        headers.add("Vary", "b")
        let (lines, _) = try parse(ResponseEncoder.encode(Response(headers: headers), requestID: "r", omitBody: false))
        #expect(lines.filter { $0.hasPrefix("Vary:") } == ["Vary: a", "Vary: b"])
    }
}

@Suite("ListenAddress")
struct ListenAddressTests {
    @Test("unix paths and host:port parse", arguments: [
        ("/run/keygate.sock", ListenAddress.unix(path: "/run/keygate.sock")),
        ("unix:/tmp/k.sock", .unix(path: "/tmp/k.sock")),
        ("./k.sock", .unix(path: "./k.sock")),
        ("127.0.0.1:9000", .tcp(host: "127.0.0.1", port: 9000)),
        ("[::1]:9000", .tcp(host: "::1", port: 9000)),
        (":9000", .tcp(host: "127.0.0.1", port: 9000)),
    ])
    func parses(text: String, expected: ListenAddress) {
        #expect(ListenAddress(text) == expected)
    }

    @Test("bad addresses are rejected", arguments: [
        "", "localhost", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "unix:", "/" + String(repeating: "a", count: 107),
    ])
    func rejects(text: String) {
        #expect(ListenAddress(text) == nil)
    }

    @Test("description round-trips", arguments: ["/run/k.sock", "127.0.0.1:9000", "[::1]:9000"])
    func roundTrip(text: String) throws {
        let address = try #require(ListenAddress(text))
        #expect(address.description == text)
        #expect(ListenAddress(address.description) == address)
    }
}
