import Testing
import Cryptography
@testable import Keys

@Suite("API key format")
struct APIKeyTests {
    @Test("a generated key has the documented shape and parses back")
    func shape() throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let text = Array(key.rawValue.utf8)
        #expect(key.rawValue.hasPrefix("mdw_live_"))
        #expect(text.count == "mdw_live_".count + APIKey.bodyLength + APIKey.checksumLength)
        #expect(text.dropFirst(9).allSatisfy { Base62.value(of: $0) != nil })
        #expect(try APIKey.parse(key.rawValue, expectedPrefix: "mdw") == key)
        #expect(key.displayPrefix == String(key.rawValue.prefix(12)))
        #expect(try APIKey.parse(APIKey.generate(prefix: "mdw", environment: .test).rawValue, expectedPrefix: "mdw").environment == .test)
    }

    @Test("the key never prints itself")
    func description() throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        #expect(!"\(key)".contains(key.rawValue))
        #expect(!String(describing: key).contains(String(key.rawValue.dropFirst(12))))
    }

    @Test("every single-character change of a sample is refused", arguments: 0..<5)
    func singleCharacterChanges(sample: Int) throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let original = Array(key.rawValue.utf8)
        var tried = 0
        for index in original.indices {
            for replacement in Base62.alphabet + Array("_-.".utf8) where replacement != original[index] {
                var changed = original
                changed[index] = replacement
                let text = String(decoding: changed, as: UTF8.self)
                #expect(throws: KeyError.self, "accepted \(index):\(replacement)") { try APIKey.parse(text, expectedPrefix: "mdw") }
                tried += 1
            }
        }
        #expect(tried > 2_500)
    }

    @Test("every transposition of two adjacent characters is refused", arguments: 0..<20)
    func adjacentTranspositions(sample: Int) throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let original = Array(key.rawValue.utf8)
        for index in 0..<(original.count - 1) where original[index] != original[index + 1] {
            var swapped = original
            swapped.swapAt(index, index + 1)
            let text = String(decoding: swapped, as: UTF8.self)
            #expect(throws: KeyError.self, "accepted a swap at \(index)") { try APIKey.parse(text, expectedPrefix: "mdw") }
        }
    }

    @Test("bodies are unique and their characters spread over the whole alphabet")
    func entropy() throws {
        var seen = Set<String>()
        var counts = [Int](repeating: 0, count: 62)
        for _ in 0..<2_000 {
            let key = try APIKey.generate(prefix: "mdw", environment: .live)
            let body = Array(key.rawValue.utf8).dropFirst(9).prefix(APIKey.bodyLength)
            seen.insert(String(decoding: body, as: UTF8.self))
            for byte in body { counts[Int(Base62.value(of: byte) ?? 0)] += 1 }
        }
        #expect(seen.count == 2_000)
        // 64 000 characters: each of 62 symbols expected ≈ 1032; a biased or broken
        // generator (e.g. modulo bias, a stuck byte) falls far outside ± 25 %.
        let expected = 64_000.0 / 62
        #expect(counts.allSatisfy { Double($0) > expected * 0.75 && Double($0) < expected * 1.25 }, "\(counts)")
    }

    @Test("hostile and malformed input is refused without a crash", arguments: [
        "", "mdw", "mdw_", "mdw_live_", "mdw_prod_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000",
        "xyz_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000", "MDW_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000",
        "mdw_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000", "mdw_live_AAAA", "mdw_live_" + String(repeating: "A", count: 500),
        "mdw_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u{0}000000", "mdw_live_ÄAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA00000",
        "mdw_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA zzzzzz", "mdw_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAzzzzzz",
        "' OR 1=1 --", "Bearer mdw_live_x", "mdw_live__AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000",
    ])
    func hostile(text: String) {
        #expect(throws: KeyError.self) { try APIKey.parse(text, expectedPrefix: "mdw") }
    }

    @Test("a checksum that overflows 32 bits is refused, not wrapped")
    func checksumOverflow() throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let text = String(key.rawValue.dropLast(6)) + "zzzzzz" // 62^6 - 1 > 2^32
        #expect(throws: KeyError.badChecksum) { try APIKey.parse(text, expectedPrefix: "mdw") }
    }

    @Test("prefixes: lower-case letters and digits, 2 to 16")
    func prefixes() {
        #expect(APIKey.isValidPrefix("mdw") && APIKey.isValidPrefix("k9") && APIKey.isValidPrefix("abcdefghijklmnop"))
        #expect(!APIKey.isValidPrefix("m") && !APIKey.isValidPrefix("MDW") && !APIKey.isValidPrefix("m_w") && !APIKey.isValidPrefix("abcdefghijklmnopq"))
        #expect(throws: KeyError.invalidPrefix) { try APIKey.generate(prefix: "Bad_", environment: .live) }
    }

    @Test("CRC-32 matches the standard check value")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}

@Suite("Key hashing")
struct KeyHasherTests {
    @Test("HMAC-SHA-256 matches RFC 4231 test case 2's construction with a 32-byte key")
    func knownVector() throws {
        // Key of 32 × 0x0b over "Hi There" (RFC 4231 case 1 uses 20 bytes; this vector is
        // the same HMAC with a 32-byte key, computed independently with `openssl mac`).
        let mac = try HMACSHA256(key: [UInt8](repeating: 0x0b, count: 32))
        let digest = mac.authenticate(Array("Hi There".utf8))
        #expect(hex(digest) == "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7")
        // Reusing the context gives the same answer (re-initialised per message).
        #expect(mac.authenticate(Array("Hi There".utf8)) == digest)
        #expect(mac.authenticate(Array("Hi there".utf8)) != digest)
    }

    @Test("hashes depend on the pepper and compare in constant time")
    func pepper() throws {
        let key = try APIKey.generate(prefix: "mdw", environment: .live)
        let a = try KeyHasher(pepper: [UInt8](repeating: 1, count: 32))
        let b = try KeyHasher(pepper: [UInt8](repeating: 2, count: 32))
        #expect(a.hash(key).count == 32)
        #expect(a.hash(key) != b.hash(key))
        #expect(a.matches(key, stored: a.hash(key)))
        #expect(!a.matches(key, stored: b.hash(key)))
        #expect(!a.matches(key, stored: []))
        #expect(throws: KeyHasherError.self) { try KeyHasher(pepper: [1, 2, 3]) }
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
