-- The transactional outbox. Apps insert INIT rows in the same transaction as their
-- business change; the relay publishes them from the WAL; consumers flip them to
-- PUBLISHED and COMPLETE; the sweeper re-sends rows stuck in INIT and marks DEAD.
CREATE TABLE outbox (
    outbox_id    bigserial   PRIMARY KEY,
    topic        text        NOT NULL CHECK (topic ~ '^[a-zA-Z0-9._-]{1,249}$'),
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

-- The sweeper's query: INIT rows by age. Partial, so it stays small however large the
-- table grows (only stuck rows are in it).
CREATE INDEX outbox_init_created_at ON outbox (created_at) WHERE status = 'INIT';
-- Retention deletes old COMPLETE rows in batches.
CREATE INDEX outbox_complete_created_at ON outbox (created_at) WHERE status = 'COMPLETE';
-- Dashboards and `status`: DEAD rows are rare and looked up by age.
CREATE INDEX outbox_dead_created_at ON outbox (created_at) WHERE status = 'DEAD';

-- The relay's capture: inserts on the outbox only. Status updates by consumers and the
-- sweeper never reach the slot, so they cost the relay nothing.
CREATE PUBLICATION outbox_pub FOR TABLE outbox WITH (publish = 'insert');
