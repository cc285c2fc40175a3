//! What the fault run records while it runs: every command it sent with its
//! outcome, and every frame each socket client saw.

use std::time::Duration;
use uuid::Uuid;

/// The kinds of command the load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Send,
    Edit,
    Delete,
    Read,
    Join,
    Kick,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Send => "send",
            OpKind::Edit => "edit",
            OpKind::Delete => "delete",
            OpKind::Read => "read",
            OpKind::Join => "join",
            OpKind::Kick => "kick",
        }
    }
}

/// How a command ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer; for a send, the `message_id` and `seq` it acknowledged.
    Acked {
        message_id: Option<Uuid>,
        seq: Option<u64>,
    },
    /// A 4xx that a retry cannot change (the command was refused by a rule).
    Rejected { status: u16, code: String },
    /// No answer within the operation's deadline: the command may or may not
    /// be in the log, but at most once.
    GaveUp { last_error: String },
}

/// One command of the history.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub id: u64,
    pub kind: OpKind,
    /// The idempotency key (`client_msg_id` for a send, `Idempotency-Key`
    /// otherwise), unique in the run; the log stores it as the last `:`-part
    /// of `metadata.idempotency_key`.
    pub key: String,
    pub channel_id: Uuid,
    pub user_id: Uuid,
    /// The message an edit or delete names.
    pub message_id: Option<Uuid>,
    /// Since the start of the run.
    pub started: Duration,
    pub finished: Duration,
    pub attempts: u32,
    pub outcome: Outcome,
    /// The fault window the command started in (index into the run's faults).
    pub window: usize,
}

impl OpRecord {
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked { .. })
    }

    /// One line for a history excerpt.
    pub fn line(&self) -> String {
        format!(
            "op#{} {:>6} key={} channel={} user={} message={} t={:.3}s..{:.3}s attempts={} {:?}",
            self.id,
            self.kind.name(),
            self.key,
            self.channel_id,
            self.user_id,
            self.message_id.map(|m| m.to_string()).unwrap_or_default(),
            self.started.as_secs_f64(),
            self.finished.as_secs_f64(),
            self.attempts,
            self.outcome
        )
    }
}

/// What a socket client saw or did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    Connected {
        instance: usize,
    },
    /// It sent `subscribe` with this `after_seq` (the last seq it holds).
    Subscribing {
        channel_id: Uuid,
        after_seq: u64,
    },
    Subscribed {
        channel_id: Uuid,
        last_seq: u64,
        recovered: bool,
    },
    Message {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
    },
    /// `message_deleted`: as a replay's tombstone it fills its seq; for a
    /// message already held it changes nothing.
    Deleted {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
    },
    /// Fetched over REST after `recovered: false`.
    Fetched {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
    },
    Unsubscribed {
        channel_id: Uuid,
        reason: String,
    },
    Disconnected {
        reason: String,
    },
}

/// A socket event with its time since the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRecord {
    pub at: Duration,
    pub event: SocketEvent,
}
