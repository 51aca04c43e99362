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
/// takes far longer than a few thousand operations). The parent writes one byte per child
/// and each child takes one: children of other tests, running at the same time and
/// holding a copy of this pipe, cannot hold anyone up (waiting for the pipe to close could).
final class StartGate {
    private let readEnd: Int32
    private let writeEnd: Int32
    private let children: Int
    private var started = false

    init(children: Int) {
        var ends: [Int32] = [-1, -1]
        _ = pipe(&ends)
        readEnd = ends[0]
        writeEnd = ends[1]
        self.children = children
    }

    /// In a child: blocks until the parent lets it go (its byte, or the pipe's end).
    func awaitStart() {
        close(writeEnd)
        var byte: UInt8 = 0
        while read(readEnd, &byte, 1) == -1 && errno == EINTR {}
    }

    /// In the parent, once every child is forked (also on the way out of a failed test:
    /// it lets any child already forked run and exit).
    func start() {
        guard !started else { return }
        started = true
        let go = [UInt8](repeating: 1, count: children)
        _ = go.withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
        close(writeEnd)
        close(readEnd)
    }

    deinit { start() }
}
