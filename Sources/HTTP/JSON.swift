import FoundationEssentials

/// JSON in keygate's wire style: snake_case keys in declaration order, RFC 3339 UTC
/// timestamps, dictionary keys verbatim and sorted.
public enum JSON {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let writer = JSONWriter()
        // Encoding keygate's own value types cannot fail; an empty object is the safe fallback.
        do { try writer.write(value) } catch { return Array("{}".utf8) }
        return writer.bytes
    }

    /// A value written field by field: no `Encoder`, no dynamic casts.
    public static func encode<T: JSONFields>(_ value: T) -> [UInt8] {
        var buffer = JSONBuffer()
        buffer.append(fields: value.jsonFields)
        return buffer.bytes
    }

    /// A stored flat JSON object of strings.
    public static func decodeStringMap(_ text: String) throws -> [String: String] {
        try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
    }

    /// Decodes a request body, turning every failure into a 400/422 that names the problem;
    /// for a `RequestBody`, also any field the type does not have (a 422 naming it). The
    /// type is asked at run time, so no generic caller can skip that check.
    public static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws(Problem) -> T {
        let value = try decodeValue(type, from: body)
        // (The body decoded, so it is a JSON object.)
        if let fields = (type as? any RequestBody.Type)?.fieldNames,
           let names = try? JSONDecoder().decode([String: Ignored].self, from: Data(body)).keys,
           let unknown = names.filter({ !fields.contains($0) }).sorted().first {
            throw Problem(.unprocessableContent, title: "Unknown field",
                          detail: "Field '\(unknown)' is not a field of this request.", field: unknown)
        }
        return value
    }

    private static func decodeValue<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws(Problem) -> T {
        guard !body.isEmpty else {
            throw Problem(.badRequest, title: "Malformed JSON", detail: "The request body is empty; a JSON object was expected.")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: Data(body))
        } catch let error as DecodingError {
            throw Problem.from(error)
        } catch let problem as Problem {
            throw problem // a body type's own check, with its own words
        } catch {
            throw Problem(.badRequest, title: "Malformed JSON", detail: "The request body is not valid JSON.")
        }
    }
}

extension Problem {
    /// Maps a decoding failure to 400 (not JSON) or 422 (JSON, wrong fields), naming the field.
    static func from(_ error: DecodingError) -> Problem {
        func field(_ path: [any CodingKey], _ key: (any CodingKey)? = nil) -> String {
            let names = (path + (key.map { [$0] } ?? [])).map { key -> String in
                if let index = key.intValue { return "[\(index)]" }
                return snakeCase(key.stringValue)
            }
            return names.joined(separator: ".").replacing(".[", with: "[")
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return Problem(.badRequest, title: "Malformed JSON", detail: "The request body is not valid JSON.")
        case .dataCorrupted(let context):
            return Problem(.unprocessableContent, title: "Invalid field", detail: "Field '\(field(context.codingPath))' has an invalid value.", field: field(context.codingPath))
        case .keyNotFound(let key, let context):
            let name = field(context.codingPath, key)
            return Problem(.unprocessableContent, title: "Missing field", detail: "Field '\(name)' is required.", field: name)
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let name = field(context.codingPath)
            if name.isEmpty {
                return Problem(.badRequest, title: "Malformed JSON", detail: "The request body must be a JSON object.")
            }
            return Problem(.unprocessableContent, title: "Invalid field", detail: "Field '\(name)' must be \(describe(type)).", field: name)
        @unknown default:
            return Problem(.badRequest, title: "Malformed JSON", detail: "The request body could not be read.")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type: return "a number"
        default:
            let name = String(describing: type)
            return name.hasPrefix("Array") ? "an array" : "of the documented type"
        }
    }

    private static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension KeyedDecodingContainer {
    /// Like `decodeIfPresent`, but an explicit `null` for a field that cannot be null is an
    /// error naming the field (a 422), not the same as leaving it out.
    public func decodeNonNullIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [key], debugDescription: "null is not allowed"))
        }
        return try decode(type, forKey: key)
    }
}

/// A request body type, with its fields' wire (snake_case) names. A name it does not
/// know (a typo, or the camelCase spelling, which `.convertFromSnakeCase` would otherwise
/// let match) is refused rather than ignored: ignoring a typo would quietly drop what the
/// client asked for, an `allowed_ips` restriction, say.
public protocol RequestBody: Decodable {
    static var fieldNames: Set<String> { get }
}

/// Any JSON value, read and thrown away (to list an object's keys).
private struct Ignored: Decodable {
    init(from decoder: any Decoder) throws {}
}
