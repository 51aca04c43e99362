import Postgres

/// API keys in PostgreSQL. Every change writes its audit row in the same transaction.
public final class KeyStore {
    let db: PostgresConnection

    public init(connection: PostgresConnection) {
        db = connection
    }

    /// What a key lookup reads: the stored values as PostgreSQL prints them. No casts and
    /// no epoch arithmetic: in the authentication lookup those (numeric `extract(epoch …)`
    /// above all) were about a fifth of the server's CPU per lookup.
    static let recordColumns = """
        id, name, key_prefix, environment, user_id, scopes, allowed_paths, allowed_ips,
        rate_limit_per_minute, rate_limit_per_hour, burst, quota_daily, quota_monthly, active,
        created_at, updated_at, expires_at, last_used_at, last_used_endpoint, request_count, revoked_at, rotated_from,
        coalesce(lineage_id, id) AS lineage_id
        """
    /// Every other read also takes the hash (to drop the key's cache entry after a change).
    static let columns = recordColumns + ", key_hash"

    /// The authentication lookup, straight to PostgreSQL: a statement prepared once per
    /// connection. Through a transaction pooler: the function of migration 0006, whose
    /// inner plan PostgreSQL keeps per server connection. Neither returns the hash: the
    /// caller has it. (The prepared statement's name is new with its SQL: a server session
    /// that outlived an older keygate may still hold the old one under the old name.)
    static let byHash = PostgresStatement(
        name: "keygate_key_lookup2", unsafeSQL: "SELECT \(recordColumns) FROM api_keys WHERE key_hash = $1")
    static let byHashFunction = PostgresStatement(name: "keygate_key_lookup2_call", unsafeSQL: "SELECT * FROM keygate_key_lookup2($1)")

    /// `keyHash` for rows without the key_hash column (the lookup by hash).
    static func record(_ row: PostgresRow, keyHash: [UInt8]? = nil) throws(PostgresDecodingError) -> KeyRecord {
        func time(_ column: String) throws(PostgresDecodingError) -> Int64 {
            try row.decode(column, as: PostgresTimestamp.self).microseconds
        }
        func optionalTime(_ column: String) throws(PostgresDecodingError) -> Int64? {
            try row.decode(column, as: PostgresTimestamp?.self)?.microseconds
        }
        var record = KeyRecord(
            id: try row.decode("id"), name: try row.decode("name"), keyPrefix: try row.decode("key_prefix"),
            environment: try row.decode("environment"), userID: try row.decode("user_id", as: String?.self),
            scopes: try row.decode("scopes"), allowedPaths: try row.decode("allowed_paths"),
            allowedIPs: try row.decode("allowed_ips"),
            limits: KeyLimits(rateLimitPerMinute: try row.decode("rate_limit_per_minute", as: Int?.self),
                              rateLimitPerHour: try row.decode("rate_limit_per_hour", as: Int?.self),
                              burst: try row.decode("burst", as: Int?.self),
                              quotaDaily: try row.decode("quota_daily", as: Int?.self),
                              quotaMonthly: try row.decode("quota_monthly", as: Int?.self)),
            active: try row.decode("active"), createdAt: try time("created_at"), updatedAt: try time("updated_at"),
            expiresAt: try optionalTime("expires_at"), lastUsedAt: try optionalTime("last_used_at"),
            lastUsedEndpoint: try row.decode("last_used_endpoint", as: String?.self), requestCount: try row.decode("request_count"),
            revokedAt: try optionalTime("revoked_at"), rotatedFrom: try row.decode("rotated_from", as: String?.self),
            lineageID: try row.decode("lineage_id", as: String.self)
        )
        if let keyHash { record.keyHash = keyHash } else { record.keyHash = try row.decode("key_hash", as: PostgresBytes.self).bytes }
        return record
    }

