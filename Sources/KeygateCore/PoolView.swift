import Posix
import SharedMemory

/// Read access to the pool's scoreboard for the status and metrics routes and
/// `keygate status`.
public struct PoolView: Sendable {
    public let scoreboard: Scoreboard?

    public init(scoreboard: Scoreboard?) {
        self.scoreboard = scoreboard
    }

    /// The scoreboard as the status route and `keygate status --json` print it.
    public func report() -> PoolReport? {
        guard let scoreboard else { return nil }
        let nowWall = Clock.wallMicroseconds()
        let nowMonotonic = Clock.monotonicMicroseconds()
        let workers = scoreboard.occupiedSlots().map { slot in
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
            restarts: .init(crash: scoreboard.crashRestarts, recycle: scoreboard.recycles, timeout: scoreboard.timeoutKills),
            reloads: scoreboard.reloads
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
    public let workers: [Worker]
    public let restarts: Restarts
    public let reloads: Int
}
