import Foundation
import Testing
@testable import HTTP

private struct CreateKey: Decodable, Equatable {
    let name: String
    let ownerEmail: String
    let scopes: [String]
    let expiresInDays: Int?
}

private struct Outer: Decodable {
    struct Limits: Decodable { let maxRequests: Int }
    let limits: Limits
}

private struct Typed: Decodable {
    let enabled: Bool
    let ratio: Double
}

private struct Grant: Decodable {
    enum Role: String, Decodable { case admin, reader }
    let userRole: Role
    let keyId: UUID?
}

/// A request body as the routes declare them.
private struct Limits: RequestBody {
    static let fieldNames: Set<String> = ["max_requests"]
    let maxRequests: Int
}

private struct Dated: Decodable {
    let notAfter: Date
}

private func decodeError<T: Decodable>(_ type: T.Type, _ body: String) -> Problem? {
    do {
        _ = try JSON.decode(type, from: Array(body.utf8))
        return nil
    } catch {
        return error
    }
}

@Suite("JSON.decode")
struct JSONDecodeTests {
    @Test("a valid body decodes with snake_case keys")
    func decodesSnakeCase() throws {
        let body = #"{"name":"ci","owner_email":"a@b.c","scopes":["read"],"expires_in_days":30}"#
        let value = try JSON.decode(CreateKey.self, from: Array(body.utf8))
        #expect(value == CreateKey(name: "ci", ownerEmail: "a@b.c", scopes: ["read"], expiresInDays: 30))
    }

