import Posix
import SharedMemory

/// Read access to the pool's scoreboard for the status and metrics routes and
/// `keygate status`.
public struct PoolView: Sendable {
    public let scoreboard: Scoreboard?
    /// The shared cache, rate table and usage ring (nil where not mapped).
    public let host: HostState?

    public init(scoreboard: Scoreboard?, host: HostState? = nil) {
        self.scoreboard = scoreboard
        self.host = host
    }

    /// The scoreboard as the status route and `keygate status --json` print it.
    public func report() -> PoolReport? {
        guard let scoreboard else { return nil }
        let nowWall = Clock.wallMicroseconds()
        let nowMonotonic = Clock.monotonicMicroseconds()
        let slots = scoreboard.occupiedSlots()
        let housekeeper = slots.first { $0.state == .housekeeping }.map { slot in
            PoolReport.Housekeeper(pid: Int(slot.pid), startedAt: Timestamp.rfc3339(microseconds: slot.startedAtWall, fractionDigits: 3),
                                   rssBytes: Int(slot.residentBytes))
        }
        let workers = slots.filter { $0.state != .housekeeping }.map { slot in
            PoolReport.Worker(
                slot: slot.index,
                pid: Int(slot.pid),
                state: slot.state.name,
                generation: slot.generation,
                requests: slot.requests,
                startedAt: Timestamp.rfc3339(microseconds: slot.startedAtWall, fractionDigits: 3),
                currentRequestStartedAt: slot.requestStartMonotonic > 0 ? Timestamp.rfc3339(microseconds: slot.requestStartWall, fractionDigits: 3) : nil,
                currentRequestMs: slot.requestStartMonotonic > 0 ? Double(nowMonotonic - slot.requestStartMonotonic) / 1000 : nil,
                rssBytes: Int(slot.residentBytes)
            )
        }
        return PoolReport(
            masterPid: scoreboard.masterPID,
            generation: scoreboard.generation,
            startedAt: Timestamp.rfc3339(microseconds: scoreboard.startedAtWall, fractionDigits: 3),
            uptimeSeconds: Double(nowWall - scoreboard.startedAtWall) / 1_000_000,
            workers: workers,
            housekeeper: housekeeper,
            restarts: .init(crash: scoreboard.crashRestarts, recycle: scoreboard.recycles, timeout: scoreboard.timeoutKills),
            reloads: scoreboard.reloads,
            keyCache: host?.keyCache.map { cache in
                let s = cache.statistics
                return PoolReport.Cache(capacity: s.capacity, entries: s.entries, hits: s.hits, misses: s.misses, unknownHits: s.unknownHits,
                                        evictions: s.evictions, invalidations: s.invalidations, clears: s.clears, tooLarge: s.tooLarge,
                                        lockRecoveries: s.lockRecoveries,
                                        databaseDownSince: cache.databaseDownSince.map { Timestamp.rfc3339(microseconds: $0, fractionDigits: 3) })
            },
            usageRing: host.map { host in
                let s = host.usage.statistics
                return PoolReport.Ring(id: UUIDBytes.format(host.usage.id) ?? "", capacity: s.capacity, pending: s.pending,
                                       recorded: s.appended, dropped: s.dropped, stored: s.drained, lost: s.lost)
            },
            rateLimits: host.map { host in
                let s = host.rates.statistics
                return PoolReport.Limits(capacity: s.capacity, allowed: s.allowed, refused: s.refused, evictions: s.evictions,
                                         lockRecoveries: s.lockRecoveries)
            }
        )
    }
}

public struct PoolReport: Codable, Sendable {
    public struct Worker: Codable, Sendable {
        public let slot: Int
        public let pid: Int
        public let state: String
        public let generation: Int
        public let requests: Int
        public let startedAt: String
        public let currentRequestStartedAt: String?
        public let currentRequestMs: Double?
        public let rssBytes: Int
    }

    public struct Restarts: Codable, Sendable {
        public let crash: Int
        public let recycle: Int
        public let timeout: Int
    }

    public let masterPid: Int
    public let generation: Int
    public let startedAt: String
    public let uptimeSeconds: Double
    public struct Housekeeper: Codable, Sendable {
        public let pid: Int
        public let startedAt: String
        public let rssBytes: Int
    }

    public struct Cache: Codable, Sendable {
        public let capacity: Int, entries: Int, hits: Int, misses: Int, unknownHits: Int, evictions: Int
        public let invalidations: Int, clears: Int, tooLarge: Int, lockRecoveries: Int
        public let databaseDownSince: String?
    }

    /// Usage records: recorded by workers, stored by the housekeeper, dropped on a full
    /// ring, lost when a worker died mid-append. `id` names the ring in the database's
    /// `usage_ring_progress`.
    public struct Ring: Codable, Sendable {
        public let id: String
        public let capacity: Int, pending: Int, recorded: Int, dropped: Int, stored: Int, lost: Int
    }

    public struct Limits: Codable, Sendable {
        public let capacity: Int, allowed: Int, refused: Int, evictions: Int, lockRecoveries: Int
    }

    public let workers: [Worker]
    public let housekeeper: Housekeeper?
    public let restarts: Restarts
    public let reloads: Int
    public let keyCache: Cache?
    public let usageRing: Ring?
    public let rateLimits: Limits?
}