    static func records(_ rows: PostgresRows, keyHash: [UInt8]? = nil) throws(StoreError) -> [KeyRecord] {
        var result: [KeyRecord] = []
        for row in rows {
            do { result.append(try record(row, keyHash: keyHash)) } catch {
                throw .database(PostgresError(kind: .other, sqlState: nil, message: String(describing: error)))
            }
        }
        return result
    }

    // MARK: Reads

    /// The key with this hash (the authentication lookup; uses the unique index).
    public func find(hash: [UInt8]) throws(StoreError) -> KeyRecord? {
        let statement = db.usesPreparedStatements ? Self.byHash : Self.byHashFunction
        return try Self.records(storage { try db.query(statement, PostgresBytes(hash)) }, keyHash: hash).first
    }

    public func get(id: String) throws(StoreError) -> KeyRecord? {
        guard isUUID(id) else { return nil }
        return try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM api_keys WHERE id = \(id)::uuid") }).first
    }

    /// Keys oldest first, `limit` per page, filtered.
    public func list(_ filter: KeyFilter, limit: Int, cursor: String?) throws(StoreError) -> Page<KeyRecord> {
        let after = try Cursor.parse(cursor)
        let rows = try storage {
            try db.query("""
                SELECT \(unsafeSQL: Self.columns) FROM api_keys
                WHERE (\(filter.userID)::uuid IS NULL OR user_id = \(filter.userID)::uuid)
                  AND (\(filter.environment)::text IS NULL OR environment = \(filter.environment))
                  AND (\(filter.status)::text IS NULL
                       OR (\(filter.status) = 'revoked' AND NOT active)
                       OR (\(filter.status) = 'expired' AND active AND expires_at <= now())
                       OR (\(filter.status) = 'active' AND active AND (expires_at IS NULL OR expires_at > now())))
                  AND (\(after?.createdAt)::bigint IS NULL
                       OR (created_at, id) > (to_timestamp(\(after?.createdAt)::bigint / 1000000.0), \(after?.id)::uuid))
                ORDER BY created_at, id
                LIMIT \(limit + 1)
                """)
        }
        var items = try Self.records(rows)
        var next: String?
        if items.count > limit {
            items.removeLast()
            if let last = items.last { next = Cursor.make(createdAt: last.createdAt, id: last.id) }
        }
        return Page(items: items, nextCursor: next)
    }

    // MARK: Changes

    public func create(_ key: NewKey, by actor: Actor) throws(StoreError) -> KeyRecord {
        try transaction { db throws(StoreError) in try Self.create(key, by: actor, within: db) }
    }

    /// Creates a key with its audit row inside a transaction the caller holds on `db`
    /// (bootstrap: under the lock it counts the admin keys with).
    public static func create(_ key: NewKey, by actor: Actor, within db: PostgresConnection) throws(StoreError) -> KeyRecord {
        let record = try insert(key, on: db)
        try Audit.append(action: "key.created", targetType: "api_key", targetID: record.id, by: actor,
                         details: ["name": record.name, "scopes": record.scopes.joined(separator: " ")], on: db)
        return record
    }

