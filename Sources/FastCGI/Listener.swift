#if canImport(Glibc)
import Glibc
#endif
import Posix

/// Where the pool listens: a unix socket path, or `host:port` for TCP.
public enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    /// `/run/keygate.sock`, `127.0.0.1:9000`, `[::1]:9000`.
    public init?(_ text: String) {
        if text.hasPrefix("/") || text.hasPrefix("./") || text.hasPrefix("unix:") {
            let path = text.hasPrefix("unix:") ? String(text.dropFirst(5)) : text
            guard !path.isEmpty, path.utf8.count < 108 else { return nil }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "127.0.0.1" }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// Opens the pool's listening socket in the master, before any fork.
public enum Listener {
    /// Binds and listens. For a unix socket, a stale file is removed only when nothing
    /// answers on it (a live pool keeps its socket), and the file gets `mode`.
    public static func open(_ address: ListenAddress, backlog: Int32, mode: mode_t) throws(POSIXError) -> Int32 {
        switch address {
        case .unix(let path):
            return try openUnix(path: path, backlog: backlog, mode: mode)
        case .tcp(let host, let port):
            return try openTCP(host: host, port: port, backlog: backlog)
        }
    }

    private static func openUnix(path: String, backlog: Int32, mode: mode_t) throws(POSIXError) -> Int32 {
        if Files.exists(path) {
            if isAnswering(path) { throw POSIXError(call: "bind \(path) (another keygate is listening)", errno: EADDRINUSE) }
            unlink(path)
        }
        let fd = try syscall("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) }
        var address = unixAddress(path)
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        do throws(POSIXError) {
            try syscall("bind \(path)") {
                withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            }
            try syscall("chmod \(path)") { chmod(path, mode) }
            try syscall("listen") { listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    private static func openTCP(host: String, port: UInt16, backlog: Int32) throws(POSIXError) -> Int32 {
        let isIPv6 = host.contains(":")
        let fd = try syscall("socket") { socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        do throws(POSIXError) {
            if isIPv6 {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw POSIXError(call: "inet_pton \(host)", errno: EINVAL) }
                try syscall("bind \(host):\(port)") {
                    withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
                }
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw POSIXError(call: "inet_pton \(host)", errno: EINVAL) }
                try syscall("bind \(host):\(port)") {
                    withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                }
            }
            try syscall("listen") { listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Whether a process accepts connections on the unix socket at `path`.
    public static func isAnswering(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }

    private static func unixAddress(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }
}
