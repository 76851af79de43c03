-- The sweeper's scope and every row's retention (issue 31). The sweeper re-sends only
-- topics whose consumers write status back; everything else is publish-only and leaves
-- the table by retention.
--
-- Write-back consumer groups register their topics here when they start (the `consume`
-- command does; other services that write status back may insert their own rows), and
-- refresh seen_at while they run. A registration not seen for `sweeper-consumer-expiry`
-- stops counting.
CREATE TABLE outbox_writeback_consumer (
    topic         text        NOT NULL,
    group_id      text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, group_id)
);

-- How far each registered group has read, per partition: every message produced before
-- read_before (the producer's timestamp) has been applied and committed. A row of the
-- topic is due for a re-send only once every partition's read_before has passed the time
-- the stream had published it, so a group that is down or behind costs no re-send.
-- '-infinity' marks a partition assigned but not read yet. Written about once a second
-- by each consumer, one upsert for all its partitions.
CREATE TABLE outbox_consumer_progress (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    read_before timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
) WITH (fillfactor = 50);  -- room for HOT updates: each row changes every second

-- The sweeper's candidates are INIT rows of the swept topics only: with publish-only
-- rows kept until retention, the INIT rows by age alone would make it walk past every
-- foreign row. Retention of publish-only rows still uses outbox_init_created_at.
CREATE INDEX outbox_init_topic_created_at ON outbox (topic, created_at) WHERE status = 'INIT';
