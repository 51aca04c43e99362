internal import COpenSSL

/// HMAC-SHA-256 under one fixed key (the pepper), with the OpenSSL MAC context made once
/// and re-initialised per message (≈ 1 µs per key instead of a fetch and setup each time).
/// One per process; not for concurrent use.
public final class HMACSHA256 {
    private let mac: OpaquePointer
    private let context: OpaquePointer

    /// - Parameter key: the secret; at least 32 bytes.
    public init(key: [UInt8]) throws(CryptographyError) {
        guard key.count >= 32 else { throw .keyTooShort }
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw .unavailable("HMAC") }
        guard let context = EVP_MAC_CTX_new(mac) else {
            EVP_MAC_free(mac)
            throw .unavailable("EVP_MAC_CTX_new")
        }
        self.mac = mac
        self.context = context
        var digest = Array("SHA256".utf8CString)
        let ok = digest.withUnsafeMutableBufferPointer { name -> Int32 in
            var params = [OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name.baseAddress, 0), kg_ossl_param_end()]
            return key.withUnsafeBufferPointer { EVP_MAC_init(context, $0.baseAddress, $0.count, &params) }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(context)
            EVP_MAC_free(mac)
            throw .unavailable("EVP_MAC_init")
        }
    }

    deinit {
        EVP_MAC_CTX_free(context)
        EVP_MAC_free(mac)
    }

    /// The 32-byte MAC of `message`.
    public func authenticate(_ message: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length = 0
        // NULL key: reuse the key and digest set at init.
        guard EVP_MAC_init(context, nil, 0, nil) == 1 else { return [] }
        let updated = message.withContiguousStorageIfAvailable { EVP_MAC_update(context, $0.baseAddress, $0.count) }
            ?? Array(message).withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
        guard updated == 1 else { return [] }
        guard out.withUnsafeMutableBufferPointer({ EVP_MAC_final(context, $0.baseAddress, &length, $0.count) }) == 1, length == 32 else {
            return []
        }
        return out
    }
}

/// Comparison whose time does not depend on where the inputs differ (CRYPTO_memcmp).
/// Empty inputs never match: a MAC that failed is empty, and two failures must not agree.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count, !a.isEmpty else { return false }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 } }
}
