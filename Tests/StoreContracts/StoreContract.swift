import Posix
import Storage

/// What the routes rely on from the key and user stores, written once and run against
/// both the PostgreSQL stores (`StorageTests`, on a real server) and the memory stores the
/// router tests use (`KeygateCoreTests`), so that a router test cannot pass on behaviour
/// the server does not have. Inputs are as the routes pass them: validated and canonical
/// (lower-case UUIDs aside, which both stores must accept in any case).
///
/// Each check returns what did not hold, one line each; empty when everything held.
public enum StoreContract {
    /// `actions(id)`: the audit actions recorded for target `id`, oldest first.
    public static func keys(_ store: any KeyStoring, actions: (String) throws -> [String]) -> [String] {
        var check = Checker()
        check.run("key lifecycle") { try keyLifecycle(store, actions, &$0) }
        check.run("key permits") { try keyPermits(store, actions, &$0) }
        check.run("key rotation") { try keyRotation(store, actions, &$0) }
        check.run("key listing") { try keyListing(store, &$0) }
        return check.failures
    }

    /// `actions(id)` as for `keys`.
    public static func users(_ store: any UserStoring, actions: (String) throws -> [String]) -> [String] {
        var check = Checker()
        check.run("users") { try userLifecycle(store, actions, &$0) }
        return check.failures
    }

    // MARK: Keys

    private static func newKey(_ tag: UInt8, scopes: [String] = ["self"], environment: String = "live") -> NewKey {
        NewKey(hash: [UInt8](repeating: tag, count: 32), keyPrefix: "mdw_\(environment)_c\(tag)", name: "contract \(tag)",
               environment: environment, userID: nil, scopes: scopes, allowedPaths: ["/api/v1/auth"],
               allowedIPs: ["10.0.0.0/8", "192.0.2.1/32"], limits: KeyLimits(rateLimitPerMinute: 5, burst: 2, quotaDaily: 100))
    }

    private static func keyLifecycle(_ store: any KeyStoring, _ actions: (String) throws -> [String], _ check: inout Checker) throws {
        let key = newKey(1)
        let created = try store.create(key, by: .operatorOnHost)
        check.that(created.name == key.name && created.scopes == key.scopes && created.allowedPaths == key.allowedPaths
                       && created.allowedIPs == key.allowedIPs && created.limits == key.limits && created.environment == "live",
                   "create returns the key as given: \(created)")
        check.that(created.active && created.revokedAt == nil && created.expiresAt == nil && created.status(at: Clock.wallMicroseconds()) == "active",
                   "a new key is active")
        check.that(created.lineageID == created.id, "a new key starts its own lineage")
        var joining = newKey(12)
        joining.lineageID = created.id
        let joined = try store.create(joining, by: .operatorOnHost)
        check.that(try joined.lineageID == created.id && store.find(hash: joining.hash)?.lineageID == created.id,
                   "a key created into a lineage keeps it")
        check.that(try store.find(hash: key.hash)?.id == created.id, "find by hash returns the key")
        check.that(try store.find(hash: [UInt8](repeating: 99, count: 32)) == nil, "find of an unknown hash is nil")
        check.that(try store.get(id: created.id.uppercased())?.id == created.id, "get takes the id in any case")
        check.that(try store.get(id: "00000000-0000-4000-8000-000000000000") == nil, "get of an unknown id is nil")
        check.that(try store.get(id: "not-a-uuid") == nil, "get of a malformed id is nil, not an error")
        check.throwsConflict("a second key with the same hash") { _ = try store.create(key, by: .operatorOnHost) }

        var revoke = KeyChanges()
        revoke.active = false
        let revoked = try store.update(id: created.id, revoke, by: .operatorOnHost, permits: { _ in true })
        check.that(revoked?.active == false && revoked?.revokedAt != nil && revoked.map { $0.status(at: Clock.wallMicroseconds()) } == "revoked",
                   "revoking sets active false, revoked_at and the status")
        let again = try store.update(id: created.id, revoke, by: .operatorOnHost, permits: { _ in true })
        check.that(again?.revokedAt == revoked?.revokedAt, "revoking again changes nothing, not even the revocation time")
        var restore = KeyChanges()
        restore.active = true
        let restored = try store.update(id: created.id, restore, by: .operatorOnHost, permits: { _ in true })
        check.that(restored?.active == true && restored?.revokedAt == nil, "restoring clears the revocation")
        var edit = KeyChanges()
        edit.name = "renamed"
        edit.scopes = ["self", "usage:read"]
        edit.rateLimitPerMinute = .some(nil)
        edit.quotaDaily = .some(50)
        edit.expiresAt = .some(Clock.wallMicroseconds() / 1_000_000 * 1_000_000 + 3_600_000_000)
        let edited = try store.update(id: created.id, edit, by: .operatorOnHost, permits: { _ in true })
        check.that(edited?.name == "renamed" && edited?.scopes == ["self", "usage:read"] && edited?.limits.rateLimitPerMinute == nil
                       && edited?.limits.burst == 2 && edited?.limits.quotaDaily == 50 && edited?.expiresAt == edit.expiresAt ?? nil,
                   "an edit changes the fields given and only those: \(String(describing: edited))")
        var clear = KeyChanges()
        clear.expiresAt = .some(nil)
        check.that(try store.update(id: created.id, clear, by: .operatorOnHost, permits: { _ in true })?.expiresAt == nil,
                   "an expiry can be cleared")
        check.that(try store.update(id: "00000000-0000-4000-8000-000000000000", edit, by: .operatorOnHost, permits: { _ in true }) == nil,
                   "updating an unknown key is nil")

        check.that(try store.delete(id: created.id, by: .operatorOnHost, permits: { _ in true })?.id == created.id, "delete returns the key")
        check.that(try store.get(id: created.id) == nil && store.find(hash: key.hash) == nil, "a deleted key is gone")
        check.that(try store.delete(id: created.id, by: .operatorOnHost, permits: { _ in true }) == nil, "deleting it again is nil")
        let trail = try actions(created.id)
        check.that(trail == ["key.created", "key.revoked", "key.restored", "key.updated", "key.updated", "key.deleted"],
                   "one audit row per change, none for the repeated revocation, the trail kept after delete: \(trail)")
    }

