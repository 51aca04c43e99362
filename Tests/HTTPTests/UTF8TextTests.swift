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
