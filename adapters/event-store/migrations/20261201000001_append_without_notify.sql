-- No NOTIFY inside an append's transaction: it serialised the commit of every
-- append in the cluster (PostgreSQL holds a global lock from a notifying
-- transaction's pre-commit until its commit record is flushed). The store
-- notifies `chat_events` from a short transaction of its own after appends
-- commit, and readers poll besides.
DROP TRIGGER IF EXISTS events_appended ON events;
DROP FUNCTION IF EXISTS notify_events_appended();
