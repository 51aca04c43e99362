#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers used by the master and the CLI.
public enum Files {
    /// Whole contents of a file; nil when it cannot be read, or is larger than `limit`
    /// (never the first part of one: a configuration or a key cut short would be wrong).
    public static func read(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while result.count <= limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
        }
        return nil
    }

    /// Writes `contents` to `path` atomically (temporary file, then rename) with exactly
    /// `mode`, on disk before it appears under its name.
    public static func write(_ contents: String, to path: String, mode: mode_t = 0o644) throws(POSIXError) {
        let temporary = path + ".tmp.\(getpid())"
        // Always a new file of our own: one left behind (or planted) under the temporary name
        // would otherwise keep its looser mode, and a symlink there would be written through.
        unlink(temporary)
        let fd = try syscall("open \(temporary)") { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        var bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(fd, base + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw POSIXError(call: "write \(temporary)", errno: code)
            }
            offset += written
        }
        // The umask may have taken bits the caller asked for; fsync: a crash right after the
        // rename must not leave an empty file under the name.
        if fchmod(fd, mode) != 0 || fsync(fd) != 0 {
            let code = errno
            close(fd)
            unlink(temporary)
            throw POSIXError(call: "fchmod/fsync \(temporary)", errno: code)
        }
        close(fd)
        do {
            try syscall("rename \(path)") { rename(temporary, path) }
        } catch {
            unlink(temporary) // it may hold a secret (a key file)
            throw error
        }
    }

    /// Removes a file, ignoring a missing one.
    public static func remove(_ path: String) {
        unlink(path)
    }

    /// Whether `path` exists.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}

/// Writes log lines straight to fd 2 (no buffering, no global `stderr`, which Swift 6
/// strict concurrency rejects).
public enum StandardError {
    public static func write(_ line: String) {
        var bytes = Array(line.utf8)
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(2, base + offset, buffer.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
