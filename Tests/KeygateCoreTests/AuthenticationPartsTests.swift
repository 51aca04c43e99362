import Testing
import HTTP
import Posix
import Storage
@testable import KeygateCore

@Suite("RFC 3339 parsing")
struct RFC3339Tests {
    @Test("UTC, offsets and fractions give the same instant as the formatter", arguments: [
        ("2026-11-21T05:12:19Z", Int64(1_795_237_939_000_000)),
        ("2026-11-21T05:12:19.123456Z", Int64(1_795_237_939_123_456)),
        ("2026-11-21T05:12:19.5Z", Int64(1_795_237_939_500_000)),
        ("2026-11-21T07:12:19+02:00", Int64(1_795_237_939_000_000)),
        ("2026-11-21T00:12:19-05:00", Int64(1_795_237_939_000_000)),
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("9999-12-31T23:59:59.999999Z", Int64(253_402_300_799_999_999)),
        ("9999-12-31T22:59:59-01:00", Int64(253_402_300_799_000_000)),
        ("0001-01-01T00:00:00Z", Int64(-62_135_596_800_000_000)),
    ])
    func parses(text: String, micros: Int64) {
        #expect(Timestamp.parseRFC3339(text) == micros)
    }

    @Test("round trip through the formatter")
    func roundTrip() {
        let micros: Int64 = 1_700_000_000_123_456
        #expect(Timestamp.parseRFC3339(Timestamp.rfc3339(microseconds: micros)) == micros)
    }

    @Test("malformed timestamps are refused", arguments: [
        "", "tomorrow", "2026-11-21", "2026-11-21T05:12:19", "2026-13-01T00:00:00Z", "2026-11-21T25:00:00Z",
        "2026-11-21T05:12:19.Z", "2026-11-21T05:12:19+2:00", "2026-11-21T05:12:19Zjunk", "2026/11/21T05:12:19Z",
        // In UTC these fall in year 10000 and year 0: not printable as RFC 3339.
        "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00",
    ])
    func refuses(text: String) {
        #expect(Timestamp.parseRFC3339(text) == nil)
    }
}

@Suite("IP networks")
struct IPNetworkTests {
    @Test("CIDR membership, v4 and v6, with v4-mapped v6 addresses")
    func membership() throws {
        let net = try #require(IPNetwork("10.1.2.0/24"))
        #expect(net.contains("10.1.2.3") && net.contains("10.1.2.255"))
        #expect(!net.contains("10.1.3.0") && !net.contains("11.1.2.3") && !net.contains("::1") && !net.contains("garbage"))
        #expect(net.contains("::ffff:10.1.2.9"))
        #expect(try #require(IPNetwork("192.168.1.5")).contains("192.168.1.5"))
        #expect(!(try #require(IPNetwork("192.168.1.5"))).contains("192.168.1.6"))
        let v6 = try #require(IPNetwork("2001:db8::/32"))
        #expect(v6.contains("2001:db8:ffff::1") && !v6.contains("2001:db9::1"))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains("8.8.8.8"))
        #expect(try #require(IPNetwork("10.1.2.0/23")).contains("10.1.3.200"))
    }

    @Test("a v4-mapped block as PostgreSQL prints it is the IPv4 block it maps")
    func mappedBlocks() throws {
        // "::ffff:10.0.0.1" stored as cidr reads back as "::ffff:10.0.0.1/128".
        let host = try #require(IPNetwork("::ffff:10.0.0.1/128"))
        #expect(host.contains("10.0.0.1") && host.contains("::ffff:10.0.0.1") && !host.contains("10.0.0.2"))
        let block = try #require(IPNetwork("::ffff:10.0.0.0/104"))
        #expect(block == IPNetwork("10.0.0.0/8"))
        #expect(block.contains("10.200.0.1") && !block.contains("11.0.0.1"))
        // Shorter than /96 would reach past the mapped range.
        #expect(IPNetwork("::ffff:0.0.0.0/95") == nil)
    }

