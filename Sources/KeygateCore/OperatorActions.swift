import HTTP
import Keys
import Posix
import Postgres
import SharedMemory
import Storage

/// What the operator CLI (`keygate keys …`, `keygate users …`) does, with the same
/// validation and JSON shapes as the HTTP API. Straight to PostgreSQL; the audit rows
/// name no actor key (an operator on the host).
public final class OperatorActions {
    let configuration: Configuration
    let keys: KeyStore
    let users: UserStore
    let database: PostgresConnection

    public init(configuration: Configuration) throws {
        self.configuration = configuration
        database = PostgresConnection(connectionString: try configuration.connectionString(direct: true))
        keys = KeyStore(connection: database)
        users = UserStore(connection: database)
    }

    public struct KeyOptions {
        public var name: String
        public var userID: String?
        public var environment: String?
        public var scopes: [String]
        public var expiresInDays: Int?
        public var rateLimitPerMinute: Int?
        public var rateLimitPerHour: Int?
        public var burst: Int?
        public var quotaDaily: Int?
        public var quotaMonthly: Int?
        public var allowedIPs: [String]
        public var allowedPaths: [String]

        public init(name: String, userID: String?, environment: String?, scopes: [String], expiresInDays: Int?,
                    rateLimitPerMinute: Int?, rateLimitPerHour: Int?, burst: Int?, quotaDaily: Int?, quotaMonthly: Int?,
                    allowedIPs: [String], allowedPaths: [String]) {
            self.name = name
            self.userID = userID
            self.environment = environment
            self.scopes = scopes
            self.expiresInDays = expiresInDays
            self.rateLimitPerMinute = rateLimitPerMinute
            self.rateLimitPerHour = rateLimitPerHour
            self.burst = burst
            self.quotaDaily = quotaDaily
            self.quotaMonthly = quotaMonthly
            self.allowedIPs = allowedIPs
            self.allowedPaths = allowedPaths
        }
    }

    /// A key as the API shows it, plus the table row the CLI prints.
    public struct KeyView: OperatorView {
        public let json: [UInt8]
        public let row: [String]
        public let rawKey: String?
        public static let header = ["ID", "NAME", "PREFIX", "ENV", "STATUS", "SCOPES", "EXPIRES", "LAST USED"]
    }

    public struct UserView: OperatorView {
        public let json: [UInt8]
        public let row: [String]
        public static let header = ["ID", "EMAIL", "PLAN", "EXTERNAL ID", "CREATED"]
    }

    // MARK: Keys

    public func createKey(_ options: KeyOptions) throws -> KeyView {
        let body = CreateKeyBody(name: options.name, userId: options.userID, environment: options.environment, scopes: options.scopes,
                                 expiresAt: nil, expiresInDays: options.expiresInDays, rateLimitPerMinute: options.rateLimitPerMinute,
                                 rateLimitPerHour: options.rateLimitPerHour, burst: options.burst, quotaDaily: options.quotaDaily,
                                 quotaMonthly: options.quotaMonthly, allowedIps: options.allowedIPs, allowedPaths: options.allowedPaths)
        let (record, raw) = try KeyIssuer.create(body, userID: try KeyValidation.userID(options.userID), caller: operatorKey,
                                                 request: operatorRequest, context: try context())
        return view(record, raw: raw)
    }

    public func listKeys(status: String?, userID: String?, environment: String?, limit: Int, cursor: String?) throws -> OperatorPage<KeyView> {
        // As the HTTP filter: a clear refusal, not the database's cast error.
        if let userID, !isUUID(userID) { throw Problem(.badRequest, detail: "user_id must be a UUID.", field: "user_id") }
        let page = try keys.list(KeyFilter(status: status, userID: userID, environment: environment), limit: limit, cursor: cursor)
        return OperatorPage(items: page.items.map { view($0) }, nextCursor: page.nextCursor)
    }

    public func showKey(_ id: String) throws -> KeyView {
        view(try existingKey(id))
    }

    public func setActive(_ id: String, _ active: Bool) throws -> KeyView {
        var changes = KeyChanges()
        changes.active = active
        return view(try KeyIssuer.update(try existingKey(id), changes, caller: operatorKey, request: operatorRequest,
                                         context: try context(hashing: false)))
    }