    /// Applies `changes`; `active` false/true revokes/restores. Nil when no such key.
    /// `permits` decides, on the key as it is under its row lock, whether the caller may
    /// change it (as for rotation: its scopes may have changed since the caller's check).
    /// Setting `active` to what it already is, and nothing else, changes and audits nothing.
    public func update(id: String, _ changes: KeyChanges, by actor: Actor,
                       permits: (KeyRecord) -> Bool = { _ in true }) throws(StoreError) -> KeyRecord? {
        guard isUUID(id) else { return nil }
        return try transaction { db throws(StoreError) -> KeyRecord? in
            guard let before = try lockedRecord(id, on: db) else { return nil }
            guard permits(before) else { throw .forbidden(Self.notPermitted) }
            if changes.active == before.active, Self.changedFields(changes) == ["active"] { return before }
            func keep<T>(_ change: T??, _ current: T?) -> T? { change ?? current }
            let active = changes.active ?? before.active
            let rows = try storage {
                try db.query("""
                    UPDATE api_keys SET
                        name = \(changes.name ?? before.name),
                        scopes = \(changes.scopes ?? before.scopes)::text[],
                        allowed_paths = \(changes.allowedPaths ?? before.allowedPaths)::text[],
                        allowed_ips = \(changes.allowedIPs ?? before.allowedIPs)::cidr[],
                        rate_limit_per_minute = \(keep(changes.rateLimitPerMinute, before.limits.rateLimitPerMinute)),
                        rate_limit_per_hour = \(keep(changes.rateLimitPerHour, before.limits.rateLimitPerHour)),
                        burst = \(keep(changes.burst, before.limits.burst)),
                        quota_daily = \(keep(changes.quotaDaily, before.limits.quotaDaily)),
                        quota_monthly = \(keep(changes.quotaMonthly, before.limits.quotaMonthly)),
                        expires_at = to_timestamp(\(keep(changes.expiresAt, before.expiresAt))::bigint / 1000000.0),
                        active = \(active),
                        revoked_at = CASE WHEN \(active) THEN NULL ELSE coalesce(revoked_at, now()) END
                    WHERE id = \(id)::uuid
                    RETURNING \(unsafeSQL: Self.columns)
                    """)
            }
            guard let after = try Self.records(rows).first else { return nil }
            let action: String
            if before.active && !after.active { action = "key.revoked" }
            else if !before.active && after.active { action = "key.restored" }
            else { action = "key.updated" }
            try Audit.append(action: action, targetType: "api_key", targetID: id, by: actor,
                             details: ["changed": Self.changedFields(changes).filter { $0 != "active" || changes.active != before.active }
                                                      .joined(separator: " ")], on: db)
            return after
        }
    }

    /// Deletes a key for good (its audit trail stays). The deleted record, or nil.
    /// `permits`: as for `update`, decided under the row lock.
    public func delete(id: String, by actor: Actor, permits: (KeyRecord) -> Bool = { _ in true }) throws(StoreError) -> KeyRecord? {
        guard isUUID(id) else { return nil }
        return try transaction { db throws(StoreError) -> KeyRecord? in
            guard let locked = try lockedRecord(id, on: db) else { return nil }
            guard permits(locked) else { throw .forbidden(Self.notPermitted) }
            let rows = try storage { try db.query("DELETE FROM api_keys WHERE id = \(id)::uuid RETURNING \(unsafeSQL: Self.columns)") }
            guard let deleted = try Self.records(rows).first else { return nil }
            try Audit.append(action: "key.deleted", targetType: "api_key", targetID: id, by: actor, details: ["name": deleted.name], on: db)
            return deleted
        }
    }

    /// Rotation in one transaction: the new key (same attributes) and the old key's new
    /// expiry (`now + grace`). Nil when no such key; `.conflict` when, under its row lock,
    /// the key is no longer active (a revocation or a rotation without grace committed
    /// while this one waited for the lock).
    /// `permits` decides, on the key as it is under the lock, whether the caller may rotate
    /// it (its scopes may have changed since the caller's check).
    public func rotate(id: String, newHash: [UInt8], newPrefix: String, graceSeconds: Int, by actor: Actor,
                       permits: (KeyRecord) -> Bool = { _ in true }) throws(StoreError) -> (old: KeyRecord, new: KeyRecord)? {
        guard isUUID(id) else { return nil }
        return try transaction { db throws(StoreError) -> (old: KeyRecord, new: KeyRecord)? in
            let locked = try storage {
                try db.query("""
                    SELECT \(unsafeSQL: Self.columns), active AND coalesce(expires_at > clock_timestamp(), true) AS usable
                    FROM api_keys WHERE id = \(id)::uuid FOR UPDATE
                    """)
            }
            guard let row = locked.first, let old = try Self.records(locked).first else { return nil }
            let usable: Bool
            do { usable = try row.decode("usable") } catch {
                throw .database(PostgresError(kind: .other, sqlState: nil, message: String(describing: error)))
            }
            // (clock_timestamp: a rotation that committed while this one waited set the expiry
            // to its own now(), which may be later than this transaction's.)
            guard usable else { throw .conflict("Only an active key can be rotated.") }
            guard permits(old) else { throw .forbidden(Self.notPermitted) }
            let new = try Self.insert(NewKey(hash: newHash, keyPrefix: newPrefix, name: old.name, environment: old.environment,
                                        userID: old.userID, scopes: old.scopes, allowedPaths: old.allowedPaths,
                                        allowedIPs: old.allowedIPs, limits: old.limits, expiresAt: old.expiresAt,
                                        rotatedFrom: old.id), on: db)
            let rows = try storage {
                try db.query("""
                    UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'), now() + make_interval(secs => \(graceSeconds)))
                    WHERE id = \(id)::uuid RETURNING \(unsafeSQL: Self.columns)
                    """)
            }
            guard let expiring = try Self.records(rows).first else { return nil }
            try Audit.append(action: "key.rotated", targetType: "api_key", targetID: id, by: actor,
                             details: ["new_key_id": new.id, "grace_period_seconds": String(graceSeconds)], on: db)
            return (expiring, new)
        }
    }

