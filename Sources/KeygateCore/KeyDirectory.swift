import HTTP
import Posix
import Postgres
import SharedMemory
import Storage

/// Where a worker finds a key by its hash: the host's shared cache first, PostgreSQL on
/// a miss (and the answer, found or not, goes back into the cache).
final class KeyDirectory {
    let cache: KeyCache?
    let keys: (any KeyStoring)?
    private let ttl: Int64
    private let negativeTTL: Int64
    private let duringOutage: Bool
    /// Records this worker decoded from cache entries lately, by key hash, with the bytes
    /// they came from. An entry whose bytes are unchanged decodes to the same record, so
    /// the copy is reused (decoding ~20 strings and arrays was the largest part of a
    /// cached key check); changed bytes (an edit, a revocation) are decoded afresh.
    private var decoded: [[UInt8]: (payload: [UInt8], record: KeyRecord)] = [:]
    static let decodedCapacity = 128

    init(cache: KeyCache?, keys: (any KeyStoring)?, configuration: Configuration) {
        self.cache = cache
        self.keys = keys
        ttl = Int64(configuration.keyCacheTTLSeconds) * 1_000_000
        negativeTTL = Int64(configuration.keyCacheNegativeTTLSeconds) * 1_000_000
        duringOutage = configuration.keyCacheDuringOutage
    }

    /// The key with `hash`, or nil when there is none. Throws (→ 503) only when the
    /// database is needed and unreachable. `now` is wall-clock µs (for the outage flag);
    /// cache TTLs run on the monotonic clock, which a wall-clock step cannot stretch.
    func find(hash: [UInt8], now: Int64) throws -> KeyRecord? {
        var epoch = 0
        let tick = Clock.monotonicMicroseconds()
        if let cache {
            if duringOutage || cache.databaseDownSince == nil {
                switch cache.lookup(hash, now: tick) {
                case .known(let payload):
                    if let recent = decoded[hash], recent.payload == payload { return recent.record }
                    if let record = KeyRecordCodec.decode(payload) {
                        if decoded.count >= Self.decodedCapacity { decoded.removeAll(keepingCapacity: true) }
                        decoded[hash] = (payload, record)
                        return record
                    }
                case .unknown:
                    return nil
                case .miss:
                    break
                }
            }
            epoch = cache.epoch
        }
        guard let keys else { throw Problem.unavailable("No database is configured.") }
        let record: KeyRecord?
        do {
            record = try keys.find(hash: hash)
        } catch {
            if case .database(let failure) = error, failure.isUnreachable { cache?.setDatabaseReachable(false, now: now) }
            throw error
        }
        if let cache {
            if cache.databaseDownSince != nil { cache.setDatabaseReachable(true, now: now) }
            if let record {
                cache.store(hash, payload: KeyRecordCodec.encode(record), now: tick, ttl: ttl, epoch: epoch)
            } else if negativeTTL > 0 {
                cache.storeUnknown(hash, now: tick, ttl: negativeTTL, epoch: epoch)
            }
        }
        return record
    }

    /// Drops the cache entries of keys that just changed, for every worker of this host,
    /// before the API call that changed them returns. (Other hosts hear of it through
    /// the database's NOTIFY, which their housekeepers LISTEN for.)
    func invalidate(_ records: KeyRecord?...) {
        guard let cache else { return }
        for record in records { if let record { cache.invalidate(record.keyHash) } }
    }

    func invalidate(hash: [UInt8]) {
        cache?.invalidate(hash)
    }
}
