-- pgbench script: the "raw" baseline of the hot-channel benchmarks (issue
-- #14). One single-row INSERT per transaction into a table shaped like the
-- event log (perf-bench.sh creates it with the event store's own
-- migrations, so the columns, defaults, constraints and indexes are the
-- log's), with a body the size of a real MessageSent and metadata carrying
-- an idempotency key, as an HTTP send with client_msg_id writes.
\set seq random(1, 1000000000)
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
VALUES ('channel-' || gen_random_uuid(), 1, gen_random_uuid(), 'MessageSent', 1,
  jsonb_build_object('channel_id', gen_random_uuid(), 'message_id', gen_random_uuid(), 'seq', :seq,
    'sender_id', gen_random_uuid(), 'message_type', 'text',
    'content', 'wrk perf_bench_12345-hot-12-12345: the quick brown fox jumps over the lazy dog',
    'client_msg_id', 'perf_bench_12345-hot-12-12345'),
  jsonb_build_object('actor_id', gen_random_uuid(), 'correlation_id', gen_random_uuid(),
    'causation_id', gen_random_uuid(), 'idempotency_key', 'msg:' || gen_random_uuid()));
