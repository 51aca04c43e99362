import ArgumentParser
import HTTP
import KeygateCore
import Postgres
import Posix
import Storage

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply, roll back or list the database migrations (straight to PostgreSQL).",
        subcommands: [Up.self, Down.self, Status.self]
    )

    /// The runner over `database_direct_url`, without a statement timeout (DDL may be slow).
    static func makeRunner(_ options: GlobalOptions) throws -> MigrationRunner {
        let configuration = try options.loadConfiguration()
        do {
            let migrations = try Migration.load(directory: configuration.migrationsDirectory)
            let connection = PostgresConnection(connectionString: try configuration.connectionString(direct: true),
                                                statementTimeoutMilliseconds: 0)
            return MigrationRunner(connection: connection, migrations: migrations)
        } catch {
            throw CLIFailure(String(describing: error))
        }
    }

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply pending migrations (all, or up to --to).")
        @OptionGroup var options: GlobalOptions
        @Option(help: "Stop after this version.") var to: Int?

        func run() throws {
            let runner = try Migrate.makeRunner(options)
            let applied = try CLIFailure.wrap { () throws(MigrationError) in try runner.up(to: to) }
            if applied.isEmpty { print("schema is current (version \(runner.latestVersion))") }
            for migration in applied { print("applied \(migration.version) \(migration.name)") }
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Roll back the newest migration (or all above --to).")
        @OptionGroup var options: GlobalOptions
        @Option(help: "Roll back every migration above this version (0: all).") var to: Int?

        func run() throws {
            let runner = try Migrate.makeRunner(options)
            let undone = try CLIFailure.wrap { () throws(MigrationError) in try runner.down(to: to) }
            if undone.isEmpty { print("nothing to roll back") }
            for migration in undone { print("rolled back \(migration.version) \(migration.name)") }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List migrations and whether each is applied.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let runner = try Migrate.makeRunner(options)
            let rows = try CLIFailure.wrap { () throws(MigrationError) in try runner.status() }
            if json {
                print(String(decoding: JSON.encode(rows), as: UTF8.self))
            } else {
                print(Table.render(header: ["VERSION", "NAME", "STATE", "APPLIED AT"],
                                   rows: rows.map { [String($0.version), $0.name, $0.state.rawValue, $0.appliedAt ?? "-"] }))
            }
            if rows.contains(where: { $0.state == .modified || $0.state == .unknown }) { throw ExitCode(4) }
        }
    }
}

/// A failure reported as `Error: message` (argument-parser's form) with exit code 1.
struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }

    static func wrap<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        do { return try body() } catch { throw CLIFailure(String(describing: error)) }
    }
}