    private static func keyPermits(_ store: any KeyStoring, _ actions: (String) throws -> [String], _ check: inout Checker) throws {
        let key = try store.create(newKey(2, scopes: ["admin"]), by: .operatorOnHost)
        var seen: [[String]] = []
        let refuse: (KeyRecord) -> Bool = { record in
            seen.append(record.scopes)
            return false
        }
        var rename = KeyChanges()
        rename.name = "taken over"
        check.throwsForbidden("an update permits refuses") { _ = try store.update(id: key.id, rename, by: .operatorOnHost, permits: refuse) }
        check.throwsForbidden("a delete permits refuses") { _ = try store.delete(id: key.id, by: .operatorOnHost, permits: refuse) }
        check.throwsForbidden("a rotation permits refuses") {
            _ = try store.rotate(id: key.id, newHash: [UInt8](repeating: 3, count: 32), newPrefix: "mdw_live_c3", graceSeconds: 0,
                                 by: .operatorOnHost, permits: refuse)
        }
        check.that(seen == [["admin"], ["admin"], ["admin"]], "permits is asked about the stored key each time: \(seen)")
        check.that(try store.get(id: key.id) == key, "nothing changed")
        check.that(try store.find(hash: [UInt8](repeating: 3, count: 32)) == nil, "no successor was made")
        check.that(try actions(key.id) == ["key.created"], "nothing refused is audited")
    }