    @Test("address bits beyond the prefix are found (PostgreSQL's cidr refuses them)")
    func hostBits() throws {
        #expect(try #require(IPNetwork("10.0.0.1/8")).hasHostBits)
        #expect(try #require(IPNetwork("10.1.2.128/24")).hasHostBits)
        #expect(try #require(IPNetwork("2001:db8::1/32")).hasHostBits)
        #expect(try #require(IPNetwork("::ffff:10.0.0.1/104")).hasHostBits)
        for clean in ["10.0.0.0/8", "10.1.2.128/25", "10.0.0.1", "0.0.0.0/0", "2001:db8::/32", "::1", "::ffff:10.0.0.0/104"] {
            #expect(try #require(IPNetwork(clean)).hasHostBits == false, "\(clean)")
        }
    }

    @Test("a network inside another")
    func networkContainment() throws {
        let outer = try #require(IPNetwork("10.0.0.0/8"))
        #expect(outer.contains(try #require(IPNetwork("10.1.0.0/16"))))
        #expect(outer.contains(try #require(IPNetwork("10.1.2.3"))))
        #expect(outer.contains(outer))
        #expect(!outer.contains(try #require(IPNetwork("0.0.0.0/0"))))
        #expect(!outer.contains(try #require(IPNetwork("11.0.0.0/16"))))
        #expect(!outer.contains(try #require(IPNetwork("::ffff:11.0.0.0/112"))))
        #expect(!(try #require(IPNetwork("::/0"))).contains(outer))
    }

    @Test("invalid networks are refused", arguments: [
        "", "300.1.1.1", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/x", "host.example",
        "10.0.0.0/+8", "10.0.0.0/", "10.0.0.0/0008", "::ffff:10.0.0.0/129",
    ])
    func invalid(text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test("allowed path prefixes match whole segments, byte for byte; dot segments never pass")
    func paths() {
        #expect(Authenticator.pathIsUnder("/api/v1/admin/users", "/api/v1/admin"))
        #expect(Authenticator.pathIsUnder("/api/v1/admin", "/api/v1/admin"))
        #expect(Authenticator.pathIsUnder("/api/v1/admin/x", "/api/v1/admin/"))
        #expect(!Authenticator.pathIsUnder("/api/v1/adminx", "/api/v1/admin"))
        #expect(!Authenticator.pathIsUnder("/api/v2/admin", "/api/v1/admin"))
        #expect(!Authenticator.pathIsUnder("/api/v1/admin/../keys", "/api/v1/admin"))
        #expect(!Authenticator.pathIsUnder("/api/v1/admin/./x", "/api/v1/admin"))
        #expect(Authenticator.pathIsUnder("/api/v1/admin/...x", "/api/v1/admin"))
        // What some upstreams resolve as a dot segment: path parameters, backslashes.
        #expect(!Authenticator.pathIsUnder("/market-data/eu/..;/us/x", "/market-data/eu"))
        #expect(!Authenticator.pathIsUnder("/market-data/eu/..;jsessionid=1/us/x", "/market-data/eu"))
        #expect(!Authenticator.pathIsUnder("/market-data/eu/..\\us/x", "/market-data/eu"))
        #expect(!Authenticator.pathIsUnder("/market-data/eu/.;x/y", "/market-data/eu"))
        #expect(Authenticator.pathIsUnder("/market-data/eu/a;b/x", "/market-data/eu"))
        #expect(Authenticator.pathIsUnder("/market-data/eu/;x/y", "/market-data/eu"))
        // Byte for byte: a canonically equivalent spelling is another path.
        #expect(Authenticator.pathIsUnder("/caf\u{E9}/menu", "/caf\u{E9}"))
        #expect(!Authenticator.pathIsUnder("/cafe\u{301}/menu", "/caf\u{E9}"))
        #expect(!Authenticator.pathIsUnder("/caf\u{E9}/menu", "/cafe\u{301}"))
        // A combining mark after the prefix is not a segment boundary.
        #expect(!Authenticator.pathIsUnder("/data\u{301}/x", "/data"))
    }
}

@Suite("Self-service bounds")
struct SelfServiceBoundsTests {
    @Test("each limit is at most the caller's and the plan's, and that bound when left out")
    func limits() throws {
        let caller = KeyLimits(rateLimitPerMinute: 60, quotaDaily: 1_000)
        let plan = KeyLimits(rateLimitPerMinute: 100, rateLimitPerHour: 3_000, quotaDaily: 5_000)
        let defaulted = try SelfServiceBounds.limits(KeyLimits(), caller: caller, plan: plan)
        #expect(defaulted == KeyLimits(rateLimitPerMinute: 60, rateLimitPerHour: 3_000, quotaDaily: 1_000))
        let tighter = try SelfServiceBounds.limits(KeyLimits(rateLimitPerMinute: 10, burst: 5, quotaMonthly: 9), caller: caller, plan: plan)
        #expect(tighter == KeyLimits(rateLimitPerMinute: 10, rateLimitPerHour: 3_000, burst: 5, quotaDaily: 1_000, quotaMonthly: 9))
        for (asked, field) in [(KeyLimits(rateLimitPerMinute: 61), "rate_limit_per_minute"), (KeyLimits(rateLimitPerHour: 3_001), "rate_limit_per_hour"),
                               (KeyLimits(quotaDaily: 1_001), "quota_daily")] {
            let problem = #expect(throws: Problem.self) { try SelfServiceBounds.limits(asked, caller: caller, plan: plan) }
            #expect(problem?.status == .forbidden && problem?.field == field)
        }
    }

