#if canImport(Glibc)
import Glibc
#endif
import Posix
import SharedMemory

/// What a pool process is for.
public enum ChildRole: Sendable, Equatable {
    case worker
    /// The one background process: drains the usage ring, listens for key changes.
    case housekeeper
}

/// What a forked pool process is told about itself.
public struct WorkerContext {
    public let slot: Int
    public let generation: Int
    public let scoreboard: Scoreboard
    public let settings: PoolSettings
}

/// The master's record of one live child.
struct ChildProcess {
    let role: ChildRole
    let pid: pid_t
    let slot: Int
    let generation: Int
    let startedAt: Int64
    /// Set once the master has asked it to stop (reload, shutdown, timeout).
    var stopRequestedAt: Int64?
    /// Killed for running past the request timeout.
    var killedForTimeout = false
    /// SIGKILL already sent.
    var killSent = false
}

/// A pending replacement of a worker that died, with its back-off.
struct Respawn {
    let due: Int64
    var role: ChildRole = .worker
}

/// Recent crashes, for back-off and the crash-loop (emergency) threshold.
struct CrashHistory {
    private(set) var times: [Int64] = []
    private(set) var consecutive = 0

    /// Records a crash; returns how long to wait before the replacement starts.
    mutating func record(at now: Int64, windowMicroseconds: Int64) -> Int64 {
        times.append(now)
        times.removeAll { now - $0 > windowMicroseconds }
        consecutive += 1
        // First replacement at once (the pool must be whole again within a second),
        // then 100 ms doubling up to 5 s while crashes keep coming.
        guard consecutive > 1 else { return 0 }
        return min(100_000 << min(consecutive - 2, 6), 5_000_000)
    }

    /// A child that lived a while resets the back-off.
    mutating func noteHealthyRun() { consecutive = 0 }

    func recentCount(at now: Int64, windowMicroseconds: Int64) -> Int {
        times.filter { now - $0 <= windowMicroseconds }.count
    }
}
