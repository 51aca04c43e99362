import Foundation
import Posix
import Storage

/// One audit row as the memory stores write it.
public struct MemoryAuditRow: Equatable, Sendable {
    public let action: String
    public let targetID: String
    public let actorKeyID: String?

    public init(action: String, targetID: String, actorKeyID: String?) {
        self.action = action
        self.targetID = targetID
        self.actorKeyID = actorKeyID
    }
}

/// The key table in memory, for router tests. `KeyStoreContract` holds it and the
/// PostgreSQL store to the same behaviour: one audit row with every change, `permits` asked
/// about the row as it is when the change is made, rotation refused with `.conflict` when
/// the key is no longer active, idempotent revoke/restore changing and auditing nothing.
public final class MemoryKeyStore: KeyStoring {
    public private(set) var rows: [KeyRecord] = []
    public private(set) var audit: [MemoryAuditRow] = []
    /// How often the authentication lookup ran (a malformed key must never get here).
    public private(set) var lookups = 0
    /// Runs on the row just before a change reads it: another request's edit committing
    /// between the route's check and the change.
    public var beforeChange: ((KeyRecord) -> KeyRecord)?

    public init() {}
    private var clock: Int64 = Clock.wallMicroseconds()

    private func tick() -> Int64 {
        clock += 1
        return clock
    }

    /// Puts a key straight into the table (a test's fixture), unaudited.
    @discardableResult
    public func insert(_ key: NewKey, active: Bool = true) -> KeyRecord {
        let now = tick()
        var record = KeyRecord(id: UUID().uuidString.lowercased(), name: key.name, keyPrefix: key.keyPrefix,
                               environment: key.environment, userID: key.userID, scopes: key.scopes,
                               allowedPaths: key.allowedPaths, allowedIPs: key.allowedIPs, limits: key.limits,
                               active: active, createdAt: now, updatedAt: now, expiresAt: key.expiresAt, lastUsedAt: nil,
                               lastUsedEndpoint: nil, requestCount: 0, revokedAt: active ? nil : now, rotatedFrom: key.rotatedFrom,
                               lineageID: key.lineageID ?? rows.first { $0.id == key.rotatedFrom }?.lineageID)
        record.keyHash = key.hash
        rows.append(record)
        return record
    }

    public func find(hash: [UInt8]) throws(StoreError) -> KeyRecord? {
        lookups += 1
        return rows.first { $0.keyHash == hash }
    }

    public func get(id: String) throws(StoreError) -> KeyRecord? {
        rows.first { $0.id == id.lowercased() }
    }

    /// The cursor is the last shown key's id.
    public func list(_ filter: KeyFilter, limit: Int, cursor: String?) throws(StoreError) -> Page<KeyRecord> {
        var start = 0
        if let cursor {
            guard let index = rows.firstIndex(where: { $0.id == cursor }) else { throw .invalidCursor }
            start = index + 1
        }
        let now = Clock.wallMicroseconds()
        let matching = rows[start...].filter { row in
            (filter.userID == nil || row.userID == filter.userID?.lowercased())
                && (filter.environment == nil || row.environment == filter.environment)
                && (filter.status == nil || row.status(at: now) == filter.status)
        }
        let items = Array(matching.prefix(limit))
        return Page(items: items, nextCursor: matching.count > limit ? items.last?.id : nil)
    }

    public func create(_ key: NewKey, by actor: Actor) throws(StoreError) -> KeyRecord {
        guard !rows.contains(where: { $0.keyHash == key.hash }) else { throw .conflict("duplicate key hash") }
        let record = insert(key)
        audit.append(MemoryAuditRow(action: "key.created", targetID: record.id, actorKeyID: actor.keyID))
        return record
    }

    public func update(id: String, _ changes: KeyChanges, by actor: Actor,
                permits: (KeyRecord) -> Bool) throws(StoreError) -> KeyRecord? {
        guard let index = lockedIndex(id) else { return nil }
        let before = rows[index]
        guard permits(before) else { throw .forbidden("not permitted") }
        if changes.active == before.active, changes.isEmpty(except: \.active) { return before }
        let active = changes.active ?? before.active
        let now = tick()
        var after = KeyRecord(
            id: before.id, name: changes.name ?? before.name, keyPrefix: before.keyPrefix, environment: before.environment,
            userID: before.userID, scopes: changes.scopes ?? before.scopes, allowedPaths: changes.allowedPaths ?? before.allowedPaths,
            allowedIPs: changes.allowedIPs ?? before.allowedIPs,
            limits: KeyLimits(rateLimitPerMinute: changes.rateLimitPerMinute ?? before.limits.rateLimitPerMinute,
                              rateLimitPerHour: changes.rateLimitPerHour ?? before.limits.rateLimitPerHour,
                              burst: changes.burst ?? before.limits.burst,
                              quotaDaily: changes.quotaDaily ?? before.limits.quotaDaily,
                              quotaMonthly: changes.quotaMonthly ?? before.limits.quotaMonthly),
            active: active, createdAt: before.createdAt, updatedAt: now, expiresAt: changes.expiresAt ?? before.expiresAt,
            lastUsedAt: before.lastUsedAt, lastUsedEndpoint: before.lastUsedEndpoint, requestCount: before.requestCount,
            revokedAt: active ? nil : (before.revokedAt ?? now), rotatedFrom: before.rotatedFrom, lineageID: before.lineageID)
        after.keyHash = before.keyHash
        rows[index] = after
        let action = before.active == after.active ? "key.updated" : (after.active ? "key.restored" : "key.revoked")
        audit.append(MemoryAuditRow(action: action, targetID: id, actorKeyID: actor.keyID))
        return after
    }

