import HTTP
import Keys
import Posix
import Storage

/// `/api/v1/admin/api-keys`: the key administration routes.
enum KeyRoutes {
    static let base = "/api/v1/admin/api-keys"

    static func register(on router: inout Router<AppContext>) {
        router.post(base) { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "keys:write")
            let body = try JSON.decode(CreateKeyBody.self, from: request.body)
            let (record, raw) = try KeyIssuer.create(body, userID: try KeyValidation.userID(body.userId), caller: caller, request: request, context: context)
            return .json(KeyMetadata(record: record, key: raw), status: .created)
        }
        router.get(base) { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "keys:read")
            let page = try Pagination(request)
            let query = request.queryItems
            if let status = query["status"], !["active", "revoked", "expired"].contains(status) {
                throw Problem(.badRequest, detail: "status must be active, revoked or expired.", field: "status")
            }
            if let environment = query["environment"], environment != "live" && environment != "test" {
                throw Problem(.badRequest, detail: "environment must be live or test.", field: "environment")
            }
            if let user = query["user_id"], !isUUID(user) {
                throw Problem(.badRequest, detail: "user_id must be a UUID.", field: "user_id")
            }
            let filter = KeyFilter(status: query["status"], userID: query["user_id"], environment: query["environment"])
            let result = try context.requireKeys().list(filter, limit: page.limit, cursor: page.cursor)
            return .json(ListBody(items: result.items.map { KeyMetadata(record: $0) }, nextCursor: result.nextCursor))
        }
        router.get(base + "/{id}") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "keys:read")
            return .json(KeyMetadata(record: try existing(request, context)))
        }
        let update: Router<AppContext>.Handler = { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "keys:write")
            let target = try existing(request, context)
            let body = try JSON.decode(UpdateKeyBody.self, from: request.body)
            return .json(KeyMetadata(record: try KeyIssuer.update(target, body.changes, caller: caller, request: request, context: context)))
        }
        router.put(base + "/{id}", update)
        router.patch(base + "/{id}", update)
        router.delete(base + "/{id}") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "keys:write")
            let target = try existing(request, context)
            try KeyIssuer.checkNoEscalation(caller: caller, target: target)
            // Checked again under the row lock: an edit may commit in between.
            guard let deleted = try context.requireKeys().delete(id: target.id, by: request.actor(caller),
                                                                  permits: { Scope.canGrant(caller.scopes, $0.scopes) }) else {
                throw Problem.notFound("No such API key.")
            }
            // Its rate-table entry stays: it is its lineage's, which a successor may still use
            // (least recently used entries make room by themselves).
            context.directory?.invalidate(deleted)
            return .noContent
        }
        router.post(base + "/{id}/rotate") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "keys:write")
            let target = try existing(request, context)
            let (new, raw) = try KeyIssuer.rotate(target, body: request.body, caller: caller, request: request, context: context)
            return .json(KeyMetadata(record: new, key: raw), status: .created)
        }
        router.get(base + "/{id}/audit") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "audit:read")
            let target = try existing(request, context)
            let page = try Pagination(request)
            return .json(try UsageQueries.requestLog(keyID: target.id, limit: page.limit, cursor: page.cursor, on: try context.requireDatabase()))
        }
        router.get(base + "/{id}/usage") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "usage:read")
            let target = try existing(request, context)
            let query = request.queryItems
            let now = Clock.wallMicroseconds()
            let to = try query["to"].map { text throws(Problem) -> Int64 in
                guard let value = Timestamp.parseRFC3339(text) else { throw Problem(.badRequest, detail: "to must be RFC 3339.", field: "to") }
                return value
            } ?? now
            let from = try query["from"].map { text throws(Problem) -> Int64 in
                guard let value = Timestamp.parseRFC3339(text) else { throw Problem(.badRequest, detail: "from must be RFC 3339.", field: "from") }
                return value
            } ?? (to - 30 * 86_400_000_000)
            guard from <= to else { throw Problem(.badRequest, detail: "from must not be after to.", field: "from") }
            return .json(try UsageQueries.summary(key: target, from: from, to: to, on: try context.requireDatabase()))
        }
        router.get("/api/v1/admin/audit-log") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "audit:read")
            let page = try Pagination(request)
            let query = request.queryItems
            if let actor = query["actor_key_id"], !isUUID(actor) {
                throw Problem(.badRequest, detail: "actor_key_id must be a UUID.", field: "actor_key_id")
            }
            let result = try Audit.list(on: try context.requireDatabase(), actorKeyID: query["actor_key_id"], action: query["action"],
                                        limit: page.limit, cursor: page.cursor)
            return .json(ListBody(items: result.items.map(AuditBody.init(entry:)), nextCursor: result.nextCursor))
        }
    }

    static func existing(_ request: Request, _ context: AppContext) throws -> KeyRecord {
        guard let key = try context.requireKeys().get(id: try request.parameter("id")) else {
            throw Problem.notFound("No such API key.")
        }
        return key
    }
}

