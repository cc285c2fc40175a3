-- Login credentials, as on PostgreSQL: the log's one non-event table, kept
-- out of the exported log (hashes are secrets), written in the registration's
-- write transaction. Usernames are unique whatever their case; they are ASCII
-- (the domain's rule), which SQLite's lower() folds as PostgreSQL's does.
CREATE TABLE IF NOT EXISTS user_credentials (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS user_credentials_username ON user_credentials (lower(username));
