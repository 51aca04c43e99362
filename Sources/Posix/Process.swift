#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended, decoded from waitpid's status word.
public enum ExitReason: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// Process-level calls the pool needs.
public enum ProcessControl {
    /// fork(); the child gets 0.
    public static func fork() throws(POSIXError) -> pid_t {
        try syscall("fork") { Glibc.fork() }
    }

    /// Reaps one exited child without blocking; nil when none is waiting.
    public static func reapOne() -> (pid: pid_t, reason: ExitReason)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        guard pid > 0 else { return nil }
        return (pid, ExitReason(waitStatus: status))
    }

    /// Sends `signal` to `pid`; false when the process no longer exists.
    @discardableResult
    public static func send(_ signal: Int32, to pid: pid_t) -> Bool {
        kill(pid, signal) == 0
    }

    /// Whether `pid` names a live process (signal 0 probe).
    public static func isAlive(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// The current process id.
    public static var currentPID: pid_t { getpid() }

    /// Resident set size of `pid` in bytes, from /proc; 0 when unreadable.
    public static func residentBytes(of pid: pid_t) -> UInt64 {
        let fd = open("/proc/\(pid)/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return 0 }
        let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = UInt64(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Number of online CPUs.
    public static var onlineCPUCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Exits immediately, skipping atexit handlers (a forked child must not run the parent's).
    public static func exitImmediately(_ code: Int32) -> Never {
        _exit(code)
    }
}

/// The process environment as a dictionary (Glibc's `environ`).
public enum Environment {
    public static var current: [String: String] {
        var result: [String: String] = [:]
        guard var cursor = environ as UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? else { return result }
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }
}

/// Directory helpers.
public enum Directories {
    /// Entry names of `path` (without `.` and `..`), or nil when it cannot be read.
    public static func list(_ path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `mkdir -p` with `mode` for the directories it creates.
    public static func create(_ path: String, mode: mode_t = 0o755) throws(POSIXError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw POSIXError(call: "mkdir \(current)", errno: errno)
            }
        }
    }
}
