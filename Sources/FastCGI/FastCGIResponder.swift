#if canImport(Glibc)
import Glibc
#endif
internal import CFastCGI
import HTTP
import Posix

/// Errors of the libfcgi layer.
public enum FastCGIError: Error, CustomStringConvertible {
    case initializationFailed
    /// Accepting a connection failed with this errno.
    case acceptFailed(errno: Int32)
    /// libfcgi closed a connection before its params were whole: a broken record, a peer
    /// gone or too slow.
    case connectionDropped

    public var description: String {
        switch self {
        case .initializationFailed: return "libfcgi initialisation failed"
        case .acceptFailed(let code): return POSIXError(call: "accept", errno: code).description
        case .connectionDropped: return "a connection closed before its request was complete"
        }
    }

    /// A failure that says nothing about the listener: a signal, a connection aborted before
    /// it was accepted, one libfcgi dropped.
    public var isRoutine: Bool {
        switch self {
        case .connectionDropped: return true
        case .acceptFailed(let code): return [EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO].contains(code)
        case .initializationFailed: return false
        }
    }

    /// A listener that will never accept again (closed, not a socket, not listening).
    /// Running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is not: it
    /// passes once other work ends.
    public var isListenerGone: Bool {
        if case .acceptFailed(let code) = self { return [EBADF, ENOTSOCK, EINVAL, EOPNOTSUPP].contains(code) }
        return false
    }
}

/// One worker's FastCGI endpoint: accepts a connection at a time on the shared listening
/// socket, decodes it into a `Request`, writes a `Response`.
///
/// libfcgi keeps a pointer to the `FCGX_Request` inside its streams, so the request lives
/// on the heap for the responder's whole life (never a Swift `var` passed with `&`).
public final class FastCGIResponder {
    private let request: UnsafeMutablePointer<FCGX_Request>
    private let makeRequestID: () -> String
    /// Whether the current request's params and whole body were read (see `finish`).
    private var inputRead = false
    /// The shared listening socket: this responder accepts on it itself (see `acceptConnection`).
    private let listenFD: Int32

    public init(listenFD: Int32, makeRequestID: @escaping () -> String) throws(FastCGIError) {
        guard FCGX_Init() == 0 else { throw FastCGIError.initializationFailed }
        request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        self.makeRequestID = makeRequestID
        self.listenFD = listenFD
        // No listening socket for libfcgi: `acceptConnection` hands it each connection. When
        // libfcgi drops one (a broken record, a peer gone), its own accept on -1 fails at
        // once and `FCGX_Accept_r` returns instead of accepting the next connection itself.
        // FAIL_ACCEPT_ON_INTR: never retry inside libfcgi.
        guard FCGX_InitRequest(request, -1, Int32(FCGI_FAIL_ACCEPT_ON_INTR)) == 0 else {
            request.deallocate()
            throw FastCGIError.initializationFailed
        }
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// Blocks until the next connection arrives. Throws when the listener is gone or a stop
    /// signal interrupted the wait (a stop handler puts /dev/null in the listener's place).
    ///
    /// The worker accepts itself, rather than inside `FCGX_Accept_r`, so that it counts as
    /// busy from here: libfcgi then reads the begin record and the params, and a peer that
    /// stalls or trickles them is bounded by the pool's request timeout like any request.
    public func acceptConnection() throws(FastCGIError) {
        inputRead = false
        let fd = Glibc.accept(listenFD, nil, nil)
        guard fd >= 0 else { throw FastCGIError.acceptFailed(errno: Glibc.errno) }
        request.pointee.ipcFd = fd
        // FCGX_Accept_r first finishes "the current request": it must not close this one.
        request.pointee.keepConnection = 1
    }

    /// Reads the accepted connection's begin record and params; `.connectionDropped` when
    /// libfcgi closed it first (a broken record, a peer gone).
    public func readHead() throws(FastCGIError) {
        // A connection libfcgi drops is closed at once, without lingering for a peer that
        // sent something it could not use.
        request.pointee.detached = 1
        guard FCGX_Accept_r(request) >= 0 else { throw FastCGIError.connectionDropped }
    }

    /// Decodes the accepted request's params and body.
    public func readRequest(limits: RequestLimits) throws(RequestDecodingError) -> Request {
        var decoder = RequestDecoder(limits: limits)
        if var cursor = request.pointee.envp {
            while let entry = cursor.pointee {
                let bytes = UnsafeRawBufferPointer(start: entry, count: strlen(entry))
                if let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
                    decoder.add(name: UnsafeRawBufferPointer(rebasing: bytes[..<equals]),
                                value: UnsafeRawBufferPointer(rebasing: bytes[(equals + 1)...]))
                }
                cursor += 1
            }
        }
        let decoded = try decoder.finish(readBody: readBody, makeRequestID: makeRequestID)
        inputRead = true
        return decoded
    }

    /// Writes the whole response in one `FCGX_PutStr`.
    public func send(_ response: Response, requestID: String, omitBody: Bool) {
        let bytes = ResponseEncoder.encode(response, requestID: requestID, omitBody: omitBody)
        bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { chars in
                    _ = FCGX_PutStr(chars, Int32(buffer.count), request.pointee.out)
                }
            }
        }
    }

    /// Flushes and closes this request's connection (one connection per request).
    ///
    /// libfcgi closes with a linger: shutdown(SHUT_WR), then wait until the web server
    /// closes its end, so that unread input never turns into a reset that could cost the
    /// server the response. The worker sits idle for that round trip through nginx's
    /// event loop. When everything nginx sent has been read (params, the whole body and
    /// the end of stdin) there is nothing to reset, so the connection is closed at once
    /// (`FCGX_Detach` makes libfcgi skip the linger). Otherwise, e.g. after a 413 that
    /// left the body unread, libfcgi lingers as usual.
    public func finish() {
        // Never kept open for a next request, even when the peer asked (FCGI_KEEP_CONN):
        // the next one starts with `acceptConnection`, where the request timeout covers it.
        request.pointee.keepConnection = 0
        if inputRead && FCGX_GetChar(request.pointee.in) == -1 {
            _ = FCGX_Detach(request)
        } else {
            request.pointee.detached = 0
        }
        FCGX_Finish_r(request)
    }

    private func readBody(_ count: Int) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = body.withUnsafeMutableBytes { raw -> Int32 in
                guard let base = raw.baseAddress else { return 0 }
                let chars = base.advanced(by: filled).assumingMemoryBound(to: CChar.self)
                return FCGX_GetStr(chars, Int32(min(count - filled, Int(Int32.max))), request.pointee.in)
            }
            if got <= 0 { break }
            filled += Int(got)
        }
        body.removeSubrange(filled...)
        return body
    }
}
