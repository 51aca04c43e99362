import ArgumentParser
import KeygateCore
import Posix

/// `keygate keys …`: key administration on the host, straight to PostgreSQL.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, show, revoke, restore, rotate or delete API keys (direct database access).",
        subcommands: [Create.self, List.self, Show.self, Revoke.self, Restore.self, Rotate.self, Delete.self]
    )

    struct Output: ParsableArguments {
        @Flag(help: "Print JSON instead of a table.") var json = false
    }

    static func print(_ views: [OperatorActions.KeyView], json: Bool, single: Bool = false) {
        OperatorOutput.print(views, json: json, single: single)
        if !json, let raw = views.first?.rawKey {
            StandardError.write("the new key is shown once; store it now:")
            Swift.print(raw)
        }
    }

    static func run<T>(_ options: GlobalOptions, _ body: (OperatorActions) throws -> T) throws -> T {
        try OperatorOutput.run(options, body)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints it once.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Option(help: "A name for people.") var name: String
        @Option(help: "Owner user id.") var userId: String?
        @Option(help: "live or test.") var environment: String?
        @Option(name: .customLong("scope"), help: "A scope (repeat for more).") var scopes: [String] = []
        @Option(help: "Expire after this many days.") var expiresInDays: Int?
        @Option var rateLimitPerMinute: Int?
        @Option var rateLimitPerHour: Int?
        @Option var burst: Int?
        @Option var quotaDaily: Int?
        @Option var quotaMonthly: Int?
        @Option(name: .customLong("allowed-ip"), help: "An allowed IP or CIDR (repeat for more).") var allowedIPs: [String] = []
        @Option(name: .customLong("allowed-path"), help: "An allowed path prefix (repeat for more).") var allowedPaths: [String] = []

        func run() throws {
            let view = try Keys.run(options) { actions in
                try actions.createKey(.init(name: name, userID: userId, environment: environment, scopes: scopes, expiresInDays: expiresInDays,
                                            rateLimitPerMinute: rateLimitPerMinute, rateLimitPerHour: rateLimitPerHour, burst: burst,
                                            quotaDaily: quotaDaily, quotaMonthly: quotaMonthly, allowedIPs: allowedIPs, allowedPaths: allowedPaths))
            }
            Keys.print([view], json: output.json, single: true)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (metadata only).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Option(help: "active, revoked or expired.") var status: String?
        @Option var userId: String?
        @Option var environment: String?
        @Option(help: "At most this many (1-500).") var limit = 100
        @Option(help: "The next page: the cursor the previous page gave.") var cursor: String?

        func validate() throws {
            guard (1...500).contains(limit) else { throw ValidationError("--limit must be 1 to 500") }
            if let status, !["active", "revoked", "expired"].contains(status) { throw ValidationError("--status must be active, revoked or expired") }
        }

        func run() throws {
            OperatorOutput.print(try Keys.run(options) {
                try $0.listKeys(status: status, userID: userId, environment: environment, limit: limit, cursor: cursor)
            }, json: output.json)
        }
    }

    struct Show: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Argument(help: "Key id.") var id: String
        func run() throws { Keys.print([try Keys.run(options) { try $0.showKey(id) }], json: output.json, single: true) }
    }

    struct Revoke: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Argument(help: "Key id.") var id: String
        func run() throws { Keys.print([try Keys.run(options) { try $0.setActive(id, false) }], json: output.json, single: true) }
    }

    struct Restore: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Argument(help: "Key id.") var id: String
        func run() throws { Keys.print([try Keys.run(options) { try $0.setActive(id, true) }], json: output.json, single: true) }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a key; the old one keeps working for the grace period.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Argument(help: "Key id.") var id: String
        @Option(help: "Seconds the old key keeps working (0-604800).") var gracePeriodSeconds = 0
        func run() throws {
            Keys.print([try Keys.run(options) { try $0.rotateKey(id, graceSeconds: gracePeriodSeconds) }], json: output.json, single: true)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a key permanently (its audit trail stays).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Output
        @Argument(help: "Key id.") var id: String
        func run() throws {
            let deleted = try Keys.run(options) { try $0.deleteKey(id) }
            // --json: the key as it was, for scripts; else one line for people.
            if output.json { Keys.print([deleted], json: true, single: true) } else { Swift.print("deleted \(id)") }
        }
    }
}

/// `keygate users …`.
struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, show or update users (direct database access).",
        subcommands: [Create.self, List.self, Show.self, Update.self]
    )

    static func print(_ views: [OperatorActions.UserView], json: Bool, single: Bool = false) {
        OperatorOutput.print(views, json: json, single: single)
    }

    struct Create: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Option var email: String
        @Option(help: "free, pro or enterprise.") var planTier: String?
        @Option var externalId: String?
        func run() throws {
            Users.print([try Keys.run(options) { try $0.createUser(email: email, planTier: planTier, externalID: externalId) }], json: output.json, single: true)
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Option(help: "At most this many (1-500).") var limit = 100
        @Option(help: "The next page: the cursor the previous page gave.") var cursor: String?
        func validate() throws { guard (1...500).contains(limit) else { throw ValidationError("--limit must be 1 to 500") } }
        func run() throws { OperatorOutput.print(try Keys.run(options) { try $0.listUsers(limit: limit, cursor: cursor) }, json: output.json) }
    }

    struct Show: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Argument(help: "User id.") var id: String
        func run() throws { Users.print([try Keys.run(options) { try $0.showUser(id) }], json: output.json, single: true) }
    }

    struct Update: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Argument(help: "User id.") var id: String
        @Option var email: String?
        @Option var planTier: String?
        @Option var externalId: String?
        func run() throws {
            Users.print([try Keys.run(options) { try $0.updateUser(id, email: email, planTier: planTier, externalID: externalId) }], json: output.json, single: true)
        }
    }
}

/// The operator commands' shared plumbing: actions over the configured database, and
/// output as a table or as the API's JSON.
enum OperatorOutput {
    static func run<T>(_ options: GlobalOptions, _ body: (OperatorActions) throws -> T) throws -> T {
        let configuration = try options.loadConfiguration()
        do {
            return try body(try OperatorActions(configuration: configuration))
        } catch {
            throw CLIFailure(OperatorActions.message(for: error))
        }
    }

    /// A page: under --json the API's `{"items": [...], "next_cursor": ...}`; as a table,
    /// the rows, and on standard error how to fetch the next page when there is one.
    static func print<View: OperatorView>(_ page: OperatorPage<View>, json: Bool) {
        if json {
            let items = page.items.map { String(decoding: $0.json, as: UTF8.self) }
            // (Cursors are this service's own: digits, '.', '-' and hex letters only.)
            let next = page.nextCursor.map { "\"\($0)\"" } ?? "null"
            Swift.print("{\"items\":[" + items.joined(separator: ",") + "],\"next_cursor\":" + next + "}")
        } else {
            Swift.print(Table.render(header: View.header, rows: page.items.map(\.row)))
            if let next = page.nextCursor { StandardError.write("more: add --cursor \(next)") }
        }
    }

    static func print<View: OperatorView>(_ views: [View], json: Bool, single: Bool) {
        if json {
            let items = views.map { String(decoding: $0.json, as: UTF8.self) }
            Swift.print(single ? (items.first ?? "null") : "[" + items.joined(separator: ",") + "]")
        } else {
            Swift.print(Table.render(header: View.header, rows: views.map(\.row)))
        }
    }
}
