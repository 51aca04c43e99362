import HTTP

/// `Response` → the CGI-style header block and body libfcgi sends on stdout.
public enum ResponseEncoder {
    public static func encode(_ response: Response, requestID: String, omitBody: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + response.body.count)
        func line(_ parts: String...) {
            for part in parts { out.append(contentsOf: part.utf8) }
            out.append(13)
            out.append(10)
        }
        line("Status: ", String(response.status.code), " ", response.status.reason)
        var hasContentType = false
        var hasCacheControl = false
        for field in response.headers {
            // A header with CR/LF would split the response: drop it (never produced by keygate).
            if field.name.utf8.contains(where: { $0 == 13 || $0 == 10 }) || field.value.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
                continue
            }
            if field.name.caseInsensitiveEquals("Content-Type") { hasContentType = true }
            if field.name.caseInsensitiveEquals("Cache-Control") { hasCacheControl = true }
            line(field.name, ": ", field.value)
        }
        if !hasContentType && !response.body.isEmpty { line("Content-Type: application/octet-stream") }
        // API answers (keys, metadata) must never sit in a shared cache unless a route says so.
        if !hasCacheControl { line("Cache-Control: no-store") }
        line("Content-Length: ", String(response.body.count))
        line("X-Request-Id: ", requestID)
        line("")
        if !omitBody { out.append(contentsOf: response.body) }
        return out
    }
}
