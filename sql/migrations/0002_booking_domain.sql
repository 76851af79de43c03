-- The concert-booking domain of the original service: concerts, schedules, seats,
-- queue (wait) tokens, bookings, payments and user point balances.
CREATE TABLE concert (
    concert_id bigserial PRIMARY KEY,
    title      text      NOT NULL
);

CREATE TABLE concert_schedule (
    schedule_id bigserial   PRIMARY KEY,
    concert_id  bigint      NOT NULL REFERENCES concert,
    starts_at   timestamptz NOT NULL
);

CREATE TABLE seat (
    seat_id     bigserial PRIMARY KEY,
    schedule_id bigint    NOT NULL REFERENCES concert_schedule,
    seat_no     integer   NOT NULL,
    price       bigint    NOT NULL CHECK (price >= 0),
    status      text      NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    UNIQUE (schedule_id, seat_no)
);

CREATE TABLE app_user (
    user_id       bigserial PRIMARY KEY,
    name          text      NOT NULL,
    point_balance bigint    NOT NULL DEFAULT 0 CHECK (point_balance >= 0)
);

CREATE TABLE wait_token (
    token_id   bigserial   PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES app_user,
    token      uuid        NOT NULL UNIQUE,
    status     text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('WAITING', 'ACTIVE', 'EXPIRED')),
    expires_at timestamptz NOT NULL
);

CREATE TABLE booking (
    booking_id bigserial   PRIMARY KEY,
    seat_id    bigint      NOT NULL REFERENCES seat,
    user_id    bigint      NOT NULL REFERENCES app_user,
    token_id   bigint      NOT NULL REFERENCES wait_token,
    price      bigint      NOT NULL,
    status     text        NOT NULL DEFAULT 'RESERVED' CHECK (status IN ('RESERVED', 'PAID', 'CANCELLED')),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- One live booking per seat: the database, not the application, forbids double booking.
CREATE UNIQUE INDEX booking_one_live_per_seat ON booking (seat_id) WHERE status <> 'CANCELLED';

CREATE TABLE payment (
    payment_id bigserial   PRIMARY KEY,
    booking_id bigint      NOT NULL UNIQUE REFERENCES booking,
    user_id    bigint      NOT NULL REFERENCES app_user,
    amount     bigint      NOT NULL CHECK (amount >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
