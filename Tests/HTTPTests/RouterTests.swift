import Testing
@testable import HTTP

/// A router over `Void` whose handlers answer with their own pattern, so a test can
/// tell which route ran.
private func makeRouter(_ routes: [(String, String)]) -> Router<Void> {
    var router = Router<Void>()
    for (method, pattern) in routes {
        router.add(method, pattern) { _, _ in .text("\(method) \(pattern)") }
    }
    return router
}

/// The found route's "METHOD pattern" and parameters, or nil.
private func found(_ match: Router<Void>.Match) -> (route: String, index: Int, parameters: [String: String])? {
    if case .found(let route, let parameters) = match {
        return ("\(route.method) \(route.pattern)", route.index, parameters)
    }
    return nil
}

private func allowed(_ match: Router<Void>.Match) -> [String]? {
    if case .methodNotAllowed(let allowed) = match { return allowed }
    return nil
}

private func isNotFound(_ match: Router<Void>.Match) -> Bool {
    if case .notFound = match { return true }
    return false
}

@Suite("Router")
struct RouterTests {
    let router = makeRouter([
        ("GET", "/healthz"),
        ("GET", "/api/v1/admin/api-keys"),
        ("POST", "/api/v1/admin/api-keys"),
        ("GET", "/api/v1/admin/api-keys/{id}"),
        ("DELETE", "/api/v1/admin/api-keys/{id}"),
        ("POST", "/api/v1/admin/api-keys/{id}/rotate"),
        ("GET", "/users/{user}/keys/{key}"),
    ])

    @Test("a literal path matches its route and no other")
    func literalMatch() throws {
        let match = try #require(found(router.match(method: "GET", path: "/healthz")))
        #expect(match.route == "GET /healthz")
        #expect(match.index == 0)
        #expect(match.parameters.isEmpty)
    }

    @Test("route indexes follow registration order")
    func routeIndexes() {
        #expect(router.routes.map(\.index) == Array(0..<7))
        #expect(router.routes.map(\.pattern)[5] == "/api/v1/admin/api-keys/{id}/rotate")
    }

    @Test("the same path picks the route of the request's method")
    func methodSelectsRoute() throws {
        let get = try #require(found(router.match(method: "GET", path: "/api/v1/admin/api-keys")))
        let post = try #require(found(router.match(method: "POST", path: "/api/v1/admin/api-keys")))
        #expect(get.route == "GET /api/v1/admin/api-keys")
        #expect(post.route == "POST /api/v1/admin/api-keys")
        #expect(get.index != post.index)
    }

    @Test("a {param} segment captures the path part")
    func parameterCapture() throws {
        let match = try #require(found(router.match(method: "POST", path: "/api/v1/admin/api-keys/k_123/rotate")))
        #expect(match.route == "POST /api/v1/admin/api-keys/{id}/rotate")
        #expect(match.parameters == ["id": "k_123"])
    }

    @Test("several parameters are captured by name")
    func severalParameters() throws {
        let match = try #require(found(router.match(method: "GET", path: "/users/alice/keys/42")))
        #expect(match.parameters == ["user": "alice", "key": "42"])
    }

    @Test("parameters are percent-decoded, '+' is kept literally", arguments: [
        ("caf%C3%A9", "café"),
        ("a%20b", "a b"),
        ("a%2Fb", "a/b"),
        ("a+b", "a+b"),
        ("%41%62c", "Abc"),
    ])
    func parameterDecoding(raw: String, decoded: String) throws {
        let match = try #require(found(router.match(method: "GET", path: "/api/v1/admin/api-keys/\(raw)")))
        #expect(match.route == "GET /api/v1/admin/api-keys/{id}")
        #expect(match.parameters["id"] == decoded)
    }

    @Test("a parameter with a bad percent-escape does not match", arguments: [
        "%zz", "%4", "%", "%C3", "%FF", "abc%G1",
    ])
    func invalidEscapeNoMatch(raw: String) {
        // Only parameter routes fit this path, so nothing else can answer: 404.
        #expect(isNotFound(router.match(method: "GET", path: "/api/v1/admin/api-keys/\(raw)")))
        #expect(isNotFound(router.match(method: "POST", path: "/api/v1/admin/api-keys/\(raw)/rotate")))
    }

    @Test("literal segments are compared as sent, not decoded")
    func literalNotDecoded() {
        #expect(isNotFound(router.match(method: "GET", path: "/health%7A")))
        #expect(isNotFound(router.match(method: "GET", path: "/HEALTHZ")))
    }

    @Test("unknown paths are 404", arguments: [
        "/", "", "/nope", "/healthz/extra", "/api/v1/admin", "/api/v1/admin/api-keys/k/rotate/more",
        "/api/v1/admin/api-keys/k/rotat",
    ])
    func notFound(path: String) {
        #expect(isNotFound(router.match(method: "GET", path: path)))
    }

    @Test("a known path with another method is 405 listing the allowed methods in order")
    func methodNotAllowed() throws {
        let list = try #require(allowed(router.match(method: "PUT", path: "/api/v1/admin/api-keys/abc")))
        #expect(list == ["GET", "DELETE", "HEAD"])
        let rotate = try #require(allowed(router.match(method: "GET", path: "/api/v1/admin/api-keys/abc/rotate")))
        #expect(rotate == ["POST"], "no HEAD without a GET route")
    }

    @Test("405 for a GET-only route adds HEAD once")
    func allowIncludesHead() throws {
        let list = try #require(allowed(router.match(method: "POST", path: "/healthz")))
        #expect(list == ["GET", "HEAD"])
    }

    @Test("HEAD matches the GET route")
    func headMatchesGet() throws {
        let match = try #require(found(router.match(method: "HEAD", path: "/users/a/keys/b")))
        #expect(match.route == "GET /users/{user}/keys/{key}")
        #expect(match.parameters == ["user": "a", "key": "b"])
    }

