import Foundation
import Testing
import HTTP
import Keys
import Posix
import Storage
import StoreContracts
@testable import KeygateCore

/// `/api/v1/admin/api-keys` on memory stores: validation, escalation, status codes.
@Suite("Key administration routes")
struct KeyRoutesTests {
    let base = KeyRoutes.base

    @Test("create returns the raw key once; the store holds only its HMAC; no read shows key or hash")
    func createShowsTheKeyOnce() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let created = harness.send("POST", base, key: admin.raw, body: #"{"name": "ingest", "scopes": ["symbols:read"], "environment": "test"}"#)
        #expect(created.status == .created)
        let body = object(created)
        let raw = try #require(body["key"] as? String)
        let id = try #require(body["id"] as? String)
        let key = try APIKey.parse(raw, expectedPrefix: "mdw")
        #expect(key.environment == .test)
        let stored = try #require(harness.keys.rows.first { $0.id == id })
        #expect(stored.keyHash == harness.hasher.hash(key))
        #expect(body["key_prefix"] as? String == key.displayPrefix)
        #expect(harness.keys.audit.last == MemoryAuditRow(action: "key.created", targetID: id, actorKeyID: admin.record.id))

        for response in [harness.send("GET", base + "/\(id)", key: admin.raw), harness.send("GET", base, key: admin.raw)] {
            #expect(response.status == .ok)
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(!text.contains(raw))
            #expect(!text.contains("\"key\""))
            #expect(!text.contains("hash"))
        }
        #expect(harness.send("GET", "/api/v1/auth/key", key: raw).status == .forbidden, "made with symbols:read only")
    }

