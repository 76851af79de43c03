internal import CLibPQ
public import PGOutput

/// The rows of a statement, copied out of libpq's result in text format.
public struct PGResult: Sendable {
    public let columns: [String]
    public let rows: [PGRow]
    /// Rows affected by INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 otherwise.
    public let affectedRows: Int

    init(_ result: OpaquePointer, query: String) {
        let columnCount = Int(PQnfields(result))
        let names = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name] == nil { index[name] = i }
        let layout = PGRow.Layout(names: names, index: index, query: query)
        let rowCount = Int(PQntuples(result))
        var rows: [PGRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [[UInt8]?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                    let pointer = PQgetvalue(result, Int32(r), Int32(c))!
                    values.append(pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                        Array(UnsafeBufferPointer(start: $0, count: length))
                    })
                }
            }
            rows.append(PGRow(layout: layout, values: values))
        }
        self.columns = names
        self.rows = rows
        self.affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The only row; throws when there is none.
    public func single() throws -> PGRow {
        guard let row = rows.first else {
            throw PGError(code: .decodeFailed, message: "expected one row, got none", query: rows.first?.layout.query)
        }
        return row
    }
}

/// One result row. Accessors convert PostgreSQL's text format and throw a `decodeFailed`
/// error naming the column when the value is NULL or does not convert.
public struct PGRow: Sendable {
    final class Layout: Sendable {
        let names: [String]
        let index: [String: Int]
        let query: String
        init(names: [String], index: [String: Int], query: String) { self.names = names; self.index = index; self.query = query }
    }
    let layout: Layout
    /// Raw text-format bytes per column, nil for NULL.
    public let values: [[UInt8]?]

    public subscript(column: String) -> [UInt8]? {
        layout.index[column].flatMap { values[$0] }
    }

    public func isNull(_ column: String) throws -> Bool { try raw(column, allowNull: true) == nil }

    public func string(_ column: String) throws -> String {
        String(decoding: try raw(column, allowNull: false)!, as: UTF8.self)
    }
    public func optionalString(_ column: String) throws -> String? {
        try raw(column, allowNull: true).map { String(decoding: $0, as: UTF8.self) }
    }
    public func int64(_ column: String) throws -> Int64 {
        let text = try string(column)
        guard let value = Int64(text) else { throw mismatch(column, "bigint", text) }
        return value
    }
    public func optionalInt64(_ column: String) throws -> Int64? {
        try optionalString(column).map { text in
            guard let value = Int64(text) else { throw mismatch(column, "bigint", text) }
            return value
        }
    }
    public func int(_ column: String) throws -> Int { Int(try int64(column)) }
    public func double(_ column: String) throws -> Double {
        let text = try string(column)
        guard let value = Double(text) else { throw mismatch(column, "double precision", text) }
        return value
    }
    public func bool(_ column: String) throws -> Bool {
        switch try string(column) {
        case "t", "true": return true
        case "f", "false": return false
        case let text: throw mismatch(column, "boolean", text)
        }
    }
    public func lsn(_ column: String) throws -> LSN {
        let text = try string(column)
        guard let value = LSN(text) else { throw mismatch(column, "pg_lsn", text) }
        return value
    }
    public func optionalLSN(_ column: String) throws -> LSN? {
        try optionalString(column).map { text in
            guard let value = LSN(text) else { throw mismatch(column, "pg_lsn", text) }
            return value
        }
    }
    /// Decodes `bytea` in the server's default hex output (`\x…`).
    public func bytea(_ column: String) throws -> [UInt8] {
        let raw = try raw(column, allowNull: false)!
        guard raw.count >= 2, raw[0] == UInt8(ascii: "\\"), raw[1] == UInt8(ascii: "x"), raw.count % 2 == 0 else {
            throw mismatch(column, "bytea (hex output)", String(decoding: raw.prefix(20), as: UTF8.self))
        }
        var out: [UInt8] = []
        out.reserveCapacity((raw.count - 2) / 2)
        var i = 2
        while i < raw.count {
            guard let hi = hexNibble(raw[i]), let lo = hexNibble(raw[i + 1]) else {
                throw mismatch(column, "bytea (hex output)", "invalid hex digit")
            }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private func raw(_ column: String, allowNull: Bool) throws -> [UInt8]? {
        guard let i = layout.index[column] else {
            throw PGError(code: .decodeFailed,
                          message: "no column \"\(column)\" in the result (columns: \(layout.names.joined(separator: ", ")))",
                          query: layout.query)
        }
        if values[i] == nil && !allowNull {
            throw PGError(code: .decodeFailed, message: "column \"\(column)\" is NULL", query: layout.query)
        }
        return values[i]
    }

    private func mismatch(_ column: String, _ type: String, _ text: String) -> PGError {
        PGError(code: .decodeFailed, message: "column \"\(column)\" is not a \(type): \"\(text.prefix(40))\"", query: layout.query)
    }
}

@inline(__always)
private func hexNibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
