/// A JSON value for responses written field by field, without the `Encoder` machinery
/// (keyed containers, boxing, dynamic casts per field cost more than the rest of the
/// authenticated request path together; see docs/benchmarks.md).
public enum JSONValue: Sendable {
    case string(String?)
    case integer(Int?)
    case bool(Bool)
    case strings([String])
    case object([JSONField])
}

public struct JSONField: Sendable {
    /// Written verbatim: already snake_case.
    public let key: StaticString
    public let value: JSONValue

    public init(_ key: StaticString, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// A type whose JSON form is a list of fields. The streaming writer writes it directly;
/// any other `Encoder` gets the same fields through `Encodable`.
public protocol JSONFields: Encodable {
    var jsonFields: [JSONField] { get }
}

extension JSONFields {
    public func encode(to encoder: any Encoder) throws {
        try JSONValue.object(jsonFields).encode(to: encoder)
    }
}

extension JSONValue: Encodable {
    struct FieldKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .string(let value):
            var c = encoder.singleValueContainer()
            if let value { try c.encode(value) } else { try c.encodeNil() }
        case .integer(let value):
            var c = encoder.singleValueContainer()
            if let value { try c.encode(value) } else { try c.encodeNil() }
        case .bool(let value):
            var c = encoder.singleValueContainer()
            try c.encode(value)
        case .strings(let values):
            var c = encoder.singleValueContainer()
            try c.encode(values)
        case .object(let fields):
            var c = encoder.container(keyedBy: FieldKey.self)
            for field in fields { try c.encode(field.value, forKey: FieldKey(stringValue: field.key.description)) }
        }
    }
}

extension JSONBuffer {
    public mutating func append(fields: [JSONField]) {
        append(byte: UInt8(ascii: "{"))
        for (index, field) in fields.enumerated() {
            if index > 0 { append(byte: UInt8(ascii: ",")) }
            append(byte: UInt8(ascii: "\""))
            append(field.key)
            append("\":")
            append(value: field.value)
        }
        append(byte: UInt8(ascii: "}"))
    }

    public mutating func append(value: JSONValue) {
        switch value {
        case .string(let text?): appendString(text)
        case .integer(let number?): appendInteger(number)
        case .string(nil), .integer(nil): appendNull()
        case .bool(let flag): appendBool(flag)
        case .strings(let values):
            append(byte: UInt8(ascii: "["))
            for (index, text) in values.enumerated() {
                if index > 0 { append(byte: UInt8(ascii: ",")) }
                appendString(text)
            }
            append(byte: UInt8(ascii: "]"))
        case .object(let fields): append(fields: fields)
        }
    }
}
