-- Least-privilege grants for the relay and the consumers. Create the roles first, e.g.
--   CREATE ROLE outbox_relay LOGIN REPLICATION PASSWORD '...';
--   CREATE ROLE outbox_consumer LOGIN PASSWORD '...';
-- then, as the owner of the tables, after `outbox-relay migrate`:
--   psql -v relay_role=outbox_relay -v consumer_role=outbox_consumer -f sql/roles.sql
-- `outbox-relay` embeds this file and runs the same grants (Schema.SchemaRoles).
-- Re-running it is harmless.

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"relay_role", :"consumer_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"relay_role", :"consumer_role";
GRANT USAGE ON SCHEMA public TO :"relay_role", :"consumer_role";

-- Relay: reads the outbox (notify mode's fallback, the sweeper), updates only the
-- sweeper's bookkeeping columns, deletes COMPLETE rows for retention. Streaming itself
-- needs the REPLICATION attribute, not table grants.
GRANT SELECT ON outbox TO :"relay_role";
GRANT UPDATE (status, attempts, last_sent_at, last_error) ON outbox TO :"relay_role";
GRANT DELETE ON outbox TO :"relay_role";
-- The slot record (identity and last confirmed LSN), written by every relay of a slot.
GRANT SELECT, INSERT, UPDATE ON outbox_relay_slot TO :"relay_role";
-- Notify mode's doorbell flag, written by the active notify-mode relay (writers only read it).
GRANT SELECT, INSERT, UPDATE ON outbox_relay_doorbell TO :"relay_role";

-- Consumers: flip status, write their effect tables, expire wait tokens on payment.
GRANT SELECT ON outbox TO :"consumer_role";
GRANT UPDATE (status) ON outbox TO :"consumer_role";
GRANT SELECT, INSERT ON booking_record, payment_ledger TO :"consumer_role";
GRANT SELECT ON wait_token TO :"consumer_role";
GRANT UPDATE (status) ON wait_token TO :"consumer_role";

-- Sweeper scope (0007): consumers register their topics and record how far they have
-- read; the relay reads both to decide which rows are due.
GRANT SELECT, INSERT, UPDATE ON outbox_writeback_consumer, outbox_consumer_progress TO :"consumer_role";
GRANT SELECT ON outbox_writeback_consumer, outbox_consumer_progress TO :"relay_role";

-- The migration record: `run`, `consume`, `redrive` and `replay` check at start that the
-- database has every migration their version needs.
GRANT SELECT ON outbox_schema_migrations TO :"relay_role", :"consumer_role";