    // MARK: Helpers

    /// Why `permits` refused, in the words of the route-level check.
    static let notPermitted = "A key cannot manage a key with scopes it does not hold itself."

    /// The key's row, locked until the transaction ends (edits, deletes and rotations of
    /// one key then happen one after another, each seeing the last one's result).
    private func lockedRecord(_ id: String, on db: PostgresConnection) throws(StoreError) -> KeyRecord? {
        try Self.records(storage { try db.query("SELECT \(unsafeSQL: Self.columns) FROM api_keys WHERE id = \(id)::uuid FOR UPDATE") }).first
    }

    private static func insert(_ key: NewKey, on db: PostgresConnection) throws(StoreError) -> KeyRecord {
        let rows = try storage {
            try db.query("""
                INSERT INTO api_keys (key_hash, key_prefix, name, environment, user_id, scopes, allowed_paths, allowed_ips,
                    rate_limit_per_minute, rate_limit_per_hour, burst, quota_daily, quota_monthly, expires_at, rotated_from, lineage_id)
                VALUES (\(PostgresBytes(key.hash)), \(key.keyPrefix), \(key.name), \(key.environment), \(key.userID)::uuid,
                    \(key.scopes)::text[], \(key.allowedPaths)::text[], \(key.allowedIPs)::cidr[],
                    \(key.limits.rateLimitPerMinute), \(key.limits.rateLimitPerHour), \(key.limits.burst),
                    \(key.limits.quotaDaily), \(key.limits.quotaMonthly),
                    to_timestamp(\(key.expiresAt)::bigint / 1000000.0), \(key.rotatedFrom)::uuid, \(key.lineageID)::uuid)
                RETURNING \(unsafeSQL: Self.columns)
                """)
        }
        guard let record = try records(rows).first else {
            throw .database(PostgresError(kind: .other, sqlState: nil, message: "INSERT returned no row"))
        }
        return record
    }

    static func changedFields(_ changes: KeyChanges) -> [String] {
        var names: [String] = []
        if changes.name != nil { names.append("name") }
        if changes.active != nil { names.append("active") }
        if changes.scopes != nil { names.append("scopes") }
        if changes.allowedPaths != nil { names.append("allowed_paths") }
        if changes.allowedIPs != nil { names.append("allowed_ips") }
        if changes.rateLimitPerMinute != nil { names.append("rate_limit_per_minute") }
        if changes.rateLimitPerHour != nil { names.append("rate_limit_per_hour") }
        if changes.burst != nil { names.append("burst") }
        if changes.quotaDaily != nil { names.append("quota_daily") }
        if changes.quotaMonthly != nil { names.append("quota_monthly") }
        if changes.expiresAt != nil { names.append("expires_at") }
        return names
    }

    func transaction<T>(_ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try storage { try db.transaction { db in try body(db) } }
    }
}
