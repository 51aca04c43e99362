extension String {
    /// The bytes as a String when they are well-formed UTF-8, nil otherwise.
    ///
    /// Request decoding and record decoding run this for every field of every request.
    /// `String(validating:as:)` is generic over the encoding and, unspecialised across
    /// modules, looked up type metadata on each call; this is the plain UTF-8 case.
    public init?(utf8Bytes bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        // Decoding repairs invalid sequences with U+FFFD: valid exactly when nothing changed.
        guard bytes.allSatisfy({ $0 < 0x80 }) || text.utf8.elementsEqual(bytes) else { return nil }
        self = text
    }

    public init?(utf8Bytes bytes: [UInt8]) {
        guard let text = bytes.withUnsafeBytes({ String(utf8Bytes: $0) }) else { return nil }
        self = text
    }
}
