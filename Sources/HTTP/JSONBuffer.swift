/// JSON text being written: the byte-level primitives both writers share (the
/// field-by-field one and the `Encoder`). A value type, so appends need no runtime
/// exclusivity checks.
public struct JSONBuffer {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func appendNull() {
        append("null")
    }

    public mutating func appendBool(_ value: Bool) {
        append(value ? "true" : "false")
    }

    public mutating func appendInteger(_ value: Int) {
        bytes.appendDecimal(value)
    }

    /// A JSON string: quotes, and escapes for `"`, `\` and control characters.
    public mutating func appendString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            bytes.append(UInt8(ascii: "\""))
            // Runs of bytes that need no escape are copied at once.
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): append("\\\"")
                case UInt8(ascii: "\\"): append("\\\\")
                case 0x0a: append("\\n")
                case 0x0d: append("\\r")
                case 0x09: append("\\t")
                default:
                    append("\\u00")
                    bytes.append(Self.hexDigit(byte >> 4))
                    bytes.append(Self.hexDigit(byte & 0x0f))
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
            bytes.append(UInt8(ascii: "\""))
        }
    }

    /// `requestId` → `"request_id":` (coding keys are ASCII identifiers).
    public mutating func appendSnakeCaseKey(_ key: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in key.utf8 {
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") {
                bytes.append(UInt8(ascii: "_"))
                bytes.append(byte | 0x20)
            } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 {
                continue // never in an identifier; dropped rather than breaking the document
            } else {
                bytes.append(byte)
            }
        }
        append("\":")
    }

    /// Raw bytes of a literal (punctuation, keys already in wire form).
    public mutating func append(_ literal: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    public mutating func append(byte: UInt8) {
        bytes.append(byte)
    }

    /// Raw bytes of text that is already JSON (a number's digits, say).
    public mutating func append(raw text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

extension Array where Element == UInt8 {
    /// `value` in decimal ASCII, without a temporary String (JSON numbers, status codes,
    /// lengths: every response writes a few).
    public mutating func appendDecimal(_ value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes ≥ "-9223372036854775808"
        var magnitude = value.magnitude
        var count = 0
        Swift.withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[23 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            if value < 0 {
                buffer[23 - count] = UInt8(ascii: "-")
                count += 1
            }
            append(contentsOf: buffer[(24 - count)...])
        }
    }
}
