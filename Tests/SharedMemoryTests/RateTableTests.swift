#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import SharedMemory

private func makeTable(entries: Int = 64) throws -> RateTable {
    RateTable.create(in: try SharedRegion.anonymous(size: RateTable.byteCount(entries: entries)), entries: entries)
}

private let second: Int64 = 1_000_000
private let key = [UInt8](repeating: 7, count: 16)
/// 2026-11-21T12:00:00Z in µs.
private let noon: Int64 = 1_795_262_400 * second

private func decide(_ table: RateTable, _ limits: RateLimits, at now: Int64, key: [UInt8] = key) -> RateDecision? {
    if case .decided(let decision) = table.check(key, limits: limits, now: now) { return decision }
    return nil
}

/// Loads zero stored quota counts for `key` when the table asks for them (a fresh key).
private func seedIfAsked(_ table: RateTable, _ limits: RateLimits, at now: Int64, key: [UInt8] = key) {
    if table.check(key, limits: limits, now: now) == .needsQuotaCounts {
        let day = now / RateTable.day
        table.seedQuota(key, QuotaCounts(day: day, dayCount: 0, month: RateTable.month(ofDay: day), monthCount: 0), now: now)
    }
}

/// How many of `count` requests at `now` get through.
private func allowed(_ table: RateTable, _ limits: RateLimits, count: Int, at now: Int64, key: [UInt8] = key) -> Int {
    (0..<count).filter { _ in decide(table, limits, at: now, key: key)?.allowed == true }.count
}