    public func rotateKey(_ id: String, graceSeconds: Int) throws -> KeyView {
        let body = Array("{\"grace_period_seconds\":\(graceSeconds)}".utf8)
        let (record, raw) = try KeyIssuer.rotate(try existingKey(id), body: body, caller: operatorKey, request: operatorRequest, context: try context())
        return view(record, raw: raw)
    }

    /// The key as it was when deleted.
    @discardableResult
    public func deleteKey(_ id: String) throws -> KeyView {
        guard let deleted = try keys.delete(id: try existingKey(id).id, by: .operatorOnHost) else { throw Problem.notFound("No such API key.") }
        // Committed: nothing after this may report failure (the NOTIFY reaches the pools anyway).
        (try? context(hashing: false))?.directory?.invalidate(deleted)
        return view(deleted)
    }

    // MARK: Users

    public func createUser(email: String, planTier: String?, externalID: String?) throws -> UserView {
        view(try users.create(email: try UserRoutes.email(email), planTier: try UserRoutes.tier(planTier ?? "free"),
                              externalID: try externalID.map(UserRoutes.externalID), by: .operatorOnHost))
    }

    public func listUsers(limit: Int, cursor: String?) throws -> OperatorPage<UserView> {
        let page = try users.list(limit: limit, cursor: cursor)
        return OperatorPage(items: page.items.map(view), nextCursor: page.nextCursor)
    }

    public func showUser(_ id: String) throws -> UserView {
        guard let user = try users.get(id: id) else { throw Problem.notFound("No such user.") }
        return view(user)
    }

    public func updateUser(_ id: String, email: String?, planTier: String?, externalID: String?) throws -> UserView {
        guard email != nil || planTier != nil || externalID != nil else {
            throw Problem(.unprocessableContent, detail: "Nothing to change: give --email, --plan-tier or --external-id.")
        }
        guard let user = try users.update(id: id, email: try email.map(UserRoutes.email), planTier: try planTier.map(UserRoutes.tier),
                                          externalID: try externalID.map { .some(try UserRoutes.externalID($0)) }, by: .operatorOnHost) else {
            throw Problem.notFound("No such user.")
        }
        return view(user)
    }

    // MARK: Helpers

    /// The operator acts with every scope; the audit rows carry no actor key.
    private var operatorKey: KeyRecord {
        KeyRecord(id: "", name: "operator", keyPrefix: "", environment: "live", userID: nil, scopes: ["admin"], allowedPaths: [],
                  allowedIPs: [], limits: KeyLimits(), active: true, createdAt: 0, updatedAt: 0, expiresAt: nil, lastUsedAt: nil,
                  lastUsedEndpoint: nil, requestCount: 0, revokedAt: nil, rotatedFrom: nil)
    }

    private var operatorRequest: Request { Request(method: "CLI", path: "/", requestID: "") }

    /// `hashing`: whether the action makes a key (create, rotate) and so needs the pepper;
    /// revoking, restoring and deleting do not, so an operator who cannot read it still can.
    private func context(hashing: Bool = true) throws -> AppContext {
        let hasher = hashing ? try KeyHasher(pepper: try KeyHasher.pepper(fromFile: configuration.pepperFile)) : nil
        // The local pool's cache, when this user may write it: the change then applies on
        // this host before the command returns (other hosts, and this one otherwise, learn
        // of it through the database's NOTIFY within moments).
        return AppContext(configuration: configuration, logger: Logger(level: .error, component: "cli"), pool: PoolView(scoreboard: nil),
                          database: database, hasher: hasher, keyCache: HostState.attachKeyCache(configuration))
    }

    private func existingKey(_ id: String) throws -> KeyRecord {
        guard let key = try keys.get(id: id) else { throw Problem.notFound("No such API key.") }
        return key
    }

    private func view(_ record: KeyRecord, raw: String? = nil) -> KeyView {
        KeyView(json: JSON.encode(KeyMetadata(record: record, key: raw)),
                row: [record.id, record.name, record.keyPrefix, record.environment, record.status(at: Clock.wallMicroseconds()),
                      record.scopes.joined(separator: ","), record.expiresAt.map(time) ?? "-", record.lastUsedAt.map(time) ?? "-"],
                rawKey: raw)
    }

