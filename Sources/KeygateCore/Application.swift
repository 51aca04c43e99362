import HTTP
import Keys
import Postgres
import SharedMemory
import Storage

/// What every handler can reach: settings, the scoreboard, this worker's database
/// connection, the router's route table. One per worker process.
public final class AppContext: @unchecked Sendable {
    public let configuration: Configuration
    public let logger: Logger
    public let pool: PoolView
    /// This worker's connection (lazy, reconnecting); nil where no database is configured (unit tests).
    public let database: PostgresConnection?
    /// The newest migration this binary ships: /readyz fails while the schema is behind it.
    public let requiredSchemaVersion: Int
    /// HMAC-SHA-256 under the pepper; nil where none is configured (unit tests).
    public let hasher: KeyHasher?
    /// The key and user tables: PostgreSQL in the server, memory in the router's tests.
    public let keys: (any KeyStoring)?
    public let users: (any UserStoring)?
    /// The checked-in OpenAPI document, read once by the master; nil when unreadable.
    public let openAPIDocument: [UInt8]?
    /// Route names by index, for metrics ("GET /healthz").
    public internal(set) var routeNames: [String] = []
    /// This host's shared segments (nil in unit tests without them).
    public let host: HostState?
    /// Keys by hash: the shared cache, then the database.
    let directory: KeyDirectory?
    var rates: RateTable? { host?.rates }
    /// The request being answered (this process serves one at a time).
    let current = RequestState()

    public init(configuration: Configuration, logger: Logger, pool: PoolView,
                database: PostgresConnection? = nil, requiredSchemaVersion: Int = 0, hasher: KeyHasher? = nil,
                openAPIDocument: [UInt8]? = nil, host: HostState? = nil, keyCache: KeyCache? = nil,
                keys: (any KeyStoring)? = nil, users: (any UserStoring)? = nil) {
        self.host = host
        self.openAPIDocument = openAPIDocument
        self.configuration = configuration
        self.logger = logger
        self.pool = pool
        self.database = database
        self.requiredSchemaVersion = requiredSchemaVersion
        self.hasher = hasher
        self.keys = keys ?? database.map(KeyStore.init(connection:))
        self.users = users ?? database.map(UserStore.init(connection:))
        let cache = host?.keyCache ?? keyCache
        directory = self.keys == nil && cache == nil ? nil : KeyDirectory(cache: cache, keys: self.keys, configuration: configuration)
    }

    func requireDirectory() throws(Problem) -> KeyDirectory {
        guard let directory else { throw Problem.unavailable("No database is configured.") }
        return directory
    }

    func requireHasher() throws(Problem) -> KeyHasher {
        guard let hasher else { throw Problem.unavailable("Key verification is not configured.") }
        return hasher
    }

    func requireKeys() throws(Problem) -> any KeyStoring {
        guard let keys else { throw Problem.unavailable("No database is configured.") }
        return keys
    }

    func requireUsers() throws(Problem) -> any UserStoring {
        guard let users else { throw Problem.unavailable("No database is configured.") }
        return users
    }

    /// The database connection, or 503 when this process has none.
    public func requireDatabase() throws(Problem) -> PostgresConnection {
        guard let database else { throw Problem.unavailable("No database is configured.") }
        return database
    }
}

/// The HTTP application: HTTPS check, routing, error rendering. Shared by the worker
/// loop and the tests. (`Cache-Control: no-store` is added by the response encoder.)
public struct Application: Sendable {
    public let router: Router<AppContext>
    public let context: AppContext

    public init(context: AppContext) {
        var router = Router<AppContext>()
        OperationsRoutes.register(on: &router)
        KeyRoutes.register(on: &router)
        UserRoutes.register(on: &router)
        SelfServiceRoutes.register(on: &router)
        SymbolRoutes.register(on: &router)
        VerifyRoutes.register(on: &router)
        if context.configuration.debugRoutes { DebugRoutes.register(on: &router) }
        context.routeNames = router.routes.map { "\($0.method) \($0.pattern)" }
        self.router = router
        self.context = context
    }

    /// Answers one request; also returns the matched route's index for metrics.
    public func respond(to request: Request) -> (response: Response, routeIndex: Int?) {
        var routeIndex: Int?
        var response: Response
        context.current.reset()
        do {
            // Defence in depth: nginx already refuses plain HTTP for the API.
            guard request.isHTTPS else {
                throw Problem(.forbidden, title: "HTTPS Required", detail: "This API is served over HTTPS only.")
            }
            switch router.match(method: request.method, path: request.path) {
            case .notFound:
                throw Problem.notFound()
            case .methodNotAllowed(let allowed):
                throw Problem.methodNotAllowed(allowed: allowed)
            case .found(let route, let parameters):
                routeIndex = route.index
                if parameters.isEmpty {
                    response = try route.handler(request, context)
                } else {
                    // A copy only where there is something to add (a struct of a dozen references).
                    var routed = request
                    routed.pathParameters = parameters
                    response = try route.handler(routed, context)
                }
            }
        } catch let error as PostgresError {
            response = ProblemRenderer.response(for: DatabaseProblem.from(error, logger: context.logger, requestID: request.requestID),
                                                requestID: request.requestID)
        } catch StoreError.database(let error) {
            response = ProblemRenderer.response(for: DatabaseProblem.from(error, logger: context.logger, requestID: request.requestID),
                                                requestID: request.requestID)
        } catch StoreError.conflict(let detail) {
            response = ProblemRenderer.response(for: Problem(.conflict, detail: detail), requestID: request.requestID)
        } catch StoreError.forbidden(let detail) {
            response = ProblemRenderer.response(for: Problem(.forbidden, detail: detail), requestID: request.requestID)
        } catch StoreError.invalidCursor {
            response = ProblemRenderer.response(for: Problem(.badRequest, detail: "The cursor is not valid; use next_cursor from a previous page.", field: "cursor"),
                                                requestID: request.requestID)
        } catch {
            if !(error is any HTTPError) {
                context.logger.error("unhandled error", [("request_id", request.requestID), ("error", String(describing: error))])
            }
            response = ProblemRenderer.response(for: error, requestID: request.requestID)
        }
        // Limited keys see where they stand on every response, refused or not.
        if let decision = context.current.rate {
            RequestState.addRateHeaders(decision, to: &response.headers)
        }
        return (response, routeIndex)
    }
}
