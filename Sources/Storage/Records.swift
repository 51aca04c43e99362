import Postgres

/// Who is acting, for the audit row written in the same transaction as the change.
public struct Actor: Sendable {
    public let keyID: String?
    public let remoteAddress: String?
    public let requestID: String?

    public init(keyID: String?, remoteAddress: String?, requestID: String?) {
        self.keyID = keyID
        self.remoteAddress = remoteAddress.flatMap { $0.isEmpty ? nil : $0 }
        self.requestID = requestID
    }

    /// An operator on the host (CLI, bootstrap).
    public static let operatorOnHost = Actor(keyID: nil, remoteAddress: nil, requestID: nil)
}

/// Per-key limits; nil = no limit of that kind.
public struct KeyLimits: Sendable, Equatable, Codable {
    public var rateLimitPerMinute: Int?
    public var rateLimitPerHour: Int?
    public var burst: Int?
    public var quotaDaily: Int?
    public var quotaMonthly: Int?

    public init(rateLimitPerMinute: Int? = nil, rateLimitPerHour: Int? = nil, burst: Int? = nil,
                quotaDaily: Int? = nil, quotaMonthly: Int? = nil) {
        self.rateLimitPerMinute = rateLimitPerMinute
        self.rateLimitPerHour = rateLimitPerHour
        self.burst = burst
        self.quotaDaily = quotaDaily
        self.quotaMonthly = quotaMonthly
    }
}

/// A key's metadata as stored (never its hash or raw text). Times are µs since the epoch.
public struct KeyRecord: Sendable, Equatable {
    public let id: String
    public let name: String
    public let keyPrefix: String
    public let environment: String
    public let userID: String?
    public let scopes: [String]
    public let allowedPaths: [String]
    public let allowedIPs: [String]
    public let limits: KeyLimits
    public let active: Bool
    public let createdAt: Int64
    public let updatedAt: Int64
    public let expiresAt: Int64?
    public let lastUsedAt: Int64?
    public let lastUsedEndpoint: String?
    public let requestCount: Int
    public let revokedAt: Int64?
    public let rotatedFrom: String?
    /// The first key of this key's rotation chain (its own id unless it is a rotation's
    /// successor): rate limits and quotas count per lineage, so a rotation starts neither.
    public let lineageID: String
    /// The stored HMAC, so a change can drop the key's cache entry. Never shown.
    public var keyHash: [UInt8] = []

    public init(id: String, name: String, keyPrefix: String, environment: String, userID: String?, scopes: [String],
                allowedPaths: [String], allowedIPs: [String], limits: KeyLimits, active: Bool, createdAt: Int64, updatedAt: Int64,
                expiresAt: Int64?, lastUsedAt: Int64?, lastUsedEndpoint: String?, requestCount: Int, revokedAt: Int64?, rotatedFrom: String?,
                lineageID: String? = nil) {
        self.id = id
        self.name = name
        self.keyPrefix = keyPrefix
        self.environment = environment
        self.userID = userID
        self.scopes = scopes
        self.allowedPaths = allowedPaths
        self.allowedIPs = allowedIPs
        self.limits = limits
        self.active = active
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt
        self.lastUsedEndpoint = lastUsedEndpoint
        self.requestCount = requestCount
        self.revokedAt = revokedAt
        self.rotatedFrom = rotatedFrom
        self.lineageID = lineageID ?? id
    }

    /// `active`, `revoked`, or `expired` (derived from `expires_at`) at `now`.
    public func status(at now: Int64) -> String {
        if !active { return "revoked" }
        if let expiresAt, expiresAt <= now { return "expired" }
        return "active"
    }
}

/// What a new key is made of.
public struct NewKey: Sendable {
    public var hash: [UInt8]
    public var keyPrefix: String
    public var name: String
    public var environment: String
    public var userID: String?
    public var scopes: [String]
    public var allowedPaths: [String]
    public var allowedIPs: [String]
    public var limits: KeyLimits
    public var expiresAt: Int64?
    public var rotatedFrom: String?
    /// The lineage to join (rate windows and quotas shared with it); nil: a rotation's
    /// successor joins its predecessor's, any other key starts its own.
    public var lineageID: String?

