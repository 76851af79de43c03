import PGOutput
import PostgresClient
import RelayCore

/// The session setup both capture modes share around their own transport: the slot
/// checked (and created on a very first start) before anything is read, then
/// acknowledgement started from the slot's confirmed position. A mode owns only how it
/// connects, reads and confirms (`CapturePipeline`'s note).
struct CaptureSessionSetup {
    let configuration: RelayConfiguration
    let publisher: Publisher
    /// The mode's checks of the slot and its publication (`SlotPreflight`).
    let preflight: SlotPreflight

    /// Runs the preflight on the mode's connection, creating the slot with `createSlot` when
    /// it is missing and may be created (as a failover slot when its argument is true:
    /// PostgreSQL 17+). Throws `slotInUse` (wait as a standby) when another relay reads the
    /// slot, or created it a moment ago.
    func checkSlot(execute: (String) throws -> PGResult, createSlot: (_ failover: Bool) throws -> LSN) throws -> SlotPreflight.SlotState {
        let slot = try preflight.run(execute: execute, createSlot: { failover in
            do {
                return try createSlot(failover)
            } catch let error as PGError where error.sqlState == "42710" {
                // Another relay created it a moment ago and finishes its first start (and
                // records the slot): wait as a standby, then start as usual.
                throw Self.slotInUse(configuration.slotName, pid: nil)
            }
        })
        if let pid = slot.activePID { throw Self.slotInUse(configuration.slotName, pid: pid) }
        return slot
    }

    /// Starts acknowledging from the slot's confirmed position. A slot this session created
    /// is recorded first (stream mode calls this after the first start's gap is published,
    /// so a failed first start leaves the slot unrecorded and starts over). Then the session's
    /// acknowledged horizon is taken (invariant 10), while the line still holds what the
    /// previous session acknowledged, late delivery reports included. Then the publisher's
    /// line begins a session there, and the returned recorder keeps the slot record ahead of
    /// every confirmation (invariant 8). The caller stops the recorder when the session ends,
    /// and hands the horizon to its pipeline.
    func startAcknowledging(_ slot: SlotPreflight.SlotState, horizons: SessionHorizons,
                            execute: (String) throws -> PGResult) throws -> (ConfirmationRecorder, AcknowledgedHorizon) {
        if slot.created { try preflight.recordCreated(at: slot.confirmedFlush, execute: execute) }
        let horizon = try horizons.start(slotConfirmed: slot.confirmedFlush, acknowledgedByLine: publisher.confirmableLSN,
                                         execute: execute)
        let recorder = try ConfirmationRecorder(configuration: configuration, recorded: slot.confirmedFlush,
                                                stopDeadline: { [publisher] in publisher.stopDeadline })
        publisher.beginSession(confirmed: slot.confirmedFlush)
        return (recorder, horizon)
    }

    static func slotInUse(_ slot: String, pid: Int32?) -> RelayError {
        RelayError(.slotInUse, "Replication slot \"\(slot)\" is in use by \(pid.map { "process \($0)" } ?? "another relay"); waiting as a standby.",
                   fix: "nothing: this relay takes over when the active one stops.", halting: false)
    }
}
