#if canImport(Glibc)
import Glibc
#endif
import Posix

/// Waits for the forked `child`; how it ended, or nil when it was not ours to reap.
func waitForChild(_ child: pid_t) -> ExitReason? {
    var status: Int32 = 0
    var reaped: pid_t
    repeat { reaped = waitpid(child, &status, 0) } while reaped == -1 && errno == EINTR
    return reaped == child ? ExitReason(waitStatus: status) : nil
}

/// A start line for forked children: each waits at `awaitStart()` until the parent calls
/// `start()`, so their work overlaps instead of running one child after another (a fork
/// takes far longer than a few thousand operations).
struct StartGate {
    private let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        _ = pipe(&ends)
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    /// In a child: blocks until the parent starts everyone (the pipe's last writer closes).
    func awaitStart() {
        close(writeEnd)
        var byte: UInt8 = 0
        while read(readEnd, &byte, 1) == -1 && errno == EINTR {}
    }

    /// In the parent, once every child is forked.
    func start() {
        close(writeEnd)
        close(readEnd)
    }
}
