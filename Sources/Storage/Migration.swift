import Cryptography
import Posix

/// One numbered SQL file of `migrations/`: `NNNN_name.sql` holding a `-- migrate:up`
/// part and a `-- migrate:down` part.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let up: String
    public let down: String
    /// SHA-256 of the whole file: an applied migration whose file changed is refused.
    public let checksum: String

    /// Parses one file's text.
    public static func parse(fileName: String, text: String) throws(MigrationError) -> Migration {
        guard fileName.hasSuffix(".sql"), let underscore = fileName.firstIndex(of: "_"),
              let version = Int(fileName[..<underscore]), version > 0 else {
            throw .malformedFile(fileName, "name must be NNNN_name.sql")
        }
        let name = String(fileName[fileName.index(after: underscore)...].dropLast(4))
        var up: [Substring] = [], down: [Substring] = []
        var section = 0 // 0 before any marker, 1 up, 2 down
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: " \t\r")
            if trimmed == "-- migrate:up" {
                guard section == 0 else { throw .malformedFile(fileName, "'-- migrate:up' must come first, once") }
                section = 1
            } else if trimmed == "-- migrate:down" {
                guard section == 1 else { throw .malformedFile(fileName, "'-- migrate:down' must follow '-- migrate:up', once") }
                section = 2
            } else if section == 1 {
                up.append(line)
            } else if section == 2 {
                down.append(line)
            } else if !trimmed.isEmpty && !trimmed.hasPrefix("--") {
                throw .malformedFile(fileName, "SQL before '-- migrate:up'")
            }
        }
        guard section == 2 else { throw .malformedFile(fileName, "needs both '-- migrate:up' and '-- migrate:down'") }
        let upSQL = up.joined(separator: "\n"), downSQL = down.joined(separator: "\n")
        guard upSQL.contains(where: { !$0.isWhitespace }) else { throw .malformedFile(fileName, "empty up part") }
        return Migration(version: version, name: name, up: upSQL, down: downSQL, checksum: SHA256.hex(Array(text.utf8)))
    }

    /// Every migration in `directory`, in version order; duplicate versions are an error.
    public static func load(directory: String) throws(MigrationError) -> [Migration] {
        guard let names = Directories.list(directory) else { throw .unreadable(directory) }
        var migrations: [Migration] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            guard let bytes = Files.read(directory + "/" + name, limit: 16 << 20),
                  let text = String(validating: bytes, as: UTF8.self) else {
                throw .malformedFile(name, "unreadable or not UTF-8")
            }
            migrations.append(try parse(fileName: name, text: text))
        }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw .malformedFile(next.name, "version \(next.version) is used twice")
        }
        return migrations
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let scalars = Set(set.unicodeScalars)
        var slice = Substring(self)
        while let first = slice.unicodeScalars.first, scalars.contains(first) { slice = slice.dropFirst() }
        while let last = slice.unicodeScalars.last, scalars.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
