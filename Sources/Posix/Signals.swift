#if canImport(Glibc)
import Glibc
#endif
internal import CPosix

/// Signal plumbing. Handlers live in C (async-signal-safe); Swift only reads their
/// effects: bytes on a self-pipe in the master, a flag in a worker.
public enum Signals {
    /// Routes `signals` to the write end of a self-pipe, one byte (the signal number) each.
    public static func routeToPipe(_ signals: [Int32], writeFD: Int32) throws(POSIXError) {
        let rc = signals.withUnsafeBufferPointer { buffer in
            kg_signals_route_to_pipe(writeFD, buffer.baseAddress, Int32(buffer.count))
        }
        if rc != 0 { throw POSIXError(call: "sigaction", errno: errno) }
    }

    /// In a worker: SIGTERM/SIGQUIT request a graceful stop and make the next (or
    /// current) accept() on `listenFD` fail, without touching an in-flight request.
    public static func installWorkerStop(listenFD: Int32) throws(POSIXError) {
        let null = try syscall("open /dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }
        if kg_signals_worker_stop(listenFD, null) != 0 {
            throw POSIXError(call: "sigaction", errno: errno)
        }
    }

    /// Whether this worker was asked to stop.
    public static var isStopRequested: Bool { kg_signals_stop_requested() != 0 }

    /// Default dispositions, empty mask, SIGPIPE ignored: the state a forked child starts
    /// from. A child answers to the master only: SIGINT and SIGHUP (a terminal's Ctrl-C, a
    /// signal to the whole process group) and SIGUSR1/2 are ignored, so the master stops or
    /// reloads the children in order instead of their dying mid-request.
    public static func resetForChild() {
        kg_signals_reset()
        for ignored in [SIGPIPE, SIGINT, SIGHUP, SIGUSR1, SIGUSR2] { signal(ignored, SIG_IGN) }
    }

    /// Ignores SIGPIPE, so a closed peer is a write error rather than death.
    public static func ignoreBrokenPipe() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Asks the kernel to send `signal` to this process when its parent dies.
    public static func setParentDeathSignal(_ signal: Int32) {
        _ = kg_set_parent_death_signal(signal)
    }
}
