import Postgres

/// One row of the audit log as the API shows it.
public struct AuditEntry: Sendable, Equatable {
    public let id: Int
    public let at: Int64
    public let actorKeyID: String?
    public let action: String
    public let targetType: String?
    public let targetID: String?
    public let remoteAddress: String?
    public let requestID: String?
    /// The details object, as JSON text.
    public let detailsJSON: String
}

/// The append-only audit log (the database refuses UPDATE, DELETE and TRUNCATE).
public enum Audit {
    /// Appends one entry on `db` (inside the caller's transaction).
    static func append(action: String, targetType: String, targetID: String, by actor: Actor,
                       details: [String: String], on db: PostgresConnection) throws(StoreError) {
        try storage {
            try db.query("""
                INSERT INTO audit_log (actor_key_id, action, target_type, target_id, remote_addr, request_id, details)
                VALUES (\(actor.keyID)::uuid, \(action), \(targetType), \(targetID), \(actor.remoteAddress)::inet,
                        \(actor.requestID), \(jsonObject(details))::jsonb)
                """)
        }
    }

    /// Entries oldest first, optionally for one target or actor.
    public static func list(on db: PostgresConnection, actorKeyID: String? = nil, action: String? = nil,
                            limit: Int, cursor: String?) throws(StoreError) -> Page<AuditEntry> {
        var after: Int?
        if let cursor {
            guard let id = Int(cursor), id > 0 else { throw .invalidCursor }
            after = id
        }
        if let actorKeyID, !isUUID(actorKeyID) { return Page(items: [], nextCursor: nil) }
        let rows = try storage {
            try db.query("""
                SELECT id, (extract(epoch FROM at) * 1000000)::bigint AS at, actor_key_id::text AS actor_key_id, action,
                       target_type, target_id, host(remote_addr) AS remote_addr, request_id, details::text AS details
                FROM audit_log
                WHERE (\(after)::bigint IS NULL OR id > \(after)::bigint)
                  AND (\(actorKeyID)::uuid IS NULL OR actor_key_id = \(actorKeyID)::uuid)
                  AND (\(action)::text IS NULL OR action = \(action))
                ORDER BY id LIMIT \(limit + 1)
                """)
        }
        var items: [AuditEntry] = []
        for row in rows {
            do {
                items.append(AuditEntry(id: try row.decode("id"), at: try row.decode("at"),
                                        actorKeyID: try row.decode("actor_key_id", as: String?.self), action: try row.decode("action"),
                                        targetType: try row.decode("target_type", as: String?.self),
                                        targetID: try row.decode("target_id", as: String?.self),
                                        remoteAddress: try row.decode("remote_addr", as: String?.self),
                                        requestID: try row.decode("request_id", as: String?.self), detailsJSON: try row.decode("details")))
            } catch {
                throw .database(PostgresError(kind: .other, sqlState: nil, message: String(describing: error)))
            }
        }
        var next: String?
        if items.count > limit {
            items.removeLast()
            next = items.last.map { String($0.id) }
        }
        return Page(items: items, nextCursor: next)
    }

    /// A flat JSON object of strings, escaped per RFC 8259.
    static func jsonObject(_ fields: [String: String]) -> String {
        func quote(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out + "\""
        }
        return "{" + fields.sorted { $0.key < $1.key }.map { quote($0.key) + ":" + quote($0.value) }.joined(separator: ",") + "}"
    }
}
