import HTTP

/// `Response` → the CGI-style header block and body libfcgi sends on stdout.
///
/// Straight byte appends into one buffer sized up front: this runs for every request,
/// and a worker's request path is short enough that allocations and temporary strings
/// here were a visible share of it.
public enum ResponseEncoder {
    public static func encode(_ response: Response, requestID: String, omitBody: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + requestID.utf8.count + (omitBody ? 0 : response.body.count))
        append("Status: ", to: &out)
        out.appendDecimal(response.status.code)
        out.append(UInt8(ascii: " "))
        append(response.status.reason, to: &out)
        endLine(&out)
        var hasContentType = false
        var hasCacheControl = false
        for field in response.headers {
            // A header with CR/LF would split the response: drop it (never produced by keygate).
            if containsLineBreak(field.name) || containsLineBreak(field.value) { continue }
            if field.name.caseInsensitiveEquals("Content-Type") { hasContentType = true }
            if field.name.caseInsensitiveEquals("Cache-Control") { hasCacheControl = true }
            append(field.name, to: &out)
            append(": ", to: &out)
            append(field.value, to: &out)
            endLine(&out)
        }
        if !hasContentType && !response.body.isEmpty { append("Content-Type: application/octet-stream\r\n", to: &out) }
        // API answers (keys, metadata) must never sit in a shared cache unless a route says so.
        if !hasCacheControl { append("Cache-Control: no-store\r\n", to: &out) }
        append("Content-Length: ", to: &out)
        out.appendDecimal(response.body.count)
        endLine(&out)
        append("X-Request-Id: ", to: &out)
        append(requestID, to: &out)
        append("\r\n\r\n", to: &out)
        if !omitBody { out.append(contentsOf: response.body) }
        return out
    }

    private static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    private static func append(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    private static func endLine(_ out: inout [UInt8]) {
        out.append(13)
        out.append(10)
    }

    private static func containsLineBreak(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in bytes.contains { $0 == 13 || $0 == 10 } }
    }
}
