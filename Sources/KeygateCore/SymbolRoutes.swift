import HTTP
import Storage

/// `/api/v1/admin/symbols` and `/api/v1/admin/backfill/claim`: the warehouse's watchlist.
enum SymbolRoutes {
    static let base = "/api/v1/admin/symbols"

    struct AddBody: RequestBody {
        static let fieldNames: Set<String> = ["symbol", "asset_class"]
        let symbol: String
        let assetClass: String
    }

    struct UpdateBody: RequestBody {
        var changes = SymbolChanges()
        static let fieldNames: Set<String> = ["active", "asset_class", "backfill_status", "backfill_error"]

        enum CodingKeys: String, CodingKey { case active, assetClass, backfillStatus, backfillError }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            changes.active = try c.decodeNonNullIfPresent(Bool.self, forKey: .active)
            changes.assetClass = try c.decodeNonNullIfPresent(String.self, forKey: .assetClass)
            changes.backfillStatus = try c.decodeNonNullIfPresent(String.self, forKey: .backfillStatus)
            if c.contains(.backfillError) {
                changes.backfillError = .some(try c.decodeNil(forKey: .backfillError) ? nil : c.decode(String.self, forKey: .backfillError))
            }
        }
    }

    struct ClaimBody: RequestBody {
        static let fieldNames: Set<String> = ["limit", "asset_class"]
        let limit: Int?
        let assetClass: String?
    }

    static func register(on router: inout Router<AppContext>) {
        router.post(base) { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "symbols:write")
            let body = try JSON.decode(AddBody.self, from: request.body)
            let assetClass = try SymbolValidation.assetClass(body.assetClass)
            let symbol = try SymbolValidation.canonical(body.symbol, assetClass: assetClass)
            switch try store(context).add(symbol, assetClass: assetClass, by: request.actor(caller)) {
            case .added(let record): return .json(SymbolBody(record: record), status: .created)
            case .reactivated(let record): return .json(SymbolBody(record: record), status: .ok)
            case .alreadyActive:
                throw Problem(.conflict, detail: "\(symbol) is already tracked.")
            }
        }
        router.get(base) { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "symbols:read")
            let page = try Pagination(request)
            let query = request.queryItems
            let active: Bool?
            switch query["active"] ?? "true" {
            case "true": active = true
            case "false": active = false
            case "all": active = nil
            default: throw Problem(.badRequest, detail: "active must be true, false or all.", field: "active")
            }
            // Case-insensitive, as in bodies.
            let assetClass = query["asset_class"]?.lowercased()
            if let assetClass, !SymbolValidation.assetClasses.contains(assetClass) {
                throw Problem(.badRequest, detail: "asset_class must be stock, crypto or etf.", field: "asset_class")
            }
            if let status = query["backfill_status"], !SymbolValidation.statuses.contains(status) {
                throw Problem(.badRequest, detail: "backfill_status must be pending, in_progress, completed or failed.", field: "backfill_status")
            }
            let result = try store(context).list(SymbolFilter(active: active, assetClass: assetClass, backfillStatus: query["backfill_status"]),
                                                 limit: page.limit, cursor: page.cursor)
            return .json(ListBody(items: result.items.map(SymbolBody.init(record:)), nextCursor: result.nextCursor))
        }
        router.get(base + "/{symbol}") { request, context in
            _ = try Authenticator.authenticate(request, context, scope: "symbols:read")
            return .json(SymbolBody(record: try existing(request, context)))
        }
        let update: Router<AppContext>.Handler = { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "symbols:write")
            let current = try existing(request, context)
            var changes = try JSON.decode(UpdateBody.self, from: request.body).changes
            if let assetClass = changes.assetClass {
                changes.assetClass = try SymbolValidation.assetClass(assetClass)
                // The symbol must still be valid (and already canonical) in its new class.
                guard (try? SymbolValidation.canonical(current.symbol, assetClass: changes.assetClass ?? assetClass)) == current.symbol else {
                    throw KeyValidation.invalid("asset_class", "\(current.symbol) is not a valid \(assetClass) symbol")
                }
            }
            if let status = changes.backfillStatus, !SymbolValidation.statuses.contains(status) {
                throw KeyValidation.invalid("backfill_status", "must be pending, in_progress, completed or failed")
            }
            if case .some(.some(let message)) = changes.backfillError {
                guard message.unicodeScalars.count <= 4000 else { throw KeyValidation.invalid("backfill_error", "must be at most 4000 characters") }
                // An error describes a failed backfill: on any other status it would be a false report.
                guard (changes.backfillStatus ?? current.backfillStatus) == "failed" else {
                    throw KeyValidation.invalid("backfill_error", "may be set only with backfill_status failed")
                }
            }
            guard changes.active != nil || changes.assetClass != nil || changes.backfillStatus != nil || changes.backfillError != nil else {
                throw Problem(.unprocessableContent, detail: "The body changes nothing; give active, asset_class, backfill_status or backfill_error.")
            }
            let (updated, refusal) = try store(context).update(current.symbol, changes, by: request.actor(caller),
                                                               transition: SymbolValidation.transition)
            if let refusal { throw Problem(.conflict, detail: refusal + ".") }
            guard let updated else { throw Problem.notFound("No such symbol.") }
            return .json(SymbolBody(record: updated))
        }
        router.put(base + "/{symbol}", update)
        router.patch(base + "/{symbol}", update)
        router.delete(base + "/{symbol}") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "symbols:write")
            let current = try existing(request, context)
            guard current.active else { return .json(SymbolBody(record: current)) }
            var changes = SymbolChanges()
            changes.active = false
            let (updated, _) = try store(context).update(current.symbol, changes, by: request.actor(caller), transition: { _, _ in nil })
            guard let updated else { throw Problem.notFound("No such symbol.") }
            return .json(SymbolBody(record: updated))
        }
        router.post("/api/v1/admin/backfill/claim") { request, context in
            let caller = try Authenticator.authenticate(request, context, scope: "symbols:write")
            let body = request.body.isEmpty ? ClaimBody(limit: nil, assetClass: nil) : try JSON.decode(ClaimBody.self, from: request.body)
            let limit = body.limit ?? 10
            guard (1...500).contains(limit) else { throw KeyValidation.invalid("limit", "must be 1 to 500") }
            let assetClass = try body.assetClass.map(SymbolValidation.assetClass)
            let claimed = try store(context).claim(limit: limit, assetClass: assetClass,
                                                   intervalSeconds: context.configuration.backfillIntervalSeconds,
                                                   leaseSeconds: context.configuration.backfillLeaseSeconds, by: request.actor(caller))
            return .json(ListBody(items: claimed.map(SymbolBody.init(record:)), nextCursor: nil).itemsOnly)
        }
    }

    static func store(_ context: AppContext) throws(Problem) -> SymbolStore {
        SymbolStore(connection: try context.requireDatabase())
    }

    static func existing(_ request: Request, _ context: AppContext) throws -> SymbolRecord {
        try lookup(try request.parameter("symbol"), in: try store(context))
    }

    /// Case-insensitive, and by any accepted spelling (`btc/usd` finds `BTC-USD`); 404 otherwise.
    static func lookup(_ raw: String, in store: SymbolStore) throws -> SymbolRecord {
        // No symbol holds a NUL (and PostgreSQL text cannot): not found, rather than the
        // 422 the database driver gives a parameter it cannot send.
        guard !raw.unicodeScalars.contains("\0") else { throw Problem.notFound("No such symbol.") }
        if let record = try store.get(raw.uppercased()) { return record }
        for assetClass in SymbolValidation.assetClasses {
            if let canonical = try? SymbolValidation.canonical(raw, assetClass: assetClass), let record = try store.get(canonical) {
                return record
            }
        }
        throw Problem.notFound("No such symbol.")
    }
}

/// A symbol as the API shows it.
struct SymbolBody: Encodable {
    let record: SymbolRecord

    enum CodingKeys: String, CodingKey { case id, symbol, assetClass, active, dateAdded, lastBackfill, backfillStatus, backfillError }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(record.id, forKey: .id)
        try c.encode(record.symbol, forKey: .symbol)
        try c.encode(record.assetClass, forKey: .assetClass)
        try c.encode(record.active, forKey: .active)
        try c.encode(time(record.dateAdded), forKey: .dateAdded)
        try c.encode(record.lastBackfill.map(time), forKey: .lastBackfill)
        try c.encode(record.backfillStatus, forKey: .backfillStatus)
        try c.encode(record.backfillError, forKey: .backfillError)
    }
}

/// `{"items": [...]}` without a cursor (the claim route).
struct ItemsBody<Item: Encodable>: Encodable {
    let items: [Item]
}

extension ListBody {
    var itemsOnly: ItemsBody<Item> { ItemsBody(items: items) }
}
