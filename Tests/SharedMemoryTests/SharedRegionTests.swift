#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix
@testable import SharedMemory

@Suite("SharedRegion")
struct SharedRegionTests {
    private func temporaryPath() -> String {
        "/tmp/keygate-region-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    @Test("a new segment has every block allocated: no page left to fail on first write")
    func blocksReserved() throws {
        let path = temporaryPath()
        defer { unlink(path) }
        let size = 8 << 20
        let region = try SharedRegion.create(path: path, size: size)
        #expect(region.size == size)
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(Int(info.st_size) == size)
        #expect(Int(info.st_blocks) * 512 >= size, "a sparse file: its pages are only found (or not) when written")
        #expect(region.base.load(fromByteOffset: size - 1, as: UInt8.self) == 0)
    }

    @Test("a segment the file system cannot hold fails at creation, naming the call, and leaves no file")
    func creationFailsCleanly() throws {
        let path = temporaryPath()
        defer { unlink(path) }
        let child = fork()
        if child == 0 {
            // A file size limit stands in for a full tmpfs (EFBIG rather than ENOSPC).
            signal(SIGXFSZ, SIG_IGN)
            var limit = rlimit(rlim_cur: 1 << 20, rlim_max: 1 << 20)
            setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
            do {
                _ = try SharedRegion.create(path: path, size: 4 << 20)
                _exit(1)
            } catch {
                _exit(String(describing: error).contains("posix_fallocate") && access(path, F_OK) != 0 ? 0 : 2)
            }
        }
        #expect(waitForChild(child) == .exited(0))
    }

    @Test("a segment trusted across runs opens only as a private regular file of this user, never through a symlink")
    func privateOpen() throws {
        let path = temporaryPath()
        let link = path + ".link"
        defer { unlink(path); unlink(link) }
        _ = try SharedRegion.create(path: path, size: 4096, mode: 0o600)
        #expect(try SharedRegion.openPrivate(path: path).size == 4096)
        #expect(symlink(path, link) == 0)
        #expect(throws: POSIXError.self) { try SharedRegion.openPrivate(path: link) }
        #expect(try SharedRegion.openReadWrite(path: link).size == 4096) // the ordinary open follows it
        for mode: mode_t in [0o640, 0o606, 0o660] {
            #expect(chmod(path, mode) == 0)
            #expect(throws: POSIXError.self, "mode \(String(mode, radix: 8))") { try SharedRegion.openPrivate(path: path) }
        }
    }
}
