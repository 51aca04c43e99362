import Testing
import HTTP

@Suite("String(utf8Bytes:)")
struct UTF8TextTests {
    @Test("well-formed UTF-8 decodes as sent, a literal U+FFFD included", arguments: ["", "plain", "żółw €", "𝄞", "\u{FFFD}"])
    func valid(text: String) {
        #expect(String(utf8Bytes: Array(text.utf8)) == text)
    }

    @Test("ill-formed UTF-8 is nil", arguments: [
        [0xFF] as [UInt8], [0x61, 0x80], [0xC3], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xF0, 0x9D, 0x84],
    ])
    func invalid(bytes: [UInt8]) {
        #expect(String(utf8Bytes: bytes) == nil)
    }
}

@Suite("[UInt8].appendDecimal")
struct DecimalBytesTests {
    @Test("decimal ASCII like String(value), at the edges too", arguments: [0, 7, 10, 404, -1, -42, Int.max, Int.min])
    func decimal(value: Int) {
        var bytes: [UInt8] = [UInt8(ascii: "x")]
        bytes.appendDecimal(value)
        #expect(String(decoding: bytes, as: UTF8.self) == "x" + String(value))
    }
}
