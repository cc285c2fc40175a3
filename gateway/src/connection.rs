//! One socket's outbound side as the rest of the gateway sees it: a bounded
//! queue drained by the socket's writer task. Fan-out never waits on it
//! (`push`, a full queue makes a slow consumer); multi-frame responses such as
//! a replay wait for room (`send_paced`), so they go exactly as fast as the
//! client reads and always leave half the queue for live frames.

use bytestring::ByteString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::frames::close;

/// What the writer sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(ByteString),
    Ping,
    Pong(bytes::Bytes),
}

/// A connection's outbound queue and its fate.
#[derive(Debug)]
pub struct Connection {
    pub id: Uuid,
    pub user_id: Uuid,
    tx: mpsc::Sender<Outbound>,
    /// Signalled by the writer each time it takes a frame.
    drained: Notify,
    /// Set once: why the session must end (a 4000-range or 1011 code).
    kill_code: AtomicU16,
    pub kill: Notify,
    closed: AtomicBool,
    /// Milliseconds since `epoch` when the writer started its current write; 0 when idle.
    writing_since: AtomicU64,
    epoch: tokio::time::Instant,
}

impl Connection {
    pub fn new(user_id: Uuid, capacity: usize) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(2));
        let connection = Arc::new(Self {
            id: Uuid::now_v7(),
            user_id,
            tx,
            drained: Notify::new(),
            kill_code: AtomicU16::new(0),
            kill: Notify::new(),
            closed: AtomicBool::new(false),
            writing_since: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        });
        (connection, rx)
    }

    /// Queues a frame without waiting; a full queue makes this a slow consumer.
    pub fn push(&self, frame: ByteString) -> bool {
        if self.is_closed() {
            return false;
        }
        if self.tx.try_send(Outbound::Text(frame)).is_ok() {
            metrics::counter!("ws_frames_out_total").increment(1);
            return true;
        }
        if self.end(close::SLOW_CONSUMER) {
            metrics::counter!("ws_slow_consumer_disconnects_total").increment(1);
        }
        false
    }

    /// Queues a frame once at least half the queue is free, waiting for the
    /// writer otherwise; false once the connection is gone.
    pub async fn send_paced(&self, frame: ByteString) -> bool {
        let half = self.tx.max_capacity() / 2;
        loop {
            if self.is_closed() || self.tx.is_closed() {
                return false;
            }
            let drained = self.drained.notified();
            if self.tx.capacity() > half {
                return self.push(frame);
            }
            // A notification is never lost: `drained` exists before the check.
            let _ = tokio::time::timeout(Duration::from_millis(100), drained).await;
        }
    }

    /// Queues a control frame if there is room (a full queue is handled by
    /// the slow-consumer rules already).
    pub fn control(&self, frame: Outbound) {
        let _ = self.tx.try_send(frame);
    }

    /// Asks the session to end with `code`; true if this was the first reason.
    pub fn end(&self, code: u16) -> bool {
        let first = self
            .kill_code
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            self.kill.notify_one();
        }
        first
    }

    /// Why the session must end, if it must.
    pub fn kill_code(&self) -> Option<u16> {
        match self.kill_code.load(Ordering::SeqCst) {
            0 => None,
            code => Some(code),
        }
    }

    /// The session has ended: nothing more is queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.drained.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.kill_code().is_some()
    }

    /// Frames queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The writer took a frame and starts writing it.
    pub fn writer_took(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.writing_since.store(now.max(1), Ordering::SeqCst);
        self.drained.notify_waiters();
    }

    /// The writer finished a write.
    pub fn writer_idle(&self) {
        self.writing_since.store(0, Ordering::SeqCst);
    }

    /// How long the writer has been stuck on one write (the client is not reading).
    pub fn write_stalled_for(&self) -> Duration {
        match self.writing_since.load(Ordering::SeqCst) {
            0 => Duration::ZERO,
            since => Duration::from_millis(
                (self.epoch.elapsed().as_millis() as u64).saturating_sub(since),
            ),
        }
    }
}
