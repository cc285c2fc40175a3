//! The checks of the fault run, as pure functions of the recorded history and
//! of the facts read back once the system is quiet. Each returns the
//! violations it found, each with an excerpt of the history that shows it.

use super::history::{OpKind, OpRecord, Outcome, SocketEvent, SocketRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// What kind of guarantee a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// An acknowledged command is not in the log.
    Lost,
    /// A command is in the log more than once.
    Duplicated,
    /// The log holds something else than the acknowledgement said.
    Mismatch,
    /// A command refused with a 4xx is in the log all the same.
    RejectedButApplied,
    /// A stream's versions or a channel's seqs are not 1, 2, 3, …
    NotContiguous,
    /// A logged event never reached the broker, or the broker carried one the
    /// log does not hold.
    Unpublished,
    /// The read model has not applied everything the log holds.
    Unprojected,
    /// The dead-letter queue is not empty.
    DeadLettered,
    /// A read-model row differs from the fold of the log.
    Divergent,
    /// A socket client missed messages, saw them out of order or twice.
    SocketGap,
    SocketDuplicate,
    SocketMissed,
    SocketWrongMessage,
    /// A stable subscriber was unsubscribed.
    Unsubscribed,
    /// A connected user is not online after quiet.
    Presence,
    /// The system did not serve again within the bound after a fault.
    NoRecovery,
}

/// One broken guarantee, with the history that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The fault window it is attributed to, when one is known.
    pub window: Option<usize>,
    pub detail: String,
}

impl Violation {
    fn new(kind: ViolationKind, window: Option<usize>, detail: String) -> Self {
        Self {
            kind,
            window,
            detail,
        }
    }
}

/// One event of the log, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub global_position: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// The client's part of `metadata.idempotency_key` (after its last `:`).
    pub key: Option<String>,
    pub channel_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub seq: Option<u64>,
}

impl LoggedEvent {
    fn line(&self) -> String {
        format!(
            "log#{} {} v{} {} key={} message={} seq={}",
            self.global_position,
            self.stream_id,
            self.stream_version,
            self.event_type,
            self.key.as_deref().unwrap_or("-"),
            self.message_id.map(|m| m.to_string()).unwrap_or_default(),
            self.seq.map(|s| s.to_string()).unwrap_or_default()
        )
    }
}

/// The client's part of a stored idempotency key (`msg:{sender}:{channel}:{id}`
/// or `hdr:{caller}:{key}`).
pub fn client_key(stored: &str) -> &str {
    stored.rsplit(':').next().unwrap_or(stored)
}

/// Every acknowledged command is in the log exactly once, as acknowledged;
/// no command at all is there twice; a refused one is not there.
pub fn check_commands(ops: &[OpRecord], log: &[LoggedEvent]) -> Vec<Violation> {
    let mut by_key: HashMap<&str, Vec<&LoggedEvent>> = HashMap::new();
    for event in log {
        if let Some(key) = &event.key {
            by_key.entry(key.as_str()).or_default().push(event);
        }
    }
    let mut violations = Vec::new();
    for op in ops {
        let found = by_key
            .get(op.key.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let excerpt = || {
            let mut lines = vec![op.line()];
            lines.extend(found.iter().map(|e| format!("    {}", e.line())));
            lines.join("\n")
        };
        let window = Some(op.window);
        if found.len() > 1 {
            violations.push(Violation::new(ViolationKind::Duplicated, window, excerpt()));
        }
        match &op.outcome {
            Outcome::Acked { message_id, seq } => {
                let Some(first) = found.first() else {
                    violations.push(Violation::new(ViolationKind::Lost, window, excerpt()));
                    continue;
                };
                if op.kind == OpKind::Send && (first.message_id != *message_id || first.seq != *seq)
                {
                    violations.push(Violation::new(ViolationKind::Mismatch, window, excerpt()));
                }
                if first.channel_id.is_some_and(|c| c != op.channel_id) {
                    violations.push(Violation::new(ViolationKind::Mismatch, window, excerpt()));
                }
            }
            Outcome::Rejected { .. } if !found.is_empty() => {
                violations.push(Violation::new(
                    ViolationKind::RejectedButApplied,
                    window,
                    excerpt(),
                ));
            }
            Outcome::Rejected { .. } | Outcome::GaveUp { .. } => {}
        }
    }
    violations
}

/// Stream versions are 1..=n per stream; message seqs are 1..=n per channel,
/// each naming one message.
pub fn check_contiguous(log: &[LoggedEvent]) -> Vec<Violation> {
    let mut versions: BTreeMap<&str, Vec<&LoggedEvent>> = BTreeMap::new();
    let mut seqs: BTreeMap<Uuid, Vec<&LoggedEvent>> = BTreeMap::new();
    for event in log {
        versions.entry(&event.stream_id).or_default().push(event);
        if event.event_type == "MessageSent"
            && let (Some(channel), Some(_)) = (event.channel_id, event.seq)
        {
            seqs.entry(channel).or_default().push(event);
        }
    }
    let mut violations = Vec::new();
    for (stream, mut events) in versions {
        events.sort_by_key(|e| e.stream_version);
        if let Some((at, e)) = events
            .iter()
            .enumerate()
            .find(|(i, e)| e.stream_version != *i as i64 + 1)
        {
            let around = events[at.saturating_sub(2)..(at + 2).min(events.len())]
                .iter()
                .map(|e| format!("    {}", e.line()))
                .collect::<Vec<_>>()
                .join("\n");
            violations.push(Violation::new(
                ViolationKind::NotContiguous,
                None,
                format!(
                    "stream {stream}: version {} where {} was due\n{around}",
                    e.stream_version,
                    at + 1
                ),
            ));
        }
    }
    for (channel, mut events) in seqs {
        events.sort_by_key(|e| e.seq);
        let mut ids = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            let due = i as u64 + 1;
            let fresh = e.message_id.is_some_and(|m| ids.insert(m));
            if e.seq != Some(due) || !fresh {
                violations.push(Violation::new(
                    ViolationKind::NotContiguous,
                    None,
                    format!(
                        "channel {channel}: seq {:?} where {due} was due (or its message twice)\n    {}",
                        e.seq,
                        e.line()
                    ),
                ));
                break;
            }
        }
    }
    violations
}

