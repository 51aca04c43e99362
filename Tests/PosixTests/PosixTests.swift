#if canImport(Glibc)
import Glibc
#endif
import Testing
import Posix

private func temporaryDirectory() -> String {
    var template = Array("/tmp/keygate-posix-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return "/tmp" }
        return String(cString: base)
    }
}

@Suite("Files")
struct FilesTests {
    @Test("write replaces a file whole, with the mode asked for, and leaves no temporary file")
    func atomicWrite() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        let path = directory + "/key"
        try Files.write("first\n", to: path, mode: 0o600)
        try Files.write("second\n", to: path, mode: 0o600)
        #expect(Files.read(path).map { String(decoding: $0, as: UTF8.self) } == "second\n")
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try listing(directory) == ["key"])
    }

    @Test("a file planted under the temporary name neither loosens the mode nor is written through")
    func plantedTemporary() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        let path = directory + "/admin.key"
        let temporary = path + ".tmp.\(getpid())"
        try Files.write("planted\n", to: temporary + ".source", mode: 0o644)
        #expect(rename(temporary + ".source", temporary) == 0)
        try Files.write("secret\n", to: path, mode: 0o600)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(Files.read(path).map { String(decoding: $0, as: UTF8.self) } == "secret\n")

        let victim = directory + "/victim"
        try Files.write("untouched\n", to: victim, mode: 0o644)
        #expect(symlink(victim, temporary) == 0)
        try Files.write("secret\n", to: path, mode: 0o600)
        #expect(Files.read(victim).map { String(decoding: $0, as: UTF8.self) } == "untouched\n")
        #expect(try listing(directory).sorted() == ["admin.key", "victim"])
    }

    @Test("the mode asked for is the mode given, whatever the umask")
    func modeDespiteUmask() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        // In a child: the umask is the whole process's, and other tests run beside this one.
        let child = fork()
        if child == 0 {
            umask(0o077)
            do { try Files.write("x", to: directory + "/shared", mode: 0o644) } catch { _exit(2) }
            var info = stat()
            _exit(stat(directory + "/shared", &info) == 0 && info.st_mode & 0o777 == 0o644 ? 0 : 1)
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        #expect(ExitReason(waitStatus: status) == .exited(0))
    }

    @Test("a write that cannot happen throws and leaves nothing behind")
    func failedWrite() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        #expect(throws: POSIXError.self) { try Files.write("x", to: directory + "/missing/key") }
        // The rename fails (a directory is in the way): the temporary file, which may hold
        // a secret, is removed.
        #expect(mkdir(directory + "/taken", 0o700) == 0)
        #expect(throws: POSIXError.self) { try Files.write("secret", to: directory + "/taken") }
        #expect(try listing(directory) == ["taken"])
        #expect(try listing(directory + "/taken").isEmpty)
    }

    @Test("read returns a whole file, and nil for a missing one or one larger than the limit (never its start)")
    func read() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        #expect(Files.read(directory + "/none") == nil)
        try Files.write(String(repeating: "a", count: 100_000), to: directory + "/big")
        #expect(Files.read(directory + "/big", limit: 10) == nil)
        #expect(Files.read(directory + "/big", limit: 99_999) == nil)
        #expect(Files.read(directory + "/big", limit: 100_000)?.count == 100_000)
        #expect(Files.read(directory + "/big")?.count == 100_000)
        try Files.write("", to: directory + "/empty")
        #expect(Files.read(directory + "/empty") == [])
    }

    /// The test's own directory: its files and empty directories, then itself.
    private func removeTree(_ directory: String) {
        for name in (try? listing(directory)) ?? [] {
            if unlink(directory + "/" + name) != 0 { removeTree(directory + "/" + name) }
        }
        rmdir(directory)
    }

    private func listing(_ directory: String) throws -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

@Suite("Signals and the self-pipe", .serialized)
struct SignalsTests {
    @Test("a routed signal arrives on the self-pipe as its number; none means an empty wait")
    func routing() throws {
        let pipe = try SelfPipe()
        try Signals.routeToPipe([SIGUSR1, SIGUSR2], writeFD: pipe.writeFD)
        #expect(pipe.wait(timeoutMilliseconds: 0).isEmpty)
        // To the process, not this thread (a test runner's threads may block signals);
        // each is awaited before the next, as two pending signals have no order.
        kill(getpid(), SIGUSR1)
        #expect(pipe.wait(timeoutMilliseconds: 1_000) == [SIGUSR1])
        kill(getpid(), SIGUSR2)
        #expect(pipe.wait(timeoutMilliseconds: 1_000) == [SIGUSR2])
        #expect(pipe.wait(timeoutMilliseconds: 0).isEmpty)
        signal(SIGUSR1, SIG_IGN)
        signal(SIGUSR2, SIG_IGN)
    }
}

@Suite("Clock")
struct ClockTests {
    @Test("the monotonic clock never goes back; wall time is after 2026")
    func clocks() {
        var last = Clock.monotonicMicroseconds()
        for _ in 0..<1_000 {
            let now = Clock.monotonicMicroseconds()
            #expect(now >= last)
            last = now
        }
        #expect(Clock.wallMicroseconds() > 1_767_225_600_000_000)
    }
}