    private static func keyRotation(_ store: any KeyStoring, _ actions: (String) throws -> [String], _ check: inout Checker) throws {
        let old = try store.create(newKey(4), by: .operatorOnHost)
        let before = Clock.wallMicroseconds()
        guard let (expiring, new) = try store.rotate(id: old.id, newHash: [UInt8](repeating: 5, count: 32), newPrefix: "mdw_live_c5",
                                                     graceSeconds: 3_600, by: .operatorOnHost, permits: { _ in true }) else {
            check.that(false, "rotating an active key returns both keys")
            return
        }
        let after = Clock.wallMicroseconds()
        check.that(new.rotatedFrom == old.id && new.name == old.name && new.scopes == old.scopes && new.allowedIPs == old.allowedIPs
                       && new.allowedPaths == old.allowedPaths && new.limits == old.limits && new.environment == old.environment
                       && new.keyPrefix == "mdw_live_c5" && new.active,
                   "the successor keeps every attribute: \(new)")
        check.that(try store.find(hash: [UInt8](repeating: 5, count: 32))?.id == new.id, "the successor is found by its hash")
        check.that(new.lineageID == old.id && expiring.lineageID == old.id, "the successor shares its predecessor's lineage")
        let expiry = expiring.expiresAt ?? 0
        check.that(expiring.active && expiry >= before + 3_599_000_000 && expiry <= after + 3_601_000_000,
                   "the old key stays active and expires after the grace period")
        let trail = try actions(old.id)
        check.that(trail == ["key.created", "key.rotated"], "one audit row for the rotation: \(trail)")
        // A rotation never moves an expiry later.
        guard let (again, _) = try store.rotate(id: old.id, newHash: [UInt8](repeating: 6, count: 32), newPrefix: "mdw_live_c6",
                                                graceSeconds: 7_200, by: .operatorOnHost, permits: { _ in true }) else {
            check.that(false, "a key in its grace period can be rotated again")
            return
        }
        check.that(again.expiresAt == expiring.expiresAt, "rotating again keeps the earlier expiry")
        check.that(try store.find(hash: [UInt8](repeating: 6, count: 32))?.lineageID == old.id, "a second successor shares it too")
        let third = try store.rotate(id: new.id, newHash: [UInt8](repeating: 11, count: 32), newPrefix: "mdw_live_c11", graceSeconds: 60,
                                     by: .operatorOnHost, permits: { _ in true })
        check.that(third?.new.lineageID == old.id, "a successor's successor keeps the first key's lineage")
        let renamed = try store.get(id: new.id)
        check.that(renamed?.lineageID == old.id, "get reads the lineage too")

        var revoke = KeyChanges()
        revoke.active = false
        _ = try store.update(id: new.id, revoke, by: .operatorOnHost, permits: { _ in true })
        check.throwsConflict("rotating a revoked key") {
            _ = try store.rotate(id: new.id, newHash: [UInt8](repeating: 7, count: 32), newPrefix: "mdw_live_c7", graceSeconds: 0,
                                 by: .operatorOnHost, permits: { _ in true })
        }
        var expired = newKey(8)
        expired.expiresAt = Clock.wallMicroseconds() - 1_000_000
        let lapsed = try store.create(expired, by: .operatorOnHost)
        check.throwsConflict("rotating an expired key") {
            _ = try store.rotate(id: lapsed.id, newHash: [UInt8](repeating: 9, count: 32), newPrefix: "mdw_live_c9", graceSeconds: 0,
                                 by: .operatorOnHost, permits: { _ in true })
        }
        check.that(try store.rotate(id: "00000000-0000-4000-8000-000000000000", newHash: [UInt8](repeating: 10, count: 32),
                                    newPrefix: "mdw_live_c10", graceSeconds: 0, by: .operatorOnHost, permits: { _ in true }) == nil,
                   "rotating an unknown key is nil")
    }

    private static func keyListing(_ store: any KeyStoring, _ check: inout Checker) throws {
        var made: [KeyRecord] = []
        for tag in UInt8(20)..<UInt8(25) {
            made.append(try store.create(newKey(tag, environment: tag % 2 == 0 ? "live" : "test"), by: .operatorOnHost))
        }
        var revoke = KeyChanges()
        revoke.active = false
        _ = try store.update(id: made[0].id, revoke, by: .operatorOnHost, permits: { _ in true })

        var listed: [KeyRecord] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try store.list(KeyFilter(), limit: 2, cursor: cursor)
            check.that(page.items.count <= 2, "a page holds at most `limit` keys")
            listed += page.items
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 100
        let ids = listed.map(\.id)
        check.that(Set(ids).count == ids.count, "no key is listed twice across pages")
        check.that(made.allSatisfy { key in ids.contains(key.id) }, "every key is listed")
        check.that(zip(listed, listed.dropFirst()).allSatisfy { $0.createdAt <= $1.createdAt }, "oldest first")
        let made1 = Set(made.map(\.id))
        let test = try store.list(KeyFilter(environment: "test"), limit: 500, cursor: nil).items.filter { made1.contains($0.id) }
        check.that(test.map(\.id) == made.filter { $0.environment == "test" }.map(\.id), "the environment filter")
        let revoked = try store.list(KeyFilter(status: "revoked"), limit: 500, cursor: nil).items.filter { made1.contains($0.id) }
        check.that(revoked.map(\.id) == [made[0].id], "the status filter")
        check.throwsInvalidCursor("a cursor the store never issued") { _ = try store.list(KeyFilter(), limit: 2, cursor: "nope") }
    }

