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
    /// it was accepted, one libfcgi dropped. Anything else (EMFILE, EBADF…) is worth a log line.
    public var isRoutine: Bool {
        switch self {
        case .connectionDropped: return true
        case .acceptFailed(let code): return [EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO].contains(code)
        case .initializationFailed: return false
        }
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
    /// The shared listening socket: this responder accepts on it itself (see `accept`).
    private let listenFD: Int32
    /// How long a new connection may take to deliver its begin record and params.
    private let acceptTimeoutSeconds: Double?

    /// `acceptTimeoutSeconds`: how long a connection may take to deliver its begin record
    /// and params (nil or 0: for ever). libfcgi reads them inside `FCGX_Accept_r`, before
    /// this worker counts as busy and the pool's request timeout runs, so without a bound
    /// a peer that stops mid-record would hold the worker indefinitely.
    public init(listenFD: Int32, acceptTimeoutSeconds: Double? = nil, makeRequestID: @escaping () -> String) throws(FastCGIError) {
        guard FCGX_Init() == 0 else { throw FastCGIError.initializationFailed }
        request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        self.makeRequestID = makeRequestID
        self.listenFD = listenFD
        self.acceptTimeoutSeconds = acceptTimeoutSeconds.flatMap { $0 > 0 ? $0 : nil }
        // No listening socket for libfcgi: `accept` hands it each connection. When libfcgi
        // drops one (a broken record, a peer gone or too slow), its own accept on -1 fails
        // at once and `FCGX_Accept_r` returns, instead of accepting the next connection
        // without the bound. FAIL_ACCEPT_ON_INTR: never retry inside libfcgi.
        guard FCGX_InitRequest(request, -1, Int32(FCGI_FAIL_ACCEPT_ON_INTR)) == 0 else {
            request.deallocate()
            throw FastCGIError.initializationFailed
        }
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// Blocks until the next request arrives. Throws when the listener is gone or a stop
    /// signal interrupted the wait (a stop handler puts /dev/null in the listener's place),
    /// and `.connectionDropped` when a connection broke off before its request was whole.
    public func accept() throws(FastCGIError) {
        inputRead = false
        if request.pointee.ipcFd < 0 {
            let fd = Glibc.accept(listenFD, nil, nil)
            guard fd >= 0 else { throw FastCGIError.acceptFailed(errno: Glibc.errno) }
            if let acceptTimeoutSeconds {
                do { try Listener.setReceiveTimeout(fd, seconds: acceptTimeoutSeconds) } catch {
                    close(fd)
                    throw FastCGIError.acceptFailed(errno: error.errno)
                }
            }
            request.pointee.ipcFd = fd
            // FCGX_Accept_r first finishes "the current request": it must not close this one.
            request.pointee.keepConnection = 1
        }
        guard FCGX_Accept_r(request) >= 0 else { throw FastCGIError.connectionDropped }
        // From here the request counts as busy and the pool's timeout covers it. A socket
        // with a receive timeout is never restarted after a signal (signal(7)): a stop
        // signal would break the body read of a request that should finish.
        if acceptTimeoutSeconds != nil { try? Listener.setReceiveTimeout(request.pointee.ipcFd, seconds: 0) }
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
