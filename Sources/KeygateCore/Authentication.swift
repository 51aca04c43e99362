import HTTP
import Keys
import Posix
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
    var headers: HTTPHeaders { HTTPHeaders([("WWW-Authenticate", #"Bearer realm="keygate""#)]) }
}

/// Authentication for every protected route.
enum Authenticator {
    /// Why a key was refused, for the log (never the key itself).
    enum Reason: String { case missing, malformed, unknown, revoked, expired }

    /// The presented key's record, or 401/403.
    static func authenticate(_ request: Request, _ context: AppContext) throws -> KeyRecord {
        guard let text = presentedKey(request, allowQuery: context.configuration.allowQueryKey) else {
            throw refuse(.missing, request, context)
        }
        let key: APIKey
        do {
            key = try APIKey.parse(text, expectedPrefix: context.configuration.keyPrefix)
        } catch {
            throw refuse(.malformed, request, context)
        }
        let hasher = try context.requireHasher()
        guard let record = try context.requireKeys().find(hash: hasher.hash(key)) else {
            throw refuse(.unknown, request, context)
        }
        let now = Clock.wallMicroseconds()
        switch record.status(at: now) {
        case "revoked": throw refuse(.revoked, request, context, keyID: record.id)
        case "expired": throw refuse(.expired, request, context, keyID: record.id)
        default: break
        }
        // The client address is the one nginx saw (REMOTE_ADDR), never a client header.
        if !record.allowedIPs.isEmpty && !record.allowedIPs.contains(where: { IPNetwork($0)?.contains(request.remoteAddress) == true }) {
            throw forbidden("This key may not be used from this address.", request, context, keyID: record.id)
        }
        if !record.allowedPaths.isEmpty && !record.allowedPaths.contains(where: { pathIsUnder(request.path, $0) }) {
            throw forbidden("This key may not be used for this path.", request, context, keyID: record.id)
        }
        return record
    }

    /// 403 unless `key` holds `scope` (or admin).
    static func require(_ scope: String, _ key: KeyRecord) throws(Problem) {
        guard Scope.grants(key.scopes, scope) else {
            throw Problem(.forbidden, detail: "This key lacks the '\(scope)' scope.")
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
    static func pathIsUnder(_ path: String, _ prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        return prefix.hasSuffix("/") || path.utf8.count == prefix.utf8.count || path.dropFirst(prefix.count).hasPrefix("/")
    }

    private static func refuse(_ reason: Reason, _ request: Request, _ context: AppContext, keyID: String? = nil) -> Unauthorized {
        var fields = [("reason", reason.rawValue), ("remote_addr", request.remoteAddress), ("request_id", request.requestID), ("path", request.path)]
        if let keyID { fields.append(("key_id", keyID)) }
        context.logger.warning("unauthorized request", fields)
        return Unauthorized()
    }

    private static func forbidden(_ detail: String, _ request: Request, _ context: AppContext, keyID: String) -> Problem {
        context.logger.warning("forbidden request", [("key_id", keyID), ("remote_addr", request.remoteAddress), ("request_id", request.requestID)])
        return Problem(.forbidden, detail: detail)
    }
}
