import HTTP
import Posix
import SharedMemory
import Storage

/// Key verification for the warehouse's other services.
///
/// `GET /api/v1/auth/verify` answers nginx `auth_request` subrequests: the key comes in
/// the original request's headers; the original URI and method, and optionally the scope
/// the protected location demands, come as `KEYGATE_*` FastCGI params that only nginx's
/// configuration sets. 204 with the key's id, owner and scopes (for `auth_request_set`),
/// or 401/403/429. `POST /api/v1/keys/verify` asks the same about a key in the body, for
/// services not behind this nginx (scope `keys:verify`).
enum VerifyRoutes {
    struct VerifyBody: RequestBody {
        static let fieldNames: Set<String> = ["key", "scope", "path", "ip"]
        let key: String
        let scope: String?
        let path: String?
        /// The end client's address, for keys limited to some addresses.
        let ip: String?

        enum CodingKeys: String, CodingKey { case key, scope, path, ip }

        // Absent is fine; an explicit null is not a string and is refused like any wrong type.
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decode(String.self, forKey: .key)
            scope = try c.decodeNonNullIfPresent(String.self, forKey: .scope)
            path = try c.decodeNonNullIfPresent(String.self, forKey: .path)
            ip = try c.decodeNonNullIfPresent(String.self, forKey: .ip)
        }
    }

    struct VerifyAnswer: Encodable {
        struct RateLimit: Encodable {
            let limit: Int, remaining: Int, reset: Int, policy: String
        }
        let valid: Bool
        let code: String
        let keyId: String?
        let owner: String?
        let scopes: [String]
        let ratelimit: RateLimit?

        enum CodingKeys: String, CodingKey { case valid, code, keyId, owner, scopes, ratelimit }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(valid, forKey: .valid)
            try c.encode(code, forKey: .code)
            try c.encode(keyId, forKey: .keyId)
            try c.encode(owner, forKey: .owner)
            try c.encode(scopes, forKey: .scopes)
            try c.encode(ratelimit, forKey: .ratelimit)
        }
    }

    static func register(on router: inout Router<AppContext>) {
        router.get("/api/v1/auth/verify") { request, context in
            // From nginx (any KEYGATE_* param set; the include always sets the method), the
            // protected location must pass the original URI (nginx's normalised, decoded $uri)
            // and name its scope, or `none` to accept any valid key: a location that forgot
            // either must not let keys through unchecked.
            var scope: String?
            var path = request.path
            if request.originalMethod != nil || request.originalURI != nil || request.requiredScope != nil {
                guard let uri = request.originalURI, uri.hasPrefix("/"),
                      let required = request.requiredScope, required == "none" || Scope.all.contains(required) else {
                    context.logger.error("auth_request without KEYGATE_ORIGINAL_URI or a valid KEYGATE_REQUIRED_SCOPE; refusing",
                                         [("request_id", request.requestID), ("scope", request.requiredScope ?? ""),
                                          ("uri_set", request.originalURI == nil ? "no" : "yes")])
                    throw Problem(.internalServerError, detail: "The protected location passes no original URI or no valid scope.")
                }
                scope = required == "none" ? nil : required
                path = uri
            }
            let verdict = try Authenticator.check(Authenticator.presentedKey(request, allowQuery: false), path: path,
                                                  remoteAddress: request.remoteAddress, scope: scope, context: context)
            let record = try Authenticator.accept(verdict, request, context)
            return Response(status: .noContent, headers: HTTPHeaders([
                ("X-Key-Id", record.id), ("X-Key-Owner", record.userID ?? ""), ("X-Key-Scopes", record.scopes.joined(separator: " ")),
            ]))
        }
        router.post("/api/v1/keys/verify") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "keys:verify")
            let body = try JSON.decode(VerifyBody.self, from: request.body)
            if let scope = body.scope, !Scope.all.contains(scope) {
                throw Problem(.unprocessableContent, detail: "scope names no keygate scope.", field: "scope")
            }
            if let path = body.path, !path.hasPrefix("/") {
                throw Problem(.unprocessableContent, detail: "path must start with '/'.", field: "path")
            }
            if let ip = body.ip, IPNetwork(ip) == nil || ip.contains("/") {
                throw Problem(.unprocessableContent, detail: "ip must be an IPv4 or IPv6 address.", field: "ip")
            }
            // The request state stays the caller's (its usage record, its rate headers).
            let verdict = try Authenticator.check(body.key, path: body.path ?? "/", remoteAddress: body.ip ?? "",
                                                  scope: body.scope, context: context)
            let answer = try Self.answer(verdict)
            if let record = verdict.identified, let keyID = UUIDBytes.parse(record.id) {
                // The checked key was used: record it like any use (it counts against its quotas).
                context.host?.usage.append(UsageRecord(
                    keyID: keyID, at: Clock.wallMicroseconds(), method: "POST", route: "POST /api/v1/keys/verify",
                    path: body.path ?? "", status: answer.valid ? 200 : (answer.code == "rate_limited" ? 429 : 403),
                    durationMicroseconds: 0, remoteAddress: body.ip ?? "", counted: verdict.counted))
            }
            return .json(answer)
        }
    }

    /// The verdict as the route answers it; a key whose quota counts cannot be read is a 503.
    static func answer(_ verdict: KeyVerdict) throws(Problem) -> VerifyAnswer {
        let limit = verdict.rate.map { VerifyAnswer.RateLimit(limit: $0.limit, remaining: $0.remaining, reset: $0.resetSeconds, policy: $0.policy.rawValue) }
        switch verdict {
        case .invalid:
            return VerifyAnswer(valid: false, code: "invalid_key", keyId: nil, owner: nil, scopes: [], ratelimit: nil)
        case .denied(let record, let denial):
            return VerifyAnswer(valid: false, code: denial.rawValue, keyId: record.id, owner: record.userID, scopes: record.scopes, ratelimit: nil)
        case .limited(let record, _):
            return VerifyAnswer(valid: false, code: "rate_limited", keyId: record.id, owner: record.userID, scopes: record.scopes, ratelimit: limit)
        case .valid(let record, _):
            return VerifyAnswer(valid: true, code: "valid", keyId: record.id, owner: record.userID, scopes: record.scopes, ratelimit: limit)
        case .unavailable(_, let problem):
            throw problem
        }
    }
}
