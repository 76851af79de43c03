/// Whether the relay's slot survives a primary failover with no operator (ARCHITECTURE
/// invariant 9, PostgreSQL 17+). Pure: the shell reads the server version, the slot's
/// `failover` flag, `synchronized_standby_slots` and the primary's physical slots.
///
/// A standby keeps a copy of a failover slot (`sync_replication_slots = on`), but the copy
/// is only safe if the relay never reads WAL the standby does not have: otherwise rows of
/// transactions the promoted standby never had reach Kafka, and the synced copy lags what
/// the relay confirmed. `synchronized_standby_slots` on the primary makes logical walsenders
/// wait for the named standbys' physical slots. A standby whose slot it does not name is
/// not protected.
public enum FailoverReadiness: Sendable, Equatable {
    /// The slot is a failover slot and every standby's physical slot is named.
    case ready(standbySlots: [String])
    /// PostgreSQL before 17 has no failover slots: a failover loses the slot.
    case unsupported(serverMajor: Int)
    /// The slot lacks `failover` (the relay could not turn it on, e.g. in notify mode).
    case slotWithoutFailover
    /// No physical replication slot on this primary: no standby to fail over to that could
    /// hold a synced copy (slot sync needs `primary_slot_name`).
    case noStandby
    /// These standbys' physical slots are not in `synchronized_standby_slots`.
    case unprotected(standbySlots: [String])

    public static let firstServerMajor = 17

    /// - Parameters:
    ///   - slotFailover: the slot's `failover` flag (false when the slot does not exist yet).
    ///   - synchronizedStandbySlots: the setting's value as the server shows it.
    ///   - physicalSlots: names of the physical replication slots on this primary.
    public static func assess(serverMajor: Int, slotFailover: Bool, synchronizedStandbySlots: String,
                              physicalSlots: [String]) -> FailoverReadiness {
        guard serverMajor >= firstServerMajor else { return .unsupported(serverMajor: serverMajor) }
        guard slotFailover else { return .slotWithoutFailover }
        guard !physicalSlots.isEmpty else { return .noStandby }
        let named = Set(parseSlotList(synchronizedStandbySlots))
        let unprotected = physicalSlots.filter { !named.contains($0) }.sorted()
        return unprotected.isEmpty ? .ready(standbySlots: physicalSlots.sorted()) : .unprotected(standbySlots: unprotected)
    }

    /// `synchronized_standby_slots` is a comma-separated list of slot names, possibly
    /// double-quoted (SHOW prints it as set).
    static func parseSlotList(_ value: String) -> [String] {
        value.split(separator: ",").map { item in
            let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
            var name = item.drop(while: blank)
            while let last = name.last, blank(last) { name = name.dropLast() }
            if name.count >= 2, name.first == "\"", name.last == "\"" { name = name.dropFirst().dropLast() }
            return String(name)
        }.filter { !$0.isEmpty }
    }

    public var isReady: Bool {
        if case .ready = self { return true }
        return false
    }

    /// Whether an operator should hear about it at startup: a standby exists, or the
    /// slot could fail over, but a failover would not be safe. A standalone server, or a
    /// version without failover slots, is not news at every start.
    public var deservesWarning: Bool {
        switch self {
        case .slotWithoutFailover, .unprotected: return true
        case .ready, .unsupported, .noStandby: return false
        }
    }
}