/// Creating, editing and rotating keys, shared by the admin and self-service routes.
enum KeyIssuer {
    /// `POST …/rotate`'s body (which may also be empty).
    struct RotateBody: RequestBody {
        static let fieldNames: Set<String> = ["grace_period_seconds"]
        let gracePeriodSeconds: Int?
    }

    /// `selfService`: made by `caller` for its own user, so bounded by it (`SelfServiceBounds`).
    static func create(_ body: CreateKeyBody, userID: String?, caller: KeyRecord, selfService: Bool = false,
                       request: Request, context: AppContext) throws -> (KeyRecord, String) {
        let scopes = try KeyValidation.scopes(body.scopes ?? [])
        guard Scope.canGrant(caller.scopes, scopes) else {
            throw Problem(.forbidden, detail: "A key cannot create a key with scopes it does not hold itself.")
        }
        var limits = KeyLimits(
            rateLimitPerMinute: try KeyValidation.limit(body.rateLimitPerMinute, "rate_limit_per_minute"),
            rateLimitPerHour: try KeyValidation.limit(body.rateLimitPerHour, "rate_limit_per_hour"),
            burst: try KeyValidation.limit(body.burst, "burst"),
            quotaDaily: try KeyValidation.limit(body.quotaDaily, "quota_daily"),
            quotaMonthly: try KeyValidation.limit(body.quotaMonthly, "quota_monthly"))
        if let userID {
            guard let user = try context.requireUsers().get(id: userID) else {
                throw KeyValidation.invalid("user_id", "names no user")
            }
            let defaults = try context.requireUsers().defaults(tier: user.planTier)
            if selfService {
                limits = try SelfServiceBounds.limits(limits, caller: caller.limits, plan: defaults)
            } else {
                // The user's plan tier fills in every limit the request left out.
                limits.rateLimitPerMinute = limits.rateLimitPerMinute ?? defaults.rateLimitPerMinute
                limits.rateLimitPerHour = limits.rateLimitPerHour ?? defaults.rateLimitPerHour
                limits.burst = limits.burst ?? defaults.burst
                limits.quotaDaily = limits.quotaDaily ?? defaults.quotaDaily
                limits.quotaMonthly = limits.quotaMonthly ?? defaults.quotaMonthly
            }
        }
        var allowedIPs = try KeyValidation.ips(body.allowedIps ?? [])
        var allowedPaths = try KeyValidation.paths(body.allowedPaths ?? [])
        var expiresAt = try KeyValidation.expiry(at: body.expiresAt, inDays: body.expiresInDays)
        if selfService {
            allowedIPs = try SelfServiceBounds.ips(allowedIPs, caller: caller.allowedIPs)
            allowedPaths = try SelfServiceBounds.paths(allowedPaths, caller: caller.allowedPaths)
            expiresAt = try SelfServiceBounds.expiry(expiresAt, caller: caller.expiresAt, field: body.expiresInDays == nil ? "expires_at" : "expires_in_days")
        }
        var environment = try KeyValidation.environment(body.environment)
        if selfService {
            environment = try SelfServiceBounds.environment(body.environment == nil ? nil : environment, caller: caller.environment)
        }
        let raw = try APIKey.generate(prefix: context.configuration.keyPrefix, environment: environment == "test" ? .test : .live)
        let hash = try context.requireHasher().hash(raw)
        let record = try context.requireKeys().create(NewKey(
            hash: hash, keyPrefix: raw.displayPrefix, name: try KeyValidation.name(body.name),
            environment: environment, userID: userID, scopes: scopes,
            allowedPaths: allowedPaths, allowedIPs: allowedIPs, limits: limits, expiresAt: expiresAt,
            // A key made through self-service spends its maker's budget: minting keys must
            // not multiply a user's rate limits and quotas.
            lineageID: selfService ? caller.lineageID : nil
        ), by: request.actor(caller))
        // A new key is never refused for having been tried (and cached as unknown) before.
        context.directory?.invalidate(hash: hash)
        return (record, raw.rawValue)
    }

