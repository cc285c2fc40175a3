//! Group commit: every append and registration of this process goes to one
//! writer task, which takes all that queued meanwhile (at most
//! [`MAX_GROUP_APPENDS`], about [`MAX_GROUP_BYTES`]) into ONE write
//! transaction, each in a savepoint of its own, and commits once.
//!
//! Why: in WAL mode with `synchronous = FULL` a commit is an fsync, and
//! SQLite has one writer, so appends committed one at a time ran at the
//! disk's fsync rate however many callers waited. PostgreSQL shares one WAL
//! flush among the transactions committing at the same moment; this is the
//! same by hand. Nothing waits to fill a group (the writer takes what queued
//! while the previous group was committing), so a lone caller waits no longer.
//!
//! Each caller sees what it would see alone: its append runs on the log as the
//! group's earlier appends left it (the same connection), a refusal (expected
//! version, idempotency key, event id, username) rolls back only its savepoint
//! and is its answer, and positions follow the queue with no gap. Answers go
//! out only after the commit returned, so an acknowledged append is durable.
//! If the transaction fails as a whole (begin, a savepoint, the commit),
//! nothing of the group is recorded and every caller gets the database error.
//! A caller that stops waiting (its future dropped) does not withdraw a
//! queued append: it may still be recorded, as an append whose answer was
//! lost may be on PostgreSQL; idempotency keys cover the retry.

use super::insert::{Append, append_in};
use crate::accounts::{Credentials, RegisterError, classify_credentials};
use crate::{AppendError, RecordedEvent};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Appends in one transaction at most: bounds how long the group's first
/// caller waits for the others' inserts.
const MAX_GROUP_APPENDS: usize = 256;
/// Event bytes after which a group takes no more appends (one larger
/// append still goes, alone).
const MAX_GROUP_BYTES: usize = 1 << 20;
/// Jobs waiting for the writer before callers wait to queue.
const QUEUE_LENGTH: usize = 1024;

type Reply<E> = oneshot::Sender<Result<Vec<RecordedEvent>, E>>;

/// What a caller asked the writer for, and where the answer goes.
pub(super) enum Job {
    Append(Append, Reply<AppendError>),
    /// The append and the user's credentials, both or neither.
    Register(Append, Credentials, Reply<RegisterError>),
}

/// A job that ran in its savepoint; its answer waits for the group's commit.
enum Ran {
    Append(Result<Vec<RecordedEvent>, AppendError>, Reply<AppendError>),
    Register(
        Result<Vec<RecordedEvent>, RegisterError>,
        Reply<RegisterError>,
    ),
}

