/// Rows in `COPY … FROM STDIN` text format, built field by field: tab between fields,
/// newline after each row, `\\N` for NULL, and backslash, tab, newline and carriage
/// return escaped inside values.
public struct PostgresCopyData: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var rowStarted = false

    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { appendEscaped($0) }
    }

    public mutating func append(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func append(_ text: [UInt8]) {
        text.withUnsafeBufferPointer { appendEscaped($0) }
    }

    public mutating func appendNull() {
        separate()
        bytes.append(contentsOf: [0x5c, UInt8(ascii: "N")])
    }

    public mutating func endRow() {
        bytes.append(0x0a)
        rowStarted = false
    }

    private mutating func separate() {
        if rowStarted { bytes.append(0x09) }
        rowStarted = true
    }

    private mutating func appendEscaped(_ text: UnsafeBufferPointer<UInt8>) {
        separate()
        for byte in text {
            switch byte {
            case 0x5c: bytes.append(contentsOf: [0x5c, 0x5c])
            case 0x09: bytes.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0x0a: bytes.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: bytes.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            default: bytes.append(byte)
            }
        }
    }
}
