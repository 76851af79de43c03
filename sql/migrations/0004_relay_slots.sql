-- What each relay slot is known to be, so that a slot lost or moved while every relay
-- was down is recognised at the next start instead of being silently recreated
-- (ARCHITECTURE invariant 8). Relays sharing a slot (active/standby) share its row.
--
-- confirmed_lsn is written BEFORE a relay confirms that LSN to the slot, so the slot's
-- confirmed_flush_lsn never legitimately passes it: a slot found ahead of its record was
-- advanced or recreated by someone else. A slot missing while its row exists was
-- dropped. Either stops the relay until an operator runs `outbox-relay slot reset`.
CREATE TABLE outbox_relay_slot (
    slot_name     text        PRIMARY KEY,
    -- Where the slot began: with the name, what identifies this incarnation of it.
    created_lsn   pg_lsn      NOT NULL,
    -- The highest LSN any relay may have confirmed to the slot.
    confirmed_lsn pg_lsn      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- How the row last changed: 'created', 'adopted', 'confirmed' or 'reset'.
    last_change   text        NOT NULL
);
