import Foundation
import Testing
import HTTP
import Keys
import Storage
import StoreContracts
@testable import KeygateCore

/// `/api/v1/auth`: a key managing itself and its own user's keys, on memory stores.
@Suite("Self-service routes")
struct SelfServiceRoutesTests {
    @Test("a key sees and revokes its own user's keys only; another user's key is 404 and untouched")
    func ownUserOnly() throws {
        let harness = try RouterHarness()
        let alice = try harness.makeUser()
        let bob = try harness.makeUser()
        let caller = try harness.makeKey(scopes: ["self"], userID: alice.id)
        let sibling = try harness.makeKey(scopes: ["self"], userID: alice.id)
        let stranger = try harness.makeKey(scopes: ["self"], userID: bob.id)

        let listed = Set(items(harness.send("GET", "/api/v1/auth/keys", key: caller.raw)).compactMap { $0["id"] as? String })
        #expect(listed == [caller.record.id, sibling.record.id])

        #expect(harness.send("DELETE", "/api/v1/auth/keys/\(stranger.record.id)", key: caller.raw).status == .notFound)
        #expect(harness.send("POST", "/api/v1/auth/keys/\(stranger.record.id)/rotate", key: caller.raw).status == .notFound)
        #expect(harness.keys.rows.first { $0.id == stranger.record.id }?.active == true)
        #expect(harness.send("DELETE", "/api/v1/auth/keys/\(sibling.record.id)", key: caller.raw).status == .noContent)
        #expect(harness.send("GET", "/api/v1/auth/key", key: sibling.raw).status == .unauthorized)
        #expect(harness.keys.audit.map(\.action) == ["key.revoked"])
    }

