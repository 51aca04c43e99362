import Foundation
import Testing
import HTTP
import SharedMemory
@testable import KeygateCore

private func makeApplication(debugRoutes: Bool = false, scoreboard: Scoreboard? = nil) -> Application {
    var configuration = Configuration()
    configuration.debugRoutes = debugRoutes
    let context = AppContext(configuration: configuration, logger: Logger(level: .error, component: "test"),
                             pool: PoolView(scoreboard: scoreboard))
    return Application(context: context)
}

private func request(_ method: String, _ target: String, https: Bool = true, id: String = "req-test-1") -> Request {
    let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    return Request(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "",
                   remoteAddress: "127.0.0.1", isHTTPS: https, requestID: id)
}

private struct ProblemJSON: Decodable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let field: String?
    let request_id: String
}

private func problem(_ response: Response) throws -> ProblemJSON {
    #expect(response.headers["Content-Type"] == "application/problem+json")
    return try JSONDecoder().decode(ProblemJSON.self, from: Data(response.body))
}

private func json(_ response: Response) throws -> [String: String] {
    try JSONDecoder().decode([String: String].self, from: Data(response.body))
}

@Suite("Application.respond")
struct ApplicationTests {
    let app = makeApplication()

    @Test("plain HTTP is refused with 403 before routing")
    func httpsRequired() throws {
        for target in ["/healthz", "/nope"] {
            let (response, routeIndex) = app.respond(to: request("GET", target, https: false, id: "abc"))
            #expect(response.status == .forbidden)
            #expect(routeIndex == nil)
            let body = try problem(response)
            #expect(body.status == 403)
            #expect(body.title == "HTTPS Required")
            #expect(body.request_id == "abc")
        }
    }

    @Test("GET /healthz is 200 JSON with status ok")
    func healthz() throws {
        let (response, routeIndex) = app.respond(to: request("GET", "/healthz"))
        #expect(response.status == .ok)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(try json(response) == ["status": "ok"])
        let index = try #require(routeIndex)
        #expect(app.context.routeNames[index] == "GET /healthz")
    }

    @Test("HEAD /healthz answers like GET, on the same route")
    func headHealthz() throws {
        let get = app.respond(to: request("GET", "/healthz"))
        let head = app.respond(to: request("HEAD", "/healthz"))
        #expect(head.response.status == .ok)
        #expect(head.routeIndex == get.routeIndex)
        #expect(head.response.body == get.response.body, "the encoder, not the app, drops HEAD bodies")
    }

    @Test("an unknown path is a 404 problem carrying the request id")
    func notFound() throws {
        let (response, routeIndex) = app.respond(to: request("GET", "/api/v1/nothing", id: "rid-404"))
        #expect(response.status == .notFound)
        #expect(routeIndex == nil)
        let body = try problem(response)
        #expect(body.status == 404)
        #expect(body.request_id == "rid-404")
        #expect(body.type == "https://keygate.dev/problems/not-found")
    }

    @Test("POST /healthz is 405 with Allow: GET, HEAD")
    func methodNotAllowed() throws {
        let (response, routeIndex) = app.respond(to: request("POST", "/healthz"))
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD")
        #expect(routeIndex == nil)
        #expect(try problem(response).status == 405)
    }

    @Test("no route sets its own Cache-Control (the encoder's no-store applies)", arguments: [
        ("GET", "/healthz", true), ("GET", "/nope", true), ("DELETE", "/healthz", true),
        ("GET", "/healthz", false), ("GET", "/readyz", true), ("GET", "/metrics", true), ("GET", "/status", true),
    ])
    func noStore(method: String, path: String, https: Bool) {
        let (response, _) = app.respond(to: request(method, path, https: https))
        #expect(response.headers["Cache-Control"] == nil)
    }