    @Test("an optional field may be absent or null")
    func optionalField() throws {
        let absent = try JSON.decode(CreateKey.self, from: Array(#"{"name":"n","owner_email":"e","scopes":[]}"#.utf8))
        #expect(absent.expiresInDays == nil)
        let null = try JSON.decode(CreateKey.self, from: Array(#"{"name":"n","owner_email":"e","scopes":[],"expires_in_days":null}"#.utf8))
        #expect(null.expiresInDays == nil)
    }

    @Test("an empty body is 400 Malformed JSON")
    func emptyBody() throws {
        let problem = try #require(decodeError(CreateKey.self, ""))
        #expect(problem.status == .badRequest)
        #expect(problem.title == "Malformed JSON")
        #expect(problem.detail.contains("empty"))
        #expect(problem.field == nil)
    }

    @Test("a body that is not JSON is 400", arguments: [
        "hello", "{", #"{"name": }"#, "{}x", "   ", #"{'name':'x'}"#, "\u{FEFF}{",
    ])
    func notJSON(body: String) throws {
        let problem = try #require(decodeError(CreateKey.self, body))
        #expect(problem.status == .badRequest)
        #expect(problem.title == "Malformed JSON")
        #expect(problem.field == nil)
    }

    @Test("a body that is not UTF-8 is 400")
    func notUTF8() throws {
        do {
            _ = try JSON.decode(CreateKey.self, from: [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D])
            Issue.record("decoded invalid UTF-8")
        } catch {
            #expect(error.status == .badRequest)
        }
    }

    @Test("a top-level array, string, number or null where an object is expected is 400", arguments: [
        "[]", #"[{"name":"x"}]"#, #""text""#, "42", "null", "true",
    ])
    func wrongTopLevel(body: String) throws {
        let problem = try #require(decodeError(CreateKey.self, body))
        #expect(problem.status == .badRequest)
        #expect(problem.title == "Malformed JSON")
        #expect(problem.field == nil)
    }

    @Test("a missing field is 422 naming it in snake_case")
    func missingField() throws {
        let problem = try #require(decodeError(CreateKey.self, #"{"name":"ci","scopes":[]}"#))
        #expect(problem.status == .unprocessableContent)
        #expect(problem.title == "Missing field")
        #expect(problem.field == "owner_email")
        #expect(problem.detail == "Field 'owner_email' is required.")
    }

    @Test("a wrong type is 422 naming the field and the expected type", arguments: [
        (#"{"name":42,"owner_email":"e","scopes":[]}"#, "name", "a string"),
        (#"{"name":"n","owner_email":true,"scopes":[]}"#, "owner_email", "a string"),
        (#"{"name":"n","owner_email":"e","scopes":"read"}"#, "scopes", "an array"),
        (#"{"name":"n","owner_email":"e","scopes":[],"expires_in_days":"30"}"#, "expires_in_days", "an integer"),
    ])
    func wrongType(body: String, field: String, expected: String) throws {
        let problem = try #require(decodeError(CreateKey.self, body))
        #expect(problem.status == .unprocessableContent)
        #expect(problem.title == "Invalid field")
        #expect(problem.field == field)
        #expect(problem.detail == "Field '\(field)' must be \(expected).")
    }

    @Test("booleans and numbers are described as such")
    func describedTypes() throws {
        let bool = try #require(decodeError(Typed.self, #"{"enabled":"yes","ratio":1.5}"#))
        #expect(bool.field == "enabled")
        #expect(bool.detail == "Field 'enabled' must be a boolean.")
        let number = try #require(decodeError(Typed.self, #"{"enabled":true,"ratio":"x"}"#))
        #expect(number.field == "ratio")
        #expect(number.detail == "Field 'ratio' must be a number.")
    }

    @Test("null for a required field is 422 naming it")
    func nullRequired() throws {
        let problem = try #require(decodeError(CreateKey.self, #"{"name":null,"owner_email":"e","scopes":[]}"#))
        #expect(problem.status == .unprocessableContent)
        #expect(problem.field == "name")
    }

    @Test("nested fields are named with dots and array indexes with brackets")
    func nestedPaths() throws {
        let nested = try #require(decodeError(Outer.self, #"{"limits":{"max_requests":"many"}}"#))
        #expect(nested.status == .unprocessableContent)
        #expect(nested.field == "limits.max_requests")
        let missingNested = try #require(decodeError(Outer.self, #"{"limits":{}}"#))
        #expect(missingNested.field == "limits.max_requests")
        #expect(missingNested.title == "Missing field")
        let element = try #require(decodeError(CreateKey.self, #"{"name":"n","owner_email":"e","scopes":["a",7]}"#))
        #expect(element.status == .unprocessableContent)
        #expect(element.field == "scopes[1]")
    }

    @Test("a request body refuses any name it does not list: a typo, or the camelCase spelling of a field")
    func unknownFields() throws {
        #expect(try JSON.decode(Limits.self, from: Array(#"{"max_requests":3}"#.utf8)).maxRequests == 3)
        for (body, field) in [(#"{"max_requests":3,"maxRequests":4}"#, "maxRequests"), (#"{"max_requests":3,"max_request":4}"#, "max_request"),
                              (#"{"max_requests":3,"z":1,"a":2}"#, "a")] {
            let problem = try #require(decodeError(Limits.self, body))
            #expect(problem.status == .unprocessableContent && problem.title == "Unknown field" && problem.field == field, "\(body): \(problem.title) \(problem.detail)")
        }
        // Malformed JSON is still a 400, before any field is looked at.
        #expect(decodeError(Limits.self, "{")?.status == .badRequest)
    }

    @Test("a value of the right JSON type that the field refuses is 422 naming the field")
    func invalidValue() throws {
        let role = try #require(decodeError(Grant.self, #"{"user_role":"root"}"#))
        #expect(role.status == .unprocessableContent)
        #expect(role.title == "Invalid field")
        #expect(role.field == "user_role")
        #expect(role.detail == "Field 'user_role' has an invalid value.")
        let id = try #require(decodeError(Grant.self, #"{"user_role":"admin","key_id":"not-a-uuid"}"#))
        #expect(id.status == .unprocessableContent)
        #expect(id.field == "key_id")
        let ok = try JSON.decode(Grant.self, from: Array(#"{"user_role":"reader"}"#.utf8))
        #expect(ok.userRole == .reader)
    }

    @Test("a well-formed RFC 3339 date decodes")
    func goodDate() throws {
        let ok = try JSON.decode(Dated.self, from: Array(#"{"not_after":"2024-01-02T03:04:05Z"}"#.utf8))
        #expect(ok.notAfter == Date(timeIntervalSince1970: 1_704_164_645))
    }
}

@Suite("JSON.encode")
struct JSONEncodeTests {
    private struct Payload: Encodable {
        let requestId: String
        let alpha: Int
        let url: String
        let createdAt: Date
    }

    @Test("keys are snake_case in declaration order, slashes unescaped, dates RFC 3339")
    func wireStyle() {
        let bytes = JSON.encode(Payload(requestId: "r1", alpha: 1, url: "https://x/y", createdAt: Date(timeIntervalSince1970: 0)))
        #expect(String(decoding: bytes, as: UTF8.self)
            == #"{"request_id":"r1","alpha":1,"url":"https://x/y","created_at":"1970-01-01T00:00:00Z"}"#)
    }

    private struct Nested: Encodable {
        struct Inner: Encodable { let a: Int?; let list: [String] }
        let inner: Inner
        let items: [Inner]
        let counts: [String: Int]
        let ratio: Double
        let whole: Double
        let nothing: String?
        let text: String
    }

    @Test("nesting, arrays, optionals, verbatim sorted dictionary keys, numbers, escapes; valid JSON")
    func structure() throws {
        let value = Nested(inner: .init(a: nil, list: []), items: [.init(a: 1, list: ["x", "y"]), .init(a: 2, list: [])],
                           counts: ["GET /healthz": 2, "2xx": 5, "B": 1], ratio: 0.25, whole: 3, nothing: nil,
                           text: "q\"b\\s\n\t\u{1}é/")
        let text = String(decoding: JSON.encode(value), as: UTF8.self)
        #expect(text == #"{"inner":{"list":[]},"items":[{"a":1,"list":["x","y"]},{"a":2,"list":[]}],"counts":{"2xx":5,"B":1,"GET /healthz":2},"ratio":0.25,"whole":3,"text":"q\"b\\s\n\t\u0001é/"}"#)
        let decoded = try JSONDecoder().decode([String: AnyDecodable].self, from: Data(text.utf8))
        #expect(decoded.count == 6)
    }

    private struct ExplicitNulls: Encodable {
        let value: Int?
        enum CodingKeys: String, CodingKey { case value, other }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(value, forKey: .value)
            try c.encodeNil(forKey: .other)
        }
    }

    private struct Wrapper: Encodable {
        let inner: ExplicitNulls
        enum CodingKeys: String, CodingKey { case extra }
        func encode(to encoder: any Encoder) throws {
            try inner.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode("yes", forKey: .extra)
        }
    }

    @Test("explicit nulls are written; a value can add fields to the object a wrapped value opened")
    func nullsAndWrapping() {
        #expect(String(decoding: JSON.encode(ExplicitNulls(value: nil)), as: UTF8.self) == #"{"value":null,"other":null}"#)
        #expect(String(decoding: JSON.encode(Wrapper(inner: .init(value: 7))), as: UTF8.self) == #"{"value":7,"other":null,"extra":"yes"}"#)
        #expect(String(decoding: JSON.encode([Wrapper(inner: .init(value: 1))]), as: UTF8.self) == #"[{"value":1,"other":null,"extra":"yes"}]"#)
        #expect(String(decoding: JSON.encode(Double.nan), as: UTF8.self) == "null")
    }
}

extension JSONEncodeTests {
    private struct Numbers: Encodable {
        let big: Int64
        let unsigned: UInt64
        let small: Int32
        let byte: UInt8
        let fraction: Float
    }

    @Test("integers of every width and Float are written as numbers (they used to recurse without end)")
    func numberTypes() {
        let value = Numbers(big: .min, unsigned: .max, small: -7, byte: 255, fraction: 0.5)
        #expect(String(decoding: JSON.encode(value), as: UTF8.self)
            == #"{"big":-9223372036854775808,"unsigned":18446744073709551615,"small":-7,"byte":255,"fraction":0.5}"#)
        #expect(String(decoding: JSON.encode([Int16(3), Int16(-4)]), as: UTF8.self) == "[3,-4]")
    }

    private struct NestedContainers: Encodable {
        enum CodingKeys: String, CodingKey { case first, list, last }
        enum InnerKeys: String, CodingKey { case a, deeper }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            var inner = c.nestedContainer(keyedBy: InnerKeys.self, forKey: .first)
            try inner.encode(1, forKey: .a)
            var deeper = inner.nestedUnkeyedContainer(forKey: .deeper)
            try deeper.encode("x")
            var list = c.nestedUnkeyedContainer(forKey: .list)
            try list.encode(2)
            var element = list.nestedContainer(keyedBy: InnerKeys.self)
            try element.encode(3, forKey: .a)
            try list.encode(4)
            try c.encode(true, forKey: .last)
        }
    }

    @Test("a nested container ends where its parent writes its next key or element")
    func nestedContainers() {
        #expect(String(decoding: JSON.encode(NestedContainers()), as: UTF8.self)
            == #"{"first":{"a":1,"deeper":["x"]},"list":[2,{"a":3},4],"last":true}"#)
        #expect(String(decoding: JSON.encode([NestedContainers()]), as: UTF8.self)
            == #"[{"first":{"a":1,"deeper":["x"]},"list":[2,{"a":3},4],"last":true}]"#)
    }
}

/// Accepts any JSON value (to check output parses).
private struct AnyDecodable: Decodable {
    init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: AnyKey.self) {
            for key in c.allKeys { _ = try c.decode(AnyDecodable.self, forKey: key) }
        } else if var c = try? decoder.unkeyedContainer() {
            while !c.isAtEnd { _ = try c.decode(AnyDecodable.self) }
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { return }
            if (try? c.decode(Bool.self)) != nil { return }
            if (try? c.decode(Double.self)) != nil { return }
            _ = try c.decode(String.self)
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}
