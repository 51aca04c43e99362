import Cryptography
import Posix
import SharedMemory

/// The shared-memory segments every process of one host's pool shares: the validated-key
/// cache, the rate-limit table and the usage ring. The master creates them before it
/// forks; `keygate status` maps them read-only and the CLI maps the cache to drop entries.
public struct HostState: @unchecked Sendable {
    /// nil when `key_cache_entries = 0`.
    public let keyCache: KeyCache?
    public let rates: RateTable
    public let usage: UsageRing

    /// Bytes an encoded key record may take to be cached (bigger ones are not cached).
    static let payloadCapacity = 1_536

    public init(keyCache: KeyCache?, rates: RateTable, usage: UsageRing) {
        self.keyCache = keyCache
        self.rates = rates
        self.usage = usage
    }

    /// Fresh segments in the runtime directory (the master, at start).
    public static func create(_ configuration: Configuration, logger: Logger) throws -> HostState {
        var cache: KeyCache?
        if configuration.keyCacheEntries > 0 {
            let region = try SharedRegion.create(path: configuration.keyCachePath,
                size: KeyCache.byteCount(entries: configuration.keyCacheEntries, payloadCapacity: payloadCapacity), mode: 0o600)
            cache = KeyCache.create(in: region, entries: configuration.keyCacheEntries, payloadCapacity: payloadCapacity)
        } else {
            Files.remove(configuration.keyCachePath)
        }
        let rateRegion = try SharedRegion.create(path: configuration.rateTablePath,
                                                 size: RateTable.byteCount(entries: configuration.rateLimitEntries), mode: 0o600)
        let usage: UsageRing
        if let kept = keptUsageRing(configuration, logger: logger) {
            usage = kept
        } else {
            let usageRegion = try SharedRegion.create(path: configuration.usageRingPath,
                                                      size: UsageRing.byteCount(records: configuration.usageRingEntries), mode: 0o600)
            usage = UsageRing.create(in: usageRegion, records: configuration.usageRingEntries, id: try SecureRandom.bytes(16))
        }
        return HostState(keyCache: cache, rates: RateTable.create(in: rateRegion, entries: configuration.rateLimitEntries), usage: usage)
    }

    /// The last run's usage ring when it still holds records not stored (a stop while the
    /// database was away leaves it behind) and has the configured capacity: its housekeeper
    /// goes on where the last one stopped, under the ring's own id, so the database's
    /// record of how far it is stored keeps anything from being stored twice. Nil: a fresh ring.
    static func keptUsageRing(_ configuration: Configuration, logger: Logger) -> UsageRing? {
        let path = configuration.usageRingPath
        guard Files.exists(path) else { return nil }
        let ring: UsageRing
        do {
            // Its records go to the database as they are: only a file nobody else could write,
            // of this build's layout (an upgrade that changed it loses them), intact.
            ring = try UsageRing.attach(SharedRegion.openPrivate(path: path))
            // Damaged: positions or sequence numbers out of range.
            guard ring.isConsistentAtRest else { throw SegmentError.wrongKind("usage ring") }
        } catch {
            logger.warning("the last run's usage ring is not usable; a fresh one replaces it",
                           [("usage_ring", path), ("error", String(describing: error))])
            return nil
        }
        let pending = ring.statistics.pending
        guard pending > 0 else { return nil }
        guard ring.capacity == UsageRing.capacity(for: configuration.usageRingEntries) else {
            logger.warning("usage records the last run could not store are dropped: usage_ring_entries changed",
                           [("records", String(pending)), ("usage_ring", path)])
            return nil
        }
        logger.warning("usage records the last run could not store are kept; this run stores them",
                       [("records", String(pending)), ("usage_ring", path)])
        return ring
    }

    /// The running pool's segments, read-only (status and metrics from outside the pool).
    public static func attachReadOnly(_ configuration: Configuration) throws -> HostState {
        let cache = configuration.keyCacheEntries > 0
            ? try KeyCache.attach(SharedRegion.openReadOnly(path: configuration.keyCachePath)) : nil
        return HostState(keyCache: cache,
                         rates: try RateTable.attach(SharedRegion.openReadOnly(path: configuration.rateTablePath)),
                         usage: try UsageRing.attach(SharedRegion.openReadOnly(path: configuration.usageRingPath)))
    }

    /// The running pool's key cache, writable (the CLI drops the entries of keys it
    /// changed); nil when no pool runs here or its files are not ours to write.
    public static func attachKeyCache(_ configuration: Configuration) -> KeyCache? {
        guard configuration.keyCacheEntries > 0, Server.runningMasterPID(pidFile: configuration.pidFilePath) != nil else { return nil }
        return try? KeyCache.attach(SharedRegion.openReadWrite(path: configuration.keyCachePath))
    }
}
