//! The checker catches what it is there to catch: each test feeds it a
//! history with one violation (and a clean one that must pass).

use super::check::*;
use super::history::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

fn send(id: u64, key: &str, channel: Uuid, message: Uuid, seq: u64) -> OpRecord {
    OpRecord {
        id,
        kind: OpKind::Send,
        key: key.into(),
        channel_id: channel,
        user_id: Uuid::nil(),
        message_id: None,
        started: Duration::from_millis(id * 10),
        finished: Duration::from_millis(id * 10 + 5),
        attempts: 1,
        outcome: Outcome::Acked {
            message_id: Some(message),
            seq: Some(seq),
        },
        window: 1,
    }
}

fn sent(position: i64, key: &str, channel: Uuid, message: Uuid, seq: u64) -> LoggedEvent {
    LoggedEvent {
        global_position: position,
        stream_id: format!("channel-{channel}"),
        stream_version: position,
        event_id: Uuid::now_v7(),
        event_type: "MessageSent".into(),
        key: Some(key.into()),
        channel_id: Some(channel),
        message_id: Some(message),
        seq: Some(seq),
    }
}

/// Two acknowledged sends and their log.
fn clean() -> (Uuid, Vec<Uuid>, Vec<OpRecord>, Vec<LoggedEvent>) {
    let channel = Uuid::now_v7();
    let messages = vec![Uuid::now_v7(), Uuid::now_v7()];
    let ops = vec![
        send(1, "k1", channel, messages[0], 1),
        send(2, "k2", channel, messages[1], 2),
    ];
    let log = vec![
        sent(1, "k1", channel, messages[0], 1),
        sent(2, "k2", channel, messages[1], 2),
    ];
    (channel, messages, ops, log)
}

#[test]
fn a_clean_history_passes_every_check() {
    let (channel, messages, ops, log) = clean();
    assert_eq!(check_commands(&ops, &log), vec![]);
    assert_eq!(check_contiguous(&log), vec![]);
    let ids: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    assert_eq!(check_published(&log, &ids), vec![]);
    let positions = HashMap::from([(format!("channel-{channel}"), 2)]);
    assert_eq!(check_projected(&log, &positions, 0, 0), vec![]);
    let records = socket(
        channel,
        &[(0, None), (1, Some(messages[0])), (2, Some(messages[1]))],
    );
    let (violations, summary) = check_socket("c", &records, &HashMap::from([(channel, messages)]));
    assert_eq!(violations, vec![]);
    assert_eq!(summary.messages, 2);
}

#[test]
fn a_lost_acknowledgement_is_caught() {
    let (_, _, ops, mut log) = clean();
    log.pop();
    let violations = check_commands(&ops, &log);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].kind, ViolationKind::Lost);
    assert_eq!(violations[0].window, Some(1));
    assert!(
        violations[0].detail.contains("key=k2"),
        "the excerpt names the op"
    );
}

#[test]
fn a_command_logged_twice_is_caught_even_unacknowledged() {
    let (channel, _, mut ops, mut log) = clean();
    ops[1].outcome = Outcome::GaveUp {
        last_error: "timeout".into(),
    };
    log.push(sent(3, "k2", channel, Uuid::now_v7(), 3));
    let kinds: Vec<_> = check_commands(&ops, &log).iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![ViolationKind::Duplicated]);
}

#[test]
fn an_acknowledgement_that_names_another_seq_is_caught() {
    let (_, _, mut ops, log) = clean();
    if let Outcome::Acked { seq, .. } = &mut ops[0].outcome {
        *seq = Some(7);
    }
    let kinds: Vec<_> = check_commands(&ops, &log).iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![ViolationKind::Mismatch]);
}

#[test]
fn a_refused_command_in_the_log_is_caught() {
    let (_, _, mut ops, log) = clean();
    ops[0].outcome = Outcome::Rejected {
        status: 422,
        code: "not_member".into(),
    };
    let kinds: Vec<_> = check_commands(&ops, &log).iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![ViolationKind::RejectedButApplied]);
}

#[test]
fn a_gap_in_versions_or_seqs_is_caught() {
    let (channel, _, _, mut log) = clean();
    log[1].stream_version = 3;
    log[1].seq = Some(3);
    let violations = check_contiguous(&log);
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations
            .iter()
            .all(|v| v.kind == ViolationKind::NotContiguous)
    );
    assert!(violations[1].detail.contains(&channel.to_string()));
}

#[test]
fn unpublished_unprojected_and_dead_lettered_events_are_caught() {
    let (channel, _, _, log) = clean();
    let only_first = vec![log[0].event_id, Uuid::now_v7()];
    let kinds: Vec<_> = check_published(&log, &only_first)
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![ViolationKind::Unpublished, ViolationKind::Unpublished]
    );
    let behind = HashMap::from([(format!("channel-{channel}"), 1)]);
    let kinds: Vec<_> = check_projected(&log, &behind, 1, 2)
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            ViolationKind::Unprojected,
            ViolationKind::Unprojected,
            ViolationKind::DeadLettered
        ]
    );
}

#[test]
fn a_divergent_row_is_caught_both_ways() {
    let live = BTreeMap::from([
        ("a".to_owned(), "{\"role\":\"owner\"}".to_owned()),
        ("b".to_owned(), "{\"role\":\"member\"}".to_owned()),
    ]);
    let mut folded = live.clone();
    assert_eq!(diff_table("members", &live, &folded), vec![]);
    folded.insert("b".into(), "{\"role\":\"admin\"}".into());
    folded.insert("c".into(), "{}".into());
    let violations = diff_table("members", &live, &folded);
    assert_eq!(violations.len(), 2);
    assert!(violations[0].detail.contains("live: {\"role\":\"member\"}"));
    assert!(violations[1].detail.contains("live: (missing)"));
}