/// Published = logged: every logged event reached the broker at least once
/// (the audit queue bound to every routing key), and nothing else did.
pub fn check_published(log: &[LoggedEvent], published: &[Uuid]) -> Vec<Violation> {
    let published: HashSet<Uuid> = published.iter().copied().collect();
    let logged: HashSet<Uuid> = log.iter().map(|e| e.event_id).collect();
    let mut violations: Vec<Violation> = log
        .iter()
        .filter(|e| !published.contains(&e.event_id))
        .take(20)
        .map(|e| {
            Violation::new(
                ViolationKind::Unpublished,
                None,
                format!("logged, never published: {}", e.line()),
            )
        })
        .collect();
    violations.extend(
        published
            .iter()
            .filter(|id| !logged.contains(id))
            .take(20)
            .map(|id| {
                Violation::new(
                    ViolationKind::Unpublished,
                    None,
                    format!("published, not in the log: event {id}"),
                )
            }),
    );
    violations
}

/// Projected = published: the read model's position of every stream is the
/// log's last version of it, the projector's queue is drained and the
/// dead-letter queue is empty (an outage never dead-letters, DESIGN §4).
pub fn check_projected(
    log: &[LoggedEvent],
    read_positions: &HashMap<String, i64>,
    queue_depth: u64,
    dead_letters: u64,
) -> Vec<Violation> {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for e in log {
        let v = last.entry(&e.stream_id).or_default();
        *v = (*v).max(e.stream_version);
    }
    let mut violations = Vec::new();
    for (stream, version) in last {
        let applied = read_positions.get(stream).copied().unwrap_or(0);
        if applied != version {
            violations.push(Violation::new(
                ViolationKind::Unprojected,
                None,
                format!(
                    "stream {stream}: the log is at version {version}, the read model at {applied}"
                ),
            ));
        }
    }
    if queue_depth > 0 {
        violations.push(Violation::new(
            ViolationKind::Unprojected,
            None,
            format!("projector.events still holds {queue_depth} messages after quiet"),
        ));
    }
    if dead_letters > 0 {
        violations.push(Violation::new(
            ViolationKind::DeadLettered,
            None,
            format!("projector.dlq holds {dead_letters} messages: an outage dead-lettered events"),
        ));
    }
    violations
}

/// Rows of one read-model table keyed by primary key, compared with the same
/// table folded from the log.
pub fn diff_table(
    table: &str,
    live: &BTreeMap<String, String>,
    folded: &BTreeMap<String, String>,
) -> Vec<Violation> {
    let keys: HashSet<&String> = live.keys().chain(folded.keys()).collect();
    let mut keys: Vec<&String> = keys.into_iter().collect();
    keys.sort();
    keys.into_iter()
        .filter(|k| live.get(*k) != folded.get(*k))
        .map(|k| {
            Violation::new(
                ViolationKind::Divergent,
                None,
                format!(
                    "{table} {k}:\n    live: {}\n    fold: {}",
                    live.get(k).map_or("(missing)", String::as_str),
                    folded.get(k).map_or("(missing)", String::as_str)
                ),
            )
        })
        .collect()
}

/// What one socket client received, summed up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SocketSummary {
    pub messages: u64,
    /// Repeats right after a resume, dropped by seq (allowed).
    pub resume_duplicates: u64,
    pub reconnects: u64,
}

