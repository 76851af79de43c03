import PGOutput
import Schema

/// One outbox row: its table and its id there. Ids are per table (each table has its own
/// `outbox_id` sequence), so an id alone names no row once several tables exist.
struct OutboxRowKey: Hashable, Comparable, CustomStringConvertible {
    let table: OutboxTable
    let id: Int64

    static func < (a: OutboxRowKey, b: OutboxRowKey) -> Bool { (a.table, a.id) < (b.table, b.id) }

    var description: String { "\(table.qualifiedName) row \(id)" }
}

/// Which outbox table a message's row is in. Pure.
///
/// The relay names the table in the `outbox-table` header on the records of every table but
/// public.outbox; a record without it is of public.outbox (`OutboxTable.default`), as every
/// record was before several tables existed. The consumer touches only the tables it is
/// configured for (`outbox-tables`). A record of any other table is poison, never applied:
/// its id says nothing about the rows of the tables this consumer knows (the same id is
/// another row there), and a guess would flip another row's status and record its effect
/// under the wrong row.
enum TableRoute {
    static func decide(header: [UInt8]?, configured: [OutboxTable]) -> Result<OutboxTable, EventRoute.Refused> {
        guard let header else {
            if configured.contains(.default) { return .success(.default) }
            return .failure(unknown("the record carries no \(RecordContract.Header.table) header, so its row is in \(OutboxTable.default.qualifiedName), which",
                                    configured: configured))
        }
        let text = String(decoding: header, as: UTF8.self)
        // Configured names first: the usual case needs no parse.
        if let table = configured.first(where: { $0.qualifiedName == text }) { return .success(table) }
        let table: OutboxTable
        do { table = try OutboxTable(parsing: text) } catch {
            return .failure(EventRoute.Refused(reason: "invalid_outbox_table", detail: "the \(RecordContract.Header.table) header is no table name: \(error); "
                + "the relay writes schema.table there, so this record was not written by it"))
        }
        // `team_a.outbox` is found above; a header `outbox` (public implied) lands here.
        if configured.contains(table) { return .success(table) }
        return .failure(unknown("the record's row is in \(table.qualifiedName), which", configured: configured))
    }

    private static func unknown(_ subject: String, configured: [OutboxTable]) -> EventRoute.Refused {
        EventRoute.Refused(reason: "unknown_outbox_table", detail: "\(subject) is not one of this consumer's outbox-tables ("
            + configured.map(\.qualifiedName).joined(separator: ", ")
            + "); nothing was applied. Fix: add it to outbox-tables if this consumer is to apply that table's effects")
    }
}
