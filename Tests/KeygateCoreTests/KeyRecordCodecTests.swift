import Testing
import Storage
@testable import KeygateCore

private func record(full: Bool) -> KeyRecord {
    var record = KeyRecord(
        id: "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", name: full ? "clé de test ✓" : "k", keyPrefix: "mdw_live_Ab3",
        environment: full ? "test" : "live", userID: full ? "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" : nil,
        scopes: full ? ["self", "symbols:read"] : [], allowedPaths: full ? ["/market-data", "/api/v1/auth"] : [],
        allowedIPs: full ? ["10.0.0.0/8", "2001:db8::/32"] : [],
        limits: full ? KeyLimits(rateLimitPerMinute: 60, rateLimitPerHour: 1_000, burst: 10, quotaDaily: 10_000, quotaMonthly: 100_000)
                     : KeyLimits(),
        active: full, createdAt: -1_000_000, updatedAt: 1_795_262_400_000_000, expiresAt: full ? 1_895_262_400_000_000 : nil,
        lastUsedAt: full ? 1_795_262_401_000_000 : nil, lastUsedEndpoint: full ? "GET /api/v1/auth/key" : nil,
        requestCount: full ? 123_456 : 0, revokedAt: full ? 1_795_262_402_000_000 : nil,
        rotatedFrom: full ? "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" : nil,
        lineageID: full ? "2a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" : nil)
    record.keyHash = full ? [UInt8](0..<32) : []
    return record
}

@Suite("Key record codec (what a cache entry holds)")
struct KeyRecordCodecTests {
    @Test("every field comes back as it went in, set or empty", arguments: [true, false])
    func roundTrip(full: Bool) {
        let original = record(full: full)
        let decoded = KeyRecordCodec.decode(KeyRecordCodec.encode(original))
        #expect(decoded == original)
        #expect(decoded?.keyHash == original.keyHash)
    }

    @Test("any truncation, any trailing byte and any damaged length read as nil, never as another key")
    func damage() {
        let bytes = KeyRecordCodec.encode(record(full: true))
        for end in 0..<bytes.count {
            #expect(KeyRecordCodec.decode(Array(bytes[0..<end])) == nil, "cut at \(end)")
        }
        #expect(KeyRecordCodec.decode(bytes + [0]) == nil)
        // The first field's length, made huge or off by one either way.
        for delta in [1, -1, 0x7F] {
            var damaged = bytes
            damaged[0] = UInt8(truncatingIfNeeded: Int(damaged[0]) + delta)
            #expect(KeyRecordCodec.decode(damaged) == nil, "length changed by \(delta)")
        }
    }

    @Test("random bytes never crash the decoder")
    func random() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let count = Int.random(in: 0...300, using: &generator)
            let noise = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = KeyRecordCodec.decode(noise)
        }
    }
}
