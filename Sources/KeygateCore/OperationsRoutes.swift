#if canImport(Glibc)
import Glibc
#endif
import HTTP
import Keys
import Posix
import Storage

struct Readiness: Encodable {
    let status: String
    let schemaVersion: Int
}

/// `/healthz`, `/readyz`, `/metrics`, `/status`: for load balancers, Prometheus and
/// operators. nginx restricts `/metrics` and `/status` to local addresses.
enum OperationsRoutes {
    static func register(on router: inout Router<AppContext>) {
        // Load balancers poll this: answer from constant bytes.
        let healthy = Response.json(["status": "ok"])
        router.get("/healthz") { _, _ in healthy }
        // Ready: the pool runs, the database answers, and its schema is the one this binary needs.
        router.get("/readyz") { _, context in
            guard context.pool.scoreboard != nil else {
                throw Problem.unavailable("The worker pool is not running.")
            }
            let database = try context.requireDatabase()
            let current = try MigrationRunner(connection: database, migrations: []).currentVersion()
            guard current >= context.requiredSchemaVersion else {
                throw Problem.unavailable(
                    "The database schema is at version \(current); this keygate needs \(context.requiredSchemaVersion). Run 'keygate migrate up'.",
                    retryAfterSeconds: 30)
            }
            return .json(Readiness(status: "ready", schemaVersion: current))
        }
        router.get("/metrics") { _, context in
            .text(MetricsRenderer.render(context: context), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/status") { _, context in
            guard let report = context.pool.report() else {
                throw Problem.unavailable("The worker pool is not running.")
            }
            return .json(report)
        }
        // The checked-in OpenAPI document (docs/openapi.json), as read at start.
        router.get("/api/v1/openapi.json") { _, context in
            guard let document = context.openAPIDocument else {
                throw Problem.unavailable("The OpenAPI document is not installed (openapi_file).", retryAfterSeconds: 3600)
            }
            return Response(headers: HTTPHeaders("Content-Type", "application/json"), body: document)
        }
    }
}

/// `/debug/sleep?ms=N`: holds a worker busy, so tests can stop, reload and time out a
/// pool with a request in flight. Registered only with `debug_routes = on`.
enum DebugRoutes {
    static func register(on router: inout Router<AppContext>) {
        router.get("/debug/sleep") { request, _ in
            guard let text = request.queryItems["ms"], let milliseconds = Int(text), (0...600_000).contains(milliseconds) else {
                throw Problem(.unprocessableContent, detail: "Query parameter 'ms' must be an integer from 0 to 600000.", field: "ms")
            }
            var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 { request = remaining }
            return .json(["slept_ms": milliseconds])
        }
        // Takes the key cache's lock, marks the presented key's entry half-written, and
        // never lets go: the test suite kills this worker with SIGKILL to prove that a
        // worker dying inside the cache's critical section neither wedges nor corrupts it.
        router.get("/debug/hold-key-cache-lock") { request, context in
            guard let cache = context.host?.keyCache, let text = Authenticator.presentedKey(request, allowQuery: false),
                  let key = try? APIKey.parse(text, expectedPrefix: context.configuration.keyPrefix) else {
                throw Problem(.unprocessableContent, detail: "Needs the key cache and a well-formed key in X-API-Key.")
            }
            let hash = try context.requireHasher().hash(key)
            cache.simulateWriterDyingMidUpdate(hash, now: Posix.Clock.monotonicMicroseconds()) {
                while true { sleep(60) }
            }
        }
    }
}
