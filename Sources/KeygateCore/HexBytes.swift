/// Bytes from hexadecimal text: the hashes in key-change notifications, and UUIDs.
enum HexBytes {
    /// `text` as bytes (two digits each, either case), `-` skipped when `dashes`; nil when
    /// anything else is in it or the digits do not pair up.
    static func decode(_ text: String, dashes: Bool = false) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var high: UInt8?
        for byte in text.utf8 {
            if dashes && byte == UInt8(ascii: "-") { continue }
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let first = high {
                out.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil ? out : nil
    }
}

/// A UUID's 16 bytes from its text form, and back (rate-limit and usage records hold
/// the bytes: shared memory takes no strings).
enum UUIDBytes {
    static func parse(_ text: String) -> [UInt8]? {
        guard let bytes = HexBytes.decode(text, dashes: true), bytes.count == 16 else { return nil }
        return bytes
    }

    static func format(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
