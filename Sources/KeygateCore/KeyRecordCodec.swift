import HTTP
import Storage

/// A `KeyRecord` as the compact bytes a key-cache entry holds (plain data: shared
/// memory cannot hold Swift strings or arrays). Decoding checks every length, so a
/// damaged entry reads as nil (a cache miss), never as a wrong key.
enum KeyRecordCodec {
    static func encode(_ record: KeyRecord) -> [UInt8] {
        var out = ByteWriter()
        out.string(record.id)
        out.string(record.name)
        out.string(record.keyPrefix)
        out.string(record.environment)
        out.optionalString(record.userID)
        out.strings(record.scopes)
        out.strings(record.allowedPaths)
        out.strings(record.allowedIPs)
        for limit in [record.limits.rateLimitPerMinute, record.limits.rateLimitPerHour, record.limits.burst,
                      record.limits.quotaDaily, record.limits.quotaMonthly] {
            out.optionalInteger(limit.map(Int64.init))
        }
        out.byte(record.active ? 1 : 0)
        out.integer(record.createdAt)
        out.integer(record.updatedAt)
        out.optionalInteger(record.expiresAt)
        out.optionalInteger(record.lastUsedAt)
        out.optionalString(record.lastUsedEndpoint)
        out.integer(Int64(record.requestCount))
        out.optionalInteger(record.revokedAt)
        out.optionalString(record.rotatedFrom)
        out.string(record.lineageID)
        out.bytes(record.keyHash)
        return out.buffer
    }

    static func decode(_ bytes: [UInt8]) -> KeyRecord? {
        var input = ByteReader(bytes)
        guard let id = input.string(), let name = input.string(), let keyPrefix = input.string(),
              let environment = input.string(), let userID = input.optionalString(),
              let scopes = input.strings(), let paths = input.strings(), let ips = input.strings(),
              let perMinute = input.optionalInteger(), let perHour = input.optionalInteger(), let burst = input.optionalInteger(),
              let daily = input.optionalInteger(), let monthly = input.optionalInteger(),
              let active = input.byte(), let createdAt = input.integer(), let updatedAt = input.integer(),
              let expiresAt = input.optionalInteger(), let lastUsedAt = input.optionalInteger(),
              let lastUsedEndpoint = input.optionalString(), let requestCount = input.integer(),
              let revokedAt = input.optionalInteger(), let rotatedFrom = input.optionalString(),
              let lineageID = input.string(), let hash = input.bytes(), input.isAtEnd else { return nil }
        var record = KeyRecord(
            id: id, name: name, keyPrefix: keyPrefix, environment: environment, userID: userID, scopes: scopes,
            allowedPaths: paths, allowedIPs: ips,
            limits: KeyLimits(rateLimitPerMinute: perMinute.map { Int($0) }, rateLimitPerHour: perHour.map { Int($0) },
                              burst: burst.map { Int($0) }, quotaDaily: daily.map { Int($0) }, quotaMonthly: monthly.map { Int($0) }),
            active: active == 1, createdAt: createdAt, updatedAt: updatedAt, expiresAt: expiresAt, lastUsedAt: lastUsedAt,
            lastUsedEndpoint: lastUsedEndpoint, requestCount: Int(requestCount), revokedAt: revokedAt, rotatedFrom: rotatedFrom,
            lineageID: lineageID)
        record.keyHash = hash
        return record
    }
}

/// Little-endian, length-prefixed writing.
struct ByteWriter {
    var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(256) }

    mutating func byte(_ value: UInt8) { buffer.append(value) }

    mutating func integer(_ value: Int64) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    mutating func bytes(_ value: [UInt8]) {
        integer(Int64(value.count))
        buffer.append(contentsOf: value)
    }

    mutating func string(_ value: String) { bytes(Array(value.utf8)) }

    mutating func strings(_ values: [String]) {
        integer(Int64(values.count))
        for value in values { string(value) }
    }

    mutating func optionalString(_ value: String?) {
        byte(value == nil ? 0 : 1)
        if let value { string(value) }
    }

    mutating func optionalInteger(_ value: Int64?) {
        byte(value == nil ? 0 : 1)
        if let value { integer(value) }
    }
}

/// Bounds-checked reading of what `ByteWriter` wrote. Optional results are doubly
/// wrapped: nil = malformed input, `.some(nil)` = an absent value.
struct ByteReader {
    private let input: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { input = bytes }

    var isAtEnd: Bool { offset == input.count }

    mutating func byte() -> UInt8? {
        guard offset < input.count else { return nil }
        defer { offset += 1 }
        return input[offset]
    }

    mutating func integer() -> Int64? {
        guard input.count - offset >= 8 else { return nil }
        var value: UInt64 = 0
        for index in (0..<8).reversed() { value = value << 8 | UInt64(input[offset + index]) }
        offset += 8
        return Int64(bitPattern: value)
    }

    mutating func bytes() -> [UInt8]? {
        guard let count = integer(), count >= 0, count <= Int64(input.count - offset) else { return nil }
        defer { offset += Int(count) }
        return Array(input[offset..<(offset + Int(count))])
    }

    /// Read in place: no intermediate array per field.
    mutating func string() -> String? {
        guard let count = integer(), count >= 0, count <= Int64(input.count - offset) else { return nil }
        defer { offset += Int(count) }
        return input.withUnsafeBytes { raw in
            String(utf8Bytes: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + Int(count))]))
        }
    }

    mutating func strings() -> [String]? {
        guard let count = integer(), count >= 0, count <= Int64(input.count - offset) else { return nil }
        var values: [String] = []
        for _ in 0..<count {
            guard let value = string() else { return nil }
            values.append(value)
        }
        return values
    }

    mutating func optionalString() -> String?? {
        switch byte() {
        case 0: return .some(nil)
        case 1: return string().map { .some($0) }
        default: return nil
        }
    }

    mutating func optionalInteger() -> Int64?? {
        switch byte() {
        case 0: return .some(nil)
        case 1: return integer().map { .some($0) }
        default: return nil
        }
    }
}
