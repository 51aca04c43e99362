import Cryptography
import Posix

/// What is stored for a key: HMAC-SHA-256 under the server's pepper. Without the pepper a
/// stolen table of hashes cannot be checked against guesses offline.
public final class KeyHasher {
    private let hmac: HMACSHA256

    public init(pepper: [UInt8]) throws(KeyHasherError) {
        do { hmac = try HMACSHA256(key: pepper) } catch { throw .invalidPepper(String(describing: error)) }
    }

    /// Reads the pepper from a file (never from the command line or the config values):
    /// the file's bytes with surrounding whitespace removed, at least 32 of them.
    public static func pepper(fromFile path: String) throws(KeyHasherError) -> [UInt8] {
        guard let bytes = Files.read(path, limit: 4096) else { throw .unreadable(path) }
        var trimmed = bytes[...]
        while let last = trimmed.last, last == 0x0a || last == 0x0d || last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        while let first = trimmed.first, first == 0x0a || first == 0x0d || first == 0x20 || first == 0x09 { trimmed = trimmed.dropFirst() }
        guard trimmed.count >= 32 else { throw .invalidPepper("\(path) holds fewer than 32 bytes") }
        return Array(trimmed)
    }

    /// The 32-byte hash of `key`.
    public func hash(_ key: APIKey) -> [UInt8] {
        hmac.authenticate(key.rawValue.utf8)
    }

    /// Whether `key` hashes to `stored`, compared in constant time.
    public func matches(_ key: APIKey, stored: [UInt8]) -> Bool {
        constantTimeEquals(hash(key), stored)
    }
}

public enum KeyHasherError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case invalidPepper(String)

    public var description: String {
        switch self {
        case .unreadable(let path): return "cannot read the pepper file \(path) (missing, unreadable, or over 4096 bytes)"
        case .invalidPepper(let reason): return "invalid pepper: \(reason)"
        }
    }
}
