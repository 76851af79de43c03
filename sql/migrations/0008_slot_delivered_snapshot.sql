-- What the slot record knows was delivered, as a snapshot (issue 32: after a failover on
-- PostgreSQL 15/16 `slot reset` re-sends only the rows that may be missing from Kafka).
--
-- delivered_snapshot: every transaction visible in it was streamed and acknowledged by
-- Kafka (its commit lies below confirmed_lsn). A row whose inserting transaction it does
-- not see may be missing; `slot reset` re-sends only those.
-- pending_snapshot / pending_lsn: a snapshot taken together with the WAL insert position
-- at a record write; it becomes delivered_snapshot at the first write whose confirmed_lsn
-- reaches pending_lsn (everything it sees committed before that position).
-- NULL (a record written before this migration, or a fresh one): nothing is known as
-- delivered, and a reset re-sends every INIT row, as before.
ALTER TABLE outbox_relay_slot
    ADD COLUMN delivered_snapshot pg_snapshot,
    ADD COLUMN pending_snapshot   pg_snapshot,
    ADD COLUMN pending_lsn        pg_lsn;
