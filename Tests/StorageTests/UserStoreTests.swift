import Testing
import Postgres
@testable import Storage
import StoreContracts

@Suite("Users against a real server", .serialized,
       .enabled(if: adminURL != nil || isCI, "KG_TEST_DIRECT_DATABASE_URL is not set (run through scripts/test)"))
struct UserStoreTests {
    private func isUniqueViolation(_ body: () throws -> Void) -> Bool {
        do { try body() } catch let StoreError.database(error) { return error.kind == .uniqueViolation } catch { return false }
        return false
    }

    @Test("the PostgreSQL user store keeps the store contract; its plan tiers are the memory store's")
    func contract() throws {
        try withMigratedDatabase { db in
            let store = UserStore(connection: db)
            let failures = StoreContract.users(store, actions: { id in
                try db.query("SELECT action FROM audit_log WHERE target_id = \(id) ORDER BY id").map { try $0.decode("action", as: String.self) }
            })
            #expect(failures == [])
            let memory = MemoryUserStore()
            for tier in ["free", "pro", "enterprise"] {
                let stored = try store.defaults(tier: tier), expected = try memory.defaults(tier: tier)
                #expect(stored == expected, "\(tier)")
            }
        }
    }

    @Test("emails and external ids are unique (emails case-insensitively); every change is audited")
    func uniqueness() throws {
        try withMigratedDatabase { db in
            let users = UserStore(connection: db)
            let ann = try users.create(email: "Ann@Example.com", planTier: "pro", externalID: "whop_1", by: .operatorOnHost)
            #expect(ann.email == "Ann@Example.com" && ann.planTier == "pro" && ann.externalID == "whop_1")
            #expect(isUniqueViolation { _ = try users.create(email: "ann@example.COM", planTier: "free", externalID: nil, by: .operatorOnHost) })
            #expect(isUniqueViolation { _ = try users.create(email: "bob@example.com", planTier: "free", externalID: "whop_1", by: .operatorOnHost) })
            let bob = try users.create(email: "bob@example.com", planTier: "free", externalID: nil, by: .operatorOnHost)
            #expect(isUniqueViolation { _ = try users.update(id: bob.id, email: "ANN@example.com", planTier: nil, externalID: nil, by: .operatorOnHost) })
            let cleared = try #require(try users.update(id: ann.id, email: nil, planTier: "enterprise", externalID: .some(nil), by: .operatorOnHost))
            #expect(cleared.planTier == "enterprise" && cleared.externalID == nil && cleared.updatedAt >= ann.updatedAt)
            #expect(try users.update(id: "not-a-uuid", email: nil, planTier: "pro", externalID: nil, by: .operatorOnHost) == nil)
            let audited = try db.query("SELECT action FROM audit_log WHERE target_type = 'user' ORDER BY id").map { try $0.decode("action", as: String.self) }
            #expect(audited == ["user.created", "user.created", "user.updated"]) // refused changes left no row
        }
    }

    @Test("pages hold every user once, oldest first; plan tiers give default limits")
    func pagingAndTiers() throws {
        try withMigratedDatabase { db in
            let users = UserStore(connection: db)
            var made: [String] = []
            for index in 0..<5 { made.append(try users.create(email: "u\(index)@example.com", planTier: "free", externalID: nil, by: .operatorOnHost).id) }
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try users.list(limit: 2, cursor: cursor)
                #expect(page.items.count <= 2)
                seen += page.items.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == made)
            #expect(throws: StoreError.self) { try users.list(limit: 2, cursor: "garbage") }
            let free = try users.defaults(tier: "free"), enterprise = try users.defaults(tier: "enterprise")
            #expect(free.rateLimitPerMinute != nil && free.quotaDaily != nil)
            #expect((enterprise.rateLimitPerMinute ?? Int.max) >= (free.rateLimitPerMinute ?? 0))
        }
    }
}
