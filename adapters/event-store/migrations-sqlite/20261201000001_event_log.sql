-- The embedded event log: the same table as on PostgreSQL (DESIGN §3), in
-- SQLite's types. One writer at a time (the adapter holds one write
-- connection), so positions are taken and committed in order: a whole-log
-- reader by global_position never skips a row that commits later.
-- transaction_id is the first global_position of the append that wrote the
-- row, so the rows of one append share it as they do on PostgreSQL.
CREATE TABLE IF NOT EXISTS events (
    global_position INTEGER PRIMARY KEY,
    transaction_id  INTEGER NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version > 0),
    data            TEXT    NOT NULL CHECK (json_valid(data)),
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    recorded_at     TEXT    NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency_key
    ON events (json_extract(metadata, '$.idempotency_key'))
    WHERE json_extract(metadata, '$.idempotency_key') IS NOT NULL;

CREATE INDEX IF NOT EXISTS events_message_id
    ON events (stream_id, json_extract(data, '$.message_id'))
    WHERE json_extract(data, '$.message_id') IS NOT NULL;

CREATE INDEX IF NOT EXISTS events_type_commit_order ON events (event_type, global_position);
CREATE INDEX IF NOT EXISTS events_stream_commit_order ON events (stream_id, global_position);

CREATE TABLE IF NOT EXISTS snapshots (
    stream_id        TEXT    PRIMARY KEY,
    stream_version   INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    taken_at         TEXT    NOT NULL
);
