-- Filtered whole-log reads (`/api/events?stream=` / `?type=`) walk these in
-- commit order and stop at their limit, instead of walking the whole log from
-- the cursor and filtering.
--
-- A plain CREATE INDEX blocks appends while it builds. On a large log, build
-- them beforehand without blocking, and this migration then finds them:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS events_stream_commit_order ON events (stream_id, transaction_id, global_position);
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS events_type_commit_order ON events (event_type, transaction_id, global_position);
-- (Not concurrently here: migrations run under sqlx's advisory lock, and a
-- concurrent build waits for every older snapshot, a second starter's wait
-- for that lock included.)
CREATE INDEX IF NOT EXISTS events_stream_commit_order
    ON events (stream_id, transaction_id, global_position);
CREATE INDEX IF NOT EXISTS events_type_commit_order
    ON events (event_type, transaction_id, global_position);
