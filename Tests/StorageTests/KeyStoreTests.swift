import Testing
import Postgres
@testable import Storage
import StoreContracts

@Suite("API keys against a real server", .serialized,
       .enabled(if: adminURL != nil || isCI, "KG_TEST_DIRECT_DATABASE_URL is not set (run through scripts/test)"))
struct KeyStoreTests {
    private func newKey(_ tag: UInt8, scopes: [String] = ["self"]) -> NewKey {
        NewKey(hash: [UInt8](repeating: tag, count: 32), keyPrefix: "mdw_live_t\(tag)", name: "key \(tag)", environment: "live",
               userID: nil, scopes: scopes, allowedIPs: ["10.0.0.0/8"], limits: KeyLimits(rateLimitPerMinute: 5))
    }

    private func actions(_ id: String, _ db: PostgresConnection) throws -> [String] {
        try db.query("SELECT action FROM audit_log WHERE target_id = \(id) ORDER BY id").map { try $0.decode("action", as: String.self) }
    }

    @Test("the PostgreSQL key store keeps the store contract the router tests' memory store keeps")
    func contract() throws {
        try withMigratedDatabase { db in
            let failures = StoreContract.keys(KeyStore(connection: db), actions: { id in try actions(id, db) })
            #expect(failures == [])
        }
    }

    @Test("a key is found by its hash as stored; each change is audited in its own transaction")
    func lifecycle() throws {
        try withMigratedDatabase { db in
            let store = KeyStore(connection: db)
            let created = try store.create(newKey(1), by: .operatorOnHost)
            let found = try #require(try store.find(hash: [UInt8](repeating: 1, count: 32)))
            #expect(found.id == created.id && found.allowedIPs == ["10.0.0.0/8"] && found.limits.rateLimitPerMinute == 5)
            #expect(try store.find(hash: [UInt8](repeating: 2, count: 32)) == nil)
            var revoke = KeyChanges()
            revoke.active = false
            let revoked = try #require(try store.update(id: created.id, revoke, by: .operatorOnHost))
            #expect(!revoked.active && revoked.revokedAt != nil)
            // Again: nothing changes (not even the revocation time), nothing is audited.
            #expect(try store.update(id: created.id, revoke, by: .operatorOnHost)?.revokedAt == revoked.revokedAt)
            #expect(try store.get(id: created.id)?.revokedAt == revoked.revokedAt)
            #expect(try actions(created.id, db) == ["key.created", "key.revoked"])
            #expect(try store.delete(id: created.id, by: .operatorOnHost)?.id == created.id)
            #expect(try store.get(id: created.id) == nil)
            #expect(try actions(created.id, db) == ["key.created", "key.revoked", "key.deleted"]) // the trail stays
            #expect(try store.update(id: "not-a-uuid", revoke, by: .operatorOnHost) == nil)
        }
    }

    @Test("permits is decided on the row under its lock: refused, nothing changes and nothing is audited")
    func permits() throws {
        try withMigratedDatabase { db in
            let store = KeyStore(connection: db)
            let key = try store.create(newKey(3, scopes: ["self", "admin"]), by: .operatorOnHost)
            var rename = KeyChanges()
            rename.name = "taken over"
            let noAdmin: (KeyRecord) -> Bool = { !$0.scopes.contains("admin") }
            #expect(throws: StoreError.self) { try store.update(id: key.id, rename, by: .operatorOnHost, permits: noAdmin) }
            #expect(throws: StoreError.self) { try store.delete(id: key.id, by: .operatorOnHost, permits: noAdmin) }
            #expect(throws: StoreError.self) {
                try store.rotate(id: key.id, newHash: [UInt8](repeating: 4, count: 32), newPrefix: "mdw_live_t4", graceSeconds: 0,
                                 by: .operatorOnHost, permits: noAdmin)
            }
            #expect(try store.get(id: key.id)?.name == "key 3")
            #expect(try actions(key.id, db) == ["key.created"])
            #expect(try store.find(hash: [UInt8](repeating: 4, count: 32)) == nil) // no successor was made
        }
    }

    @Test("rotation: the successor keeps every attribute; a revoked key cannot rotate (conflict)")
    func rotation() throws {
        try withMigratedDatabase { db in
            let store = KeyStore(connection: db)
            let old = try store.create(newKey(5), by: .operatorOnHost)
            let (expiring, new) = try #require(try store.rotate(id: old.id, newHash: [UInt8](repeating: 6, count: 32), newPrefix: "mdw_live_t6",
                                                                graceSeconds: 3_600, by: .operatorOnHost))
            #expect(new.rotatedFrom == old.id && new.scopes == old.scopes && new.allowedIPs == old.allowedIPs && new.limits == old.limits)
            #expect(expiring.expiresAt != nil && expiring.active)
            var revoke = KeyChanges()
            revoke.active = false
            _ = try store.update(id: new.id, revoke, by: .operatorOnHost)
            #expect(throws: StoreError.self) {
                try store.rotate(id: new.id, newHash: [UInt8](repeating: 7, count: 32), newPrefix: "mdw_live_t7", graceSeconds: 0, by: .operatorOnHost)
            }
            #expect(try actions(old.id, db) == ["key.created", "key.rotated"])
        }
    }
}
