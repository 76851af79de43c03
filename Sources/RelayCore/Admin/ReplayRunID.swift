/// The id an `outbox-relay replay` run writes into the `outbox-replay` header of every
/// record it sends. Pure. Generated from the start time unless the operator gives one
/// (`--run-id`, e.g. to resume a run under the same id).
public enum ReplayRunID {
    /// `replay-<UTC yyyymmddThhmmss>-<4 hex>`, from seconds since 1970 and a random number.
    public static func generate(epochSeconds: Int64, random: UInt16) -> String {
        let (days, secondOfDay) = (epochSeconds / 86_400, Int(epochSeconds % 86_400))
        let (year, month, day) = civil(fromDays: days)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let hex = String(random, radix: 16)
        return "replay-\(year)\(two(month))\(two(day))T\(two(secondOfDay / 3_600))\(two(secondOfDay / 60 % 60))\(two(secondOfDay % 60))-"
            + String(repeating: "0", count: 4 - hex.count) + hex
    }

    /// Checks an id given with `--run-id`: 1 to 100 printable ASCII characters (a header
    /// value people grep for).
    public static func validate(_ id: String) throws(SelectionError) {
        guard (1...100).contains(id.utf8.count), id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw SelectionError("--run-id must be 1 to 100 printable characters without spaces",
                                 fix: "leave it out to get a generated id, or give one like incident-4711")
        }
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
    }
}
