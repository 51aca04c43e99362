import HTTP
import Posix
import Storage

/// `/api/v1/auth`: a key managing itself and its user's keys (scope `self` or `admin`).
enum SelfServiceRoutes {
    struct OwnKey: JSONFields {
        let metadata: KeyMetadata
        let quota: UsageSummary.Quota

        var jsonFields: [JSONField] { metadata.jsonFields + [JSONField("quota", .object(quota.jsonFields))] }
    }

    static func register(on router: inout Router<AppContext>) {
        router.get("/api/v1/auth/key") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "self")
            return .json(OwnKey(metadata: KeyMetadata(record: caller), quota: try UsageQueries.quota(key: caller, context: context)))
        }
        router.post("/api/v1/auth/keys") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "self")
            guard let userID = caller.userID else {
                throw Problem(.forbidden, detail: "This key belongs to no user, so it cannot create keys for its user.")
            }
            let body = try JSON.decode(CreateKeyBody.self, from: request.body)
            if let asked = body.userId, asked.lowercased() != userID {
                throw Problem(.forbidden, detail: "Self-service creates keys for the caller's own user only.")
            }
            let (record, raw) = try KeyIssuer.create(body, userID: userID, caller: caller, selfService: true, request: request, context: context)
            return .json(KeyMetadata(record: record, key: raw), status: .created)
        }
        router.get("/api/v1/auth/keys") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "self")
            let page = try Pagination(request)
            guard let userID = caller.userID else {
                return .json(ListBody(items: [KeyMetadata(record: caller)], nextCursor: nil))
            }
            let result = try context.requireKeys().list(KeyFilter(userID: userID), limit: page.limit, cursor: page.cursor)
            return .json(ListBody(items: result.items.map { KeyMetadata(record: $0) }, nextCursor: result.nextCursor))
        }
        router.delete("/api/v1/auth/keys/{id}") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "self")
            let target = try ownKey(request, caller, context)
            var changes = KeyChanges()
            changes.active = false
            _ = try KeyIssuer.update(target, changes, caller: caller, request: request, context: context)
            return .noContent
        }
        router.post("/api/v1/auth/keys/{id}/rotate") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "self")
            let target = try ownKey(request, caller, context)
            try SelfServiceBounds.mayRotate(target, by: caller)
            let (new, raw) = try KeyIssuer.rotate(target, body: request.body, caller: caller, request: request, context: context)
            return .json(KeyMetadata(record: new, key: raw), status: .created)
        }
    }

    /// One of the caller's user's keys (or the caller itself); anything else is 404, so
    /// other users' key ids are not revealed.
    static func ownKey(_ request: Request, _ caller: KeyRecord, _ context: AppContext) throws -> KeyRecord {
        let id = try request.parameter("id")
        guard let key = try context.requireKeys().get(id: id),
              key.id == caller.id || (caller.userID != nil && key.userID == caller.userID) else {
            throw Problem.notFound("No such API key.")
        }
        return key
    }
}
