-- Notify mode's doorbell: whether the active notify-mode relay wants to be told about new
-- outbox rows. One row per NOTIFY channel, written only by the relay that holds the slot.
-- `listening` is set while that relay is idle and waits for a notification, and clear
-- while it is busy reading the slot anyway (or stopped). The outbox trigger installed by
-- `outbox-relay migrate --capture notify` notifies only while it is set, so writers under
-- load skip NOTIFY and the cluster-wide lock every notifying commit takes in
-- PreCommit_Notify. Reading it is a primary-key lookup that never waits on a lock.
CREATE TABLE outbox_relay_doorbell (
    channel    text        PRIMARY KEY,
    listening  boolean     NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- room for HOT updates: at moderate load the flag flips often

-- Writers' triggers read it with the writers' own privileges, whatever their roles; it
-- holds nothing secret. Only the relay role writes it (roles.sql).
GRANT SELECT ON outbox_relay_doorbell TO PUBLIC;