/// A socket client subscribing from 0 and receiving `frames` (seq, message;
/// seq 0 = a reconnect and a resume from what it holds).
fn socket(channel: Uuid, frames: &[(u64, Option<Uuid>)]) -> Vec<SocketRecord> {
    let mut records = Vec::new();
    let mut last = 0;
    let mut push = |event| {
        records.push(SocketRecord {
            at: Duration::ZERO,
            event,
        })
    };
    for (seq, message) in frames {
        match message {
            None => {
                push(SocketEvent::Connected { instance: 0 });
                push(SocketEvent::Subscribing {
                    channel_id: channel,
                    after_seq: last,
                });
            }
            Some(message_id) => {
                push(SocketEvent::Message {
                    channel_id: channel,
                    seq: *seq,
                    message_id: *message_id,
                });
                last = last.max(*seq);
            }
        }
    }
    records
}

#[test]
fn a_socket_gap_is_caught_and_a_resume_repeat_is_not() {
    let channel = Uuid::now_v7();
    let m: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let log = HashMap::from([(channel, m.clone())]);
    let gap = socket(channel, &[(0, None), (1, Some(m[0])), (3, Some(m[2]))]);
    let kinds: Vec<_> = check_socket("c", &gap, &log)
        .0
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, vec![ViolationKind::SocketGap]);

    // A reconnect that replays seq 2 once more: dropped by seq, allowed.
    let resumed = socket(
        channel,
        &[
            (0, None),
            (1, Some(m[0])),
            (2, Some(m[1])),
            (0, None),
            (2, Some(m[1])),
            (3, Some(m[2])),
        ],
    );
    let (violations, summary) = check_socket("c", &resumed, &log);
    assert_eq!(violations, vec![]);
    assert_eq!((summary.resume_duplicates, summary.reconnects), (1, 2));

    // The same repeat in the middle of a live stream is a duplicate.
    let repeated = socket(
        channel,
        &[
            (0, None),
            (1, Some(m[0])),
            (2, Some(m[1])),
            (2, Some(m[1])),
            (3, Some(m[2])),
        ],
    );
    let kinds: Vec<_> = check_socket("c", &repeated, &log)
        .0
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, vec![ViolationKind::SocketDuplicate]);
}

#[test]
fn a_socket_that_stops_short_or_sees_another_message_is_caught() {
    let channel = Uuid::now_v7();
    let m: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let log = HashMap::from([(channel, m.clone())]);
    let short = socket(
        channel,
        &[(0, None), (1, Some(m[0])), (2, Some(Uuid::now_v7()))],
    );
    let kinds: Vec<_> = check_socket("c", &short, &log)
        .0
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            ViolationKind::SocketWrongMessage,
            ViolationKind::SocketMissed
        ]
    );
}

#[test]
fn a_connected_user_missing_from_presence_is_caught() {
    let (channel, ann, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let online = HashMap::from([(channel, HashSet::from([ann]))]);
    assert_eq!(check_presence(&[(channel, ann)], &online), vec![]);
    let violations = check_presence(&[(channel, ann), (channel, bob)], &online);
    assert_eq!(violations.len(), 1);
    assert!(violations[0].detail.contains(&bob.to_string()));
}

#[test]
fn the_table_counts_per_window_and_in_total() {
    let (_, _, ops, mut log) = clean();
    log.pop();
    let mut violations = check_commands(&ops, &log);
    violations.push(
        diff_table(
            "members",
            &BTreeMap::from([("a".to_owned(), "1".to_owned())]),
            &BTreeMap::new(),
        )[0]
        .clone(),
    );
    let windows = vec![
        super::report::Window {
            fault: "steady".into(),
            recovery_secs: None,
        },
        super::report::Window {
            fault: "kill -9 projector".into(),
            recovery_secs: Some(2.5),
        },
    ];
    let rows = super::report::rows(&windows, &ops, &violations);
    assert_eq!(
        (rows[1].operations, rows[1].acknowledged, rows[1].lost),
        (2, 2, 1)
    );
    assert_eq!(rows[2].divergent, Some(1));
    let table = super::report::render(&rows);
    assert!(
        table.contains("| kill -9 projector | 2 | 2 | 1 | 0 | - | 2.5 |"),
        "{table}"
    );
}

#[test]
fn a_stored_key_yields_the_clients_part() {
    assert_eq!(client_key("msg:u:c:abc"), "abc");
    assert_eq!(client_key("hdr:u:xyz"), "xyz");
}

#[test]
fn a_replayed_tombstone_fills_its_seq_and_a_later_delete_changes_nothing() {
    let channel = Uuid::now_v7();
    let m: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let log = HashMap::from([(channel, m.clone())]);
    let mut records = socket(channel, &[(0, None), (1, Some(m[0]))]);
    let deleted = |seq: u64, message_id: Uuid| SocketRecord {
        at: Duration::ZERO,
        event: SocketEvent::Deleted {
            channel_id: channel,
            seq,
            message_id,
        },
    };
    records.push(deleted(2, m[1]));
    records.push(deleted(1, m[0]));
    records.push(SocketRecord {
        at: Duration::ZERO,
        event: SocketEvent::Message {
            channel_id: channel,
            seq: 3,
            message_id: m[2],
        },
    });
    assert_eq!(check_socket("c", &records, &log).0, vec![]);
    // Without the tombstone, seq 2 is a gap.
    records.remove(2);
    let kinds: Vec<_> = check_socket("c", &records, &log)
        .0
        .iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, vec![ViolationKind::SocketGap]);
}