/// Every message of each channel the client subscribed to, in order, no gap,
/// across reconnects; a repeat only right after a resume. `log_channels`
/// holds each channel's message ids by seq (index 0 = seq 1).
pub fn check_socket(
    client: &str,
    records: &[SocketRecord],
    log_channels: &HashMap<Uuid, Vec<Uuid>>,
) -> (Vec<Violation>, SocketSummary) {
    struct Channel {
        last: u64,
        resuming: bool,
    }
    let mut channels: BTreeMap<Uuid, Channel> = BTreeMap::new();
    let mut summary = SocketSummary::default();
    let mut violations = Vec::new();
    let excerpt = |at: usize| {
        records[at.saturating_sub(8)..=at]
            .iter()
            .map(|r| format!("    {:.3}s {:?}", r.at.as_secs_f64(), r.event))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (at, record) in records.iter().enumerate() {
        match &record.event {
            SocketEvent::Connected { .. } => summary.reconnects += 1,
            SocketEvent::Subscribing {
                channel_id,
                after_seq,
            } => {
                let last = channels.get(channel_id).map_or(0, |c| c.last);
                if *after_seq != last {
                    violations.push(Violation::new(
                        ViolationKind::SocketGap,
                        None,
                        format!(
                            "{client}: resumed {channel_id} after {after_seq} while holding {last}\n{}",
                            excerpt(at)
                        ),
                    ));
                }
                channels.insert(
                    *channel_id,
                    Channel {
                        last: *after_seq,
                        resuming: true,
                    },
                );
            }
            SocketEvent::Message {
                channel_id,
                seq,
                message_id,
            }
            | SocketEvent::Fetched {
                channel_id,
                seq,
                message_id,
            } => {
                let Some(channel) = channels.get_mut(channel_id) else {
                    violations.push(Violation::new(
                        ViolationKind::SocketWrongMessage,
                        None,
                        format!(
                            "{client}: a message of {channel_id}, never subscribed\n{}",
                            excerpt(at)
                        ),
                    ));
                    continue;
                };
                if *seq <= channel.last {
                    if channel.resuming {
                        summary.resume_duplicates += 1;
                    } else {
                        violations.push(Violation::new(
                            ViolationKind::SocketDuplicate,
                            None,
                            format!(
                                "{client}: {channel_id} seq {seq} again, not after a resume\n{}",
                                excerpt(at)
                            ),
                        ));
                    }
                    continue;
                }
                if *seq > channel.last + 1 {
                    violations.push(Violation::new(
                        ViolationKind::SocketGap,
                        None,
                        format!(
                            "{client}: {channel_id} jumped from seq {} to {seq}\n{}",
                            channel.last,
                            excerpt(at)
                        ),
                    ));
                }
                let logged = usize::try_from(*seq)
                    .ok()
                    .and_then(|s| log_channels.get(channel_id)?.get(s.checked_sub(1)?));
                if logged != Some(message_id) {
                    violations.push(Violation::new(
                        ViolationKind::SocketWrongMessage,
                        None,
                        format!(
                            "{client}: {channel_id} seq {seq} is message {message_id}, the log says {logged:?}\n{}",
                            excerpt(at)
                        ),
                    ));
                }
                channel.last = *seq;
                channel.resuming = false;
                summary.messages += 1;
            }
            // A tombstone of a seq not yet held is that seq's frame (a replay
            // sends deleted messages so); of a held one, a later delete.
            SocketEvent::Deleted {
                channel_id,
                seq,
                message_id,
            } => {
                if let Some(channel) = channels.get_mut(channel_id)
                    && *seq == channel.last + 1
                {
                    let logged = usize::try_from(*seq)
                        .ok()
                        .and_then(|s| log_channels.get(channel_id)?.get(s.checked_sub(1)?));
                    if logged != Some(message_id) {
                        violations.push(Violation::new(
                            ViolationKind::SocketWrongMessage,
                            None,
                            format!("{client}: {channel_id} tombstone {seq} is {message_id}, the log says {logged:?}\n{}", excerpt(at)),
                        ));
                    }
                    channel.last = *seq;
                    channel.resuming = false;
                    summary.messages += 1;
                }
            }
            SocketEvent::Unsubscribed { channel_id, reason } => {
                violations.push(Violation::new(
                    ViolationKind::Unsubscribed,
                    None,
                    format!(
                        "{client}: unsubscribed from {channel_id} ({reason})\n{}",
                        excerpt(at)
                    ),
                ));
            }
            SocketEvent::Subscribed { .. } | SocketEvent::Disconnected { .. } => {}
        }
    }
    for (channel_id, channel) in &channels {
        let total = log_channels.get(channel_id).map_or(0, |m| m.len() as u64);
        if channel.last != total {
            let tail = records.len().saturating_sub(1);
            violations.push(Violation::new(
                ViolationKind::SocketMissed,
                None,
                format!(
                    "{client}: {channel_id} ended at seq {} of {total}\n{}",
                    channel.last,
                    if records.is_empty() {
                        String::new()
                    } else {
                        excerpt(tail)
                    }
                ),
            ));
        }
    }
    (violations, summary)
}

/// Users expected online in a channel right after quiet who are not.
pub fn check_presence(
    expected: &[(Uuid, Uuid)],
    online: &HashMap<Uuid, HashSet<Uuid>>,
) -> Vec<Violation> {
    expected
        .iter()
        .filter(|(channel, user)| {
            !online
                .get(channel)
                .is_some_and(|users| users.contains(user))
        })
        .map(|(channel, user)| {
            Violation::new(
                ViolationKind::Presence,
                None,
                format!(
                    "user {user} is connected and subscribed to {channel} but not online there"
                ),
            )
        })
        .collect()
}
