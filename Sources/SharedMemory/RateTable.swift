import Synchronization

/// A key's limits; nil = no limit of that kind.
public struct RateLimits: Sendable, Equatable {
    public var perMinute: Int?
    public var perHour: Int?
    public var burst: Int?
    public var daily: Int?
    public var monthly: Int?

    public init(perMinute: Int? = nil, perHour: Int? = nil, burst: Int? = nil, daily: Int? = nil, monthly: Int? = nil) {
        self.perMinute = perMinute
        self.perHour = perHour
        self.burst = burst
        self.daily = daily
        self.monthly = monthly
    }

    public var isEmpty: Bool { perMinute == nil && perHour == nil && burst == nil && daily == nil && monthly == nil }
    public var hasQuota: Bool { daily != nil || monthly != nil }
}

/// What a check decided, with what the rate-limit headers report: the most
/// restrictive policy (fewest requests remaining).
public struct RateDecision: Sendable, Equatable {
    public enum Policy: String, Sendable { case burst, minute, hour, daily, monthly }

    public let allowed: Bool
    public let policy: Policy
    public let limit: Int
    public let remaining: Int
    /// Seconds until the policy frees capacity again (rounded up).
    public let resetSeconds: Int
    /// Set when refused: seconds to wait before retrying (rounded up, ≥ 1).
    public let retryAfterSeconds: Int?
    public let dailyUsed: Int
    public let monthlyUsed: Int
}

/// Quota counters of one key as the database had them (the housekeeper persists them).
public struct QuotaCounts: Sendable, Equatable {
    public var day: Int64, dayCount: Int, month: Int64, monthCount: Int
    public init(day: Int64, dayCount: Int, month: Int64, monthCount: Int) {
        self.day = day
        self.dayCount = dayCount
        self.month = month
        self.monthCount = monthCount
    }
}

/// Per-key rate-limit and quota state in shared memory, exact across every worker of a
/// host: the check and the count happen under one lock, and a refused request is not
/// counted. Entries are keyed by the key's 16-byte id, set-associative like `KeyCache`
/// (least recently used entry of a set is evicted), with the same robust lock.
///
/// Per key: a sliding minute (1 s buckets), hour (1 min buckets) and burst second
/// (100 ms buckets), and daily and monthly quota counters that reset at UTC day and
/// month boundaries. The caller passes the time, so tests can move the clock.
public struct RateTable: @unchecked Sendable {
    public static let layoutVersion = 2
    static let magic = 0x4B45_5952_4154_4531 // "KEYRATE1"
    static let ways = 8

    struct Header: ~Copyable {
        let magic = Atomic<Int>(0)
        let version = Atomic<Int>(0)
        let setCount = Atomic<Int>(0)
        let allowed = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        let evictions = Atomic<Int>(0)
        let lockRecoveries = Atomic<Int>(0)
        /// 1 + the index of the entry being updated, 0 when none: what `repair` must reset.
        let writing = Atomic<Int>(0)
    }

    enum State: UInt32 { case empty = 0, used, writing }
    /// Quota seeding: not yet, claimed by one worker (querying the database), done.
    enum Seed: UInt32 { case none = 0, claimed, done }

    struct EntryHeader {
        var state: UInt32
        var seed: UInt32
        var key: (UInt64, UInt64)
        var lastUsed: Int64
        var day: Int64
        var dayCount: Int64
        var month: Int64
        var monthCount: Int64
        var seedClaimedAt: Int64
        // Followed by three `WindowHeader`s (minute, hour, burst), then their buckets.
    }

    // Bucket widths (µs) and counts (window / width + the current bucket).
    static let minuteWindow = (width: Int64(1_000_000), count: 61)
    static let hourWindow = (width: Int64(60_000_000), count: 61)
    static let burstWindow = (width: Int64(100_000), count: 11)
    static let bucketsPerEntry = minuteWindow.count + hourWindow.count + burstWindow.count

    static let windowsOffset = (MemoryLayout<EntryHeader>.stride + 15) & ~15
    static let bucketsOffset = windowsOffset + 3 * MemoryLayout<WindowHeader>.stride
    static let entryStride = (bucketsOffset + bucketsPerEntry * 4 + 63) & ~63
    static let mutexOffset = (MemoryLayout<Header>.stride + 63) & ~63
    static let entriesOffset = mutexOffset + ((RobustMutex.byteCount + 63) & ~63)