    public init(hash: [UInt8], keyPrefix: String, name: String, environment: String, userID: String?, scopes: [String],
                allowedPaths: [String] = [], allowedIPs: [String] = [], limits: KeyLimits = KeyLimits(),
                expiresAt: Int64? = nil, rotatedFrom: String? = nil, lineageID: String? = nil) {
        self.hash = hash
        self.keyPrefix = keyPrefix
        self.name = name
        self.environment = environment
        self.userID = userID
        self.scopes = scopes
        self.allowedPaths = allowedPaths
        self.allowedIPs = allowedIPs
        self.limits = limits
        self.expiresAt = expiresAt
        self.rotatedFrom = rotatedFrom
        self.lineageID = lineageID
    }
}

/// An edit; nil leaves a field alone, `.some(nil)` clears a nullable one.
public struct KeyChanges: Sendable {
    public var name: String?
    public var active: Bool?
    public var scopes: [String]?
    public var allowedPaths: [String]?
    public var allowedIPs: [String]?
    public var rateLimitPerMinute: Int??
    public var rateLimitPerHour: Int??
    public var burst: Int??
    public var quotaDaily: Int??
    public var quotaMonthly: Int??
    public var expiresAt: Int64??

    public init() {}

    public var isEmpty: Bool {
        name == nil && active == nil && scopes == nil && allowedPaths == nil && allowedIPs == nil
            && rateLimitPerMinute == nil && rateLimitPerHour == nil && burst == nil
            && quotaDaily == nil && quotaMonthly == nil && expiresAt == nil
    }
}

public struct KeyFilter: Sendable {
    /// `active`, `revoked`, `expired`.
    public var status: String?
    public var userID: String?
    public var environment: String?
    public init(status: String? = nil, userID: String? = nil, environment: String? = nil) {
        self.status = status
        self.userID = userID
        self.environment = environment
    }
}

/// One page of a keyset-paginated list; `nextCursor` is opaque to callers.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    public let nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case invalidCursor
    /// The row is not in a state that allows the change (found so under its row lock).
    case conflict(String)
    /// The caller may not make this change to the row as it is under its row lock.
    case forbidden(String)
    case database(PostgresError)

    public var description: String {
        switch self {
        case .invalidCursor: return "the cursor is not one this service issued"
        case .conflict(let detail), .forbidden(let detail): return detail
        case .database(let error): return error.description
        }
    }
}

/// Keyset cursors: `<created_at µs>.<id>` of the last row shown.
enum Cursor {
    static func make(createdAt: Int64, id: String) -> String { "\(createdAt).\(id)" }

    static func parse(_ text: String?) throws(StoreError) -> (createdAt: Int64, id: String)? {
        guard let text else { return nil }
        let parts = text.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]), (0...latestCursorTime).contains(micros), isUUID(String(parts[1])) else {
            throw .invalidCursor
        }
        return (micros, String(parts[1]))
    }
}

/// The last microsecond of year 9999, PostgreSQL's last printable timestamp: no cursor
/// this service issues is later, and a later one would overflow in the query.
let latestCursorTime: Int64 = 253_402_300_799_999_999

/// `8-4-4-4-12` hex digits.
public func isUUID(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard bytes.count == 36 else { return false }
    for (index, byte) in bytes.enumerated() {
        if [8, 13, 18, 23].contains(index) {
            guard byte == UInt8(ascii: "-") else { return false }
        } else {
            guard (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66) else { return false }
        }
    }
    return true
}

/// Runs a database call, wrapping its error (a `PostgresError` as `.database`).
@discardableResult
public func storage<T>(_ body: () throws -> T) throws(StoreError) -> T {
    do {
        return try body()
    } catch let error as PostgresError {
        throw .database(error)
    } catch let error as StoreError {
        throw error
    } catch {
        throw .database(PostgresError(kind: .other, sqlState: nil, message: String(describing: error)))
    }
}
