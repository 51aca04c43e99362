import HTTP
import Posix
import Postgres
import SharedMemory
import Storage

/// Where a worker finds a key by its hash: the host's shared cache first, PostgreSQL on
/// a miss (and the answer, found or not, goes back into the cache).
final class KeyDirectory {
    let cache: KeyCache?
    let keys: KeyStore?
    private let ttl: Int64
    private let negativeTTL: Int64
    private let duringOutage: Bool

    init(cache: KeyCache?, keys: KeyStore?, configuration: Configuration) {
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
                    if let record = KeyRecordCodec.decode(payload) { return record }
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
            if case .database(let failure) = error, failure.kind == .unavailable { cache?.setDatabaseReachable(false, now: now) }
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

/// A UUID's 16 bytes from its text form, and back (rate-limit and usage records hold
/// the bytes: shared memory takes no strings).
enum UUIDBytes {
    static func parse(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var high: UInt8?
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-") { continue }
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let first = high {
                out.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return out.count == 16 && high == nil ? out : nil
    }

    static func format(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
