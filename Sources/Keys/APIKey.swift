import Cryptography

/// The environment a key belongs to.
public enum KeyEnvironment: String, Sendable, Codable, CaseIterable {
    case live, test
}

/// A raw API key: `<prefix>_<env>_<body><checksum>`, e.g. `mdw_live_` + 32 base62
/// characters of CSPRNG output + 6 base62 characters of CRC32 over everything before
/// them. The checksum lets a mistyped or invented key be refused without a database
/// round trip, and the fixed shape lets secret scanners recognise leaked keys.
///
/// The raw text exists only at creation (shown once) and while a request is checked;
/// it is never stored or logged: storage keeps `KeyHasher`'s HMAC, display the prefix.
public struct APIKey: Sendable, Equatable, CustomStringConvertible {
    public static let bodyLength = 32
    public static let checksumLength = 6
    /// Characters of the key kept for display (`mdw_live_AbC`).
    public static let displayPrefixLength = 12

    public let prefix: String
    public let environment: KeyEnvironment
    /// The whole key text. Never log it.
    public let rawValue: String

    /// Refuses to print the secret (logs, string interpolation by mistake).
    public var description: String { displayPrefix + "…" }

    public var displayPrefix: String { String(rawValue.prefix(Self.displayPrefixLength)) }

    /// A new key from OpenSSL's CSPRNG: 32 unbiased base62 characters (≈ 190 bits).
    public static func generate(prefix: String, environment: KeyEnvironment) throws(KeyError) -> APIKey {
        guard isValidPrefix(prefix) else { throw .invalidPrefix }
        var body: [UInt8] = []
        body.reserveCapacity(bodyLength)
        while body.count < bodyLength {
            let random: [UInt8]
            do { random = try SecureRandom.bytes(48) } catch { throw .randomUnavailable }
            // Rejection sampling: 248 = 4 × 62, so byte % 62 is uniform below it.
            for byte in random where byte < 248 && body.count < bodyLength {
                body.append(Base62.alphabet[Int(byte % 62)])
            }
        }
        let head = Array("\(prefix)_\(environment.rawValue)_".utf8) + body
        let text = head + Base62.encode(UInt64(CRC32.checksum(head)), width: checksumLength)
        return APIKey(prefix: prefix, environment: environment, rawValue: String(decoding: text, as: UTF8.self))
    }

    /// Parses presented text. Anything not exactly of the format (wrong prefix, unknown
    /// environment, bad length or alphabet, wrong checksum) is refused.
    public static func parse(_ text: String, expectedPrefix: String) throws(KeyError) -> APIKey {
        let bytes = Array(text.utf8)
        let head = Array("\(expectedPrefix)_".utf8)
        guard bytes.count <= 128, bytes.starts(with: head) else { throw .malformed }
        let afterPrefix = bytes[head.count...]
        guard let underscore = afterPrefix.firstIndex(of: UInt8(ascii: "_")),
              let environment = KeyEnvironment(rawValue: String(decoding: afterPrefix[..<underscore], as: UTF8.self)) else {
            throw .malformed
        }
        let tail = bytes[(underscore + 1)...]
        guard tail.count == bodyLength + checksumLength, tail.allSatisfy({ Base62.value(of: $0) != nil }) else {
            throw .malformed
        }
        let checksumStart = bytes.count - checksumLength
        guard let presented = Base62.decode(bytes[checksumStart...]),
              presented == UInt64(CRC32.checksum(bytes[..<checksumStart])) else {
            throw .badChecksum
        }
        return APIKey(prefix: expectedPrefix, environment: environment, rawValue: text)
    }

    /// Lower-case letters and digits, 2 to 16 characters.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        (2...16).contains(prefix.utf8.count)
            && prefix.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}

public enum KeyError: Error, Equatable, CustomStringConvertible {
    case malformed
    case badChecksum
    case invalidPrefix
    case randomUnavailable

    public var description: String {
        switch self {
        case .malformed: return "not a key of this service's format"
        case .badChecksum: return "the key's checksum does not match (mistyped or invented)"
        case .invalidPrefix: return "the key prefix must be 2-16 lower-case letters or digits"
        case .randomUnavailable: return "the CSPRNG failed"
        }
    }
}
