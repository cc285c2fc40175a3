-- Where each relay stands in the log: the (transaction id, position) pair of the
-- last event whose publish RabbitMQ confirmed.
CREATE TABLE IF NOT EXISTS relay_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  bigint NOT NULL,
    global_position bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relay when events commit (NOTIFY is delivered at commit, and
-- several notifications of one transaction collapse into one).
CREATE OR REPLACE FUNCTION notify_events_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chat_events', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS events_appended ON events;
CREATE TRIGGER events_appended AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended();
