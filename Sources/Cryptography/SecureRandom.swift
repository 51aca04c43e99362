internal import COpenSSL

public enum CryptographyError: Error, CustomStringConvertible {
    case randomUnavailable

    public var description: String { "the CSPRNG (RAND_bytes) failed" }
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
