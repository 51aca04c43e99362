import Cryptography
import Keys
import Posix
import SharedMemory
import Storage

/// The request path's shared-memory work, timed in a loop (`keygate bench-cache`, run by
/// scripts/bench): what a cached key check costs without the FastCGI and TLS around it.
public enum CacheBenchmark {
    public struct Result: Sendable {
        public let name: String
        public let nanosecondsPerOperation: Double
    }

    public static func run(iterations: Int) throws -> [Result] {
        let entries = 32_768
        let cache = KeyCache.create(in: try SharedRegion.anonymous(size: KeyCache.byteCount(entries: entries, payloadCapacity: HostState.payloadCapacity)),
                                    entries: entries, payloadCapacity: HostState.payloadCapacity)
        let rates = RateTable.create(in: try SharedRegion.anonymous(size: RateTable.byteCount(entries: entries)), entries: entries)
        let hasher = try KeyHasher(pepper: try SecureRandom.bytes(32))
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let hash = hasher.hash(key)
        var record = KeyRecord(
            id: "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", name: "benchmark key", keyPrefix: key.displayPrefix, environment: "live",
            userID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", scopes: ["self", "symbols:read"], allowedPaths: [], allowedIPs: [],
            limits: KeyLimits(rateLimitPerMinute: 1_000_000_000, rateLimitPerHour: 1_000_000_000), active: true,
            createdAt: 0, updatedAt: 0, expiresAt: nil, lastUsedAt: nil, lastUsedEndpoint: nil, requestCount: 0, revokedAt: nil, rotatedFrom: nil)
        record.keyHash = hash
        let now = Clock.wallMicroseconds()
        cache.store(hash, payload: KeyRecordCodec.encode(record), now: now, ttl: 3_600_000_000, epoch: cache.epoch)
        let id = UUIDBytes.parse(record.id) ?? []
        let limits = RateLimits(perMinute: 1_000_000_000, perHour: 1_000_000_000)

        func time(_ name: String, _ body: () -> Void) -> Result {
            for _ in 0..<(iterations / 10) { body() } // warm-up
            let start = Clock.monotonicMicroseconds()
            for _ in 0..<iterations { body() }
            let elapsed = Clock.monotonicMicroseconds() - start
            return Result(name: name, nanosecondsPerOperation: Double(elapsed) * 1_000 / Double(iterations))
        }
        var sink = 0
        let results = [
            time("cache lookup (hit, payload copied out)") {
                if case .known(let bytes) = cache.lookup(hash, now: now) { sink &+= bytes.count }
            },
            time("cache lookup + decode of the record") {
                if case .known(let bytes) = cache.lookup(hash, now: now), let found = KeyRecordCodec.decode(bytes) { sink &+= found.scopes.count }
            },
            time("rate-limit check and count (minute + hour)") {
                if case .decided(let decision) = rates.check(id, limits: limits, now: Clock.wallMicroseconds()) { sink &+= decision.remaining }
            },
            time("cache lookup + decode + rate-limit check") {
                if case .known(let bytes) = cache.lookup(hash, now: now), let found = KeyRecordCodec.decode(bytes),
                   case .decided(let decision) = rates.check(id, limits: limits, now: Clock.wallMicroseconds()) {
                    sink &+= decision.remaining &+ found.scopes.count
                }
            },
            time("HMAC-SHA-256 of the key (pepper)") { sink &+= hasher.hash(key).count },
        ]
        consume(sink)
        return results
    }

    /// Keeps the loops' results alive, so the optimiser cannot drop the work measured.
    @inline(never)
    static func consume(_ value: Int) {
        withExtendedLifetime(value) {}
    }
}