/// The queue to the writer task, which ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime: it writes through
    /// `pool` (one connection) and moves `appended` after every commit.
    pub(super) fn spawn(pool: SqlitePool, appended: Arc<watch::Sender<i64>>) -> Self {
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE_LENGTH);
        tokio::spawn(async move {
            while let Some(first) = jobs.recv().await {
                let mut bytes = first.append().bytes();
                let mut group = vec![first];
                while group.len() < MAX_GROUP_APPENDS && bytes < MAX_GROUP_BYTES {
                    let Ok(job) = jobs.try_recv() else { break };
                    bytes += job.append().bytes();
                    group.push(job);
                }
                commit_group(&pool, group, &appended).await;
            }
        });
        Self { queue }
    }

    /// Queues the job `job(reply)` and waits for its answer; `database`
    /// makes the caller's error if the writer has gone (with its runtime).
    pub(super) async fn submit<E>(
        &self,
        job: impl FnOnce(Reply<E>) -> Job,
        database: fn(sqlx::Error) -> E,
    ) -> Result<Vec<RecordedEvent>, E> {
        let (reply, answer) = oneshot::channel();
        let gone = || database(sqlx::Error::WorkerCrashed);
        self.queue.send(job(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Runs `group` in one transaction and answers every job of it.
pub(super) async fn commit_group(
    pool: &SqlitePool,
    group: Vec<Job>,
    appended: &watch::Sender<i64>,
) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return group.into_iter().for_each(|job| job.fail(&e)),
    };
    let mut waiting = group.into_iter();
    let mut ran = Vec::with_capacity(waiting.len());
    match run_group(&mut conn, &mut waiting, &mut ran).await {
        Ok(()) => {
            if let Some(last) = ran.iter().rev().find_map(Ran::last_position) {
                appended.send_replace(last);
            }
            ran.into_iter().for_each(Ran::answer);
        }
        Err(e) => {
            // SQLite ends a transaction itself on some errors (I/O, a full
            // disk) where sqlx still counts it open: the next group gets a
            // fresh connection rather than that doubt.
            conn.close_on_drop();
            ran.into_iter().for_each(|r| r.fail(&e));
            waiting.for_each(|job| job.fail(&e));
        }
    }
}

/// Runs the jobs from `waiting` into `ran` inside one transaction and
/// commits it. On an error the transaction is gone (rolled back) and the
/// jobs not run yet are still in `waiting`.
async fn run_group(
    conn: &mut SqliteConnection,
    waiting: &mut impl Iterator<Item = Job>,
    ran: &mut Vec<Ran>,
) -> Result<(), sqlx::Error> {
    // IMMEDIATE takes the write lock now, so nothing read in the group can
    // change before its commit (another process's writer waits).
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut next: i64 =
        sqlx::query_scalar("SELECT coalesce(max(global_position), 0) + 1 FROM events")
            .fetch_one(&mut *tx)
            .await?;
    for job in waiting {
        if let Err(e) = sqlx::raw_sql("SAVEPOINT append").execute(&mut *tx).await {
            job.fail(&e);
            return Err(e);
        }
        let done = job.run(&mut tx, next).await;
        let end = if done.succeeded() {
            "RELEASE append"
        } else {
            "ROLLBACK TO append; RELEASE append"
        };
        let ended = sqlx::raw_sql(end).execute(&mut *tx).await;
        next = done.last_position().map_or(next, |last| last + 1);
        ran.push(done);
        ended?;
    }
    tx.commit().await
}

impl Job {
    fn append(&self) -> &Append {
        match self {
            Job::Append(append, _) | Job::Register(append, _, _) => append,
        }
    }

    /// Runs the job from position `first` on, in the open savepoint.
    async fn run(self, conn: &mut SqliteConnection, first: i64) -> Ran {
        match self {
            Job::Append(append, reply) => Ran::Append(append_in(conn, &append, first).await, reply),
            Job::Register(append, credentials, reply) => {
                Ran::Register(register_in(conn, &append, &credentials, first).await, reply)
            }
        }
    }

    fn fail(self, e: &sqlx::Error) {
        match self {
            Job::Append(_, reply) => drop(reply.send(Err(AppendError::Database(copy(e))))),
            Job::Register(_, _, reply) => drop(reply.send(Err(RegisterError::Database(copy(e))))),
        }
    }
}

/// The registration's append, then its credentials, in one savepoint.
async fn register_in(
    conn: &mut SqliteConnection,
    append: &Append,
    credentials: &Credentials,
    first: i64,
) -> Result<Vec<RecordedEvent>, RegisterError> {
    let recorded = append_in(conn, append, first).await?;
    sqlx::query("INSERT INTO user_credentials (user_id, username, password_hash) VALUES (?, ?, ?)")
        .bind(credentials.user_id.hyphenated().to_string())
        .bind(&credentials.username)
        .bind(&credentials.password_hash)
        .execute(&mut *conn)
        .await
        .map_err(|e| classify_credentials(e, &credentials.username))?;
    Ok(recorded)
}

impl Ran {
    fn succeeded(&self) -> bool {
        match self {
            Ran::Append(result, _) => result.is_ok(),
            Ran::Register(result, _) => result.is_ok(),
        }
    }

    fn last_position(&self) -> Option<i64> {
        match self {
            Ran::Append(Ok(recorded), _) | Ran::Register(Ok(recorded), _) => {
                recorded.last().map(|e| e.global_position)
            }
            _ => None,
        }
    }

    /// Answers after the commit, counting as the PostgreSQL adapter does.
    fn answer(self) {
        match self {
            Ran::Append(result, reply) => {
                count(result.as_ref().map(Vec::len).map_err(Some));
                drop(reply.send(result));
            }
            Ran::Register(result, reply) => {
                count(result.as_ref().map(Vec::len).map_err(|e| match e {
                    RegisterError::Append(e) => Some(e),
                    _ => None,
                }));
                drop(reply.send(result));
            }
        }
    }

    fn fail(self, e: &sqlx::Error) {
        match self {
            Ran::Append(_, reply) => drop(reply.send(Err(AppendError::Database(copy(e))))),
            Ran::Register(_, reply) => drop(reply.send(Err(RegisterError::Database(copy(e))))),
        }
    }
}

/// Counts a committed append's events, or a refused one's conflict.
fn count(outcome: Result<usize, Option<&AppendError>>) {
    match outcome {
        Ok(events) => {
            metrics::counter!("event_store_appended_events_total").increment(events as u64)
        }
        Err(Some(e)) if e.is_conflict() => {
            metrics::counter!("event_store_append_conflicts_total").increment(1)
        }
        Err(_) => {}
    }
}

/// The group's failure, for one of its callers: a `sqlx::Error` cannot be
/// cloned, so each gets one that says the same.
fn copy(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Io(std::io::Error::other(format!(
            "the write transaction of this append's group failed: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests;
