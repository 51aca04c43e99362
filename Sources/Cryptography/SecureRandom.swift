internal import COpenSSL

public enum CryptographyError: Error, CustomStringConvertible, Equatable {
    case randomUnavailable
    case keyTooShort
    case unavailable(String)

    public var description: String {
        switch self {
        case .randomUnavailable: return "the CSPRNG (RAND_bytes) failed"
        case .keyTooShort: return "the HMAC key (pepper) must be at least 32 bytes"
        case .unavailable(let what): return "OpenSSL: \(what) failed"
        }
    }
}

/// Bytes from OpenSSL's CSPRNG.
public enum SecureRandom {
    public static func bytes(_ count: Int) throws(CryptographyError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let ok = buffer.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        guard ok == 1 else { throw .randomUnavailable }
        return buffer
    }

    /// `count` random bytes as lowercase hex (request ids when nginx sent none).
    public static func hex(_ count: Int) throws(CryptographyError) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in try bytes(count) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
