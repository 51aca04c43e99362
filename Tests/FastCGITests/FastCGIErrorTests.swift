import Testing
#if canImport(Glibc)
import Glibc
#endif
import FastCGI

@Suite("FastCGIError")
struct FastCGIErrorTests {
    @Test("a signal or a connection aborted before its accept is routine; a broken listener or no descriptors is not",
          arguments: [(EINTR, true), (ECONNABORTED, true), (EPROTO, true),
                      (EBADF, false), (ENOTSOCK, false), (EMFILE, false), (EINVAL, false)])
    func routine(code: Int32, routine: Bool) {
        #expect(FastCGIError.acceptFailed(errno: code).isRoutine == routine)
        #expect(FastCGIError.connectionDropped.isRoutine)
        #expect(!FastCGIError.initializationFailed.isRoutine)
    }

    @Test("only a listener that is gone ends a worker; running out of descriptors or memory passes",
          arguments: [(EBADF, true), (ENOTSOCK, true), (EINVAL, true), (EOPNOTSUPP, true),
                      (EMFILE, false), (ENFILE, false), (ENOBUFS, false), (ENOMEM, false), (EINTR, false)])
    func listenerGone(code: Int32, gone: Bool) {
        #expect(FastCGIError.acceptFailed(errno: code).isListenerGone == gone)
        #expect(!FastCGIError.connectionDropped.isListenerGone)
    }

    @Test("the description names the call and the errno")
    func description() {
        let text = FastCGIError.acceptFailed(errno: EBADF).description
        #expect(text.contains("accept"))
        #expect(text.contains("EBADF") || text.contains("Bad file descriptor"))
    }
}