    static func update(_ target: KeyRecord, _ changes: KeyChanges, caller: KeyRecord, request: Request, context: AppContext) throws -> KeyRecord {
        try checkNoEscalation(caller: caller, target: target)
        var changes = changes
        if let name = changes.name { changes.name = try KeyValidation.name(name) }
        if let scopes = changes.scopes {
            changes.scopes = try KeyValidation.scopes(scopes)
            guard Scope.canGrant(caller.scopes, changes.scopes ?? []) else {
                throw Problem(.forbidden, detail: "A key cannot grant scopes it does not hold itself.")
            }
        }
        if let ips = changes.allowedIPs { changes.allowedIPs = try KeyValidation.ips(ips) }
        if let paths = changes.allowedPaths { changes.allowedPaths = try KeyValidation.paths(paths) }
        if case .some(.some(let v)) = changes.rateLimitPerMinute { _ = try KeyValidation.limit(v, "rate_limit_per_minute") }
        if case .some(.some(let v)) = changes.rateLimitPerHour { _ = try KeyValidation.limit(v, "rate_limit_per_hour") }
        if case .some(.some(let v)) = changes.burst { _ = try KeyValidation.limit(v, "burst") }
        if case .some(.some(let v)) = changes.quotaDaily { _ = try KeyValidation.limit(v, "quota_daily") }
        if case .some(.some(let v)) = changes.quotaMonthly { _ = try KeyValidation.limit(v, "quota_monthly") }
        // As at creation: an expiry is a future moment (revoking is how a key stops now).
        if case .some(.some(let at)) = changes.expiresAt, at <= Clock.wallMicroseconds() {
            throw KeyValidation.invalid("expires_at", "must be in the future")
        }
        guard !changes.isEmpty else {
            throw Problem(.unprocessableContent, detail: "The body changes nothing; give at least one field to change.")
        }
        // The target's scopes are checked again under the row lock (an edit may commit in between).
        guard let updated = try context.requireKeys().update(id: target.id, changes, by: request.actor(caller),
                                                              permits: { Scope.canGrant(caller.scopes, $0.scopes) }) else {
            throw Problem.notFound("No such API key.")
        }
        // Every worker of this host sees the change from the next request on.
        context.directory?.invalidate(updated)
        return updated
    }

    static func rotate(_ target: KeyRecord, body: [UInt8], caller: KeyRecord, request: Request, context: AppContext) throws -> (KeyRecord, String) {
        try checkNoEscalation(caller: caller, target: target)
        let grace = body.isEmpty ? 0 : (try JSON.decode(RotateBody.self, from: body).gracePeriodSeconds ?? 0)
        guard (0...604_800).contains(grace) else {
            throw KeyValidation.invalid("grace_period_seconds", "must be 0 to 604800 (7 days)")
        }
        guard target.status(at: Clock.wallMicroseconds()) == "active" else {
            throw Problem(.conflict, detail: "Only an active key can be rotated.")
        }
        let environment: KeyEnvironment = target.environment == "test" ? .test : .live
        let raw = try APIKey.generate(prefix: context.configuration.keyPrefix, environment: environment)
        // The scopes checked above are checked again under the row lock (an edit may commit in between).
        guard let (old, new) = try context.requireKeys().rotate(id: target.id, newHash: try context.requireHasher().hash(raw),
                                                              newPrefix: raw.displayPrefix, graceSeconds: grace, by: request.actor(caller),
                                                              permits: { Scope.canGrant(caller.scopes, $0.scopes) }) else {
            throw Problem.notFound("No such API key.")
        }
        context.directory?.invalidate(old, new)
        return (new, raw.rawValue)
    }

    /// A key may only manage keys whose scopes it holds itself.
    static func checkNoEscalation(caller: KeyRecord, target: KeyRecord) throws(Problem) {
        guard Scope.canGrant(caller.scopes, target.scopes) else {
            throw Problem(.forbidden, detail: "A key cannot manage a key with scopes it does not hold itself.")
        }
    }
}
