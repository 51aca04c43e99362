import HTTP
import Keys
import Posix
import SharedMemory
import Storage

/// Every scope a key can hold (SPEC §4). `admin` implies all the others.
enum Scope {
    static let all: Set<String> = [
        "admin", "keys:read", "keys:write", "symbols:read", "symbols:write", "users:read", "users:write",
        "usage:read", "audit:read", "keys:verify", "self",
    ]

    /// Whether a key holding `held` may use something that needs `needed`.
    static func grants(_ held: [String], _ needed: String) -> Bool {
        held.contains("admin") || held.contains(needed)
    }

    /// Whether a key holding `held` may hand out every scope in `wanted` (no escalation).
    static func canGrant(_ held: [String], _ wanted: [String]) -> Bool {
        held.contains("admin") || wanted.allSatisfy { held.contains($0) }
    }
}

/// The one 401: missing, malformed, unknown, expired and revoked keys all get exactly
/// this, so a caller learns nothing about which it was.
struct Unauthorized: HTTPError {
    let status = HTTPStatus.unauthorized
    let detail = "A valid API key is required (X-API-Key or Authorization: Bearer)."
    var headers: HTTPHeaders { HTTPHeaders("WWW-Authenticate", #"Bearer realm="keygate""#) }
}

/// 429: a rate limit or quota refused the request. The rate-limit headers are added
/// by `Application` from the request's `RequestState`, as on every limited response.
struct TooManyRequests: HTTPError {
    let decision: RateDecision
    let status = HTTPStatus.tooManyRequests
    var detail: String {
        switch decision.policy {
        case .daily: return "This key's daily quota of \(decision.limit) requests is used up."
        case .monthly: return "This key's monthly quota of \(decision.limit) requests is used up."
        case .burst: return "This key allows \(decision.limit) requests per second."
        case .minute: return "This key allows \(decision.limit) requests per minute."
        case .hour: return "This key allows \(decision.limit) requests per hour."
        }
    }
    var headers: HTTPHeaders { HTTPHeaders("Retry-After", String(decision.retryAfterSeconds ?? 1)) }
}

/// The outcome of checking a presented key against a request.
enum KeyVerdict {
    /// Missing, malformed, unknown, revoked or expired: all look the same to the caller.
    case invalid(Authenticator.Reason, keyID: String?)
    case denied(KeyRecord, Authenticator.Denial)
    case limited(KeyRecord, RateDecision)
    case valid(KeyRecord, RateDecision?)
    /// A usable key whose quota counts cannot be read right now (503).
    case unavailable(KeyRecord, Problem)

    /// The key, when it was identified as a usable one (its use is recorded).
    var identified: KeyRecord? {
        switch self {
        case .invalid: return nil
        case .denied(let record, _), .limited(let record, _), .valid(let record, _), .unavailable(let record, _): return record
        }
    }

    /// What the rate limiter decided, when it was asked.
    var rate: RateDecision? {
        switch self {
        case .limited(_, let decision): return decision
        case .valid(_, let decision): return decision
        default: return nil
        }
    }

    /// Let through by the rate limiter: counts against the key's quotas.
    var counted: Bool {
        if case .valid = self { return true }
        return false
    }
}

/// Authentication for every protected route and for the verification routes.
enum Authenticator {
    /// Why a key was refused, for the log (never the key itself).
    enum Reason: String { case missing, malformed, unknown, revoked, expired }
    /// Why a valid key may not do this.
    enum Denial: String {
        case ip = "ip_denied", path = "path_denied", scope = "scope_denied"

        var detail: String {
            switch self {
            case .ip: return "This key may not be used from this address."
            case .path: return "This key may not be used for this path."
            case .scope: return "This key lacks the scope this resource needs."
            }
        }
    }

    /// The presented key's record when it holds `scope` (or admin), or 401/403/429/503.
    /// The scope is checked before the rate limits, so a refused request counts against
    /// none of them. Notes the key on the request state.
    static func authenticate(_ request: Request, _ context: AppContext, scope: String) throws -> KeyRecord {
        let verdict = try check(presentedKey(request, allowQuery: context.configuration.allowQueryKey),
                                path: request.path, remoteAddress: request.remoteAddress, scope: scope, context: context)
        return try accept(verdict, request, context, scope: scope)
    }

    /// Notes the verdict on this request's state (rate headers, usage record), then turns
    /// it into the record or the matching error, logging refusals. `scope` names the
    /// scope that was needed, for the 403's detail.
    static func accept(_ verdict: KeyVerdict, _ request: Request, _ context: AppContext, scope: String? = nil) throws -> KeyRecord {
        context.current.note(verdict)
        switch verdict {
        case .invalid(let reason, let keyID):
            throw refuse(reason, request, context, keyID: keyID)
        case .denied(let record, let denial):
            context.logger.warning("forbidden request", [("key_id", record.id), ("reason", denial.rawValue),
                                                         ("remote_addr", request.remoteAddress), ("request_id", request.requestID)])
            if denial == .scope, let scope { throw Problem(.forbidden, detail: "This key lacks the '\(scope)' scope.") }
            throw Problem(.forbidden, detail: denial.detail)
        case .limited(_, let decision):
            throw TooManyRequests(decision: decision)
        case .unavailable(_, let problem):
            throw problem
        case .valid(let record, _):
            return record
        }
    }

    /// Checks `presented` for a request to `path` from `remoteAddress` needing `scope`
    /// (nil: the route checks scopes itself): status, expiry, IPs, paths, scope, then the
    /// rate limits (which count the request when they let it through). Changes nothing but
    /// the rate table: the caller decides what the verdict means for its request.
    static func check(_ presented: String?, path: String, remoteAddress: String, scope: String?, context: AppContext) throws -> KeyVerdict {
        guard let text = presented else { return .invalid(.missing, keyID: nil) }
        guard let key = try? APIKey.parse(text, expectedPrefix: context.configuration.keyPrefix) else {
            return .invalid(.malformed, keyID: nil)
        }
        let now = Clock.wallMicroseconds()
        guard let record = try context.requireDirectory().find(hash: try context.requireHasher().hash(key), now: now) else {
            return .invalid(.unknown, keyID: nil)
        }
        if !record.active { return .invalid(.revoked, keyID: record.id) }
        if let expiresAt = record.expiresAt, expiresAt <= now { return .invalid(.expired, keyID: record.id) }
        // The client address is the one nginx saw (REMOTE_ADDR), never a client header.
        if !record.allowedIPs.isEmpty && !record.allowedIPs.contains(where: { IPNetwork($0)?.contains(remoteAddress) == true }) {
            return .denied(record, .ip)
        }
        if !record.allowedPaths.isEmpty && !record.allowedPaths.contains(where: { pathIsUnder(path, $0) }) {
            return .denied(record, .path)
        }
        if let scope, !Scope.grants(record.scopes, scope) { return .denied(record, .scope) }
        let limits = RateLimits(perMinute: record.limits.rateLimitPerMinute, perHour: record.limits.rateLimitPerHour,
                                burst: record.limits.burst, daily: record.limits.quotaDaily, monthly: record.limits.quotaMonthly)
        // Per lineage: a rotation's successor shares its predecessor's windows and quotas.
        guard !limits.isEmpty, let rates = context.rates, let id = UUIDBytes.parse(record.lineageID) else {
            return .valid(record, nil)
        }
        let decision: RateDecision
        do {
            decision = try rateDecision(id, limits: limits, record: record, rates: rates, now: now, context: context)
        } catch {
            return .unavailable(record, error)
        }
        return decision.allowed ? .valid(record, decision) : .limited(record, decision)
    }

    /// The shared rate table's decision for this request (counted when allowed). A key with
    /// a quota first needs its stored counts on this host: one worker loads them while the
    /// others wait a moment; if they cannot be loaded the request gets 503, never a quota
    /// counted from zero.
    private static func rateDecision(_ id: [UInt8], limits: RateLimits, record: KeyRecord, rates: RateTable, now: Int64,
                                     context: AppContext) throws(Problem) -> RateDecision {
        let tick = Clock.monotonicMicroseconds()
        for _ in 0..<100 {
            switch rates.check(id, limits: limits, now: now, monotonic: tick) {
            case .decided(let decision):
                return decision
            case .needsQuotaCounts:
                guard let counts = quotaCounts(record, now: now, context: context) else {
                    rates.releaseQuotaClaim(id)
                    throw Problem.unavailable("This key's quota usage cannot be read right now; retry shortly.", retryAfterSeconds: 1)
                }
                rates.seedQuota(id, counts, now: now, monotonic: tick)
            case .loadingQuotaCounts:
                Clock.pause(microseconds: 2_000)
            }
        }
        throw Problem.unavailable("This key's quota usage is still being loaded; retry shortly.", retryAfterSeconds: 1)
    }

    /// Today's and this month's counted requests as the database has them; nil when it
    /// cannot say (unreachable, or known to be down).
    private static func quotaCounts(_ record: KeyRecord, now: Int64, context: AppContext) -> QuotaCounts? {
        guard let database = context.database, context.host?.keyCache?.databaseDownSince == nil else { return nil }
        let day = now / RateTable.day
        do {
            let (today, thisMonth) = try Storage.UsageQueries.quotaUsage(lineageID: record.lineageID, now: now, on: database)
            return QuotaCounts(day: day, dayCount: today, month: RateTable.month(ofDay: day), monthCount: thisMonth)
        } catch {
            context.logger.warning("cannot load quota counts", [("key_id", record.id), ("error", String(describing: error))])
            return nil
        }
    }

    static func presentedKey(_ request: Request, allowQuery: Bool) -> String? {
        if let header = request.headers["x-api-key"], !header.isEmpty { return header }
        if let authorization = request.headers["authorization"] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingSpaces }
        }
        if allowQuery, let value = request.queryItems["api_key"], !value.isEmpty { return value }
        return nil
    }

