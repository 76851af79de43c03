-- What the consumers write. Each effect is unique on outbox_id, a second line of
-- defence behind the status guard: a replayed message can never apply twice.
CREATE TABLE booking_record (
    outbox_id   bigint      PRIMARY KEY,
    booking_id  bigint      NOT NULL,
    seat_id     bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    payload     jsonb       NOT NULL,   -- the booking info sent to the data platform
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payment_ledger (
    outbox_id   bigint      PRIMARY KEY,
    payment_id  bigint      NOT NULL,
    booking_id  bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    amount      bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