    private func view(_ user: UserRecord) -> UserView {
        UserView(json: JSON.encode(UserBody(record: user)),
                 row: [user.id, user.email, user.planTier, user.externalID ?? "-", time(user.createdAt)])
    }
}

extension OperatorActions {
    /// A one-line message for the CLI: the problem's detail, or the error's description.
    public static func message(for error: any Error) -> String {
        if let problem = error as? Problem { return "\(problem.status.code): \(problem.detail)" }
        if let problem = error as? any HTTPError { return "\(problem.status.code): \(problem.detail)" }
        if case StoreError.conflict(let detail) = error { return "409: \(detail)" }
        if case StoreError.forbidden(let detail) = error { return "403: \(detail)" }
        var database: PostgresError?
        if case StoreError.database(let underlying) = error { database = underlying }
        if let direct = error as? PostgresError { database = direct }
        if let database {
            // The API's meaning first (409, 422, 503 …); operators also get the server's words.
            let mapped = DatabaseProblem.from(database, logger: Logger(level: .error, component: "cli"), requestID: "")
            if let problem = mapped as? Problem { return "\(problem.status.code): \(problem.detail) (\(database.message))" }
            return database.description
        }
        return String(describing: error)
    }
}

extension OperatorActions {
    public struct SymbolView: OperatorView {
        public let json: [UInt8]
        public let row: [String]
        public static let header = ["ID", "SYMBOL", "CLASS", "ACTIVE", "BACKFILL", "LAST BACKFILL", "ADDED"]
    }

    private var symbols: SymbolStore { SymbolStore(connection: database) }

    private func view(_ record: SymbolRecord) -> SymbolView {
        SymbolView(json: JSON.encode(SymbolBody(record: record)),
                   row: [String(record.id), record.symbol, record.assetClass, String(record.active), record.backfillStatus,
                         record.lastBackfill.map(time) ?? "-", time(record.dateAdded)])
    }

    /// Adds (or reactivates) a symbol; the Bool says whether it was reactivated.
    public func addSymbol(_ raw: String, assetClass: String) throws -> (SymbolView, reactivated: Bool) {
        let assetClass = try SymbolValidation.assetClass(assetClass)
        let symbol = try SymbolValidation.canonical(raw, assetClass: assetClass)
        switch try symbols.add(symbol, assetClass: assetClass, by: .operatorOnHost) {
        case .added(let record): return (view(record), false)
        case .reactivated(let record): return (view(record), true)
        case .alreadyActive: throw Problem(.conflict, detail: "\(symbol) is already tracked.")
        }
    }

    public func listSymbols(active: Bool?, assetClass: String?, backfillStatus: String?, limit: Int, cursor: String?) throws -> OperatorPage<SymbolView> {
        let page = try symbols.list(SymbolFilter(active: active, assetClass: assetClass?.lowercased(), backfillStatus: backfillStatus),
                                    limit: limit, cursor: cursor)
        return OperatorPage(items: page.items.map(view), nextCursor: page.nextCursor)
    }

    public func showSymbol(_ raw: String) throws -> SymbolView {
        view(try existingSymbol(raw))
    }

    public func removeSymbol(_ raw: String) throws -> SymbolView {
        let current = try existingSymbol(raw)
        guard current.active else { return view(current) }
        var changes = SymbolChanges()
        changes.active = false
        guard let updated = try symbols.update(current.symbol, changes, by: .operatorOnHost, transition: { _, _ in nil }).0 else {
            throw Problem.notFound("No such symbol.")
        }
        return view(updated)
    }

    private func existingSymbol(_ raw: String) throws -> SymbolRecord {
        try SymbolRoutes.lookup(raw, in: symbols)
    }
}

/// Something the CLI prints: its API JSON (`--json`) or a table row under `header`.
public protocol OperatorView {
    var json: [UInt8] { get }
    var row: [String] { get }
    static var header: [String] { get }
}

/// One page of a list, paged as the HTTP API pages: `nextCursor` fetches the next.
public struct OperatorPage<View: OperatorView> {
    public let items: [View]
    public let nextCursor: String?
}
