/// What the routes need of the key and user tables. The server's stores are PostgreSQL
/// (`KeyStore`, `UserStore`); the router's unit tests give it stores in memory, so route
/// logic (validation, scopes, escalation, status codes) is tested without a database.
/// Each change writes its audit row with the change, atomically.

/// API keys by hash and by id.
public protocol KeyStoring: AnyObject {
    /// The key with this hash (the authentication lookup).
    func find(hash: [UInt8]) throws(StoreError) -> KeyRecord?
    func get(id: String) throws(StoreError) -> KeyRecord?
    /// Keys oldest first, `limit` per page; `cursor` is a previous page's `nextCursor`.
    func list(_ filter: KeyFilter, limit: Int, cursor: String?) throws(StoreError) -> Page<KeyRecord>
    func create(_ key: NewKey, by actor: Actor) throws(StoreError) -> KeyRecord
    /// Nil when no such key. `permits` is asked about the key as it is when the change is
    /// made (under its row lock): `.forbidden` when it says no.
    func update(id: String, _ changes: KeyChanges, by actor: Actor,
                permits: (KeyRecord) -> Bool) throws(StoreError) -> KeyRecord?
    /// The deleted record, or nil. `permits` as for `update`.
    func delete(id: String, by actor: Actor, permits: (KeyRecord) -> Bool) throws(StoreError) -> KeyRecord?
    /// The new key and the old one expiring after `graceSeconds`, made together; nil when no
    /// such key, `.conflict` when it is no longer active. `permits` as for `update`.
    func rotate(id: String, newHash: [UInt8], newPrefix: String, graceSeconds: Int, by actor: Actor,
                permits: (KeyRecord) -> Bool) throws(StoreError) -> (old: KeyRecord, new: KeyRecord)?
}

/// Users and the default limits of their plan tiers.
public protocol UserStoring: AnyObject {
    func get(id: String) throws(StoreError) -> UserRecord?
    func list(limit: Int, cursor: String?) throws(StoreError) -> Page<UserRecord>
    func create(email: String, planTier: String, externalID: String?, by actor: Actor) throws(StoreError) -> UserRecord
    /// Nil leaves a field alone (`externalID: .some(nil)` clears it); nil when no such user.
    func update(id: String, email: String?, planTier: String?, externalID: String??, by actor: Actor) throws(StoreError) -> UserRecord?
    /// The default limits of a plan tier (for new keys of its users).
    func defaults(tier: String) throws(StoreError) -> KeyLimits
}

extension KeyStore: KeyStoring {}
extension UserStore: UserStoring {}
