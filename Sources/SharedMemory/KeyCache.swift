import Synchronization

/// The validated-key cache: a fixed-size table in shared memory, keyed by the key's
/// 32-byte HMAC, holding an opaque payload (the encoded key record) for a TTL.
///
/// Set-associative, like a CPU cache: a hash picks one set of `ways` entries, and a new
/// entry replaces an empty, expired or least recently used entry of that set. No entry
/// points at another, so there is no list or chain a crashed writer could leave broken:
/// an entry being written is marked `writing`, and whoever next takes the lock after a
/// holder died clears such entries (see `RobustMutex`). Lookups take the same lock; it is
/// held for one set scan and one payload copy.
///
/// Hashes are compared whole, all four words with no early exit, so the time taken does
/// not say how much of a stored hash matched (they are HMACs under a secret pepper, which
/// an attacker cannot compute for a key of their choosing, so it would say little anyway).
///
/// Layout: `Header` | mutex (64-byte slot) | entries (`entryStride` each).
public struct KeyCache: @unchecked Sendable {
    /// Bump when `Header` or `EntryHeader` changes: a binary refuses a segment of another layout.
    public static let layoutVersion = 2
    static let magic = 0x4B45_5943_4143_4845 // "KEYCACHE"
    public static let ways = 8

    struct Header: ~Copyable {
        let magic = Atomic<Int>(0)
        let version = Atomic<Int>(0)
        let setCount = Atomic<Int>(0)
        let payloadCapacity = Atomic<Int>(0)
        let hits = Atomic<Int>(0)
        let misses = Atomic<Int>(0)
        let unknownHits = Atomic<Int>(0)
        let inserts = Atomic<Int>(0)
        let evictions = Atomic<Int>(0)
        let invalidations = Atomic<Int>(0)
        let clears = Atomic<Int>(0)
        let tooLarge = Atomic<Int>(0)
        let lockRecoveries = Atomic<Int>(0)
        /// Wall µs since the database was last found unreachable; 0 while it is reachable.
        let databaseDownSince = Atomic<Int>(0)
        /// Bumped by every invalidation (see `store(_:payload:now:ttl:epoch:)`).
        let epoch = Atomic<Int>(0)
        /// Entries written under another generation are empty: `removeAll` is one increment,
        /// not a write to every page of the table (which would make them all resident).
        let generation = Atomic<Int>(1)
        /// 1 + the index of the entry being written, 0 when none: what `repair` must clear.
        let writing = Atomic<Int>(0)
        /// Entries holding a key (or an unknown key) of the current generation.
        let occupied = Atomic<Int>(0)
    }

    enum State: UInt32 { case empty = 0, known, unknown, writing }

    struct EntryHeader {
        var state: UInt32
        var length: UInt32
        var generation: Int
        var hash: (UInt64, UInt64, UInt64, UInt64)
        var expiresAt: Int64
        var lastUsed: Int64
    }

    public enum Lookup: Equatable {
        /// Not in the cache (or its TTL ran out): ask the database.
        case miss
        /// Recently looked up and found to be no key at all.
        case unknown
        /// The payload stored for this hash.
        case known([UInt8])
    }

    public let region: SharedRegion
    public let setCount: Int
    public let payloadCapacity: Int
    private let header: UnsafeMutablePointer<Header>
    private let mutex: RobustMutex
    private let entries: UnsafeMutableRawPointer
    private let entryStride: Int

    public var capacity: Int { setCount * Self.ways }

    static let mutexOffset = (MemoryLayout<Header>.stride + 63) & ~63
    static let entriesOffset = mutexOffset + ((RobustMutex.byteCount + 63) & ~63)

    static func entryStride(payloadCapacity: Int) -> Int {
        (MemoryLayout<EntryHeader>.stride + payloadCapacity + 63) & ~63
    }

    /// Sets: a power of two with at least `entries` / `ways` sets.
    static func setCount(forEntries entries: Int) -> Int {
        var sets = 1
        while sets * ways < entries { sets <<= 1 }
        return sets
    }

    public static func byteCount(entries: Int, payloadCapacity: Int) -> Int {
        entriesOffset + setCount(forEntries: entries) * ways * entryStride(payloadCapacity: payloadCapacity)
    }

