-- ICE event callbacks. Forward-only: never edit a released migration, add one.

-- One row per event accepted by any replica, keyed the way IMS events can be told apart:
-- (EventType, JobId). The primary key is the dedupe: a repeated or replayed event finds
-- its row and queues nothing, and on PostgreSQL the first replica's insert decides for
-- every replica. A row is a hint that was acted on, never data: only a poll writes
-- history. Rows are pruned by age (received_at), well after a replay could still carry a
-- fresh signature.
CREATE TABLE callback_events (
    event_type  text NOT NULL,
    job_id      text NOT NULL,
    project_id  text NOT NULL,
    -- MessageBody.Status and EventTime as sent; not interpreted.
    status      text,
    event_time  text,
    received_at timestamptz NOT NULL,
    -- sync.replica_id of the daemon that accepted it.
    received_by text NOT NULL,
    PRIMARY KEY (event_type, job_id)
);

CREATE INDEX callback_events_received_idx ON callback_events (received_at);