    public func delete(id: String, by actor: Actor, permits: (KeyRecord) -> Bool) throws(StoreError) -> KeyRecord? {
        guard let index = lockedIndex(id) else { return nil }
        guard permits(rows[index]) else { throw .forbidden("not permitted") }
        let deleted = rows.remove(at: index)
        audit.append(MemoryAuditRow(action: "key.deleted", targetID: deleted.id, actorKeyID: actor.keyID))
        return deleted
    }

    public func rotate(id: String, newHash: [UInt8], newPrefix: String, graceSeconds: Int, by actor: Actor,
                permits: (KeyRecord) -> Bool) throws(StoreError) -> (old: KeyRecord, new: KeyRecord)? {
        guard let index = lockedIndex(id) else { return nil }
        let old = rows[index]
        guard old.status(at: Clock.wallMicroseconds()) == "active" else { throw .conflict("Only an active key can be rotated.") }
        guard permits(old) else { throw .forbidden("not permitted") }
        let new = insert(NewKey(hash: newHash, keyPrefix: newPrefix, name: old.name, environment: old.environment, userID: old.userID,
                                scopes: old.scopes, allowedPaths: old.allowedPaths, allowedIPs: old.allowedIPs, limits: old.limits,
                                expiresAt: old.expiresAt, rotatedFrom: old.id))
        var changes = KeyChanges()
        changes.expiresAt = .some(min(old.expiresAt ?? .max, Clock.wallMicroseconds() + Int64(graceSeconds) * 1_000_000))
        let expiring = try update(id: id, changes, by: actor, permits: { _ in true })
        audit.removeLast()  // the rotation's own row stands for the expiry it set
        audit.append(MemoryAuditRow(action: "key.rotated", targetID: id, actorKeyID: actor.keyID))
        return expiring.map { ($0, new) }
    }

    /// The row's index after `beforeChange` has had its say.
    private func lockedIndex(_ id: String) -> Int? {
        guard let index = rows.firstIndex(where: { $0.id == id.lowercased() }) else { return nil }
        if let beforeChange { rows[index] = beforeChange(rows[index]) }
        return index
    }
}

private extension KeyChanges {
    /// Whether nothing but the field at `path` is set.
    func isEmpty(except path: WritableKeyPath<KeyChanges, Bool?>) -> Bool {
        var others = self
        others[keyPath: path] = nil
        return others.isEmpty
    }
}

/// The user table in memory, with the plan tiers of migration 0001's seed data (which
/// `StorageTests` compare with the database's).
public final class MemoryUserStore: UserStoring {
    public private(set) var rows: [UserRecord] = []
    public private(set) var audit: [MemoryAuditRow] = []
    public var tiers: [String: KeyLimits] = [
        "free": KeyLimits(rateLimitPerMinute: 60, rateLimitPerHour: 1_000, burst: 10, quotaDaily: 10_000, quotaMonthly: 100_000),
        "pro": KeyLimits(rateLimitPerMinute: 600, rateLimitPerHour: 20_000, burst: 50, quotaDaily: 500_000, quotaMonthly: 10_000_000),
        "enterprise": KeyLimits(rateLimitPerMinute: 6_000, rateLimitPerHour: 300_000, burst: 200),
    ]

    public init() {}

    public func get(id: String) throws(StoreError) -> UserRecord? {
        rows.first { $0.id == id.lowercased() }
    }

    public func list(limit: Int, cursor: String?) throws(StoreError) -> Page<UserRecord> {
        var start = 0
        if let cursor {
            guard let index = rows.firstIndex(where: { $0.id == cursor }) else { throw .invalidCursor }
            start = index + 1
        }
        let items = Array(rows[start...].prefix(limit))
        return Page(items: items, nextCursor: rows.count - start > limit ? items.last?.id : nil)
    }

    public func create(email: String, planTier: String, externalID: String?, by actor: Actor) throws(StoreError) -> UserRecord {
        guard !rows.contains(where: { $0.email.lowercased() == email.lowercased() }) else { throw .conflict("A user with this email exists.") }
        if let externalID, rows.contains(where: { $0.externalID == externalID }) { throw .conflict("A user with this external id exists.") }
        let now = Clock.wallMicroseconds()
        let user = UserRecord(id: UUID().uuidString.lowercased(), email: email, planTier: planTier, externalID: externalID,
                              createdAt: now, updatedAt: now)
        rows.append(user)
        audit.append(MemoryAuditRow(action: "user.created", targetID: user.id, actorKeyID: actor.keyID))
        return user
    }

    public func update(id: String, email: String?, planTier: String?, externalID: String??, by actor: Actor) throws(StoreError) -> UserRecord? {
        guard let index = rows.firstIndex(where: { $0.id == id.lowercased() }) else { return nil }
        if let email, rows.contains(where: { $0.id != id.lowercased() && $0.email.lowercased() == email.lowercased() }) {
            throw .conflict("A user with this email exists.")
        }
        if case .some(.some(let externalID)) = externalID, rows.contains(where: { $0.id != id.lowercased() && $0.externalID == externalID }) {
            throw .conflict("A user with this external id exists.")
        }
        let before = rows[index]
        let user = UserRecord(id: before.id, email: email ?? before.email, planTier: planTier ?? before.planTier,
                              externalID: externalID ?? before.externalID, createdAt: before.createdAt,
                              updatedAt: Clock.wallMicroseconds())
        rows[index] = user
        audit.append(MemoryAuditRow(action: "user.updated", targetID: id, actorKeyID: actor.keyID))
        return user
    }

    public func defaults(tier: String) throws(StoreError) -> KeyLimits {
        tiers[tier] ?? KeyLimits()
    }
}
