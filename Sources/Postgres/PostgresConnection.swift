#if canImport(Glibc)
import Glibc
#endif
internal import CPostgreSQL

/// One libpq connection, owned by one process (never opened in the pool's master before
/// fork). It connects lazily, reconnects after the server or pooler went away, and runs
/// parameterized statements only. Nothing here relies on session state, so it works
/// through PgBouncer in transaction-pooling mode, unless `usesPreparedStatements` is
/// set (for a connection straight to PostgreSQL, or a pooler that keeps prepared
/// statements): then `query(_:_:)` keeps a `PostgresStatement` prepared on the server.
public final class PostgresConnection {
    public let connectionString: String
    /// Applied with `SET LOCAL` in every transaction this connection opens; 0 = none.
    public let statementTimeoutMilliseconds: Int
    /// Whether `query(_:_:)` may keep statements prepared on the server.
    public let usesPreparedStatements: Bool
    private var handle: OpaquePointer?
    /// Set by `transaction` for its whole length, also after the connection broke in it:
    /// then nothing may reconnect (the rest would run outside the transaction) or retry.
    private var inTransaction = false
    /// The statements prepared on the current connection (gone with it).
    private var prepared: Set<String> = []
    /// Connections opened so far. Session state (LISTEN) lives and dies with one of them:
    /// a holder compares this number to know when it must set that state up again.
    public private(set) var connectionCount = 0

    public init(connectionString: String, statementTimeoutMilliseconds: Int = 5_000, usesPreparedStatements: Bool = false) {
        self.connectionString = connectionString
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        self.usesPreparedStatements = usesPreparedStatements
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Whether a connection is currently open and healthy (no I/O).
    public var isConnected: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Drops the connection; the next statement reconnects (outside a transaction).
    public func disconnect() {
        if let handle { PQfinish(handle) }
        handle = nil
        prepared.removeAll()
    }

    private func connected() throws(PostgresError) -> OpaquePointer {
        if let handle {
            if PQstatus(handle) == CONNECTION_OK { return handle }
            disconnect()
        }
        // A fresh connection in the middle of a transaction would run the rest of it in
        // autocommit: a half-applied change reported as committed.
        guard !inTransaction else {
            throw PostgresError(kind: .unavailable, sqlState: nil, message: "the connection was lost in the middle of a transaction")
        }
        guard let fresh = PQconnectdb(connectionString) else {
            throw PostgresError(kind: .unavailable, sqlState: nil, message: "out of memory allocating a connection")
        }
        guard PQstatus(fresh) == CONNECTION_OK else {
            let message = Self.text(PQerrorMessage(fresh))
            PQfinish(fresh)
            throw PostgresError(kind: .unavailable, sqlState: nil, message: message)
        }
        do { try ensureISODates(fresh) } catch {
            PQfinish(fresh)
            throw error
        }
        handle = fresh
        prepared.removeAll()
        connectionCount += 1
        return fresh
    }

    /// Timestamps are read in the ISO output style (`PostgresTimestamp`). A server or role
    /// set to another style gets ISO for this session; PgBouncer keeps a client's DateStyle
    /// on every server connection it lends it (it is one of the parameters it tracks).
    private func ensureISODates(_ connection: OpaquePointer) throws(PostgresError) {
        guard let style = PQparameterStatus(connection, "DateStyle"), !String(cString: style).hasPrefix("ISO") else { return }
        _ = try consume(PQexec(connection, "SET DateStyle = ISO"), connection: connection)
    }

    /// Runs one statement. Outside a transaction, a statement that failed only because a
    /// stale connection broke is retried once on a fresh one (the server never saw it).
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        do {
            return try execute(query)
        } catch let error where error.kind == .unavailable && !inTransaction && error.sqlState == nil {
            disconnect()
            return try execute(query)
        }
    }

