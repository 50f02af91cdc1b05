-- Per-poll bookkeeping off the wide row. Forward-only: never edit a released migration, add one.
--
-- An unchanged poll used to update two rows: its tracked_projects row (the claim fence) and
-- its editing_projects row (last_polled_at, last_request_id), the wide one that carries
-- Timeline, ClipsParam and BusinessConfig, rewriting it with its index entries (on SQLite,
-- its pages and overflow pages in the WAL; here, a new row version and TOAST lookups).
-- Now the poll is recorded on the tracked_projects row alone, which the fence updates
-- anyway:
-- * tracked_projects.last_polled_at / last_request_id: the poll behind the project's
--   current row, written by every answered poll (unchanged, changed, marked removed);
-- * the wide table is editing_project_rows; its own last_polled_at / last_request_id are
--   written with the rest of the row (first seen, changed, removed), and are what a
--   project that is no longer tracked shows;
-- * editing_projects is a view with the table's columns in the table's order and their
--   meanings: the newer of the two polls.
--
-- Views that named editing_projects follow the renamed table (PostgreSQL binds them to the
-- table, not its name): editing_project_status_summary and editing_project_lead_times read
-- none of the moved columns and keep the same rows; editing_project_current_status shows
-- last_polled_at and is redefined on the new view. Indexes keep their names.

ALTER TABLE tracked_projects ADD COLUMN last_polled_at timestamptz,
                             ADD COLUMN last_request_id text;

ALTER TABLE editing_projects RENAME TO editing_project_rows;

CREATE VIEW editing_projects AS
SELECT p.project_id,
       p.title,
       p.description,
       p.status,
       p.business_status,
       p.project_type,
       p.template_id,
       p.template_type,
       p.clips_param,
       p.timeline,
       p.cover_url,
       p.create_source,
       p.modified_source,
       p.business_config,
       p.timeline_convert_status,
       p.timeline_convert_error_message,
       p.duration,
       p.create_time,
       p.modified_time,
       p.first_seen_at,
       COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at,
       p.last_changed_at,
       CASE WHEN t.last_polled_at IS NULL THEN p.last_request_id
            ELSE t.last_request_id END AS last_request_id,
       p.removed_at,
       p.history_seq,
       p.content_hash
FROM editing_project_rows p
LEFT JOIN tracked_projects t ON t.project_id = p.project_id;

CREATE OR REPLACE VIEW editing_project_current_status AS
SELECT p.project_id,
       p.project_type,
       p.title,
       p.status,
       p.business_status,
       h.observed_at AS since,
       EXTRACT(EPOCH FROM (c.now_at - h.observed_at))::double precision AS seconds_in_status,
       p.last_polled_at
FROM editing_projects p
JOIN editing_project_history h ON h.project_id = p.project_id AND h.seq = p.history_seq
CROSS JOIN analytics_clock c
WHERE p.removed_at IS NULL;
