import FoundationEssentials
import Testing
import HTTP
@testable import KeygateCore

/// docs/openapi.json must describe exactly the routes the router serves: a route added
/// without documentation, or documentation of a route that does not exist, fails here.
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    private struct Document: Decodable {
        let openapi: String
        let paths: [String: [String: Ignored]]
        let components: Components
    }

    private struct Components: Decodable {
        let schemas: [String: Schema]
    }

    private struct Schema: Decodable {
        let properties: [String: Ignored]?
        let additionalProperties: Bool?
    }

    /// Accepts any JSON value without reading it.
    private struct Ignored: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    private static let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    private func load() throws -> Document {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3) // Tests/KeygateCoreTests/<this file>
        let url = URL(fileURLWithPath: parts.joined(separator: "/") + "/docs/openapi.json")
        return try JSONDecoder().decode(Document.self, from: try Data(contentsOf: url))
    }

    @Test("router routes and documented operations are the same set, both ways")
    func routesMatchDocument() throws {
        let document = try load()
        #expect(document.openapi.hasPrefix("3.1"))
        let documented = Set(document.paths.flatMap { path, item in
            item.keys.filter { Self.methods.contains($0) }.map { "\($0.uppercased()) \(path)" }
        })
        let app = Application(context: AppContext(configuration: Configuration(), logger: Logger(level: .error, component: "test"),
                                                  pool: PoolView(scoreboard: nil)))
        let routes = Set(app.context.routeNames)
        #expect(routes.subtracting(documented).isEmpty, "routes missing from docs/openapi.json: \(routes.subtracting(documented).sorted())")
        #expect(documented.subtracting(routes).isEmpty, "documented operations with no route: \(documented.subtracting(routes).sorted())")
    }

    @Test("each request body type knows exactly the fields its schema documents, and the schema allows no others")
    func requestBodiesMatchSchemas() throws {
        let schemas = try load().components.schemas
        let bodies: [(String, Set<String>)] = [
            ("CreateKey", CreateKeyBody.fieldNames), ("RotateRequest", KeyIssuer.RotateBody.fieldNames),
            ("AddSymbol", SymbolRoutes.AddBody.fieldNames), ("UpdateSymbol", SymbolRoutes.UpdateBody.fieldNames),
            ("ClaimRequest", SymbolRoutes.ClaimBody.fieldNames), ("CreateUser", UserRoutes.CreateBody.fieldNames),
            ("UpdateUser", UserRoutes.UpdateBody.fieldNames), ("VerifyRequest", VerifyRoutes.VerifyBody.fieldNames),
            // user_id and environment: known to the body so that it can refuse them by name.
            ("UpdateKey", UpdateKeyBody.fieldNames.subtracting(["user_id", "environment"])),
        ]
        for (name, fields) in bodies {
            let schema = try #require(schemas[name], "no schema \(name)")
            #expect(Set(schema.properties?.keys ?? [:].keys) == fields, "\(name)")
            #expect(schema.additionalProperties == false, "\(name)")
        }
    }
}
