//! Wakes whole-log readers in other processes (the relay's `LISTEN
//! chat_events`) after appends commit.
//!
//! The notification is never sent inside an append's transaction: a
//! transaction that sent NOTIFY takes a cluster-wide lock at commit and holds
//! it until its commit record is flushed, so every append would commit one at
//! a time and group commit would be lost. Instead one task per process sends
//! `pg_notify` in a short transaction of its own, at most one in flight:
//! appends that commit while it runs are covered by the next one.

use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// The channel the relay listens on.
pub const CHANNEL: &str = "chat_events";

#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    pending: Arc<Notify>,
    running: Arc<AtomicBool>,
}

impl Wakeup {
    /// Asks for a notification soon. Starts the sending task on first use (and
    /// again if the runtime it ran on has gone); without a runtime, readers
    /// still find the events by polling.
    pub(crate) fn raise(&self, pool: &PgPool) {
        if !self.running.swap(true, Ordering::AcqRel) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                self.running.store(false, Ordering::Release);
                return;
            };
            let running = RunningFlag(self.running.clone());
            let (pending, pool) = (self.pending.clone(), pool.clone());
            runtime.spawn(async move {
                let _running = running;
                loop {
                    pending.notified().await;
                    if pool.is_closed() {
                        return;
                    }
                    let sent = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(CHANNEL)
                        .execute(&pool)
                        .await;
                    if let Err(e) = sent {
                        tracing::debug!(error = %e, "cannot notify log readers; they poll");
                    }
                }
            });
        }
        self.pending.notify_one();
    }
}

/// Clears `running` when the task ends or is dropped with its runtime.
struct RunningFlag(Arc<AtomicBool>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