    @Test("HEAD on a path without a GET route is 405, not a match")
    func headWithoutGet() throws {
        let list = try #require(allowed(router.match(method: "HEAD", path: "/api/v1/admin/api-keys/k/rotate")))
        #expect(list == ["POST"])
    }

    @Test("method names are case-sensitive")
    func methodCaseSensitive() throws {
        let list = try #require(allowed(router.match(method: "get", path: "/healthz")))
        #expect(list == ["GET", "HEAD"])
    }

    @Test("trailing slashes and empty segments are ignored (split omits empties)", arguments: [
        "/healthz/", "//healthz", "/healthz//", "healthz",
    ])
    func emptySegmentsIgnored(path: String) throws {
        let match = try #require(found(router.match(method: "GET", path: path)))
        #expect(match.route == "GET /healthz")
    }

    @Test("an empty segment is dropped, never bound to a parameter")
    func emptySegmentIsNotAParameter() throws {
        // ".../api-keys//rotate" collapses to ".../api-keys/rotate": "rotate" is the {id},
        // so POST is not allowed there and GET finds the key route.
        let list = try #require(allowed(router.match(method: "POST", path: "/api/v1/admin/api-keys//rotate")))
        #expect(list == ["GET", "DELETE", "HEAD"])
        let get = try #require(found(router.match(method: "GET", path: "/api/v1/admin/api-keys//rotate")))
        #expect(get.route == "GET /api/v1/admin/api-keys/{id}")
        #expect(get.parameters == ["id": "rotate"])
        // Trailing slash after the collection is the collection itself.
        #expect(found(router.match(method: "GET", path: "/api/v1/admin/api-keys/"))?.route == "GET /api/v1/admin/api-keys")
        // A pattern's own empty segments are dropped the same way.
        let sloppy = makeRouter([("GET", "/a//b/")])
        #expect(found(sloppy.match(method: "GET", path: "/a/b"))?.route == "GET /a//b/")
    }

    @Test("the first registered route that fits wins")
    func firstRouteWins() throws {
        let router = makeRouter([("GET", "/keys/{id}"), ("GET", "/keys/new")])
        let match = try #require(found(router.match(method: "GET", path: "/keys/new")))
        #expect(match.route == "GET /keys/{id}")
        #expect(match.parameters == ["id": "new"])
    }

    @Test("an empty router finds nothing")
    func emptyRouter() {
        #expect(isNotFound(Router<Void>().match(method: "GET", path: "/")))
    }

    @Test("the found route's handler is the one registered")
    func handlerRuns() throws {
        let match = try #require({ () -> Router<Void>.Route? in
            if case .found(let route, _) = router.match(method: "DELETE", path: "/api/v1/admin/api-keys/x") { return route }
            return nil
        }())
        let response = try match.handler(Request(method: "DELETE", path: "/api/v1/admin/api-keys/x"), ())
        #expect(response.body == Array("DELETE /api/v1/admin/api-keys/{id}".utf8))
    }
}

@Suite("Request")
struct RequestTests {
    @Test("parameter() returns a captured value and 404s on a missing one")
    func parameterLookup() throws {
        var request = Request(method: "GET", path: "/x")
        request.pathParameters = ["id": "abc"]
        #expect(try request.parameter("id") == "abc")
        let error = #expect(throws: Problem.self) { try request.parameter("other") }
        #expect(error?.status == .notFound)
    }

    @Test("queryItems decodes the raw query")
    func queryItems() {
        let request = Request(method: "GET", path: "/x", query: "ms=10&name=a+b&ms=20")
        #expect(request.queryItems == ["ms": "10", "name": "a b"])
    }
}

@Suite("Router: literal paths by hash")
struct RouterExactTests {
    @Test("literal-only paths are indexed unless a parameterized pattern could match them too")
    func index() {
        let router = makeRouter([
            ("GET", "/items/{id}"),
            ("GET", "/items/new"),      // shadowed: /items/{id} matches it too, and comes first
            ("GET", "/api/v1/auth/verify"),
            ("POST", "/api/v1/keys/verify"),
            ("GET", "/"),
            ("GET", "/things/all"),
            ("DELETE", "/things/{id}"),  // registered later, still takes /things/all out of the index
        ])
        #expect(Set(router.exact.keys) == ["/api/v1/auth/verify", "/api/v1/keys/verify", "/"])
        #expect(found(router.match(method: "GET", path: "/things/all"))?.route == "GET /things/all")
        #expect(found(router.match(method: "DELETE", path: "/things/all"))?.route == "DELETE /things/{id}")
        // Same answers as the scan in registration order.
        #expect(found(router.match(method: "GET", path: "/items/new"))?.route == "GET /items/{id}")
        #expect(found(router.match(method: "GET", path: "/api/v1/auth/verify"))?.route == "GET /api/v1/auth/verify")
        #expect(found(router.match(method: "HEAD", path: "/api/v1/auth/verify"))?.route == "GET /api/v1/auth/verify")
        #expect(allowed(router.match(method: "POST", path: "/api/v1/auth/verify")) == ["GET", "HEAD"])
        #expect(allowed(router.match(method: "GET", path: "/api/v1/keys/verify")) == ["POST"])
        #expect(found(router.match(method: "GET", path: "/"))?.route == "GET /")
        // Spellings the hash does not know still go through the scan.
        #expect(found(router.match(method: "GET", path: "/api/v1/auth/verify/"))?.route == "GET /api/v1/auth/verify")
        #expect(found(router.match(method: "GET", path: "//api/v1/auth/verify"))?.route == "GET /api/v1/auth/verify")
    }
}
