import HTTP
import Posix
import Storage

/// `POST …/api-keys` and `POST /api/v1/auth/keys`.
struct CreateKeyBody: RequestBody {
    static let fieldNames: Set<String> = [
        "name", "user_id", "environment", "scopes", "expires_at", "expires_in_days", "rate_limit_per_minute",
        "rate_limit_per_hour", "burst", "quota_daily", "quota_monthly", "allowed_ips", "allowed_paths",
    ]

    let name: String
    let userId: String?
    let environment: String?
    let scopes: [String]?
    let expiresAt: String?
    let expiresInDays: Int?
    let rateLimitPerMinute: Int?
    let rateLimitPerHour: Int?
    let burst: Int?
    let quotaDaily: Int?
    let quotaMonthly: Int?
    let allowedIps: [String]?
    let allowedPaths: [String]?
}

/// `PUT/PATCH …/api-keys/{id}`: absent leaves a field alone; null clears a limit or expiry.
struct UpdateKeyBody: RequestBody {
    var changes = KeyChanges()
    static let fieldNames: Set<String> = [
        "name", "active", "scopes", "allowed_paths", "allowed_ips", "rate_limit_per_minute", "rate_limit_per_hour", "burst",
        "quota_daily", "quota_monthly", "expires_at", "expires_in_days", "user_id", "environment",
    ]

    enum CodingKeys: String, CodingKey {
        case name, active, scopes, allowedPaths, allowedIps, rateLimitPerMinute, rateLimitPerHour, burst
        case quotaDaily, quotaMonthly, expiresAt, expiresInDays
        /// Fields of a key that are fixed at creation: named in a 422 rather than ignored.
        case userId, environment
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        for (key, field) in [(CodingKeys.userId, "user_id"), (.environment, "environment")] where c.contains(key) {
            throw KeyValidation.invalid(field, "cannot be changed: it is fixed when the key is made")
        }
        changes.name = try c.decodeNonNullIfPresent(String.self, forKey: .name)
        changes.active = try c.decodeNonNullIfPresent(Bool.self, forKey: .active)
        changes.scopes = try c.decodeNonNullIfPresent([String].self, forKey: .scopes)
        changes.allowedPaths = try c.decodeNonNullIfPresent([String].self, forKey: .allowedPaths)
        changes.allowedIPs = try c.decodeNonNullIfPresent([String].self, forKey: .allowedIps)
        func nullable(_ key: CodingKeys) throws -> Int?? {
            guard c.contains(key) else { return nil }
            return .some(try c.decodeNil(forKey: key) ? nil : c.decode(Int.self, forKey: key))
        }
        changes.rateLimitPerMinute = try nullable(.rateLimitPerMinute)
        changes.rateLimitPerHour = try nullable(.rateLimitPerHour)
        changes.burst = try nullable(.burst)
        changes.quotaDaily = try nullable(.quotaDaily)
        changes.quotaMonthly = try nullable(.quotaMonthly)
        if c.contains(.expiresInDays) {
            guard !c.contains(.expiresAt) else { throw KeyValidation.invalid("expires_at", "give expires_at or expires_in_days, not both") }
            let days = try c.decode(Int.self, forKey: .expiresInDays)
            guard (1...3650).contains(days) else { throw KeyValidation.invalid("expires_in_days", "must be 1 to 3650") }
            changes.expiresAt = .some(Clock.wallMicroseconds() + Int64(days) * 86_400_000_000)
        }
        if c.contains(.expiresAt) {
            if try c.decodeNil(forKey: .expiresAt) {
                changes.expiresAt = .some(nil)
            } else {
                let text = try c.decode(String.self, forKey: .expiresAt)
                guard let micros = Timestamp.parseRFC3339(text) else {
                    throw DecodingError.dataCorruptedError(forKey: .expiresAt, in: c, debugDescription: "not RFC 3339")
                }
                changes.expiresAt = .some(micros)
            }
        }
    }
}

/// Field checks shared by create and update; each failure is a 422 naming the field.
enum KeyValidation {
    static func name(_ name: String) throws(Problem) -> String {
        let trimmed = name.trimmingSpaces
        // Counted in code points, as the column's CHECK (char_length) counts them; PostgreSQL
        // text cannot hold NUL.
        guard (1...200).contains(trimmed.unicodeScalars.count) else { throw invalid("name", "must be 1 to 200 characters") }
        guard !trimmed.utf8.contains(0) else { throw invalid("name", "must not contain NUL") }
        return trimmed
    }

    static func environment(_ environment: String?) throws(Problem) -> String {
        guard let environment else { return "live" }
        guard environment == "live" || environment == "test" else { throw invalid("environment", "must be 'live' or 'test'") }
        return environment
    }

    static func scopes(_ scopes: [String]) throws(Problem) -> [String] {
        for (index, scope) in scopes.enumerated() where !Scope.all.contains(scope) {
            throw invalid("scopes[\(index)]", "'\(scope)' is not a known scope")
        }
        var unique: [String] = []
        for scope in scopes where !unique.contains(scope) { unique.append(scope) }
        return unique
    }

    static func ips(_ ips: [String]) throws(Problem) -> [String] {
        guard ips.count <= 100 else { throw invalid("allowed_ips", "at most 100 entries") }
        for (index, ip) in ips.enumerated() {
            guard let network = IPNetwork(ip) else { throw invalid("allowed_ips[\(index)]", "must be an IP address or CIDR block") }
            guard !network.hasHostBits else {
                throw invalid("allowed_ips[\(index)]", "has address bits set beyond its prefix length (a block starts at its network address)")
            }
        }
        return ips
    }

    static func paths(_ paths: [String]) throws(Problem) -> [String] {
        guard paths.count <= 100 else { throw invalid("allowed_paths", "at most 100 entries") }
        for (index, path) in paths.enumerated() where !path.hasPrefix("/") || path.unicodeScalars.count > 512 || path.utf8.contains(0) {
            throw invalid("allowed_paths[\(index)]", "must be a path prefix starting with '/'")
        }
        return paths
    }

    static func limit(_ value: Int?, _ field: String) throws(Problem) -> Int? {
        guard let value else { return nil }
        guard value > 0, value <= 1_000_000_000 else { throw invalid(field, "must be a positive integer") }
        return value
    }

    static func expiry(at text: String?, inDays days: Int?) throws(Problem) -> Int64? {
        let now = Clock.wallMicroseconds()
        if text != nil && days != nil { throw invalid("expires_at", "give expires_at or expires_in_days, not both") }
        if let days {
            guard (1...3650).contains(days) else { throw invalid("expires_in_days", "must be 1 to 3650") }
            return now + Int64(days) * 86_400_000_000
        }
        guard let text else { return nil }
        guard let micros = Timestamp.parseRFC3339(text) else { throw invalid("expires_at", "must be an RFC 3339 timestamp") }
        guard micros > now else { throw invalid("expires_at", "must be in the future") }
        return micros
    }

    static func userID(_ id: String?) throws(Problem) -> String? {
        guard let id else { return nil }
        guard isUUID(id) else { throw invalid("user_id", "must be a UUID") }
        return id.lowercased()
    }

    static func invalid(_ field: String, _ message: String) -> Problem {
        Problem(.unprocessableContent, title: "Invalid field", detail: "Field '\(field)' \(message).", field: field)
    }
}