    @Test("a restricted caller's IPs and paths bound the new key's; an unrestricted caller's do not")
    func restrictions() throws {
        #expect(try SelfServiceBounds.ips([], caller: ["10.0.0.0/8"]) == ["10.0.0.0/8"])
        #expect(try SelfServiceBounds.ips(["10.1.0.0/16", "10.2.3.4"], caller: ["10.0.0.0/8"]) == ["10.1.0.0/16", "10.2.3.4"])
        #expect(try SelfServiceBounds.ips(["192.168.0.0/16"], caller: []) == ["192.168.0.0/16"])
        let wider = #expect(throws: Problem.self) { try SelfServiceBounds.ips(["10.1.0.0/16", "0.0.0.0/0"], caller: ["10.0.0.0/8"]) }
        #expect(wider?.status == .forbidden && wider?.field == "allowed_ips[1]")
        #expect(try SelfServiceBounds.paths([], caller: ["/api/v1/auth"]) == ["/api/v1/auth"])
        #expect(try SelfServiceBounds.paths(["/api/v1/auth/key"], caller: ["/api/v1/auth"]) == ["/api/v1/auth/key"])
        let outside = #expect(throws: Problem.self) { try SelfServiceBounds.paths(["/api/v1/admin"], caller: ["/api/v1/auth"]) }
        #expect(outside?.field == "allowed_paths[0]")
        #expect(throws: Problem.self) { try SelfServiceBounds.paths(["/api/v1/auth/../admin"], caller: ["/api/v1/auth"]) }
    }

    @Test("an expiring caller's new key expires no later")
    func expiry() throws {
        #expect(try SelfServiceBounds.expiry(nil, caller: 500, field: "expires_at") == 500)
        #expect(try SelfServiceBounds.expiry(400, caller: 500, field: "expires_at") == 400)
        #expect(try SelfServiceBounds.expiry(nil, caller: nil, field: "expires_at") == nil)
        #expect(try SelfServiceBounds.expiry(900, caller: nil, field: "expires_at") == 900)
        let later = #expect(throws: Problem.self) { try SelfServiceBounds.expiry(501, caller: 500, field: "expires_in_days") }
        #expect(later?.field == "expires_in_days")
    }
}
