import HTTP
import Posix
import Storage

/// Key metadata as the API shows it (never a hash; the raw key only in `key`, at
/// creation and rotation). Nullable fields are always present, as null.
struct KeyMetadata: Encodable {
    let record: KeyRecord
    var key: String?

    enum CodingKeys: String, CodingKey {
        case id, name, keyPrefix, environment, userId, scopes, allowedPaths, allowedIps, rateLimitPerMinute, rateLimitPerHour
        case burst, quotaDaily, quotaMonthly, active, status, createdAt, expiresAt, lastUsedAt, lastUsedEndpoint
        case requestCount, revokedAt, rotatedFrom, key
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(record.id, forKey: .id)
        try c.encode(record.name, forKey: .name)
        try c.encode(record.keyPrefix, forKey: .keyPrefix)
        try c.encode(record.environment, forKey: .environment)
        try c.encode(record.userID, forKey: .userId)
        try c.encode(record.scopes, forKey: .scopes)
        try c.encode(record.allowedPaths, forKey: .allowedPaths)
        try c.encode(record.allowedIPs, forKey: .allowedIps)
        try c.encode(record.limits.rateLimitPerMinute, forKey: .rateLimitPerMinute)
        try c.encode(record.limits.rateLimitPerHour, forKey: .rateLimitPerHour)
        try c.encode(record.limits.burst, forKey: .burst)
        try c.encode(record.limits.quotaDaily, forKey: .quotaDaily)
        try c.encode(record.limits.quotaMonthly, forKey: .quotaMonthly)
        try c.encode(record.active, forKey: .active)
        try c.encode(record.status(at: Clock.wallMicroseconds()), forKey: .status)
        try c.encode(time(record.createdAt), forKey: .createdAt)
        try c.encode(record.expiresAt.map(time), forKey: .expiresAt)
        try c.encode(record.lastUsedAt.map(time), forKey: .lastUsedAt)
        try c.encode(record.lastUsedEndpoint, forKey: .lastUsedEndpoint)
        try c.encode(record.requestCount, forKey: .requestCount)
        try c.encode(record.revokedAt.map(time), forKey: .revokedAt)
        try c.encode(record.rotatedFrom, forKey: .rotatedFrom)
        if let key { try c.encode(key, forKey: .key) }
    }
}

struct UserBody: Encodable {
    let record: UserRecord

    enum CodingKeys: String, CodingKey { case id, email, planTier, externalId, createdAt, updatedAt }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(record.id, forKey: .id)
        try c.encode(record.email, forKey: .email)
        try c.encode(record.planTier, forKey: .planTier)
        try c.encode(record.externalID, forKey: .externalId)
        try c.encode(time(record.createdAt), forKey: .createdAt)
        try c.encode(time(record.updatedAt), forKey: .updatedAt)
    }
}

struct AuditBody: Encodable {
    let entry: AuditEntry

    enum CodingKeys: String, CodingKey { case id, at, actorKeyId, action, targetType, targetId, remoteAddr, requestId, details }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(entry.id, forKey: .id)
        try c.encode(time(entry.at), forKey: .at)
        try c.encode(entry.actorKeyID, forKey: .actorKeyId)
        try c.encode(entry.action, forKey: .action)
        try c.encode(entry.targetType, forKey: .targetType)
        try c.encode(entry.targetID, forKey: .targetId)
        try c.encode(entry.remoteAddress, forKey: .remoteAddr)
        try c.encode(entry.requestID, forKey: .requestId)
        try c.encode(JSONObjectText(text: entry.detailsJSON), forKey: .details)
    }
}

/// Embeds a stored JSON object of strings as an object (not as a string).
struct JSONObjectText: Encodable {
    let text: String

    func encode(to encoder: any Encoder) throws {
        let object = (try? JSON.decodeStringMap(text)) ?? [:]
        var c = encoder.singleValueContainer()
        try c.encode(object)
    }
}

/// `{"items": [...], "next_cursor": ... | null}`.
struct ListBody<Item: Encodable>: Encodable {
    let items: [Item]
    let nextCursor: String?

    enum CodingKeys: String, CodingKey { case items, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)
    }
}

func time(_ microseconds: Int64) -> String {
    Timestamp.rfc3339(microseconds: microseconds, fractionDigits: 3)
}

/// `?limit=` (default 50, 1…500) and `?cursor=`.
struct Pagination {
    let limit: Int
    let cursor: String?

    init(_ request: Request) throws(Problem) {
        let query = request.queryItems
        if let text = query["limit"] {
            guard let value = Int(text), (1...500).contains(value) else {
                throw Problem(.badRequest, detail: "limit must be an integer from 1 to 500.", field: "limit")
            }
            limit = value
        } else {
            limit = 50
        }
        cursor = query["cursor"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension Request {
    var actor: (KeyRecord) -> Actor {
        { key in Actor(keyID: key.id.isEmpty ? nil : key.id, remoteAddress: remoteAddress,
                       requestID: requestID.isEmpty ? nil : requestID) }
    }
}
