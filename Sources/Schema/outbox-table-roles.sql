-- The grants roles.sql gives on public.outbox, for an outbox table in another schema
-- (`outbox-relay migrate --schema S --grant-roles` runs it through SchemaRoles; with psql:
--   psql -v schema=team_a -v table=outbox -v relay_role=outbox_relay \
--        -v consumer_role=outbox_consumer -f outbox-table-roles.sql).
-- RolesTests compares the privileges it leaves with public.outbox's. Re-running it is
-- harmless. Writers (the team's own roles) need INSERT on the table and USAGE on its
-- outbox_id sequence: grant those as the team's owner.

GRANT USAGE ON SCHEMA :"schema" TO :"relay_role", :"consumer_role";
REVOKE ALL ON :"schema".:"table" FROM :"relay_role", :"consumer_role";

-- Relay: reads the rows (notify mode's fallback, the sweeper), updates only the sweeper's
-- bookkeeping columns, deletes rows for retention.
GRANT SELECT ON :"schema".:"table" TO :"relay_role";
GRANT UPDATE (status, attempts, last_sent_at, last_error) ON :"schema".:"table" TO :"relay_role";
GRANT DELETE ON :"schema".:"table" TO :"relay_role";

-- Consumers: flip status.
GRANT SELECT ON :"schema".:"table" TO :"consumer_role";
GRANT UPDATE (status) ON :"schema".:"table" TO :"consumer_role";