@Suite("Rate limits")
struct RateTableTests {
    @Test("N per minute: N pass, the rest are refused with Retry-After, and refusals do not count")
    func perMinute() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 5)
        #expect(allowed(table, limits, count: 8, at: noon) == 5)
        let refused = try #require(decide(table, limits, at: noon + 500_000))
        #expect(!refused.allowed && refused.policy == .minute && refused.remaining == 0)
        #expect(refused.retryAfterSeconds == 61) // the first 5 leave the counted span at noon + 61 s
        // Hammering while refused changes nothing: at noon + 61 s all 5 are free again.
        for offset in stride(from: 1, through: 60, by: 1) { _ = decide(table, limits, at: noon + Int64(offset) * second) }
        #expect(allowed(table, limits, count: 6, at: noon + 61 * second) == 5)
        #expect(table.statistics.allowed == 10)
    }

    @Test("the window slides: no 2N across a minute boundary, capacity returns as requests age out")
    func slides() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 10)
        #expect(allowed(table, limits, count: 10, at: noon + 59 * second + 900_000) == 10)
        #expect(allowed(table, limits, count: 10, at: noon + 60 * second + 100_000) == 0) // a fixed window would allow 10 here
        let table2 = try makeTable()
        #expect(allowed(table2, limits, count: 4, at: noon) == 4)
        #expect(allowed(table2, limits, count: 6, at: noon + 30 * second) == 6)
        #expect(allowed(table2, limits, count: 10, at: noon + 45 * second) == 0)
        #expect(allowed(table2, limits, count: 10, at: noon + 61 * second) == 4) // the first 4 aged out, the 6 did not
        #expect(allowed(table2, limits, count: 10, at: noon + 91 * second) == 6)
    }

    @Test("hourly limit and burst per second")
    func hourAndBurst() throws {
        let table = try makeTable()
        let limits = RateLimits(perHour: 6, burst: 3)
        #expect(allowed(table, limits, count: 5, at: noon) == 3) // burst
        let refused = try #require(decide(table, limits, at: noon))
        #expect(refused.policy == .burst && refused.retryAfterSeconds == 2)
        #expect(allowed(table, limits, count: 5, at: noon + 2 * second) == 3)
        let hourly = try #require(decide(table, limits, at: noon + 4 * second))
        #expect(!hourly.allowed && hourly.policy == .hour && hourly.retryAfterSeconds == 3_656)
        #expect(allowed(table, limits, count: 3, at: noon + 3_661 * second) == 3)
    }

    @Test("the headers report the policy with the fewest requests left")
    func reporting() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 100, perHour: 1_000, daily: 3)
        seedIfAsked(table, limits, at: noon)
        let first = try #require(decide(table, limits, at: noon))
        #expect(first.allowed && first.policy == .daily && first.limit == 3 && first.remaining == 2)
        #expect(first.resetSeconds == 12 * 3_600) // midnight UTC
        let none = RateLimits(perMinute: 100)
        let other = [UInt8](repeating: 8, count: 16)
        let minute = try #require(decide(table, none, at: noon, key: other))
        #expect(minute.policy == .minute && minute.remaining == 99 && minute.resetSeconds == 61)
    }

    @Test("daily quota: exhausted until UTC midnight, then reset")
    func dailyQuota() throws {
        let table = try makeTable()
        let limits = RateLimits(daily: 3)
        let beforeMidnight = noon + 11 * 3_600 * second + 59 * 60 * second // 23:59
        seedIfAsked(table, limits, at: beforeMidnight)
        #expect(allowed(table, limits, count: 5, at: beforeMidnight) == 3)
        let refused = try #require(decide(table, limits, at: beforeMidnight + 30 * second))
        #expect(refused.policy == .daily && refused.retryAfterSeconds == 30 && refused.dailyUsed == 3)
        #expect(allowed(table, limits, count: 5, at: beforeMidnight + 60 * second) == 3) // 00:00 next day
    }

    @Test("a wall clock stepping back across midnight does not hand out the day's quota again")
    func quotaClockStepsBack() throws {
        let table = try makeTable()
        let limits = RateLimits(daily: 3)
        let afterMidnight = noon + 12 * 3_600 * second + 30 * second // 00:00:30 the next day
        seedIfAsked(table, limits, at: afterMidnight)
        #expect(allowed(table, limits, count: 5, at: afterMidnight) == 3)
        #expect(allowed(table, limits, count: 5, at: afterMidnight - 60 * second) == 0) // stepped back to 23:59:30
        #expect(allowed(table, limits, count: 5, at: afterMidnight + 60 * second) == 0) // and forward: still that day
        // A clock that had run days ahead and is then set right starts counting today.
        let other = [UInt8](repeating: 9, count: 16)
        let ahead = afterMidnight + 30 * RateTable.day
        if table.check(other, limits: limits, now: ahead) == .needsQuotaCounts {
            table.seedQuota(other, QuotaCounts(day: ahead / RateTable.day, dayCount: 0, month: RateTable.month(ofDay: ahead / RateTable.day),
                                               monthCount: 0), now: ahead)
        }
        #expect(allowed(table, limits, count: 5, at: ahead, key: other) == 3)
        // Set right: the counts are loaded again, for today (one request stored before the jump).
        let back = afterMidnight + 120 * second
        #expect(table.quotaUsed(other, now: back) == nil) // not the future period's counts, nor zero
        #expect(table.check(other, limits: limits, now: back) == .needsQuotaCounts)
        table.seedQuota(other, QuotaCounts(day: back / RateTable.day, dayCount: 1, month: RateTable.month(ofDay: back / RateTable.day),
                                           monthCount: 1), now: back)
        #expect(allowed(table, limits, count: 5, at: back, key: other) == 2)
    }

    @Test("monthly quota resets on the 1st (UTC), across month lengths and leap years")
    func monthlyQuota() throws {
        let table = try makeTable()
        let limits = RateLimits(monthly: 2)
        let jan31 = Int64(1_769_860_800) * second // 2026-01-31T12:00:00Z
        seedIfAsked(table, limits, at: jan31)
        #expect(allowed(table, limits, count: 3, at: jan31) == 2)
        let refused = try #require(decide(table, limits, at: jan31))
        #expect(refused.policy == .monthly && refused.retryAfterSeconds == 12 * 3_600)
        #expect(allowed(table, limits, count: 3, at: jan31 + 12 * 3_600 * second) == 2) // Feb 1st
        // Calendar arithmetic against known dates.
        #expect(RateTable.monthStart(RateTable.month(ofDay: 19_782)) == 1_706_745_600 * second) // 2024-02-29 → 2024-02-01
        #expect(RateTable.monthStart(RateTable.month(ofDay: 19_782) + 1) == 1_706_745_600 * second + 29 * 86_400 * second) // March 1st, leap year
        #expect(RateTable.monthStart(RateTable.month(ofDay: 20_453) + 1) == 1_767_225_600 * second) // 2025-12-31 → 2026-01-01
    }

    @Test("a key with a quota asks once for its stored counts, which then count")
    func quotaSeeding() throws {
        let table = try makeTable()
        let limits = RateLimits(daily: 5, monthly: 100)
        #expect(table.check(key, limits: limits, now: noon) == .needsQuotaCounts)
        let day = noon / RateTable.day
        table.seedQuota(key, QuotaCounts(day: day, dayCount: 4, month: RateTable.month(ofDay: day), monthCount: 40), now: noon)
        let first = try #require(decide(table, limits, at: noon))
        #expect(first.allowed && first.dailyUsed == 5 && first.monthlyUsed == 41)
        #expect(decide(table, limits, at: noon)?.allowed == false)
        #expect(table.quotaUsed(key, now: noon)! == (daily: 5, monthly: 41))
        // While one worker loads the counts, the others wait (nothing counted from zero);
        // a worker that cannot load them gives the claim back for the next to try.
        let other = [UInt8](repeating: 9, count: 16)
        #expect(table.check(other, limits: limits, now: noon) == .needsQuotaCounts)
        #expect(table.check(other, limits: limits, now: noon + 1) == .loadingQuotaCounts)
        table.releaseQuotaClaim(other)
        #expect(table.check(other, limits: limits, now: noon + 2) == .needsQuotaCounts)
        // A claim whose holder never came back is taken over after 10 s.
        #expect(table.check(other, limits: limits, now: noon + 11 * second) == .needsQuotaCounts)
    }

    @Test("a quota added to a key that was counted without one starts from the stored counts, not double")
    func quotaAddedLater() throws {
        let table = try makeTable()
        #expect(allowed(table, RateLimits(perMinute: 100), count: 6, at: noon) == 6)
        let withQuota = RateLimits(perMinute: 100, daily: 10)
        #expect(table.check(key, limits: withQuota, now: noon + 1) == .needsQuotaCounts)
        let day = noon / RateTable.day
        table.seedQuota(key, QuotaCounts(day: day, dayCount: 6, month: RateTable.month(ofDay: day), monthCount: 6), now: noon + 1)
        #expect(decide(table, withQuota, at: noon + 2)?.dailyUsed == 7)
    }

    @Test("keys of one lineage with and without a quota share the loaded counts: the one without neither resets nor skips them")
    func mixedLineage() throws {
        let table = try makeTable()
        let withQuota = RateLimits(perMinute: 100, daily: 10)
        #expect(table.check(key, limits: withQuota, now: noon) == .needsQuotaCounts)
        let day = noon / RateTable.day
        table.seedQuota(key, QuotaCounts(day: day, dayCount: 3, month: RateTable.month(ofDay: day), monthCount: 3), now: noon)
        #expect(decide(table, withQuota, at: noon + 1)?.dailyUsed == 4)
        // Another key of the lineage (the same entry), rate-limited but without a quota.
        #expect(allowed(table, RateLimits(perMinute: 100), count: 2, at: noon + 2) == 2)
        // No reload, and its requests were counted, as the database counts them.
        #expect(decide(table, withQuota, at: noon + 3)?.dailyUsed == 7)
    }

    @Test("windows run on the monotonic clock: a wall-clock step back changes nothing")
    func monotonicWindows() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 2)
        let tick: Int64 = 500 * second
        #expect(table.check(key, limits: limits, now: noon, monotonic: tick) != .needsQuotaCounts)
        _ = table.check(key, limits: limits, now: noon - 3_600 * second, monotonic: tick + 1)
        guard case .decided(let refused) = table.check(key, limits: limits, now: noon - 3_600 * second, monotonic: tick + 2) else {
            Issue.record("no decision"); return
        }
        #expect(!refused.allowed && refused.retryAfterSeconds == 61)
        guard case .decided(let later) = table.check(key, limits: limits, now: noon - 3_539 * second, monotonic: tick + 61 * second) else {
            Issue.record("no decision"); return
        }
        #expect(later.allowed)
    }

    @Test("a full set evicts its least recently used key")
    func eviction() throws {
        let table = try makeTable(entries: 8) // one set
        let limits = RateLimits(perMinute: 1)
        for index in 0..<9 {
            _ = decide(table, limits, at: noon + Int64(index), key: [UInt8](repeating: UInt8(index + 1), count: 16))
        }
        #expect(table.statistics.evictions == 1)
        // Key 1 (least recent) was evicted: it starts afresh; key 2 still counts.
        #expect(decide(table, limits, at: noon + 10, key: [UInt8](repeating: 1, count: 16))?.allowed == true)
        #expect(decide(table, limits, at: noon + 10, key: [UInt8](repeating: 3, count: 16))?.allowed == false)
    }
}

