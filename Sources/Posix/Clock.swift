#if canImport(Glibc)
import Glibc
#endif

/// Time readings in integer units, cheap enough for the request path.
public enum Clock {
    /// Monotonic microseconds (for durations and timeouts).
    public static func monotonicMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }

    /// Wall-clock microseconds since the Unix epoch (for timestamps people read).
    public static func wallMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }

    /// Sleeps about `microseconds` (a signal may end it early: callers loop anyway).
    public static func pause(microseconds: Int64) {
        var interval = timespec(tv_sec: Int(microseconds / 1_000_000), tv_nsec: Int(microseconds % 1_000_000) * 1_000)
        nanosleep(&interval, nil)
    }
}
