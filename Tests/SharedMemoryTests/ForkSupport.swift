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
