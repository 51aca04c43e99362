import Foundation
import Testing
import HTTP
import Keys
import Posix
import Storage
import StoreContracts
@testable import KeygateCore

/// The authentication middleware as every protected route runs it, on memory stores.
@Suite("Authentication through the router")
struct AuthenticationRoutesTests {
    static let ownKey = "/api/v1/auth/key"

    @Test("missing, malformed, bad-checksum, unknown, revoked and expired keys get one identical 401")
    func identicalUnauthorized() throws {
        let harness = try RouterHarness()
        let revoked = try harness.makeKey(scopes: ["self"], active: false)
        let expired = try harness.makeKey(scopes: ["self"], expiresAt: Clock.wallMicroseconds() - 1_000_000)
        let valid = try harness.makeKey(scopes: ["self"])
        var badChecksum = Array(valid.raw)
        badChecksum[badChecksum.count - 1] = badChecksum.last == "A" ? "B" : "A"
        let unknown = try APIKey.generate(prefix: "mdw", environment: .live).rawValue
        let presented: [String?] = [nil, "", "mdw_live_short", "not a key at all", String(badChecksum), unknown, revoked.raw, expired.raw]
        var bodies: Set<[UInt8]> = []
        for key in presented {
            let response = harness.send("GET", Self.ownKey, key: key)
            #expect(response.status == .unauthorized, "key \(key ?? "nil")")
            #expect(response.headers["WWW-Authenticate"] == #"Bearer realm="keygate""#)
            bodies.insert(response.body)
        }
        #expect(bodies.count == 1, "every refusal must read the same")
        #expect(harness.send("GET", Self.ownKey, key: valid.raw).status == .ok)
    }

    @Test("a key whose format or checksum is wrong never reaches the store")
    func malformedKeysSkipTheLookup() throws {
        let harness = try RouterHarness()
        let valid = try harness.makeKey(scopes: ["self"])
        var transposed = Array(valid.raw)
        transposed.swapAt(12, 13)
        if transposed == Array(valid.raw) { transposed.swapAt(14, 15) }
        for key in ["mdw_live_", "xyz_live_" + valid.raw.dropFirst(9), String(transposed), valid.raw + "0", "mdw_prod_" + valid.raw.dropFirst(9)] {
            #expect(harness.send("GET", Self.ownKey, key: key).status == .unauthorized)
        }
        #expect(harness.keys.lookups == 0)
        #expect(harness.send("GET", Self.ownKey, key: valid.raw).status == .ok)
        #expect(harness.keys.lookups == 1)
    }

    @Test("Authorization: Bearer works; the api_key query parameter only where configured")
    func keyLocations() throws {
        let harness = try RouterHarness()
        let key = try harness.makeKey(scopes: ["self"])
        #expect(harness.send("GET", Self.ownKey, key: nil, headers: [("Authorization", "Bearer \(key.raw)")]).status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: nil, headers: [("Authorization", "Basic \(key.raw)")]).status == .unauthorized)
        #expect(harness.send("GET", Self.ownKey + "?api_key=\(key.raw)", key: nil).status == .unauthorized)

        let permissive = try RouterHarness { $0.allowQueryKey = true }
        let other = try permissive.makeKey(scopes: ["self"])
        #expect(permissive.send("GET", Self.ownKey + "?api_key=\(other.raw)", key: nil).status == .ok)
    }

    @Test("a valid key lacking the route's scope is 403 naming the scope, and admin holds every scope")
    func scopes() throws {
        let harness = try RouterHarness()
        let reader = try harness.makeKey(scopes: ["symbols:read"])
        let response = harness.send("GET", KeyRoutes.base, key: reader.raw)
        #expect(response.status == .forbidden)
        #expect((object(response)["detail"] as? String)?.contains("'keys:read'") == true)
        let admin = try harness.makeKey(scopes: ["admin"])
        #expect(harness.send("GET", KeyRoutes.base, key: admin.raw).status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: admin.raw).status == .ok)
    }

    @Test("allowed_ips is checked against the address nginx saw, never X-Forwarded-For or X-Real-IP")
    func allowedIPs() throws {
        let harness = try RouterHarness()
        let key = try harness.makeKey(scopes: ["self"], allowedIPs: ["10.0.0.0/8", "2001:db8::/32"])
        let spoofed = [("X-Forwarded-For", "10.1.2.3"), ("X-Real-IP", "10.1.2.3")]
        #expect(harness.send("GET", Self.ownKey, key: key.raw, remoteAddress: "192.0.2.10", headers: spoofed).status == .forbidden)
        #expect(harness.send("GET", Self.ownKey, key: key.raw, remoteAddress: "10.1.2.3").status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: key.raw, remoteAddress: "2001:db8::7").status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: key.raw, remoteAddress: "11.0.0.1").status == .forbidden)
    }

    @Test("allowed_paths admits the listed subtrees only, by whole segments")
    func allowedPaths() throws {
        let harness = try RouterHarness()
        let key = try harness.makeKey(scopes: ["admin"], allowedPaths: ["/api/v1/auth"])
        #expect(harness.send("GET", Self.ownKey, key: key.raw).status == .ok)
        #expect(harness.send("GET", "/api/v1/auth/keys", key: key.raw).status == .ok)
        #expect(harness.send("GET", KeyRoutes.base, key: key.raw).status == .forbidden)
        #expect(harness.send("GET", "/api/v1/auth/../admin/api-keys", key: key.raw).status != .ok)
    }

    @Test("a revocation in the store stops the key on its next request (no cache here)")
    func revocationTakesEffect() throws {
        let harness = try RouterHarness()
        let admin = try harness.makeKey(scopes: ["admin"])
        let key = try harness.makeKey(scopes: ["self"])
        #expect(harness.send("GET", Self.ownKey, key: key.raw).status == .ok)
        #expect(harness.send("PATCH", KeyRoutes.base + "/\(key.record.id)", key: admin.raw, body: #"{"active": false}"#).status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: key.raw).status == .unauthorized)
        #expect(harness.send("PATCH", KeyRoutes.base + "/\(key.record.id)", key: admin.raw, body: #"{"active": true}"#).status == .ok)
        #expect(harness.send("GET", Self.ownKey, key: key.raw).status == .ok)
    }
}
