import HTTP

/// `Response` → the CGI-style header block and body libfcgi sends on stdout.
public enum ResponseEncoder {
    public static func encode(_ response: Response, requestID: String, omitBody: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + response.body.count)
        func line(_ text: String) {
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [13, 10])
        }
        line("Status: \(response.status.code) \(response.status.reason)")
        var hasContentType = false
        for field in response.headers {
            // A header with CR/LF would split the response: drop it (never produced by keygate).
            if field.name.utf8.contains(where: { $0 == 13 || $0 == 10 }) || field.value.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
                continue
            }
            if field.name.lowercased() == "content-type" { hasContentType = true }
            line("\(field.name): \(field.value)")
        }
        if !hasContentType && !response.body.isEmpty { line("Content-Type: application/octet-stream") }
        line("Content-Length: \(response.body.count)")
        line("X-Request-Id: \(requestID)")
        line("")
        if !omitBody { out.append(contentsOf: response.body) }
        return out
    }
}
