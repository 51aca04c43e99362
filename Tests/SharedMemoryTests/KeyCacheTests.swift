#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import SharedMemory

private func makeCache(entries: Int = 64, payload: Int = 64) throws -> KeyCache {
    let region = try SharedRegion.anonymous(size: KeyCache.byteCount(entries: entries, payloadCapacity: payload))
    return KeyCache.create(in: region, entries: entries, payloadCapacity: payload)
}

/// A 32-byte "hash" whose first word (the set index) is `set` and the rest `tag`.
private func hash(set: UInt8 = 0, tag: UInt8) -> [UInt8] {
    [set] + [UInt8](repeating: 0, count: 7) + [UInt8](repeating: tag, count: 24)
}

private let second: Int64 = 1_000_000

@Suite("Key cache")
struct KeyCacheTests {
    @Test("a stored payload comes back until its TTL, then the key is a miss")
    func storeLookupExpire() throws {
        let cache = try makeCache()
        let key = hash(tag: 1)
        #expect(cache.lookup(key, now: 0) == .miss)
        #expect(cache.store(key, payload: [1, 2, 3], now: 10 * second, ttl: 60 * second, epoch: cache.epoch))
        #expect(cache.lookup(key, now: 69 * second) == .known([1, 2, 3]))
        #expect(cache.lookup(key, now: 70 * second) == .miss)
        #expect(cache.lookup(hash(tag: 2), now: 11 * second) == .miss)
        let stats = cache.statistics
        #expect(stats.hits == 1 && stats.misses == 3 && stats.inserts == 1)
    }

    @Test("invalidation drops the entry, and a lookup that started before it cannot store stale data")
    func invalidationAndEpoch() throws {
        let cache = try makeCache()
        let key = hash(tag: 1)
        cache.store(key, payload: [1], now: 0, ttl: 60 * second, epoch: cache.epoch)
        let before = cache.epoch
        #expect(cache.invalidate(key))
        #expect(cache.lookup(key, now: 1) == .miss)
        // A worker read the row before the change committed and tries to cache it afterwards.
        #expect(!cache.store(key, payload: [9], now: 2, ttl: 60 * second, epoch: before))
        #expect(cache.lookup(key, now: 3) == .miss)
        // Invalidating a key that is not cached still fences lookups in flight.
        let fence = cache.epoch
        #expect(!cache.invalidate(hash(tag: 7)))
        #expect(cache.epoch != fence)
    }

    @Test("unknown keys are remembered briefly; storing the key replaces that")
    func negativeCaching() throws {
        let cache = try makeCache()
        let key = hash(tag: 3)
        cache.storeUnknown(key, now: 0, ttl: 5 * second, epoch: cache.epoch)
        #expect(cache.lookup(key, now: 4 * second) == .unknown)
        #expect(cache.lookup(key, now: 5 * second) == .miss)
        cache.storeUnknown(key, now: 6 * second, ttl: 5 * second, epoch: cache.epoch)
        cache.invalidate(key) // what creating that key does
        #expect(cache.lookup(key, now: 7 * second) == .miss)
    }

    @Test("a full set evicts its least recently used entry; other sets are untouched")
    func eviction() throws {
        let cache = try makeCache(entries: 16) // two sets of eight
        for tag in 0..<8 { cache.store(hash(set: 0, tag: UInt8(tag)), payload: [UInt8(tag)], now: Int64(tag), ttl: 60 * second, epoch: cache.epoch) }
        cache.store(hash(set: 1, tag: 99), payload: [99], now: 0, ttl: 60 * second, epoch: cache.epoch)
        _ = cache.lookup(hash(set: 0, tag: 0), now: 100) // 0 is now the most recently used; 1 the least
        cache.store(hash(set: 0, tag: 8), payload: [8], now: 200, ttl: 60 * second, epoch: cache.epoch)
        #expect(cache.lookup(hash(set: 0, tag: 1), now: 300) == .miss)
        #expect(cache.lookup(hash(set: 0, tag: 0), now: 300) == .known([0]))
        #expect(cache.lookup(hash(set: 0, tag: 8), now: 300) == .known([8]))
        #expect(cache.lookup(hash(set: 1, tag: 99), now: 300) == .known([99]))
        #expect(cache.statistics.evictions == 1)
        #expect(cache.statistics.entries == 9) // 8 in the full set, 1 in the other
    }