    /// Initialises a new, empty cache in `region` (the master, before forking).
    public static func create(in region: SharedRegion, entries: Int, payloadCapacity: Int) -> KeyCache {
        let header = region.base.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header())
        let mutex = RobustMutex.initialize(at: region.base + mutexOffset)
        let sets = setCount(forEntries: entries)
        header.pointee.setCount.store(sets, ordering: .relaxed)
        header.pointee.payloadCapacity.store(payloadCapacity, ordering: .relaxed)
        header.pointee.version.store(layoutVersion, ordering: .relaxed)
        header.pointee.magic.store(magic, ordering: .releasing)
        // The file is zero-filled: every entry starts `empty`.
        return KeyCache(region: region, header: header, mutex: mutex, setCount: sets, payloadCapacity: payloadCapacity)
    }

    /// Attaches to a cache another process created, checking magic, layout and size.
    public static func attach(_ region: SharedRegion) throws(SegmentError) -> KeyCache {
        try SegmentStamp.verify(region, minimumSize: entriesOffset, magic: magic, version: layoutVersion, kind: "key cache")
        let header = region.base.assumingMemoryBound(to: Header.self)
        let sets = header.pointee.setCount.load(ordering: .relaxed)
        let payload = header.pointee.payloadCapacity.load(ordering: .relaxed)
        // Divided, not multiplied: values read from a damaged file must not overflow.
        guard sets > 0, sets & (sets - 1) == 0, payload > 0, payload <= region.size,
              sets <= (region.size - entriesOffset) / (ways * entryStride(payloadCapacity: payload)) else {
            throw .wrongKind("key cache")
        }
        return KeyCache(region: region, header: header, mutex: RobustMutex.attach(at: region.base + mutexOffset),
                        setCount: sets, payloadCapacity: payload)
    }

    private init(region: SharedRegion, header: UnsafeMutablePointer<Header>, mutex: RobustMutex, setCount: Int, payloadCapacity: Int) {
        self.region = region
        self.header = header
        self.mutex = mutex
        self.setCount = setCount
        self.payloadCapacity = payloadCapacity
        entries = region.base + Self.entriesOffset
        entryStride = Self.entryStride(payloadCapacity: payloadCapacity)
    }

    // MARK: Operations

    /// The entry for `hash` at `now` (µs; the caller's clock, so tests can move time).
    public func lookup(_ hash: [UInt8], now: Int64) -> Lookup {
        guard let words = Self.words(hash) else { return .miss }
        return mutex.withLock(repair: repair) {
            guard let entry = find(words) else {
                header.pointee.misses.wrappingAdd(1, ordering: .relaxed)
                return .miss
            }
            guard entry.pointee.expiresAt > now else {
                entry.pointee.state = State.empty.rawValue
                header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
                header.pointee.misses.wrappingAdd(1, ordering: .relaxed)
                return .miss
            }
            entry.pointee.lastUsed = now
            if entry.pointee.state == State.unknown.rawValue {
                header.pointee.unknownHits.wrappingAdd(1, ordering: .relaxed)
                return .unknown
            }
            let length = Int(entry.pointee.length)
            // A length no writer could have stored (a damaged segment): drop the entry
            // rather than read past it.
            guard length <= payloadCapacity else {
                entry.pointee.state = State.empty.rawValue
                header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
                header.pointee.misses.wrappingAdd(1, ordering: .relaxed)
                return .miss
            }
            header.pointee.hits.wrappingAdd(1, ordering: .relaxed)
            let payload = UnsafeRawPointer(entry + 1)
            return .known([UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                buffer.baseAddress?.initialize(from: payload.assumingMemoryBound(to: UInt8.self), count: length)
                count = length
            })
        }
    }

    /// The invalidation counter. Read it before looking a key up in the database and pass
    /// it to `store`: if any invalidation happened meanwhile, the row read may predate a
    /// change that was just committed, and caching it would resurrect the old state.
    public var epoch: Int { header.pointee.epoch.load(ordering: .acquiring) }

    /// Caches `payload` for `hash` until `now + ttl`, unless an invalidation happened since
    /// `epoch` was read. False when not stored (also when the payload is larger than an
    /// entry holds: that key is then looked up in the database every time).
    @discardableResult
    public func store(_ hash: [UInt8], payload: [UInt8], now: Int64, ttl: Int64, epoch: Int) -> Bool {
        guard let words = Self.words(hash), ttl > 0 else { return false }
        guard payload.count <= payloadCapacity else {
            header.pointee.tooLarge.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        return mutex.withLock(repair: repair) {
            guard header.pointee.epoch.load(ordering: .relaxed) == epoch,
                  let slot = slot(for: words, now: now, mayEvictKnown: true) else { return false }
            write(slot, words, state: .known, now: now, expiresAt: now + ttl) { entry in
                entry.pointee.length = UInt32(payload.count)
                payload.withUnsafeBytes { bytes in
                    if let base = bytes.baseAddress { UnsafeMutableRawPointer(entry + 1).copyMemory(from: base, byteCount: bytes.count) }
                }
            }
            header.pointee.inserts.wrappingAdd(1, ordering: .relaxed)
            return true
        }
    }

    /// Remembers for `ttl` that `hash` is no key (blunts repeated lookups of a bad key).
    /// It never evicts a known key: a flood of made-up keys must not push valid ones out
    /// (to the database, or to 503 while it is down); with no free, expired or unknown
    /// entry in its set, it is not remembered.
    public func storeUnknown(_ hash: [UInt8], now: Int64, ttl: Int64, epoch: Int) {
        guard let words = Self.words(hash), ttl > 0 else { return }
        mutex.withLock(repair: repair) {
            guard header.pointee.epoch.load(ordering: .relaxed) == epoch,
                  let slot = slot(for: words, now: now, mayEvictKnown: false) else { return }
            write(slot, words, state: .unknown, now: now, expiresAt: now + ttl) { entry in
                entry.pointee.length = 0
            }
        }
    }

    /// Drops the entry for `hash`, known or unknown. True when there was one.
    @discardableResult
    public func invalidate(_ hash: [UInt8]) -> Bool {
        guard let words = Self.words(hash) else { return false }
        return mutex.withLock(repair: repair) {
            // Always bumped, entry or not: a lookup of this key may be on its way to the database.
            header.pointee.epoch.wrappingAdd(1, ordering: .releasing)
            guard let entry = find(words) else { return false }
            entry.pointee.state = State.empty.rawValue
            header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
            header.pointee.invalidations.wrappingAdd(1, ordering: .relaxed)
            return true
        }
    }

    /// Drops every entry (the housekeeper, after its notification connection was lost).
    public func removeAll() {
        mutex.withLock(repair: repair) {
            header.pointee.epoch.wrappingAdd(1, ordering: .releasing)
            header.pointee.generation.wrappingAdd(1, ordering: .relaxed)
            header.pointee.occupied.store(0, ordering: .relaxed)
            header.pointee.clears.wrappingAdd(1, ordering: .relaxed)
        }
    }

    // MARK: Outage flag

    /// Wall µs when the database was found unreachable, or nil while it is reachable.
    public var databaseDownSince: Int64? {
        let value = header.pointee.databaseDownSince.load(ordering: .relaxed)
        return value == 0 ? nil : Int64(value)
    }

    public func setDatabaseReachable(_ reachable: Bool, now: Int64) {
        if reachable {
            header.pointee.databaseDownSince.store(0, ordering: .relaxed)
        } else {
            _ = header.pointee.databaseDownSince.compareExchange(expected: 0, desired: Int(now), ordering: .relaxed)
        }
    }

    // MARK: Statistics

    public var statistics: KeyCacheStatistics {
        KeyCacheStatistics(
            capacity: capacity, entries: max(0, header.pointee.occupied.load(ordering: .relaxed)),
            hits: header.pointee.hits.load(ordering: .relaxed), misses: header.pointee.misses.load(ordering: .relaxed),
            unknownHits: header.pointee.unknownHits.load(ordering: .relaxed), inserts: header.pointee.inserts.load(ordering: .relaxed),
            evictions: header.pointee.evictions.load(ordering: .relaxed), invalidations: header.pointee.invalidations.load(ordering: .relaxed),
            clears: header.pointee.clears.load(ordering: .relaxed), tooLarge: header.pointee.tooLarge.load(ordering: .relaxed),
            lockRecoveries: header.pointee.lockRecoveries.load(ordering: .relaxed))
    }

    // MARK: Internals (called holding the lock)

    @inline(__always)
    private func entry(_ index: Int) -> UnsafeMutablePointer<EntryHeader> {
        (entries + index * entryStride).assumingMemoryBound(to: EntryHeader.self)
    }

    @inline(__always)
    private func setStart(_ words: (UInt64, UInt64, UInt64, UInt64)) -> Int {
        Int(truncatingIfNeeded: words.0 & UInt64(setCount - 1)) * Self.ways
    }

    /// Whether the entry holds a key (known or unknown) of the current generation.
    @inline(__always)
    private func isOccupied(_ candidate: UnsafeMutablePointer<EntryHeader>, generation: Int) -> Bool {
        let state = candidate.pointee.state
        return (state == State.known.rawValue || state == State.unknown.rawValue) && candidate.pointee.generation == generation
    }

    private func find(_ words: (UInt64, UInt64, UInt64, UInt64)) -> UnsafeMutablePointer<EntryHeader>? {
        let start = setStart(words)
        let generation = header.pointee.generation.load(ordering: .relaxed)
        for index in start..<(start + Self.ways) {
            let candidate = entry(index)
            guard isOccupied(candidate, generation: generation) else { continue }
            let h = candidate.pointee.hash
            if (h.0 ^ words.0) | (h.1 ^ words.1) | (h.2 ^ words.2) | (h.3 ^ words.3) == 0 { return candidate }
        }
        return nil
    }

    /// The entry to write `words` into: its own, else an empty or expired one, else the
    /// set's least recently used (an eviction), among unknown-key entries only unless
    /// `mayEvictKnown`. Nil when there is none to take.
    private func slot(for words: (UInt64, UInt64, UInt64, UInt64), now: Int64,
                      mayEvictKnown: Bool) -> UnsafeMutablePointer<EntryHeader>? {
        if let existing = find(words) { return existing }
        let start = setStart(words)
        let generation = header.pointee.generation.load(ordering: .relaxed)
        var victim: UnsafeMutablePointer<EntryHeader>?
        for index in start..<(start + Self.ways) {
            let candidate = entry(index)
            if !isOccupied(candidate, generation: generation) { return candidate }
            if candidate.pointee.expiresAt <= now {
                candidate.pointee.state = State.empty.rawValue
                header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
                return candidate
            }
            guard mayEvictKnown || candidate.pointee.state == State.unknown.rawValue else { continue }
            if let current = victim, current.pointee.lastUsed <= candidate.pointee.lastUsed { continue }
            victim = candidate
        }
        guard let victim else { return nil }
        // The victim's key leaves, this one takes its place: the count stays.
        victim.pointee.state = State.empty.rawValue
        header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
        header.pointee.evictions.wrappingAdd(1, ordering: .relaxed)
        return victim
    }

    /// Writes an entry, marked `writing` (and named in the header) until it is whole, so
    /// that `repair` knows which entry a writer that died may have left torn.
    private func write(_ entry: UnsafeMutablePointer<EntryHeader>, _ words: (UInt64, UInt64, UInt64, UInt64), state: State,
                       now: Int64, expiresAt: Int64, body: (UnsafeMutablePointer<EntryHeader>) -> Void) {
        let generation = header.pointee.generation.load(ordering: .relaxed)
        // Counted again once whole: a writer dying here leaves the count right.
        if isOccupied(entry, generation: generation) { header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed) }
        header.pointee.writing.store(index(of: entry) + 1, ordering: .relaxed)
        entry.pointee.state = State.writing.rawValue
        entry.pointee.hash = words
        entry.pointee.generation = generation
        entry.pointee.expiresAt = expiresAt
        entry.pointee.lastUsed = now
        body(entry)
        entry.pointee.state = state.rawValue
        header.pointee.writing.store(0, ordering: .relaxed)
        header.pointee.occupied.wrappingAdd(1, ordering: .relaxed)
    }

    private func index(of entry: UnsafeMutablePointer<EntryHeader>) -> Int {
        (UnsafeMutableRawPointer(entry) - entries) / entryStride
    }

    /// After a holder died mid-write: the entry it was writing may be torn, so forget it.
    private func repair() {
        header.pointee.lockRecoveries.wrappingAdd(1, ordering: .relaxed)
        let writing = header.pointee.writing.load(ordering: .relaxed)
        if writing > 0 && writing <= capacity {
            entry(writing - 1).pointee.state = State.empty.rawValue
            header.pointee.writing.store(0, ordering: .relaxed)
        }
    }

    static func words(_ hash: [UInt8]) -> (UInt64, UInt64, UInt64, UInt64)? {
        guard hash.count == 32 else { return nil }
        return hash.withUnsafeBytes { bytes in
            (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    // MARK: Test support

    /// Takes the lock and marks the entry for `hash` as being written, then runs `body`
    /// without releasing anything: lets tests die "mid-update" holding the lock.
    public func simulateWriterDyingMidUpdate(_ hash: [UInt8], now: Int64, _ body: () -> Never) -> Never {
        mutex.lock()
        if let words = Self.words(hash), let entry = slot(for: words, now: now, mayEvictKnown: true) {
            if isOccupied(entry, generation: header.pointee.generation.load(ordering: .relaxed)) {
                header.pointee.occupied.wrappingSubtract(1, ordering: .relaxed)
            }
            header.pointee.writing.store(index(of: entry) + 1, ordering: .relaxed)
            entry.pointee.hash = words
            entry.pointee.state = State.writing.rawValue
        }
        body()
    }
}

public struct KeyCacheStatistics: Sendable, Equatable {
    public let capacity: Int
    public let entries: Int
    public let hits: Int
    public let misses: Int
    public let unknownHits: Int
    public let inserts: Int
    public let evictions: Int
    public let invalidations: Int
    public let clears: Int
    public let tooLarge: Int
    public let lockRecoveries: Int
}

/// A shared-memory file that is not what the caller expected.
public enum SegmentError: Error, CustomStringConvertible, Equatable {
    case wrongKind(String)
    case layoutMismatch(found: Int, expected: Int)

    public var description: String {
        switch self {
        case .wrongKind(let kind): return "the file is not a keygate \(kind) segment"
        case .layoutMismatch(let found, let expected):
            return "segment layout \(found) was written by another keygate version (this one reads \(expected)); restart the pool"
        }
    }
}