    @Test("a key cannot create, edit, rotate or delete keys beyond its own scopes")
    func noEscalation() throws {
        let harness = try RouterHarness()
        let writer = try harness.makeKey(scopes: ["keys:write", "keys:read", "symbols:read"])
        let admin = try harness.makeKey(scopes: ["admin"])
        let before = harness.keys.rows.count
        #expect(harness.send("POST", base, key: writer.raw, body: #"{"name": "x", "scopes": ["admin"]}"#).status == .forbidden)
        #expect(harness.send("POST", base, key: writer.raw, body: #"{"name": "x", "scopes": ["symbols:read", "users:write"]}"#).status == .forbidden)
        #expect(harness.keys.rows.count == before)

        let peer = try harness.makeKey(scopes: ["symbols:read"])
        #expect(harness.send("PATCH", base + "/\(peer.record.id)", key: writer.raw, body: #"{"scopes": ["symbols:read", "admin"]}"#).status == .forbidden)
        #expect(harness.keys.rows.first { $0.id == peer.record.id }?.scopes == ["symbols:read"])

        for (method, path) in [("PATCH", "/\(admin.record.id)"), ("DELETE", "/\(admin.record.id)"), ("POST", "/\(admin.record.id)/rotate")] {
            let response = harness.send(method, base + path, key: writer.raw, body: method == "PATCH" ? #"{"name": "mine"}"# : nil)
            #expect(response.status == .forbidden, "\(method) \(path)")
        }
        #expect(harness.keys.rows.first { $0.id == admin.record.id } == admin.record)
        #expect(harness.keys.audit.isEmpty)
        // Within its scopes it may.
        #expect(harness.send("POST", base, key: writer.raw, body: #"{"name": "x", "scopes": ["symbols:read"]}"#).status == .created)
    }

    @Test("the scope check is asked again of the key as the store changes it (an admin's edit in between)")
    func permitsAtTheChange() throws {
        let harness = try RouterHarness()
        let writer = try harness.makeKey(scopes: ["keys:write", "symbols:read"])
        let target = try harness.makeKey(scopes: ["symbols:read"])
        // Between the route's check and the store's change, another request makes the target an admin key.
        harness.keys.beforeChange = { record in
            KeyRecord(id: record.id, name: record.name, keyPrefix: record.keyPrefix, environment: record.environment,
                      userID: record.userID, scopes: ["admin"], allowedPaths: record.allowedPaths, allowedIPs: record.allowedIPs,
                      limits: record.limits, active: record.active, createdAt: record.createdAt, updatedAt: record.updatedAt,
                      expiresAt: record.expiresAt, lastUsedAt: record.lastUsedAt, lastUsedEndpoint: record.lastUsedEndpoint,
                      requestCount: record.requestCount, revokedAt: record.revokedAt, rotatedFrom: record.rotatedFrom)
        }
        let path = base + "/\(target.record.id)"
        #expect(harness.send("PATCH", path, key: writer.raw, body: #"{"active": false}"#).status == .forbidden)
        #expect(harness.send("DELETE", path, key: writer.raw).status == .forbidden)
        #expect(harness.send("POST", path + "/rotate", key: writer.raw).status == .forbidden)
        #expect(harness.keys.rows.count == 2)
        #expect(harness.keys.rows.allSatisfy { $0.active })
        #expect(harness.keys.audit.isEmpty)
    }

    @Test("bad bodies are 4xx naming the field, and change nothing")
    func validation() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let target = try harness.makeKey(scopes: ["symbols:read"])
        let cases: [(String, String, String?)] = [
            ("POST", #"{"name": "x", "allowed_ip": ["10.0.0.0/8"]}"#, "allowed_ip"),
            ("POST", #"{"name": "x", "scopes": ["symbols:read", "root"]}"#, "scopes[1]"),
            ("POST", #"{"name": "x", "environment": "prod"}"#, "environment"),
            ("POST", #"{"name": "x", "allowed_ips": ["10.0.0.300/8"]}"#, "allowed_ips[0]"),
            ("POST", #"{"name": "x", "rate_limit_per_minute": -1}"#, "rate_limit_per_minute"),
            ("POST", #"{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}"#, "expires_at"),
            ("POST", #"{"name": "x", "user_id": "00000000-0000-4000-8000-000000000000"}"#, "user_id"),
            ("POST", #"{"scopes": []}"#, nil),
            ("PATCH", #"{"user_id": null}"#, "user_id"),
            ("PATCH", #"{"environment": "test"}"#, "environment"),
            ("PATCH", #"{"name": "y", "unknown": 1}"#, "unknown"),
            ("PATCH", #"{}"#, nil),
        ]
        for (method, body, field) in cases {
            let response = harness.send(method, method == "POST" ? base : base + "/\(target.record.id)", key: admin.raw, body: body)
            #expect([.badRequest, .unprocessableContent].contains(response.status), "\(method) \(body)")
            if let field { #expect(object(response)["field"] as? String == field, "\(method) \(body)") }
        }
        #expect(harness.keys.rows.count == 2)
        #expect(harness.keys.rows.first { $0.id == target.record.id } == target.record)
        #expect(harness.keys.audit.isEmpty)
    }

    @Test("show, edit, rotate and delete of a missing or malformed id are 404")
    func notFound() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
            #expect(harness.send("GET", base + "/\(id)", key: admin.raw).status == .notFound)
            #expect(harness.send("PATCH", base + "/\(id)", key: admin.raw, body: #"{"name": "x"}"#).status == .notFound)
            #expect(harness.send("POST", base + "/\(id)/rotate", key: admin.raw).status == .notFound)
            #expect(harness.send("DELETE", base + "/\(id)", key: admin.raw).status == .notFound)
        }
    }

    @Test("a user's plan tier fills in the limits a new key's request left out")
    func planTierDefaults() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let user = try harness.makeUser(tier: "pro")
        let response = harness.send("POST", base, key: admin.raw, body: #"{"name": "x", "user_id": "\#(user.id)", "burst": 5}"#)
        #expect(response.status == .created)
        let body = object(response)
        #expect(body["burst"] as? Int == 5)
        #expect(body["rate_limit_per_minute"] as? Int == 600)
        #expect(body["quota_monthly"] as? Int == 10_000_000)
        #expect(body["user_id"] as? String == user.id)
    }

    @Test("rotation: the new key works at once; the old one for the grace period only; a revoked key is 409")
    func rotation() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let old = try harness.makeKey(scopes: ["self"])
        let immediate = harness.send("POST", base + "/\(old.record.id)/rotate", key: admin.raw)
        #expect(immediate.status == .created)
        let next = try #require(object(immediate)["key"] as? String)
        #expect(object(immediate)["rotated_from"] as? String == old.record.id)
        #expect(harness.send("GET", "/api/v1/auth/key", key: old.raw).status == .unauthorized)
        #expect(harness.send("GET", "/api/v1/auth/key", key: next).status == .ok)
        #expect(harness.keys.audit.last?.action == "key.rotated")

        let graced = harness.send("POST", base + "/\(object(immediate)["id"] as? String ?? "")/rotate", key: admin.raw,
                                  body: #"{"grace_period_seconds": 3600}"#)
        #expect(graced.status == .created)
        #expect(harness.send("GET", "/api/v1/auth/key", key: next).status == .ok, "inside its grace period")
        #expect(harness.send("POST", base + "/\(old.record.id)/rotate", key: admin.raw).status == .conflict, "expired")

        let revoked = try harness.makeKey(scopes: ["self"], active: false)
        #expect(harness.send("POST", base + "/\(revoked.record.id)/rotate", key: admin.raw).status == .conflict)
        let tooLong = harness.send("POST", base + "/\(admin.record.id)/rotate", key: admin.raw, body: #"{"grace_period_seconds": 604801}"#)
        #expect(tooLong.status == .unprocessableContent)
        #expect(object(tooLong)["field"] as? String == "grace_period_seconds")
    }

    @Test("revoking a revoked key changes and audits nothing; delete is 204 and the key stops")
    func revokeAndDelete() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let key = try harness.makeKey(scopes: ["self"])
        let path = base + "/\(key.record.id)"
        let revoked = harness.send("PATCH", path, key: admin.raw, body: #"{"active": false}"#)
        #expect(object(revoked)["status"] as? String == "revoked")
        #expect(harness.send("PATCH", path, key: admin.raw, body: #"{"active": false}"#).status == .ok)
        #expect(harness.keys.audit.map(\.action) == ["key.revoked"])

        let other = try harness.makeKey(scopes: ["self"])
        #expect(harness.send("DELETE", base + "/\(other.record.id)", key: admin.raw).status == .noContent)
        #expect(harness.send("GET", "/api/v1/auth/key", key: other.raw).status == .unauthorized)
        #expect(harness.send("GET", base + "/\(other.record.id)", key: admin.raw).status == .notFound)
        #expect(harness.keys.audit.map(\.action) == ["key.revoked", "key.deleted"])
    }

    @Test("lists: filters are checked, and the cursor walks every key once")
    func listing() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        for _ in 0..<4 { try harness.makeKey(scopes: ["self"], environment: .test) }
        try harness.makeKey(scopes: ["self"], active: false)
        #expect(object(harness.send("GET", base + "?status=gone", key: admin.raw))["field"] as? String == "status")
        #expect(object(harness.send("GET", base + "?environment=prod", key: admin.raw))["field"] as? String == "environment")
        #expect(object(harness.send("GET", base + "?user_id=7", key: admin.raw))["field"] as? String == "user_id")
        #expect(object(harness.send("GET", base + "?limit=0", key: admin.raw))["field"] as? String == "limit")

        var seen: [String] = []
        var cursor: String?
        repeat {
            let response = harness.send("GET", base + "?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), key: admin.raw)
            #expect(response.status == .ok)
            seen += items(response).compactMap { $0["id"] as? String }
            cursor = object(response)["next_cursor"] as? String
        } while cursor != nil && seen.count < 20
        #expect(seen == harness.keys.rows.map(\.id))
        #expect(items(harness.send("GET", base + "?environment=test", key: admin.raw)).count == 4)
        #expect(items(harness.send("GET", base + "?status=revoked", key: admin.raw)).count == 1)
    }
}