    @Test("an unknown key never evicts a known one; it takes an unknown key's place")
    func unknownKeysDoNotEvictKnownOnes() throws {
        let cache = try makeCache(entries: 16) // two sets of eight
        for tag in 0..<8 { cache.store(hash(set: 0, tag: UInt8(tag)), payload: [UInt8(tag)], now: Int64(tag), ttl: 60 * second, epoch: cache.epoch) }
        cache.storeUnknown(hash(set: 0, tag: 50), now: 100, ttl: 5 * second, epoch: cache.epoch)
        #expect(cache.lookup(hash(set: 0, tag: 50), now: 200) == .miss) // not remembered
        for tag in 0..<8 { #expect(cache.lookup(hash(set: 0, tag: UInt8(tag)), now: 300) == .known([UInt8(tag)])) }
        #expect(cache.statistics.evictions == 0)
        // With an unknown entry in the set, the next unknown key replaces that one.
        cache.invalidate(hash(set: 0, tag: 7))
        cache.storeUnknown(hash(set: 0, tag: 51), now: 400, ttl: 5 * second, epoch: cache.epoch)
        cache.storeUnknown(hash(set: 0, tag: 52), now: 500, ttl: 5 * second, epoch: cache.epoch)
        #expect(cache.lookup(hash(set: 0, tag: 52), now: 600) == .unknown)
        #expect(cache.lookup(hash(set: 0, tag: 51), now: 600) == .miss)
        for tag in 0..<7 { #expect(cache.lookup(hash(set: 0, tag: UInt8(tag)), now: 700) == .known([UInt8(tag)])) }
        // A known key still evicts as before.
        cache.store(hash(set: 0, tag: 60), payload: [60], now: 800, ttl: 60 * second, epoch: cache.epoch)
        #expect(cache.lookup(hash(set: 0, tag: 60), now: 900) == .known([60]))
    }

    @Test("payloads larger than an entry and malformed hashes are not cached")
    func refusals() throws {
        let cache = try makeCache(payload: 8)
        #expect(!cache.store(hash(tag: 1), payload: [UInt8](repeating: 1, count: 9), now: 0, ttl: second, epoch: cache.epoch))
        #expect(cache.statistics.tooLarge == 1)
        #expect(!cache.store([1, 2, 3], payload: [1], now: 0, ttl: second, epoch: cache.epoch))
        #expect(cache.lookup([1, 2, 3], now: 0) == .miss)
    }

    @Test("removeAll empties the cache")
    func removeAll() throws {
        let cache = try makeCache()
        for tag in 0..<5 { cache.store(hash(set: UInt8(tag), tag: 1), payload: [1], now: 0, ttl: 60 * second, epoch: cache.epoch) }
        #expect(cache.statistics.entries == 5)
        cache.removeAll()
        #expect(cache.statistics.entries == 0)
        #expect(cache.lookup(hash(set: 0, tag: 1), now: 1) == .miss)
        // Entries of the old generation are free slots, and a new store counts once.
        cache.store(hash(set: 0, tag: 1), payload: [2], now: 2, ttl: 60 * second, epoch: cache.epoch)
        #expect(cache.lookup(hash(set: 0, tag: 1), now: 3) == .known([2]))
        #expect(cache.statistics.entries == 1)
    }

    @Test("attach checks what the segment is and which layout wrote it")
    func attach() throws {
        let cache = try makeCache()
        cache.store(hash(tag: 1), payload: [5], now: 0, ttl: 60 * second, epoch: cache.epoch)
        let attached = try KeyCache.attach(cache.region)
        #expect(attached.lookup(hash(tag: 1), now: 1) == .known([5]))
        let other = try SharedRegion.anonymous(size: 1 << 16)
        #expect(throws: SegmentError.wrongKind("key cache")) { try KeyCache.attach(other) }
        let header = cache.region.base.assumingMemoryBound(to: KeyCache.Header.self)
        header.pointee.version.store(KeyCache.layoutVersion + 1, ordering: .relaxed)
        #expect(throws: SegmentError.layoutMismatch(found: KeyCache.layoutVersion + 1, expected: KeyCache.layoutVersion)) {
            try KeyCache.attach(cache.region)
        }
    }

    @Test("the outage flag keeps the first time the database was found down")
    func outageFlag() throws {
        let cache = try makeCache()
        #expect(cache.databaseDownSince == nil)
        cache.setDatabaseReachable(false, now: 5)
        cache.setDatabaseReachable(false, now: 9)
        #expect(cache.databaseDownSince == 5)
        cache.setDatabaseReachable(true, now: 10)
        #expect(cache.databaseDownSince == nil)
    }
}

@Suite("Key cache across fork", .serialized)
struct KeyCacheForkTests {
    @Test("a process killed holding the lock mid-write neither wedges the cache nor leaves a torn entry")
    func holderDies() throws {
        let cache = try makeCache()
        let victim = hash(tag: 1), bystander = hash(set: 1, tag: 2)
        cache.store(victim, payload: [1, 1], now: 0, ttl: 60 * second, epoch: cache.epoch)
        cache.store(bystander, payload: [2, 2], now: 0, ttl: 60 * second, epoch: cache.epoch)
        // Warm every path the child takes (see ScoreboardForkTests).
        _ = cache.lookup(victim, now: 1)
        let child = Glibc.fork()
        try #require(child >= 0)
        if child == 0 {
            cache.simulateWriterDyingMidUpdate(victim, now: 2) { kill(getpid(), SIGKILL); _exit(1) }
        }
        #expect(waitForChild(child) == .signaled(SIGKILL))
        // The next locker recovers: the half-written entry is gone, the other one intact.
        #expect(cache.lookup(victim, now: 3) == .miss)
        #expect(cache.lookup(bystander, now: 3) == .known([2, 2]))
        #expect(cache.statistics.lockRecoveries == 1)
        #expect(cache.statistics.entries == 1)
        #expect(cache.store(victim, payload: [3], now: 4, ttl: 60 * second, epoch: cache.epoch))
        #expect(cache.lookup(victim, now: 5) == .known([3]))
    }
}
