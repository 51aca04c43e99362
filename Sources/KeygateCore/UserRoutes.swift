import HTTP
import Storage

/// `/api/v1/admin/users`: users and their plan tiers.
enum UserRoutes {
    static let base = "/api/v1/admin/users"
    static let tiers = ["free", "pro", "enterprise"]

    struct CreateBody: RequestBody {
        static let fieldNames: Set<String> = ["email", "plan_tier", "external_id"]
        let email: String
        let planTier: String?
        let externalId: String?
    }

    struct UpdateBody: RequestBody {
        static let fieldNames: Set<String> = ["email", "plan_tier", "external_id"]
        var email: String?
        var planTier: String?
        var externalId: String??

        enum CodingKeys: String, CodingKey { case email, planTier, externalId }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            email = try c.decodeNonNullIfPresent(String.self, forKey: .email)
            planTier = try c.decodeNonNullIfPresent(String.self, forKey: .planTier)
            if c.contains(.externalId) {
                externalId = .some(try c.decodeNil(forKey: .externalId) ? nil : c.decode(String.self, forKey: .externalId))
            }
        }
    }

    static func register(on router: inout Router<AppContext>) {
        router.post(base) { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "users:write")
            let body = try JSON.decode(CreateBody.self, from: request.body)
            let user = try context.requireUsers().create(
                email: try email(body.email), planTier: try tier(body.planTier ?? "free"),
                externalID: try body.externalId.map(externalID), by: request.actor(caller))
            return .json(UserBody(record: user), status: .created)
        }
        router.get(base) { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "users:read")
            let page = try Pagination(request)
            let result = try context.requireUsers().list(limit: page.limit, cursor: page.cursor)
            return .json(ListBody(items: result.items.map(UserBody.init(record:)), nextCursor: result.nextCursor))
        }
        router.get(base + "/{id}") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "users:read")
            guard let user = try context.requireUsers().get(id: try request.parameter("id")) else { throw Problem.notFound("No such user.") }
            return .json(UserBody(record: user))
        }
        let update: Router<AppContext>.Handler = { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "users:write")
            let id = try request.parameter("id")
            guard try context.requireUsers().get(id: id) != nil else { throw Problem.notFound("No such user.") }
            let body = try JSON.decode(UpdateBody.self, from: request.body)
            guard body.email != nil || body.planTier != nil || body.externalId != nil else {
                throw Problem(.unprocessableContent, detail: "The body changes nothing; give email, plan_tier or external_id.")
            }
            var external: String?? = nil
            if let value = body.externalId { external = .some(try value.map(externalID)) }
            guard let user = try context.requireUsers().update(
                id: id, email: try body.email.map(email), planTier: try body.planTier.map(tier), externalID: external, by: request.actor(caller)) else {
                throw Problem.notFound("No such user.")
            }
            return .json(UserBody(record: user))
        }
        router.put(base + "/{id}", update)
        router.patch(base + "/{id}", update)
    }

    static func email(_ text: String) throws(Problem) -> String {
        let value = text.trimmingSpaces
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        // Characters (code points), as the database's CHECK counts them.
        guard (3...320).contains(value.unicodeScalars.count), parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !value.contains(" ") else {
            throw KeyValidation.invalid("email", "must be an email address")
        }
        return value
    }

    static func tier(_ text: String) throws(Problem) -> String {
        guard tiers.contains(text) else { throw KeyValidation.invalid("plan_tier", "must be free, pro or enterprise") }
        return text
    }

    static func externalID(_ text: String) throws(Problem) -> String {
        guard (1...255).contains(text.unicodeScalars.count) else { throw KeyValidation.invalid("external_id", "must be 1 to 255 characters") }
        return text
    }
}
