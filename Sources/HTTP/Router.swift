/// Routes by method and path pattern. Patterns are literal segments and `{name}`
/// parameters: `/api/v1/admin/api-keys/{id}/rotate`.
public struct Router<Context>: Sendable {
    public typealias Handler = @Sendable (Request, Context) throws -> Response

    /// One registered route; `index` is stable for the life of the process (metrics use it).
    public struct Route: Sendable {
        public let method: String
        public let pattern: String
        public let index: Int
        @usableFromInline let segments: [Segment]
        public let handler: Handler
    }

    @usableFromInline
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)

        var isParameter: Bool {
            if case .parameter = self { return true }
            return false
        }

        var text: String {
            switch self {
            case .literal(let text), .parameter(let text): return text
            }
        }
    }

    /// What a lookup found.
    public enum Match {
        case found(Route, parameters: [String: String])
        case notFound
        case methodNotAllowed(allowed: [String])
    }

    public private(set) var routes: [Route] = []
    /// Routes whose pattern has no parameter, by path, when no parameterized route could
    /// match that path too: those paths are found with one hash lookup instead of a scan.
    @usableFromInline private(set) var exact: [String: [Int]] = [:]

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("}") {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
        let route = Route(method: method, pattern: pattern, index: routes.count, segments: segments, handler: handler)
        routes.append(route)
        // Keep `exact` to literal-only patterns no parameterized pattern could also match, so
        // a hash lookup gives the same answer as the scan in registration order.
        if segments.contains(where: \.isParameter) {
            exact = exact.filter { path, _ in
                !Self.couldMatch(segments, path.split(separator: "/").map { .literal(String($0)) })
            }
        } else if !routes.contains(where: { $0.segments.contains(where: \.isParameter) && Self.couldMatch($0.segments, segments) }) {
            // "/" + segments joined: the spelling a request uses for this pattern.
            exact["/" + segments.map(\.text).joined(separator: "/"), default: []].append(route.index)
        }
    }

    /// Whether `pattern` matches the literal-only `literal`.
    static func couldMatch(_ pattern: [Segment], _ literal: [Segment]) -> Bool {
        pattern.count == literal.count && zip(pattern, literal).allSatisfy { $0.isParameter || $0 == $1 }
    }

    public mutating func get(_ pattern: String, _ handler: @escaping Handler) { add("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping Handler) { add("POST", pattern, handler) }
    public mutating func put(_ pattern: String, _ handler: @escaping Handler) { add("PUT", pattern, handler) }
    public mutating func patch(_ pattern: String, _ handler: @escaping Handler) { add("PATCH", pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping Handler) { add("DELETE", pattern, handler) }

    /// Finds the route for `method` and the percent-encoded `path`. HEAD matches GET.
    /// Inlinable so callers get it specialised for their context type (no generic
    /// metadata lookups on the request path).
    @inlinable
    public func match(method: String, path: String) -> Match {
        if let candidates = exact[path] {
            var allowed: [String] = []
            for index in candidates {
                let route = routes[index]
                if route.method == method || (method == "HEAD" && route.method == "GET") { return .found(route, parameters: [:]) }
                if !allowed.contains(route.method) { allowed.append(route.method) }
            }
            if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
            return .methodNotAllowed(allowed: allowed)
        }
        // Split on the byte "/", not on Characters (a combining mark would glue to a "/").
        let parts = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Substring($0) }
        var allowed: [String] = []
        for route in routes {
            guard let parameters = Self.bind(route.segments, to: parts) else { continue }
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return .found(route, parameters: parameters)
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
        return .methodNotAllowed(allowed: allowed)
    }

    /// Binds path parts to a pattern; nil if they do not fit or a parameter does not decode.
    @usableFromInline
    static func bind(_ segments: [Segment], to parts: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for index in segments.indices {
            let part = parts[index]
            switch segments[index] {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                guard let value = QueryString.percentDecode(part), !value.isEmpty else { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }
}
