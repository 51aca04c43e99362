import HTTP
import Posix
import Storage

/// Key metadata as the API shows it (never a hash; the raw key only in `key`, at
/// creation and rotation). Nullable fields are always present, as null.
struct KeyMetadata: JSONFields {
    let record: KeyRecord
    var key: String?

    var jsonFields: [JSONField] {
        var fields = [
            JSONField("id", .string(record.id)),
            JSONField("name", .string(record.name)),
            JSONField("key_prefix", .string(record.keyPrefix)),
            JSONField("environment", .string(record.environment)),
            JSONField("user_id", .string(record.userID)),
            JSONField("scopes", .strings(record.scopes)),
            JSONField("allowed_paths", .strings(record.allowedPaths)),
            JSONField("allowed_ips", .strings(record.allowedIPs)),
            JSONField("rate_limit_per_minute", .integer(record.limits.rateLimitPerMinute)),
            JSONField("rate_limit_per_hour", .integer(record.limits.rateLimitPerHour)),
            JSONField("burst", .integer(record.limits.burst)),
            JSONField("quota_daily", .integer(record.limits.quotaDaily)),
            JSONField("quota_monthly", .integer(record.limits.quotaMonthly)),
            JSONField("active", .bool(record.active)),
            JSONField("status", .string(record.status(at: Clock.wallMicroseconds()))),
            JSONField("created_at", .string(time(record.createdAt))),
            JSONField("expires_at", .string(record.expiresAt.map(time))),
            JSONField("last_used_at", .string(record.lastUsedAt.map(time))),
            JSONField("last_used_endpoint", .string(record.lastUsedEndpoint)),
            JSONField("request_count", .integer(record.requestCount)),
            JSONField("revoked_at", .string(record.revokedAt.map(time))),
            JSONField("rotated_from", .string(record.rotatedFrom)),
            JSONField("lineage_id", .string(record.lineageID)),
        ]
        if let key { fields.append(JSONField("key", .string(key))) }
        return fields
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
        { key in Actor(keyID: key.id.isEmpty ? nil : key.id, remoteAddress: IPNetwork.singleAddress(remoteAddress),
                       requestID: requestID.isEmpty ? nil : requestID) }
    }
}