    @Test("a key creates keys for its own user, with no more scopes, limits or environment than its own")
    func boundedCreation() throws {
        let harness = try RouterHarness()
        let user = try harness.makeUser()
        let other = try harness.makeUser()
        let caller = try harness.makeKey(scopes: ["self", "symbols:read"], environment: .test, userID: user.id,
                                         limits: KeyLimits(rateLimitPerMinute: 30))
        let before = harness.keys.rows.count
        let refused: [(String, String)] = [
            (#"{"name": "x", "scopes": ["symbols:write"]}"#, "scopes"),
            (#"{"name": "x", "environment": "live"}"#, "environment"),
            (#"{"name": "x", "rate_limit_per_minute": 31}"#, "rate_limit_per_minute"),
            (#"{"name": "x", "user_id": "\#(other.id)"}"#, "user_id"),
        ]
        for (body, what) in refused {
            #expect(harness.send("POST", "/api/v1/auth/keys", key: caller.raw, body: body).status == .forbidden, "\(what)")
        }
        #expect(harness.keys.rows.count == before)

        let made = harness.send("POST", "/api/v1/auth/keys", key: caller.raw, body: #"{"name": "mine", "scopes": ["symbols:read"]}"#)
        #expect(made.status == .created)
        let body = object(made)
        #expect(body["user_id"] as? String == user.id)
        #expect(body["environment"] as? String == "test", "left out, the environment is the caller's")
        #expect(body["rate_limit_per_minute"] as? Int == 30, "the caller's limit, tighter than the plan's")
        let raw = try #require(body["key"] as? String)
        #expect(try APIKey.parse(raw, expectedPrefix: "mdw").environment == .test)
    }

    @Test("a key that belongs to no user cannot create keys, and lists only itself")
    func userlessKey() throws {
        let harness = try RouterHarness()
        let caller = try harness.makeKey(scopes: ["self"])
        try harness.makeKey(scopes: ["self"])
        #expect(harness.send("POST", "/api/v1/auth/keys", key: caller.raw, body: #"{"name": "x"}"#).status == .forbidden)
        #expect(items(harness.send("GET", "/api/v1/auth/keys", key: caller.raw)).compactMap { $0["id"] as? String } == [caller.record.id])
    }

    @Test("GET /api/v1/auth/key describes the caller, without its key or hash")
    func ownKey() throws {
        let harness = try RouterHarness()
        let caller = try harness.makeKey(scopes: ["self"])
        let response = harness.send("GET", "/api/v1/auth/key", key: caller.raw)
        #expect(response.status == .ok)
        let body = object(response)
        #expect(body["id"] as? String == caller.record.id)
        #expect(body["key"] == nil)
        #expect(!String(decoding: response.body, as: UTF8.self).contains(caller.raw))
        #expect(body["quota"] != nil)
    }
}

/// `/api/v1/admin/users` on memory stores.
@Suite("User routes")
struct UserRoutesTests {
    let base = UserRoutes.base

    @Test("create: validated fields, 409 for a taken email, an audit row naming the actor")
    func create() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["users:write", "users:read"])
        for (body, field) in [(#"{"email": "nobody"}"#, "email"), (#"{"email": "a@example.com", "plan_tier": "gold"}"#, "plan_tier"),
                              (#"{"email": "a@example.com", "external_id": ""}"#, "external_id"),
                              (#"{"email": "a@example.com", "tier": "pro"}"#, "tier")] {
            let response = harness.send("POST", base, key: admin.raw, body: body)
            #expect(response.status == .unprocessableContent, "\(body)")
            #expect(object(response)["field"] as? String == field)
        }
        #expect(harness.users.rows.isEmpty)
        let created = harness.send("POST", base, key: admin.raw, body: #"{"email": " a@example.com ", "plan_tier": "pro"}"#)
        #expect(created.status == .created)
        #expect(object(created)["email"] as? String == "a@example.com")
        let id = try #require(object(created)["id"] as? String)
        #expect(harness.users.audit == [MemoryAuditRow(action: "user.created", targetID: id, actorKeyID: admin.record.id)])
        #expect(harness.send("POST", base, key: admin.raw, body: #"{"email": "A@example.com"}"#).status == .conflict)
        #expect(harness.send("GET", base + "/\(id)", key: admin.raw).status == .ok)
    }

    @Test("read scope cannot write; unknown users are 404; PATCH clears external_id with null; a taken email is 409")
    func readAndEdit() throws {
        let harness = try RouterHarness()
        let reader = try harness.makeKey(scopes: ["users:read"])
        let writer = try harness.makeKey(scopes: ["users:write"])
        let user = try harness.users.create(email: "b@example.com", planTier: "free", externalID: "crm-1", by: .operatorOnHost)
        #expect(harness.send("POST", base, key: reader.raw, body: #"{"email": "c@example.com"}"#).status == .forbidden)
        #expect(harness.send("PATCH", base + "/\(user.id)", key: reader.raw, body: #"{"plan_tier": "pro"}"#).status == .forbidden)
        #expect(harness.send("GET", base + "/00000000-0000-4000-8000-000000000000", key: reader.raw).status == .notFound)
        #expect(harness.send("PATCH", base + "/00000000-0000-4000-8000-000000000000", key: writer.raw, body: #"{"plan_tier": "pro"}"#).status == .notFound)
        #expect(harness.send("PATCH", base + "/\(user.id)", key: writer.raw, body: #"{}"#).status == .unprocessableContent)

        let edited = harness.send("PATCH", base + "/\(user.id)", key: writer.raw, body: #"{"external_id": null, "plan_tier": "enterprise"}"#)
        #expect(edited.status == .ok)
        #expect(harness.users.rows.first?.externalID == nil)
        #expect(harness.users.rows.first?.planTier == "enterprise")
        #expect(harness.users.rows.first?.email == "b@example.com")

        // Another user's address, in any case: 409, nothing changed, nothing audited.
        let other = try harness.users.create(email: "c@example.com", planTier: "free", externalID: nil, by: .operatorOnHost)
        let audited = harness.users.audit.count
        #expect(harness.send("PATCH", base + "/\(other.id)", key: writer.raw, body: #"{"email": "B@example.com"}"#).status == .conflict)
        #expect(try harness.users.get(id: other.id)?.email == "c@example.com")
        #expect(harness.users.audit.count == audited)
    }
}