@Suite("Rate limits across fork", .serialized)
struct RateTableForkTests {
    @Test("four processes racing on one key get exactly N through")
    func exactAcrossProcesses() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 5_000)
        // Warm every path the children take, on a key of its own.
        _ = decide(table, limits, at: noon, key: [UInt8](repeating: 1, count: 16))
        var children: [pid_t] = []
        children.reserveCapacity(4)
        let processes = 4
        let gate = StartGate(children: processes)
        defer { gate.start() }
        for _ in 0..<processes {
            let child = Glibc.fork()
            try #require(child >= 0)
            if child == 0 {
                gate.awaitStart()
                for _ in 0..<10_000 { _ = table.check(key, limits: limits, now: noon + 1) }
                _exit(0)
            }
            children.append(child)
        }
        gate.start()
        for child in children {
            #expect(waitForChild(child) == .exited(0))
        }
        let stats = table.statistics
        #expect(stats.allowed == 1 + 5_000)
        #expect(stats.refused == 35_000)
        #expect(decide(table, limits, at: noon + 2)?.remaining == 0)
    }

    @Test("a process killed mid-count leaves the key's requests counted, not a fresh window")
    func holderDiesMidCount() throws {
        let table = try makeTable()
        let limits = RateLimits(perMinute: 3)
        #expect(allowed(table, limits, count: 2, at: noon) == 2)
        let child = Glibc.fork()
        try #require(child >= 0)
        if child == 0 {
            table.simulateWriterDyingMidCount(key, now: noon + second) { kill(getpid(), SIGKILL); _exit(1) }
        }
        #expect(waitForChild(child) == .signaled(SIGKILL))
        // The two requests and the one torn mid-count stay counted: none more this minute.
        #expect(allowed(table, limits, count: 3, at: noon + 2 * second) == 0)
        #expect(table.statistics.lockRecoveries == 1)
        // The window then moves on as usual.
        #expect(allowed(table, limits, count: 5, at: noon + 62 * second) == 3)
    }
}
