-- The outbox's shape, for an outbox table of its own in another schema (team_a.outbox):
-- the table migrations 0001, 0006 and 0007 made of public.outbox, with the same columns,
-- defaults, checks, primary key and partial indexes. `outbox-relay migrate --schema S
-- [--table T]` runs it (OutboxTableTemplate binds {schema} and {table}), in the same
-- transaction that adds the table to the relay's publications.
--
-- Idempotent: every statement is IF NOT EXISTS. It never alters a table that exists; the
-- shape check (OutboxShape) refuses one that lacks what the relay needs.
--
-- It must say what the migrations say: OutboxTableMigrationTests compares the catalog of
-- a table made here with public.outbox's, so a migration that changes public.outbox fails
-- that test until this file follows (and the team tables then need the same ALTER as a
-- note in the migration's docs).
--
-- {schema} and {table} are OutboxTable names, [a-z_][a-z0-9_$]*: nothing in them can end
-- the quoted identifiers they are spliced into.
CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS "{schema}"."{table}" (
    outbox_id    bigserial   PRIMARY KEY,
    topic        text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 249 AND topic !~ '[^a-zA-Z0-9._-]'),
    mq_key       text        NOT NULL CHECK (mq_key <> ''),
    type         text        NOT NULL,
    status       text        NOT NULL DEFAULT 'INIT'
                             CHECK (status IN ('INIT', 'PUBLISHED', 'COMPLETE', 'DEAD')),
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    last_sent_at timestamptz,
    last_error   text,
    trace_parent text
);

-- The sweeper's INIT rows by age, retention of COMPLETE rows, dashboards of DEAD rows, and
-- the sweeper's swept topics (0001 and 0007): partial, so they stay small.
CREATE INDEX IF NOT EXISTS "{table}_init_created_at" ON "{schema}"."{table}" (created_at) WHERE status = 'INIT';
CREATE INDEX IF NOT EXISTS "{table}_complete_created_at" ON "{schema}"."{table}" (created_at) WHERE status = 'COMPLETE';
CREATE INDEX IF NOT EXISTS "{table}_dead_created_at" ON "{schema}"."{table}" (created_at) WHERE status = 'DEAD';
CREATE INDEX IF NOT EXISTS "{table}_init_topic_created_at" ON "{schema}"."{table}" (topic, created_at) WHERE status = 'INIT';
