//! Serves reads from the read models and the event-history API (issue: read path).
