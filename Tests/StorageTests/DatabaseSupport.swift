#if canImport(Glibc)
import Glibc
#endif
import Testing
import Postgres
@testable import Storage

/// `<repo>/migrations`, from this file's path.
let repositoryMigrationsDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3) // Tests/StorageTests/DatabaseSupport.swift
    return parts.joined(separator: "/") + "/migrations"
}()

/// Straight to PostgreSQL: CREATE DATABASE, and a fresh database per test.
let adminURL: String? = getenv("KG_TEST_DIRECT_DATABASE_URL").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
let isCI = getenv("CI").map { String(cString: $0) } == "true"

/// A fresh empty database for one test, dropped afterwards.
func withFreshDatabase(_ body: (String) throws -> Void) throws {
    guard let adminURL else {
        Issue.record("KG_TEST_DIRECT_DATABASE_URL is not set under CI: PostgreSQL is required")
        return
    }
    let name = "keygate_mig_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
    let admin = PostgresConnection(connectionString: adminURL)
    try admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
    defer { _ = try? admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")) }
    try body(adminURL.replacing("dbname=keygate_unit", with: "dbname=\(name)"))
}

/// A fresh database with every migration applied, for `body`.
func withMigratedDatabase(_ body: (PostgresConnection) throws -> Void) throws {
    let migrations = try Migration.load(directory: repositoryMigrationsDirectory)
    try withFreshDatabase { (url: String) throws in
        let db = PostgresConnection(connectionString: url)
        try MigrationRunner(connection: db, migrations: migrations).up()
        try body(db)
    }
}
