import Testing
@testable import HTTP

/// Separators are bytes: a combining mark (U+0301) right after "/", "&" or "=" must not
/// merge with it into one Character and hide it.
@Suite("Byte-level splitting")
struct ByteSplittingTests {
    @Test("a combining mark after '/' does not glue two path segments together")
    func routerSplitsOnBytes() {
        var router = Router<Void>()
        router.get("/keys/{id}") { _, _ in .noContent }
        if case .found = router.match(method: "GET", path: "/keys/x/\u{301}") {
            Issue.record("three segments must not match a two-segment pattern")
        }
        guard case .found(_, let parameters) = router.match(method: "GET", path: "/keys/\u{301}x") else {
            Issue.record("'/keys/\u{301}x' should match /keys/{id}")
            return
        }
        #expect(parameters["id"] == "\u{301}x")
    }

    @Test("a combining mark after '&' or '=' does not hide the separator")
    func querySplitsOnBytes() {
        #expect(QueryString.parse("a=1&\u{301}b=2") == ["a": "1", "\u{301}b": "2"])
        #expect(QueryString.parse("a=\u{301}x") == ["a": "\u{301}x"])
    }
}