    // MARK: Users

    private static func userLifecycle(_ store: any UserStoring, _ actions: (String) throws -> [String], _ check: inout Checker) throws {
        let user = try store.create(email: "contract@example.com", planTier: "pro", externalID: "crm-1", by: .operatorOnHost)
        check.that(user.email == "contract@example.com" && user.planTier == "pro" && user.externalID == "crm-1", "create returns the user")
        check.that(try store.get(id: user.id.uppercased()) == user, "get takes the id in any case")
        check.that(try store.get(id: "not-a-uuid") == nil, "get of a malformed id is nil")
        check.throwsConflict("a second user with the address in another case") {
            _ = try store.create(email: "Contract@Example.com", planTier: "free", externalID: nil, by: .operatorOnHost)
        }
        check.throwsConflict("a second user with the same external id") {
            _ = try store.create(email: "third@example.com", planTier: "free", externalID: "crm-1", by: .operatorOnHost)
        }
        let other = try store.create(email: "other@example.com", planTier: "free", externalID: nil, by: .operatorOnHost)
        check.throwsConflict("taking another user's external id by an edit") {
            _ = try store.update(id: other.id, email: nil, planTier: nil, externalID: .some("crm-1"), by: .operatorOnHost)
        }
        check.throwsConflict("taking another user's address by an edit") {
            _ = try store.update(id: other.id, email: "CONTRACT@example.com", planTier: nil, externalID: nil, by: .operatorOnHost)
        }
        check.that(try store.get(id: other.id) == other, "the refused edit changed nothing")
        let edited = try store.update(id: user.id, email: nil, planTier: "enterprise", externalID: .some(nil), by: .operatorOnHost)
        check.that(edited?.planTier == "enterprise" && edited?.externalID == nil && edited?.email == user.email,
                   "an edit changes the fields given; .some(nil) clears external_id")
        check.that(try store.update(id: "00000000-0000-4000-8000-000000000000", email: nil, planTier: "pro", externalID: nil,
                                    by: .operatorOnHost) == nil, "editing an unknown user is nil")
        let trail = try actions(user.id)
        check.that(trail == ["user.created", "user.updated"], "one audit row per change: \(trail)")
        check.that(try actions(other.id) == ["user.created"], "nothing refused is audited")

        var listed: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try store.list(limit: 1, cursor: cursor)
            listed += page.items.map(\.id)
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 100
        check.that(Set(listed) == [user.id, other.id] && listed.count == 2, "users page through once each: \(listed)")
        check.throwsInvalidCursor("a user cursor the store never issued") { _ = try store.list(limit: 2, cursor: "nope") }
    }
}

/// Collects what did not hold.
struct Checker {
    private(set) var failures: [String] = []

    mutating func that(_ condition: @autoclosure () throws -> Bool, _ what: @autoclosure () -> String) {
        do {
            if try !condition() { failures.append(what()) }
        } catch {
            failures.append("\(what()): threw \(error)")
        }
    }

    /// The routes answer 409 for both: the store's own `.conflict` and a unique constraint.
    mutating func throwsConflict(_ what: String, _ body: () throws -> Void) {
        expectError(what, body) { error in
            switch error {
            case .conflict: return true
            case .database(let failure): return failure.kind == .uniqueViolation
            default: return false
            }
        }
    }

    mutating func throwsForbidden(_ what: String, _ body: () throws -> Void) {
        expectError(what, body) { if case .forbidden = $0 { return true } else { return false } }
    }

    mutating func throwsInvalidCursor(_ what: String, _ body: () throws -> Void) {
        expectError(what, body) { if case .invalidCursor = $0 { return true } else { return false } }
    }

    private mutating func expectError(_ what: String, _ body: () throws -> Void, matching: (StoreError) -> Bool) {
        do {
            try body()
            failures.append("\(what): no error")
        } catch let error as StoreError {
            if !matching(error) { failures.append("\(what): \(error)") }
        } catch {
            failures.append("\(what): \(error)")
        }
    }

    /// Runs a scenario group; an error nobody expected ends it, recorded.
    mutating func run(_ group: String, _ body: (inout Checker) throws -> Void) {
        do { try body(&self) } catch { failures.append("\(group): unexpected \(error)") }
    }
}
