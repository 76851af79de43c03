/// Errors from migrations, the outbox API and the booking facade. Each names the problem
/// and, where the caller can act, the fix.
public enum SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    case tamperedMigration(name: String, recordedAs: String)
    case migrationFailed(name: String, underlying: String)
    /// An `enqueue` argument was rejected before anything reached the database.
    case invalidOutboxField(field: String, reason: String)

    public var description: String {
        switch self {
        case .tamperedMigration(let name, let recorded):
            return "migration \(name) was edited after it was applied (recorded as \(recorded), checksum differs). Applied migrations are immutable: restore the file and put the change in a new migration."
        case .migrationFailed(let name, let underlying):
            return "migration \(name) failed and was rolled back: \(underlying)"
        case .invalidOutboxField(let field, let reason):
            return "outbox \(field) rejected: \(reason)"
        }
    }
}
