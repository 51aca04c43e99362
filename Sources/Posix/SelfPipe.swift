#if canImport(Glibc)
import Glibc
#endif
internal import CPosix

/// A non-blocking pipe that signal handlers write to and the master's loop polls.
public struct SelfPipe: ~Copyable {
    public let readFD: Int32
    public let writeFD: Int32

    public init() throws(POSIXError) {
        var fds: [Int32] = [0, 0]
        try syscall("pipe2") { kg_pipe_nonblocking(&fds) }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Waits up to `timeoutMilliseconds` for signals; returns those that arrived, in order.
    public func wait(timeoutMilliseconds: Int32) -> [Int32] {
        var descriptor = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        guard ready > 0 else { return [] }
        var signals: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            signals.append(contentsOf: buffer[0..<count].map { Int32($0) })
        }
        return signals
    }

    deinit {
        close(readFD)
        close(writeFD)
    }
}
