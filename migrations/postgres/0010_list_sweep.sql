-- List mode at scale: the sweep through ListEditingProjects survives the cycle that began it.
--
-- One row per sweep. The row with outcome 'running' is the cursor: next_token is the page
-- to fetch next (NULL: page one), pages how many pages it has processed, params the query
-- it pages through (fixed when it started: a NextToken only means something for the query
-- that produced it), filter the configuration that query came from. A sweep ends
-- 'completed' (its last page was processed), 'restarted' (ICE refused its token, so the
-- next one starts again from page one) or 'abandoned' (sync.list or the page size changed).
-- Finished rows are kept as the record of past sweeps, like sync_runs.
--
-- lease_owner / lease_expires_at: the replica sweeping right now, so that replicas sharing
-- this database make the list calls of one. Expiry is on this server's clock; a holder
-- renews it while it sweeps, and anyone may take the cursor over once it has expired.
CREATE TABLE list_sweeps (
    id               bigserial PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    outcome          text NOT NULL
        CHECK (outcome IN ('running', 'completed', 'restarted', 'abandoned')),
    pages            bigint NOT NULL DEFAULT 0,
    next_token       text,
    params           text NOT NULL,
    filter           text NOT NULL,
    marked           bigint NOT NULL DEFAULT 0,
    discovered       bigint NOT NULL DEFAULT 0,
    replica_id       text NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz
);

-- At most one sweep in progress: two replicas starting one at once, one insert wins.
CREATE UNIQUE INDEX list_sweeps_running_idx ON list_sweeps (outcome) WHERE outcome = 'running';
