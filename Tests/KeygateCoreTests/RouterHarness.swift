import Foundation
import HTTP
import Keys
import Storage
import StoreContracts
@testable import KeygateCore

/// The application as the workers build it, on memory stores and without shared memory
/// (no cache, no rate table: every key check reads the store). Requests go straight to
/// `Application.respond`, as the worker hands them over after decoding FastCGI.
final class RouterHarness {
    let keys = MemoryKeyStore()
    let users = MemoryUserStore()
    let hasher: KeyHasher
    let app: Application

    init(configure: (inout Configuration) -> Void = { _ in }) throws {
        var configuration = Configuration()
        configure(&configuration)
        hasher = try KeyHasher(pepper: Array("router-tests-pepper-of-at-least-32-bytes".utf8))
        let context = AppContext(configuration: configuration, logger: Logger(level: .error, component: "test"),
                                 pool: PoolView(scoreboard: nil), hasher: hasher, keys: keys, users: users)
        app = Application(context: context)
    }

    /// A key in the table and its raw text.
    @discardableResult
    func makeKey(scopes: [String], environment: KeyEnvironment = .live, userID: String? = nil, allowedIPs: [String] = [],
                 allowedPaths: [String] = [], limits: KeyLimits = KeyLimits(), expiresAt: Int64? = nil,
                 active: Bool = true) throws -> (raw: String, record: KeyRecord) {
        let raw = try APIKey.generate(prefix: app.context.configuration.keyPrefix, environment: environment)
        let record = keys.insert(NewKey(hash: hasher.hash(raw), keyPrefix: raw.displayPrefix, name: "fixture",
                                        environment: environment.rawValue, userID: userID, scopes: scopes,
                                        allowedPaths: allowedPaths, allowedIPs: allowedIPs, limits: limits, expiresAt: expiresAt),
                                 active: active)
        return (raw.rawValue, record)
    }

    func makeUser(tier: String = "free") throws -> UserRecord {
        try users.create(email: "user\(users.rows.count)@example.com", planTier: tier, externalID: nil, by: .operatorOnHost)
    }

    /// One request over "HTTPS" from `remoteAddress`, with the key in `X-API-Key`.
    func send(_ method: String, _ target: String, key: String?, body: String? = nil, remoteAddress: String = "192.0.2.10",
              headers: [(String, String)] = []) -> Response {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var fields = headers
        if let key { fields.append(("X-API-Key", key)) }
        if body != nil { fields.append(("Content-Type", "application/json")) }
        let request = Request(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "",
                              headers: HTTPHeaders(fields), remoteAddress: remoteAddress, isHTTPS: true,
                              requestID: "router-test", body: Array((body ?? "").utf8))
        return app.respond(to: request).response
    }
}

/// A response body as JSON (an object); empty when it is not one.
func object(_ response: Response) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
}

/// A list response's items.
func items(_ response: Response) -> [[String: Any]] {
    object(response)["items"] as? [[String: Any]] ?? []
}
