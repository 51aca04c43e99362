import Testing
import Cryptography

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

private func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        result.append(UInt8(hex[index..<next], radix: 16) ?? 0)
        index = next
    }
    return result
}

@Suite("Cryptography")
struct CryptographyTests {
    @Test("HMAC-SHA-256 matches RFC 4231's long-key test cases, and the context is reusable")
    func hmacVectors() throws {
        // Test cases 6 and 7: a 131-byte key (longer than the block, so hashed first).
        let mac = try HMACSHA256(key: [UInt8](repeating: 0xaa, count: 131))
        let six = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        let expectedSix = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        #expect(hex(mac.authenticate(six)) == expectedSix)
        let seven = Array(("This is a test using a larger than block-size key and a larger than block-size data. "
                           + "The key needs to be hashed before being used by the HMAC algorithm.").utf8)
        #expect(hex(mac.authenticate(seven)) == "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")
        #expect(hex(mac.authenticate(six)) == expectedSix) // the reused context starts afresh each time
        #expect(hex(mac.authenticate(six[...])) == expectedSix) // any collection of bytes
    }

    @Test("a pepper shorter than 32 bytes is refused")
    func shortKey() {
        #expect(throws: CryptographyError.self) { try HMACSHA256(key: [UInt8](repeating: 1, count: 31)) }
        #expect((try? HMACSHA256(key: [UInt8](repeating: 1, count: 32))) != nil)
    }

    @Test("SHA-256 of the empty string and of 'abc' (FIPS 180-2); hex is the digest's hex")
    func sha256Vectors() {
        #expect(hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)) == bytes(hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("constant-time comparison: equal only for the same bytes and length")
    func comparison() {
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!constantTimeEquals([], [])) // a failed MAC is empty: two failures never match
    }

    @Test("random bytes: the length asked for, never the same twice")
    func random() throws {
        let a = try SecureRandom.bytes(32), b = try SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32 && a != b)
        #expect(try SecureRandom.bytes(0).isEmpty)
        let hex = try SecureRandom.hex(16)
        #expect(hex.count == 32 && hex.allSatisfy { "0123456789abcdef".contains($0) })
        // 1,000 draws of 16 bytes: all distinct, and every byte value appears somewhere.
        var seen = Set<[UInt8]>(), values = Set<UInt8>()
        for _ in 0..<1_000 {
            let draw = try SecureRandom.bytes(16)
            seen.insert(draw)
            values.formUnion(draw)
        }
        #expect(seen.count == 1_000 && values.count == 256)
    }
}