    public let region: SharedRegion
    public let setCount: Int
    private let header: UnsafeMutablePointer<Header>
    private let mutex: RobustMutex
    private let entries: UnsafeMutableRawPointer

    public var capacity: Int { setCount * Self.ways }

    public static func byteCount(entries: Int) -> Int {
        entriesOffset + KeyCache.setCount(forEntries: entries) * ways * entryStride
    }

    public static func create(in region: SharedRegion, entries: Int) -> RateTable {
        let header = region.base.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header())
        let mutex = RobustMutex.initialize(at: region.base + mutexOffset)
        let sets = KeyCache.setCount(forEntries: entries)
        header.pointee.setCount.store(sets, ordering: .relaxed)
        header.pointee.version.store(layoutVersion, ordering: .relaxed)
        header.pointee.magic.store(magic, ordering: .releasing)
        return RateTable(region: region, header: header, mutex: mutex, setCount: sets)
    }

    public static func attach(_ region: SharedRegion) throws(SegmentError) -> RateTable {
        try SegmentStamp.verify(region, minimumSize: entriesOffset, magic: magic, version: layoutVersion, kind: "rate-limit")
        let header = region.base.assumingMemoryBound(to: Header.self)
        let sets = header.pointee.setCount.load(ordering: .relaxed)
        // Divided, not multiplied: a value read from a damaged file must not overflow.
        guard sets > 0, sets & (sets - 1) == 0, sets <= (region.size - entriesOffset) / (ways * entryStride) else {
            throw .wrongKind("rate-limit")
        }
        return RateTable(region: region, header: header, mutex: RobustMutex.attach(at: region.base + mutexOffset), setCount: sets)
    }

    private init(region: SharedRegion, header: UnsafeMutablePointer<Header>, mutex: RobustMutex, setCount: Int) {
        self.region = region
        self.header = header
        self.mutex = mutex
        self.setCount = setCount
        entries = region.base + Self.entriesOffset
    }

    // MARK: Checks

    public enum Outcome: Equatable {
        case decided(RateDecision)
        /// The key has a quota and this host has not loaded its counts yet: load them
        /// (`QuotaCounts`), pass them to `seedQuota` (or `releaseQuotaClaim` when they cannot
        /// be had), then check again. Nothing was counted.
        case needsQuotaCounts
        /// Another process is loading this key's quota counts: check again in a moment.
        case loadingQuotaCounts
    }

    /// Checks `key` against `limits` and counts the request if allowed. `now` is wall-clock
    /// µs (quota days and months are UTC calendar periods); the sliding windows run on
    /// `monotonic` µs (default: `now`), which a wall-clock step cannot move.
    public func check(_ key: [UInt8], limits: RateLimits, now: Int64, monotonic: Int64? = nil) -> Outcome {
        let tick = monotonic ?? now
        guard let words = Self.words(key) else {
            return .decided(RateDecision(allowed: true, policy: .minute, limit: 0, remaining: 0, resetSeconds: 0,
                                         retryAfterSeconds: nil, dailyUsed: 0, monthlyUsed: 0))
        }
        return mutex.withLock(repair: repair) {
            let entry = slot(for: words, now: tick)
            // An entry is a key lineage's, whose keys may differ in limits: one without a quota
            // neither loads the counts nor resets them; once loaded they count every request
            // let through (as the database does), whichever key made it.
            if limits.hasQuota, entry.pointee.seed == Seed.done.rawValue, Self.isPeriodsAhead(entry, now: now) {
                // The wall clock had run whole periods ahead and was set right: what is held
                // counts a period still to come, and this period's usage is in the database.
                // (What this host has recorded but not yet stored is not in it: the key may
                // go over by that backlog, once per such correction. And while the database
                // is down the key waits for it, 503, like any key whose counts are unknown.)
                entry.pointee.seed = Seed.none.rawValue
            }
            if limits.hasQuota && entry.pointee.seed != Seed.done.rawValue {
                // Unclaimed, or claimed by a worker that has not finished within 10 s (it died
                // or its query hung): this caller loads the counts, starting from zero.
                guard entry.pointee.seed == Seed.none.rawValue || tick - entry.pointee.seedClaimedAt > 10_000_000 else {
                    return .loadingQuotaCounts
                }
                entry.pointee.seed = Seed.claimed.rawValue
                entry.pointee.seedClaimedAt = tick
                // Counting starts afresh from the database's counts for the current period.
                entry.pointee.day = now / Self.day
                entry.pointee.month = Self.month(ofDay: entry.pointee.day)
                entry.pointee.dayCount = 0
                entry.pointee.monthCount = 0
                return .needsQuotaCounts
            }
            header.pointee.writing.store(index(of: entry) + 1, ordering: .relaxed)
            entry.pointee.state = State.writing.rawValue
            defer {
                entry.pointee.state = State.used.rawValue
                header.pointee.writing.store(0, ordering: .relaxed)
            }
            entry.pointee.lastUsed = tick
            let windows = self.windows(entry)
            windows.minute.advance(to: tick)
            windows.hour.advance(to: tick)
            windows.burst.advance(to: tick)
            rollQuotas(entry, now: now)

            // Every applicable policy, with its limit, current count and wait when full.
            var policies: [(RateDecision.Policy, Int, Int, Int64)] = []
            if let limit = limits.burst { policies.append((.burst, limit, windows.burst.total, windows.burst.wait(until: limit, now: tick))) }
            if let limit = limits.perMinute { policies.append((.minute, limit, windows.minute.total, windows.minute.wait(until: limit, now: tick))) }
            if let limit = limits.perHour { policies.append((.hour, limit, windows.hour.total, windows.hour.wait(until: limit, now: tick))) }
            if let limit = limits.daily {
                policies.append((.daily, limit, Int(entry.pointee.dayCount), (entry.pointee.day + 1) * Self.day - now))
            }
            if let limit = limits.monthly {
                policies.append((.monthly, limit, Int(entry.pointee.monthCount), Self.monthStart(entry.pointee.month + 1) - now))
            }
            // Refused: the policy that makes the caller wait longest decides.
            if let refusing = policies.filter({ $0.2 >= $0.1 }).max(by: { $0.3 < $1.3 }) {
                header.pointee.refused.wrappingAdd(1, ordering: .relaxed)
                let wait = Self.seconds(refusing.3)
                return .decided(RateDecision(allowed: false, policy: refusing.0, limit: refusing.1, remaining: 0,
                                             resetSeconds: wait, retryAfterSeconds: max(1, wait),
                                             dailyUsed: Int(entry.pointee.dayCount), monthlyUsed: Int(entry.pointee.monthCount)))
            }
            windows.minute.count()
            windows.hour.count()
            windows.burst.count()
            if entry.pointee.seed == Seed.done.rawValue {
                entry.pointee.dayCount += 1
                entry.pointee.monthCount += 1
            }
            header.pointee.allowed.wrappingAdd(1, ordering: .relaxed)
            // Headers report the policy with the fewest requests left after this one.
            var reported = (policy: RateDecision.Policy.minute, limit: 0, remaining: Int.max, reset: Int64(0))
            for (policy, limit, used, _) in policies where limit - used - 1 < reported.remaining {
                let reset: Int64
                switch policy {
                case .burst: reset = windows.burst.untilOldestLeaves(now: tick)
                case .minute: reset = windows.minute.untilOldestLeaves(now: tick)
                case .hour: reset = windows.hour.untilOldestLeaves(now: tick)
                case .daily: reset = (entry.pointee.day + 1) * Self.day - now
                case .monthly: reset = Self.monthStart(entry.pointee.month + 1) - now
                }
                reported = (policy, limit, limit - used - 1, reset)
            }
            return .decided(RateDecision(allowed: true, policy: reported.policy, limit: reported.limit,
                                         remaining: reported.remaining == Int.max ? 0 : reported.remaining,
                                         resetSeconds: Self.seconds(reported.reset), retryAfterSeconds: nil,
                                         dailyUsed: Int(entry.pointee.dayCount), monthlyUsed: Int(entry.pointee.monthCount)))
        }
    }

    /// Adds the database's counts (for the current day and month) to the key's entry, once.
    public func seedQuota(_ key: [UInt8], _ counts: QuotaCounts, now: Int64, monotonic: Int64? = nil) {
        guard let words = Self.words(key) else { return }
        mutex.withLock(repair: repair) {
            let entry = slot(for: words, now: monotonic ?? now)
            guard entry.pointee.seed != Seed.done.rawValue else { return }
            rollQuotas(entry, now: now)
            if counts.day == entry.pointee.day { entry.pointee.dayCount += Int64(counts.dayCount) }
            if counts.month == entry.pointee.month { entry.pointee.monthCount += Int64(counts.monthCount) }
            entry.pointee.seed = Seed.done.rawValue
        }
    }

    /// Gives up a claim from `.needsQuotaCounts` (the counts could not be loaded), so the
    /// next check tries again.
    public func releaseQuotaClaim(_ key: [UInt8]) {
        guard let words = Self.words(key) else { return }
        mutex.withLock(repair: repair) {
            if let entry = find(words), entry.pointee.seed == Seed.claimed.rawValue { entry.pointee.seed = Seed.none.rawValue }
        }
    }

    /// Quota used so far by `key` on this host (nil when this host has no entry for it).
    public func quotaUsed(_ key: [UInt8], now: Int64) -> (daily: Int, monthly: Int)? {
        guard let words = Self.words(key) else { return nil }
        return mutex.withLock(repair: repair) {
            guard let entry = find(words), entry.pointee.seed == Seed.done.rawValue else { return nil }
            // Counts of a period still to come (a clock set right since): load them again,
            // as `check` would, rather than roll them back to zero here.
            if Self.isPeriodsAhead(entry, now: now) {
                entry.pointee.seed = Seed.none.rawValue
                return nil
            }
            rollQuotas(entry, now: now)
            return (Int(entry.pointee.dayCount), Int(entry.pointee.monthCount))
        }
    }

    public var statistics: (capacity: Int, allowed: Int, refused: Int, evictions: Int, lockRecoveries: Int) {
        (capacity, header.pointee.allowed.load(ordering: .relaxed), header.pointee.refused.load(ordering: .relaxed),
         header.pointee.evictions.load(ordering: .relaxed), header.pointee.lockRecoveries.load(ordering: .relaxed))
    }

    // MARK: Calendar (UTC)

    public static let day: Int64 = 86_400_000_000

    /// Months since year 0 for the UTC day `dayNumber` (days since 1970-01-01).
    public static func month(ofDay dayNumber: Int64) -> Int64 {
        // Howard Hinnant's civil_from_days.
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return year * 12 + (month - 1)
    }

    /// Wall µs at the start of `month` (months since year 0).
    public static func monthStart(_ month: Int64) -> Int64 {
        // days_from_civil for the 1st of the month.
        let year = month / 12 - ((month % 12) + 1 <= 2 ? 1 : 0)
        let m = month % 12 + 1
        let era = (year >= 0 ? year : year - 399) / 400
        let yoe = year - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return (era * 146_097 + doe - 719_468) * day
    }

    // MARK: Internals (holding the lock)

    /// Whether the entry's quota periods lie more than one period after `now`'s.
    private static func isPeriodsAhead(_ entry: UnsafeMutablePointer<EntryHeader>, now: Int64) -> Bool {
        let today = now / day
        return entry.pointee.day - today > 1 || entry.pointee.month - month(ofDay: today) > 1
    }

    /// Forward only: a wall clock stepped back across midnight (or the 1st) keeps counting
    /// into the later period rather than zeroing it (and zeroing it again on the way back).
    /// (Counts more than a period ahead are reloaded before this runs: `isPeriodsAhead`.)
    private func rollQuotas(_ entry: UnsafeMutablePointer<EntryHeader>, now: Int64) {
        let today = now / Self.day
        if today > entry.pointee.day {
            entry.pointee.day = today
            entry.pointee.dayCount = 0
        }
        let month = Self.month(ofDay: today)
        if month > entry.pointee.month {
            entry.pointee.month = month
            entry.pointee.monthCount = 0
        }
    }

    private func windows(_ entry: UnsafeMutablePointer<EntryHeader>) -> (minute: SlidingWindow, hour: SlidingWindow, burst: SlidingWindow) {
        let base = UnsafeMutableRawPointer(entry)
        let headers = (base + Self.windowsOffset).assumingMemoryBound(to: WindowHeader.self)
        let buckets = (base + Self.bucketsOffset).assumingMemoryBound(to: UInt32.self)
        return (SlidingWindow(width: Self.minuteWindow.width, bucketCount: Self.minuteWindow.count, header: headers, buckets: buckets),
                SlidingWindow(width: Self.hourWindow.width, bucketCount: Self.hourWindow.count, header: headers + 1,
                              buckets: buckets + Self.minuteWindow.count),
                SlidingWindow(width: Self.burstWindow.width, bucketCount: Self.burstWindow.count, header: headers + 2,
                              buckets: buckets + Self.minuteWindow.count + Self.hourWindow.count))
    }

    @inline(__always)
    private func entry(_ index: Int) -> UnsafeMutablePointer<EntryHeader> {
        (entries + index * Self.entryStride).assumingMemoryBound(to: EntryHeader.self)
    }

    private func index(of entry: UnsafeMutablePointer<EntryHeader>) -> Int {
        (UnsafeMutableRawPointer(entry) - entries) / Self.entryStride
    }

    private func find(_ words: (UInt64, UInt64)) -> UnsafeMutablePointer<EntryHeader>? {
        let start = Int(truncatingIfNeeded: (words.0 ^ words.1) & UInt64(setCount - 1)) * Self.ways
        for index in start..<(start + Self.ways) {
            let candidate = entry(index)
            if candidate.pointee.state == State.used.rawValue && candidate.pointee.key == words { return candidate }
        }
        return nil
    }

    /// The key's entry, or a fresh one in place of an empty or the least recently used entry.
    private func slot(for words: (UInt64, UInt64), now: Int64) -> UnsafeMutablePointer<EntryHeader> {
        if let existing = find(words) { return existing }
        let start = Int(truncatingIfNeeded: (words.0 ^ words.1) & UInt64(setCount - 1)) * Self.ways
        var victim = entry(start)
        var found = false
        for index in start..<(start + Self.ways) {
            let candidate = entry(index)
            if candidate.pointee.state != State.used.rawValue { victim = candidate; found = true; break }
            if candidate.pointee.lastUsed < victim.pointee.lastUsed { victim = candidate }
        }
        if !found { header.pointee.evictions.wrappingAdd(1, ordering: .relaxed) }
        UnsafeMutableRawPointer(victim).initializeMemory(as: UInt8.self, repeating: 0, count: Self.entryStride)
        victim.pointee.key = words
        victim.pointee.lastUsed = now
        victim.pointee.state = State.used.rawValue
        return victim
    }

    /// After a holder died mid-update: that entry's window totals may disagree with their
    /// buckets, so they are rebuilt from them. Starting the key afresh instead would hand
    /// it a whole new window (its limit leaking, once per crash).
    private func repair() {
        header.pointee.lockRecoveries.wrappingAdd(1, ordering: .relaxed)
        let writing = header.pointee.writing.load(ordering: .relaxed)
        if writing > 0 && writing <= capacity {
            let torn = entry(writing - 1)
            let windows = self.windows(torn)
            windows.minute.rebuildTotal()
            windows.hour.rebuildTotal()
            windows.burst.rebuildTotal()
            torn.pointee.state = State.used.rawValue
            header.pointee.writing.store(0, ordering: .relaxed)
        }
    }

    // MARK: Test support

    /// Takes the lock and starts counting a request for `key` (its minute bucket, not yet
    /// the total), then runs `body` without releasing anything: lets tests die mid-count.
    public func simulateWriterDyingMidCount(_ key: [UInt8], now: Int64, _ body: () -> Never) -> Never {
        mutex.lock()
        if let words = Self.words(key), let entry = find(words) {
            header.pointee.writing.store(index(of: entry) + 1, ordering: .relaxed)
            entry.pointee.state = State.writing.rawValue
            let minute = windows(entry).minute
            minute.advance(to: now)
            minute.buckets[Int(minute.header.pointee.lastBucket % Int64(minute.bucketCount))] &+= 1
        }
        body()
    }

    static func seconds(_ micros: Int64) -> Int {
        Int(max(0, (micros + 999_999) / 1_000_000))
    }

    static func words(_ key: [UInt8]) -> (UInt64, UInt64)? {
        guard key.count == 16 else { return nil }
        return key.withUnsafeBytes { ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }
}
