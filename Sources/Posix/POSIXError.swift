#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and the errno it left.
public struct POSIXError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno)))"
    }
}

/// Runs a system call, retrying on EINTR, and turns a -1 result into a `POSIXError`.
@discardableResult
public func syscall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(POSIXError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw POSIXError(call: name, errno: code)
    }
}