    @Test("without a pool, /readyz and /status are 503 with Retry-After")
    func noPool() throws {
        for path in ["/readyz", "/status"] {
            let (response, routeIndex) = app.respond(to: request("GET", path))
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers["Retry-After"] == "5")
            #expect(routeIndex != nil)
            #expect(try problem(response).status == 503)
        }
    }

    @Test("without a pool, /metrics is empty Prometheus text")
    func metricsWithoutPool() {
        let (response, _) = app.respond(to: request("GET", "/metrics"))
        #expect(response.status == .ok)
        #expect(response.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(response.body.isEmpty)
    }

    @Test("the route table without debug routes: operations first, every SPEC key route, no debug route")
    func routeNames() {
        let names = app.context.routeNames
        #expect(Array(names.prefix(4)) == ["GET /healthz", "GET /readyz", "GET /metrics", "GET /status"])
        for route in ["POST /api/v1/admin/api-keys", "PATCH /api/v1/admin/api-keys/{id}", "POST /api/v1/admin/api-keys/{id}/rotate",
                      "GET /api/v1/admin/audit-log", "POST /api/v1/admin/users", "GET /api/v1/auth/key", "DELETE /api/v1/auth/keys/{id}"] {
            #expect(names.contains(route), "missing \(route)")
        }
        #expect(Set(names).count == names.count)
        #expect(!names.contains { $0.contains("/debug/") })
        #expect(app.router.routes.count == names.count)
    }

    @Test("protected routes answer 401 without a key, before touching any store")
    func unauthenticated() throws {
        for (method, path) in [("GET", "/api/v1/admin/api-keys"), ("POST", "/api/v1/admin/users"), ("GET", "/api/v1/auth/key")] {
            let (response, _) = app.respond(to: request(method, path))
            #expect(response.status == .unauthorized)
            #expect(response.headers["WWW-Authenticate"] == #"Bearer realm="keygate""#)
        }
    }

    @Test("/debug/sleep does not exist when debug routes are off")
    func debugSleepOff() throws {
        let (response, routeIndex) = app.respond(to: request("GET", "/debug/sleep?ms=0"))
        #expect(response.status == .notFound)
        #expect(routeIndex == nil)
        #expect(!app.context.routeNames.contains("GET /debug/sleep"))
    }

    @Test("/debug/sleep exists when debug routes are on and sleeps for ms")
    func debugSleepOn() throws {
        let debug = makeApplication(debugRoutes: true)
        #expect(debug.context.routeNames.suffix(2) == ["GET /debug/sleep", "GET /debug/hold-key-cache-lock"])
        let start = ContinuousClock.now
        let (response, routeIndex) = debug.respond(to: request("GET", "/debug/sleep?ms=30"))
        let elapsed = ContinuousClock.now - start
        #expect(response.status == .ok)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"slept_ms":30}"#)
        #expect(elapsed >= .milliseconds(30))
        let index = try #require(routeIndex)
        #expect(debug.context.routeNames[index] == "GET /debug/sleep")
    }

    @Test("/debug/sleep validates ms", arguments: ["", "?ms=", "?ms=abc", "?ms=-1", "?ms=600001", "?ms=1.5"])
    func debugSleepBadMs(query: String) throws {
        let debug = makeApplication(debugRoutes: true)
        let (response, routeIndex) = debug.respond(to: request("GET", "/debug/sleep" + query))
        #expect(response.status == .unprocessableContent)
        #expect(routeIndex != nil, "the route matched; the handler refused")
        let body = try problem(response)
        #expect(body.field == "ms")
    }

    @Test("POST /debug/sleep is 405 when debug routes are on")
    func debugSleepPost() {
        let debug = makeApplication(debugRoutes: true)
        let (response, _) = debug.respond(to: request("POST", "/debug/sleep"))
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD")
    }
}

@Suite("Application with a scoreboard")
struct ApplicationPoolTests {
    private func makeBoard() throws -> Scoreboard {
        let region = try SharedRegion.anonymous(size: Scoreboard.byteCount(slotCapacity: 4, routeCapacity: 8))
        return Scoreboard.create(in: region, slotCapacity: 4, routeCapacity: 8)
    }