    /// `/api/v1/admin/symbols` is under `/api/v1/admin` and `/api/v1/admin/`; `/api/v1/adminx` is not.
    /// Byte for byte, as the router matches paths: String comparison would take canonically
    /// equivalent spellings (a precomposed "é" and "e" + U+0301) for the same path.
    static func pathIsUnder(_ path: String, _ prefix: String) -> Bool {
        let slash = UInt8(ascii: "/"), backslash = UInt8(ascii: "\\"), dot = UInt8(ascii: "."), semicolon = UInt8(ascii: ";")
        guard path.utf8.starts(with: prefix.utf8) else { return false }
        // "/allowed/../secret" is not under "/allowed": dot segments never pass, nor the
        // forms some upstreams resolve as one ("..;param" with path parameters cut off,
        // "\" taken for "/"), which nginx forwards untouched.
        let segments = path.utf8.split(whereSeparator: { $0 == slash || $0 == backslash })
        if segments.contains(where: { segment in
            let name = segment.prefix { $0 != semicolon }
            return !name.isEmpty && name.count <= 2 && name.allSatisfy { $0 == dot }
        }) { return false }
        return prefix.utf8.last == slash || path.utf8.count == prefix.utf8.count || path.utf8.dropFirst(prefix.utf8.count).first == slash
    }

    static func refuse(_ reason: Reason, _ request: Request, _ context: AppContext, keyID: String? = nil) -> Unauthorized {
        var fields = [("reason", reason.rawValue), ("remote_addr", request.remoteAddress), ("request_id", request.requestID), ("path", request.path)]
        if let keyID { fields.append(("key_id", keyID)) }
        context.logger.warning("unauthorized request", fields)
        return Unauthorized()
    }
}
