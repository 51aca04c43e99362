#if canImport(Glibc)
import Glibc
#endif
import Posix

/// A file-backed `MAP_SHARED` mapping. The master creates it before forking, so every
/// worker inherits the same pages; other processes (`keygate status`) map the file by path.
/// Only plain fixed-size data goes in it: no Swift `String`, `Array` or class references,
/// whose storage is private to one process.
public final class SharedRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let path: String

    private init(base: UnsafeMutableRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        self.path = path
    }

    /// Creates (or replaces) the file at `path` with `size` zero bytes, every block reserved,
    /// and maps it.
    public static func create(path: String, size: Int, mode: mode_t = 0o644) throws(POSIXError) -> SharedRegion {
        // A fresh inode: a process still mapping an old segment keeps its own pages.
        unlink(path)
        let fd = try syscall("open \(path)") { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        defer { close(fd) }
        // Reserved now, not as pages are first written: on a full tmpfs a sparse segment
        // would kill with SIGBUS whichever worker first touched a new page, long after start.
        let reserved = posix_fallocate(fd, 0, off_t(size))
        guard reserved == 0 else {
            unlink(path)
            throw POSIXError(call: "posix_fallocate \(path) (\(size) bytes)", errno: reserved)
        }
        return try map(fd: fd, size: size, writable: true, path: path)
    }

    /// Maps an existing segment for reading (status tools).
    public static func openReadOnly(path: String) throws(POSIXError) -> SharedRegion {
        try openExisting(path: path, writable: false)
    }

    /// Maps an existing segment for reading and writing (the CLI invalidating cache entries).
    public static func openReadWrite(path: String) throws(POSIXError) -> SharedRegion {
        try openExisting(path: path, writable: true)
    }

    /// Maps, for reading and writing, a segment an earlier run of this user left behind,
    /// whose content is then trusted (the usage ring kept across a stop): only a regular
    /// file of this user's that nobody else may read or write, never through a symlink.
    /// EPERM otherwise.
    public static func openPrivate(path: String) throws(POSIXError) -> SharedRegion {
        try openExisting(path: path, writable: true, requirePrivate: true)
    }

    private static func openExisting(path: String, writable: Bool, requirePrivate: Bool = false) throws(POSIXError) -> SharedRegion {
        let flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | (requirePrivate ? O_NOFOLLOW : 0)
        let fd = try syscall("open \(path)") { Glibc.open(path, flags) }
        defer { close(fd) }
        var info = stat()
        try syscall("fstat \(path)") { fstat(fd, &info) }
        if requirePrivate && (info.st_mode & S_IFMT != S_IFREG || info.st_uid != geteuid() || info.st_mode & 0o077 != 0) {
            throw POSIXError(call: "open \(path) (not a private file of this user)", errno: EPERM)
        }
        return try map(fd: fd, size: Int(info.st_size), writable: writable, path: path)
    }

    /// An anonymous shared mapping (tests, and segments no other process opens by name).
    public static func anonymous(size: Int) throws(POSIXError) -> SharedRegion {
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw POSIXError(call: "mmap", errno: errno)
        }
        return SharedRegion(base: base, size: size, path: "")
    }

    private static func map(fd: Int32, size: Int, writable: Bool, path: String) throws(POSIXError) -> SharedRegion {
        guard size > 0 else { throw POSIXError(call: "mmap \(path) (empty)", errno: EINVAL) }
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        guard let base = mmap(nil, size, protection, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw POSIXError(call: "mmap \(path)", errno: errno)
        }
        return SharedRegion(base: base, size: size, path: path)
    }

    deinit {
        munmap(base, size)
    }
}