    @Test("/readyz is 503 with Retry-After when the pool runs but no database is configured")
    func notReadyWithoutDatabase() throws {
        let app = makeApplication(scoreboard: try makeBoard())
        let (response, _) = app.respond(to: request("GET", "/readyz"))
        #expect(response.status == .serviceUnavailable)
        #expect(response.headers["Retry-After"] != nil)
    }

    @Test("/metrics names routes and unmatched requests from the scoreboard")
    func metrics() throws {
        let board = try makeBoard()
        let app = makeApplication(scoreboard: board)
        board.claim(0, generation: 1); board.setPID(0, 123)
        let (healthz, healthzIndex) = app.respond(to: request("GET", "/healthz"))
        board.endRequest(0, routeIndex: healthzIndex, status: healthz.status.code)
        board.endRequest(0, routeIndex: healthzIndex, status: healthz.status.code)
        let (missing, missingIndex) = app.respond(to: request("GET", "/missing"))
        board.endRequest(0, routeIndex: missingIndex, status: missing.status.code)
        board.countRecycle()

        let (response, _) = app.respond(to: request("GET", "/metrics"))
        let text = String(decoding: response.body, as: UTF8.self)
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"keygate_requests_total{route="GET /healthz",status="200"} 2"#))
        #expect(lines.contains(#"keygate_requests_total{route="unmatched",status="404"} 1"#))
        #expect(lines.contains(#"keygate_worker_restarts_total{reason="recycle"} 1"#))
        #expect(lines.contains(#"keygate_workers{state="idle"} 1"#))
        #expect(lines.contains(#"keygate_workers{state="starting"} 0"#))
        #expect(lines.contains("# TYPE keygate_requests_total counter"))
    }

    @Test("/status reports the pool's workers")
    func status() throws {
        let board = try makeBoard()
        board.claim(2, generation: 3); board.setPID(2, 4321)
        board.setState(2, .idle)
        let app = makeApplication(scoreboard: board)
        let (response, _) = app.respond(to: request("GET", "/status"))
        #expect(response.status == .ok)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let report = try decoder.decode(PoolReport.self, from: Data(response.body))
        #expect(report.workers.count == 1)
        #expect(report.workers.first?.pid == 4321)
        #expect(report.workers.first?.state == "idle")
        #expect(report.workers.first?.slot == 2)
        #expect(report.workers.first?.currentRequestMs == nil)
        #expect(report.masterPid == board.masterPID)
    }
}

@Suite("Verify route for auth_request")
struct VerifyRouteTests {
    private func subrequest(scope: String?) -> Request {
        var r = request("GET", "/api/v1/auth/verify")
        r.headers.add("X-API-Key", "mdw_live_whatever")
        r.originalURI = "/market-data/quotes"
        r.originalMethod = "GET"
        r.requiredScope = scope
        return r
    }

    @Test("a protected location that names no scope gets 500, never a pass for every key")
    func scopeRequired() {
        let app = makeApplication()
        #expect(app.respond(to: subrequest(scope: nil)).response.status == .internalServerError)
        #expect(app.respond(to: subrequest(scope: "root")).response.status == .internalServerError)
        // A location that forgot `set $keygate_original_uri` (sent empty → nil) is refused too.
        var noURI = subrequest(scope: "symbols:read")
        noURI.originalURI = nil
        #expect(app.respond(to: noURI).response.status == .internalServerError)
        // A named scope, or `none`, goes on to the key check (401 here: the key is malformed).
        #expect(app.respond(to: subrequest(scope: "symbols:read")).response.status == .unauthorized)
        #expect(app.respond(to: subrequest(scope: "none")).response.status == .unauthorized)
        // Called directly (no KEYGATE_* params), no scope is asked for.
        var direct = request("GET", "/api/v1/auth/verify")
        direct.headers.add("X-API-Key", "mdw_live_whatever")
        #expect(app.respond(to: direct).response.status == .unauthorized)
    }
}
