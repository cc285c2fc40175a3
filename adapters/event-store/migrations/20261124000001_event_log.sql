-- The event log: the single source of truth (DESIGN.md §3). Column names are a
-- contract with analysts' SQL.
CREATE TABLE IF NOT EXISTS events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Readers of the whole log order by (transaction_id, global_position) and only
    -- read below the oldest running transaction, so a row that commits late with a
    -- low position is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  int         NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX IF NOT EXISTS events_commit_order ON events (transaction_id, global_position);

-- A command retried with the same idempotency key appends nothing: the key is
-- unique across the log, and the first event carrying it is the first result.
CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency_key
    ON events ((metadata->>'idempotency_key'))
    WHERE metadata ? 'idempotency_key';

-- Edit and delete validate against one message's events, never a channel's history.
CREATE INDEX IF NOT EXISTS events_message_id
    ON events (stream_id, (data->>'message_id'))
    WHERE data ? 'message_id';

CREATE INDEX IF NOT EXISTS events_type ON events (event_type, global_position);

-- Cached aggregate state, so loading a stream reads only the events after it.
-- Disposable: deleting every row loses nothing but speed.
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id        text        PRIMARY KEY,
    stream_version   bigint      NOT NULL,
    snapshot_version int         NOT NULL,
    state            jsonb       NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now()
);

-- Login credentials: the write database's one non-event table. Password hashes
-- are secrets, not facts about the domain, so they stay out of the exported log.
CREATE TABLE IF NOT EXISTS user_credentials (
    user_id       uuid PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS user_credentials_username ON user_credentials (lower(username));
