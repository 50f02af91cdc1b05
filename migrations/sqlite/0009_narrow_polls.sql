-- Per-poll bookkeeping off the wide row: the same change as the PostgreSQL migration 0009
-- (see there for why). Forward-only: never edit a released migration, add one.
--
-- ALTER TABLE ... RENAME rewrites the views and triggers that name the table, so views
-- that read none of the two moved columns (editing_project_status_summary,
-- editing_project_lead_times) now read editing_project_rows directly, with the same rows;
-- the one that shows last_polled_at is recreated on the new view. Indexes keep their
-- names (the primary key's becomes sqlite_autoindex_editing_project_rows_1).

ALTER TABLE tracked_projects ADD COLUMN last_polled_at TEXT;
ALTER TABLE tracked_projects ADD COLUMN last_request_id TEXT;

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

DROP VIEW editing_project_current_status;
CREATE VIEW editing_project_current_status AS
SELECT p.project_id,
       p.project_type,
       p.title,
       p.status,
       p.business_status,
       h.observed_at AS since,
       ROUND((julianday(c.now_at) - julianday(h.observed_at)) * 86400, 3) AS seconds_in_status,
       p.last_polled_at
FROM editing_projects p
JOIN editing_project_history h ON h.project_id = p.project_id AND h.seq = p.history_seq
CROSS JOIN analytics_clock c
WHERE p.removed_at IS NULL;