    /// Runs `statement` with `parameters` bound to its placeholders in order. With
    /// `usesPreparedStatements`, as a named statement prepared on first use on each
    /// connection (parsed and planned once per connection instead of once per call);
    /// without, as a plain parameterized statement.
    @discardableResult
    public func query(_ statement: PostgresStatement, _ parameters: any PostgresBindable...) throws(PostgresError) -> PostgresRows {
        let query = PostgresQuery(sql: statement.sql, parameters: parameters.map(\.postgresText))
        guard usesPreparedStatements else { return try self.query(query) }
        do {
            return try executePrepared(statement.name, query)
        } catch let error where !inTransaction && (error.sqlState == "26000" || error.sqlState == "0A000"
                                                     || (error.kind == .unavailable && error.sqlState == nil)) {
            // The statement is gone (DISCARD ALL on the server), its plan no longer fits the
            // table (0A000 after a migration changed a column's type: the server refuses it
            // until it is prepared anew), or the connection broke: start over once, on a
            // fresh connection when it was the connection.
            if error.sqlState == nil {
                disconnect()
            } else {
                if error.sqlState == "0A000" { _ = try? self.query(PostgresQuery(unsafeSQL: "DEALLOCATE \(statement.name)")) }
                prepared.remove(statement.name)
            }
            return try executePrepared(statement.name, query)
        }
    }

    private func executePrepared(_ name: String, _ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        try Self.checkParameters(query)
        let connection = try connected()
        if !prepared.contains(name) {
            do {
                _ = try consume(PQprepare(connection, name, query.sql, Int32(query.parameters.count), nil), connection: connection)
            } catch where error.sqlState == "42P05" {
                // Already prepared on this session (a retry after an unclear failure): use it.
            }
            prepared.insert(name)
        }
        return try withParameters(query, on: connection) { count, values in
            PQexecPrepared(connection, name, count, values, nil, nil, 0)
        }
    }

    private func execute(_ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        try Self.checkParameters(query)
        let connection = try connected()
        return try withParameters(query, on: connection) { count, values in
            PQexecParams(connection, query.sql, count, nil, values, nil, nil, 0)
        }
    }

    /// Text parameters are C strings: a NUL would silently truncate the value.
    private static func checkParameters(_ query: PostgresQuery) throws(PostgresError) {
        for (index, parameter) in query.parameters.enumerated() where parameter?.contains(0) == true {
            throw PostgresError(kind: .invalidInput, sqlState: "22021", message: "parameter $\(index + 1) contains a NUL byte")
        }
    }

