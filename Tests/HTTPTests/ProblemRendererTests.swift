import Foundation
import Testing
@testable import HTTP

/// The problem+json body as a client reads it.
private struct ProblemJSON: Decodable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let field: String?
    let request_id: String
}

private func body(_ response: Response) throws -> ProblemJSON {
    try JSONDecoder().decode(ProblemJSON.self, from: Data(response.body))
}

private struct SecretLeak: Error, CustomStringConvertible {
    var description: String { "connection to postgres://admin:hunter2@db failed" }
}

private struct Throttled: HTTPError {
    var status: HTTPStatus { .tooManyRequests }
    var detail: String { "Slow down." }
}

@Suite("ProblemRenderer")
struct ProblemRendererTests {
    @Test("a Problem becomes problem+json with its status, title, detail and the request id")
    func rendersProblem() throws {
        let response = ProblemRenderer.response(for: Problem.notFound(), requestID: "req-1")
        #expect(response.status == .notFound)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        let problem = try body(response)
        #expect(problem.type == "https://keygate.dev/problems/not-found")
        #expect(problem.title == "Not Found")
        #expect(problem.status == 404)
        #expect(problem.detail == "No route matches this path.")
        #expect(problem.request_id == "req-1")
        #expect(problem.field == nil)
    }

    @Test("the body's status always equals the response status", arguments: [
        HTTPStatus.badRequest, .forbidden, .conflict, .contentTooLarge, .unprocessableContent,
        .headerFieldsTooLarge, .serviceUnavailable,
    ])
    func statusMatches(status: HTTPStatus) throws {
        let response = ProblemRenderer.response(for: Problem(status, detail: "d"), requestID: "r")
        #expect(response.status == status)
        let problem = try body(response)
        #expect(problem.status == status.code)
        #expect(problem.title == status.reason)
        #expect(problem.type == "https://keygate.dev/problems/" + status.reason.lowercased().replacingOccurrences(of: " ", with: "-"))
    }

    @Test("a custom title and the field are carried into the body")
    func titleAndField() throws {
        let response = ProblemRenderer.response(
            for: Problem(.unprocessableContent, title: "Missing field", detail: "Field 'name' is required.", field: "name"),
            requestID: "abc")
        let problem = try body(response)
        #expect(problem.title == "Missing field")
        #expect(problem.field == "name")
        #expect(problem.type == "https://keygate.dev/problems/unprocessable-content")
    }

    @Test("the error's headers are kept and Content-Type is forced to problem+json")
    func headersKept() throws {
        let response = ProblemRenderer.response(for: Problem.methodNotAllowed(allowed: ["GET", "HEAD"]), requestID: "r")
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD")
        #expect(response.headers["content-type"] == "application/problem+json")
        #expect(try body(response).detail == "This resource supports GET, HEAD.")

        let custom = Problem(.badRequest, detail: "x", headers: HTTPHeaders([("content-type", "text/html"), ("Retry-After", "1")]))
        let rendered = ProblemRenderer.response(for: custom, requestID: "r")
        #expect(rendered.headers.fields.filter { $0.name.lowercased() == "content-type" }.map(\.value) == ["application/problem+json"])
        #expect(rendered.headers["Retry-After"] == "1")
    }

    @Test("unavailable carries Retry-After")
    func unavailable() {
        let response = ProblemRenderer.response(for: Problem.unavailable("down", retryAfterSeconds: 7), requestID: "r")
        #expect(response.status == .serviceUnavailable)
        #expect(response.headers["Retry-After"] == "7")
    }

    @Test("any HTTPError, not only Problem, is rendered with its own status and default title")
    func otherHTTPError() throws {
        let response = ProblemRenderer.response(for: Throttled(), requestID: "r9")
        #expect(response.status == .tooManyRequests)
        let problem = try body(response)
        #expect(problem.status == 429)
        #expect(problem.title == "Too Many Requests")
        #expect(problem.detail == "Slow down.")
        #expect(problem.request_id == "r9")
    }

    @Test("an unknown error is a generic 500 that does not leak its description")
    func unknownError() throws {
        let response = ProblemRenderer.response(for: SecretLeak(), requestID: "r500")
        #expect(response.status == .internalServerError)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        let problem = try body(response)
        #expect(problem.status == 500)
        #expect(problem.title == "Internal Server Error")
        #expect(problem.detail == "The server could not complete the request.")
        #expect(problem.request_id == "r500")
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(!text.contains("hunter2"))
        #expect(!text.contains("postgres"))
        #expect(!text.contains("SecretLeak"))
    }

    @Test("request ids and details with quotes are escaped into valid JSON")
    func escaping() throws {
        let response = ProblemRenderer.response(for: Problem(.badRequest, detail: "bad \"x\"\n"), requestID: "a\"b")
        let problem = try body(response)
        #expect(problem.detail == "bad \"x\"\n")
        #expect(problem.request_id == "a\"b")
    }
}
