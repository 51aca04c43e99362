import Postgres

public struct UserRecord: Sendable, Equatable {
    public let id: String
    public let email: String
    public let planTier: String
    public let externalID: String?
    public let createdAt: Int64
    public let updatedAt: Int64

    public init(id: String, email: String, planTier: String, externalID: String?, createdAt: Int64, updatedAt: Int64) {
        self.id = id
        self.email = email
        self.planTier = planTier
        self.externalID = externalID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Users, whose plan tier gives new keys their default limits.
public final class UserStore {
    let db: PostgresConnection

    public init(connection: PostgresConnection) {
        db = connection
    }

    static let columns = """
        id::text AS id, email, plan_tier, external_id, (extract(epoch FROM created_at) * 1000000)::bigint AS created_at,
        (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at
        """

    static func records(_ rows: PostgresRows) throws(StoreError) -> [UserRecord] {
        try storage {
            try rows.map { row in
                UserRecord(id: try row.decode("id"), email: try row.decode("email"), planTier: try row.decode("plan_tier"),
                           externalID: try row.decode("external_id", as: String?.self),
                           createdAt: try row.decode("created_at"), updatedAt: try row.decode("updated_at"))
            }
        }
    }

    public func get(id: String) throws(StoreError) -> UserRecord? {
        guard isUUID(id) else { return nil }
        return try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM users WHERE id = \(id)::uuid") }).first
    }

    public func list(limit: Int, cursor: String?) throws(StoreError) -> Page<UserRecord> {
        let after = try Cursor.parse(cursor)
        var items = try Self.records(storage {
            try db.query("""
                SELECT \(unsafeSQL: Self.columns) FROM users
                WHERE (\(after?.createdAt)::bigint IS NULL
                       OR (created_at, id) > (to_timestamp(\(after?.createdAt)::bigint / 1000000.0), \(after?.id)::uuid))
                ORDER BY created_at, id LIMIT \(limit + 1)
                """)
        })
        var next: String?
        if items.count > limit {
            items.removeLast()
            next = items.last.map { Cursor.make(createdAt: $0.createdAt, id: $0.id) }
        }
        return Page(items: items, nextCursor: next)
    }

    public func create(email: String, planTier: String, externalID: String?, by actor: Actor) throws(StoreError) -> UserRecord {
        try transaction { db throws(StoreError) in
            let rows = try storage {
                try db.query("""
                    INSERT INTO users (email, plan_tier, external_id) VALUES (\(email), \(planTier), \(externalID))
                    RETURNING \(unsafeSQL: Self.columns)
                    """)
            }
            guard let user = try Self.records(rows).first else {
                throw .database(PostgresError(kind: .other, sqlState: nil, message: "INSERT returned no row"))
            }
            try Audit.append(action: "user.created", targetType: "user", targetID: user.id, by: actor,
                             details: ["plan_tier": planTier], on: db)
            return user
        }
    }

    /// Edits; nil leaves a field alone (`externalID: .some(nil)` clears it).
    public func update(id: String, email: String?, planTier: String?, externalID: String??, by actor: Actor) throws(StoreError) -> UserRecord? {
        guard isUUID(id) else { return nil }
        return try transaction { db throws(StoreError) -> UserRecord? in
            let clear = externalID == .some(nil)
            let rows = try storage {
                try db.query("""
                    UPDATE users SET email = coalesce(\(email), email), plan_tier = coalesce(\(planTier), plan_tier),
                        external_id = CASE WHEN \(clear) THEN NULL ELSE coalesce(\(externalID ?? nil), external_id) END
                    WHERE id = \(id)::uuid RETURNING \(unsafeSQL: Self.columns)
                    """)
            }
            guard let user = try Self.records(rows).first else { return nil }
            var changed: [String] = []
            if email != nil { changed.append("email") }
            if planTier != nil { changed.append("plan_tier") }
            if externalID != nil { changed.append("external_id") }
            try Audit.append(action: "user.updated", targetType: "user", targetID: id, by: actor,
                             details: ["changed": changed.joined(separator: " ")], on: db)
            return user
        }
    }

    /// The default limits of a plan tier (for new keys of its users).
    public func defaults(tier: String) throws(StoreError) -> KeyLimits {
        let rows = try storage {
            try db.query("SELECT rate_limit_per_minute, rate_limit_per_hour, burst, quota_daily, quota_monthly FROM plan_tiers WHERE tier = \(tier)")
        }
        guard let row = rows.first else { return KeyLimits() }
        return try storage {
            KeyLimits(rateLimitPerMinute: try row.decode("rate_limit_per_minute", as: Int?.self),
                      rateLimitPerHour: try row.decode("rate_limit_per_hour", as: Int?.self),
                      burst: try row.decode("burst", as: Int?.self),
                      quotaDaily: try row.decode("quota_daily", as: Int?.self),
                      quotaMonthly: try row.decode("quota_monthly", as: Int?.self))
        }
    }

    func transaction<T>(_ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try storage { try db.transaction { db in try body(db) } }
    }
}