    /// The parameters as the NUL-terminated strings libpq takes, for the duration of `run`.
    private func withParameters(
        _ query: PostgresQuery, on connection: OpaquePointer, _ run: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> OpaquePointer?
    ) throws(PostgresError) -> PostgresRows {
        let cStrings: [UnsafeMutablePointer<CChar>?] = query.parameters.map { parameter in
            parameter.map { bytes in
                let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
                bytes.withUnsafeBufferPointer { source in
                    source.withMemoryRebound(to: CChar.self) { chars in
                        if let base = chars.baseAddress { buffer.initialize(from: base, count: bytes.count) }
                    }
                }
                buffer[bytes.count] = 0
                return buffer
            }
        }
        defer { for pointer in cStrings { pointer?.deallocate() } }
        let result: OpaquePointer? = cStrings.withUnsafeBufferPointer { values in
            values.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constValues in
                run(Int32(values.count), constValues.baseAddress)
            }
        }
        return try consume(result, connection: connection)
    }

    private func consume(_ result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else {
            let message = Self.text(PQerrorMessage(connection))
            if PQstatus(connection) != CONNECTION_OK { disconnect() }
            throw PostgresError(kind: .unavailable, sqlState: nil, message: message)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            // (Empty: a script of comments only, such as a migration's empty down part.)
            return Self.rows(of: result)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = Self.text(PQresultErrorMessage(result))
            if PQstatus(connection) != CONNECTION_OK {
                disconnect()
                throw PostgresError(kind: .unavailable, sqlState: state, message: message)
            }
            throw PostgresError(sqlState: state, message: message)
        }
    }

    private static func rows(of result: OpaquePointer) -> PostgresRows {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var total = 0
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) { total += Int(PQgetlength(result, row, column)) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        var spans: [PostgresRows.Span] = []
        spans.reserveCapacity(rowCount * columnCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                guard PQgetisnull(result, row, column) == 0, let pointer = PQgetvalue(result, row, column) else {
                    spans.append(PostgresRows.Span(start: 0, count: -1))
                    continue
                }
                let length = PQgetlength(result, row, column)
                spans.append(PostgresRows.Span(start: bytes.count, count: length))
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: Int(length)))
            }
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, count: rowCount, bytes: bytes, spans: spans, affectedRows: affected)
    }

    /// Runs a trusted multi-statement script (migrations) with the simple query protocol:
    /// no parameters, so nothing derived from input may reach it.
    public func execute(script: String) throws(PostgresError) {
        let connection = try connected()
        // PQexec returns the last statement's result; an error stops the script there.
        _ = try consume(PQexec(connection, script), connection: connection)
    }

    // MARK: Transactions

    /// Runs `body` in a transaction (with the statement timeout); commits if it returns,
    /// rolls back if it throws. Not nested: an inner BEGIN would only warn and its COMMIT
    /// would commit the outer work early.
    @discardableResult
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        guard !inTransaction else {
            throw PostgresError(kind: .other, sqlState: nil, message: "transaction() inside a transaction")
        }
        try query("BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        do {
            // Always, 0 included: 0 must turn off a role's default timeout too (migrations).
            try query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(statementTimeoutMilliseconds)"))
            let value = try body(self)
            // A statement failed and `body` carried on: COMMIT would roll back without an
            // error, and the change would be reported as made.
            if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
                throw PostgresError(kind: .other, sqlState: "25P02", message: "a statement of the transaction failed; it was rolled back")
            }
            try query("COMMIT")
            return value
        } catch {
            if isConnected { _ = try? execute("ROLLBACK") }
            throw error
        }
    }

    // MARK: LISTEN / NOTIFY

    /// Subscribes this (direct, session-holding) connection to `channel`.
    public func listen(_ channel: String) throws(PostgresError) {
        guard Self.isIdentifier(channel) else {
            throw PostgresError(kind: .invalidInput, sqlState: nil, message: "invalid channel name")
        }
        try query(PostgresQuery(unsafeSQL: "LISTEN \(channel)"))
    }

    /// Waits up to `timeoutMilliseconds` for notifications; returns those that arrived.
    public func notifications(timeoutMilliseconds: Int32) throws(PostgresError) -> [(channel: String, payload: String)] {
        let connection = try connected()
        var received = drainNotifications(connection)
        if !received.isEmpty { return received }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        guard ready > 0 else { return [] }
        guard PQconsumeInput(connection) == 1 else {
            let message = Self.text(PQerrorMessage(connection))
            disconnect()
            throw PostgresError(kind: .unavailable, sqlState: nil, message: message)
        }
        received = drainNotifications(connection)
        return received
    }

    private func drainNotifications(_ connection: OpaquePointer) -> [(channel: String, payload: String)] {
        var out: [(channel: String, payload: String)] = []
        while let notice = PQnotifies(connection) {
            out.append((String(cString: notice.pointee.relname), String(cString: notice.pointee.extra)))
            PQfreemem(notice)
        }
        return out
    }

    // MARK: Bulk insert

    /// `COPY table (columns) FROM STDIN` in text format: one round trip for many rows.
    public func copy(into table: String, columns: [String], rows: [[PostgresBindable?]]) throws(PostgresError) {
        var data = PostgresCopyData()
        for row in rows {
            for value in row {
                if let text = value?.postgresText { data.append(text) } else { data.appendNull() }
            }
            data.endRow()
        }
        try copy(into: table, columns: columns, data: data)
    }

    /// The same with the rows already in COPY text format.
    public func copy(into table: String, columns: [String], data: PostgresCopyData) throws(PostgresError) {
        guard Self.isIdentifier(table), columns.allSatisfy(Self.isIdentifier) else {
            throw PostgresError(kind: .invalidInput, sqlState: nil, message: "invalid table or column name")
        }
        let connection = try connected()
        guard let start = PQexec(connection, "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN") else {
            throw PostgresError(kind: .unavailable, sqlState: nil, message: Self.text(PQerrorMessage(connection)))
        }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try consume(start, connection: connection)
            return
        }
        PQclear(start)
        let sent = data.bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1, PQputCopyEnd(connection, nil) == 1 else {
            let message = Self.text(PQerrorMessage(connection))
            disconnect()
            throw PostgresError(kind: .unavailable, sqlState: nil, message: message)
        }
        while let result = PQgetResult(connection) {
            _ = try consume(result, connection: connection)
        }
    }

    // MARK: Helpers

    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20 >= 0x61 && first | 0x20 <= 0x7a) else { return false }
        return name.utf8.count <= 63 && name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) }
    }

    static func text(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        var message = String(cString: pointer)
        while message.last == "\n" { message.removeLast() }
        return message
    }

    /// The libpq client library version, e.g. 150020 for 15.20.
    public static var libraryVersion: Int { Int(PQlibVersion()) }
}
