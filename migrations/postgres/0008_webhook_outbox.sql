-- The webhook's outbox. Forward-only: never edit a released migration, add one.
--
-- One row per committed history row not yet acknowledged by the webhook receiver,
-- written in the same transaction as the history row (only while webhook.url is set) and
-- deleted when the receiver answers 2xx. A project's rows are sent in seq order, the
-- lowest first: the next one only once the one before is acknowledged.
CREATE TABLE webhook_outbox (
    project_id       text NOT NULL,
    seq              bigint NOT NULL,
    payload          text NOT NULL,        -- the exact body sent (and signed); also the NOTIFY payload
    observed_at      timestamptz NOT NULL, -- of the history row: how far behind delivery is
    attempts         bigint NOT NULL DEFAULT 0, -- failed attempts so far
    next_attempt_at  timestamptz,          -- NULL: as soon as it is the project's next row
    last_error       text,
    lease_owner      text,                 -- the replica sending it right now
    lease_expires_at timestamptz,
    PRIMARY KEY (project_id, seq)
);
