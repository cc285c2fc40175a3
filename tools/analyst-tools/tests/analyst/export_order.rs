//! The export is the log in global commit order — no gap, no duplicate —
//! even while concurrent writers commit late with low positions, and resuming
//! `--after` any printed cursor yields exactly the rest.

use crate::helpers::{Log, cursors, export_lines, run_command, send};
use analyst_tools::EventsArgs;
use domain::{ChannelCommand, UserId};
use event_store::{ExpectedVersion, NewEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn raw_event(n: u64) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "MemberMuted".into(),
        schema_version: 1,
        data: serde_json::json!({ "n": n }),
        metadata: serde_json::json!({}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_export_in_commit_order_without_gaps_or_duplicates() {
    let log = Log::new().await;
    let owner = log.register("owner").await;
    let channels = [
        log.create_channel(owner, "one").await,
        log.create_channel(owner, "two").await,
    ];
    let members: Vec<UserId> = (0..6).map(|_| UserId::new()).collect();
    for (i, m) in members.iter().enumerate() {
        log.command(*m, channels[i % 2], ChannelCommand::Join).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    // Writers go on until the tailing reader has read during their writes a
    // few times, however slow a busy cluster makes its passes.
    let passes = Arc::new(AtomicUsize::new(0));
    let keep_writing = {
        let passes = passes.clone();
        move |n: usize| n < 25 || (passes.load(Ordering::SeqCst) < 3 && n < 1000)
    };
    let mut writers = Vec::new();
    for (i, member) in members.iter().copied().enumerate() {
        let commands = log.commands.clone();
        let channel = channels[i % 2];
        let keep_writing = keep_writing.clone();
        writers.push(tokio::spawn(async move {
            for n in (0..).take_while(|n| keep_writing(*n)) {
                send(&commands, member, channel, &format!("m{n} from {i}")).await;
                tokio::time::sleep(Duration::from_millis(rand_ms(i, n))).await;
            }
            run_command(
                &commands,
                member,
                channel,
                ChannelCommand::MarkRead { seq: 1 },
            )
            .await;
        }));
    }
    // Writers whose transactions take a position, then wait before committing:
    // later-committing events with lower positions, which a naive reader skips.
    for w in 0..3u64 {
        let store = log.store().clone();
        let keep_writing = keep_writing.clone();
        writers.push(tokio::spawn(async move {
            for n in (0..).take_while(|n| keep_writing(*n as usize)) {
                let mut tx = store.pool().begin().await.expect("begin");
                store
                    .append_in(
                        &mut tx,
                        &format!("slow-{w}"),
                        ExpectedVersion::Any,
                        &[raw_event(n)],
                    )
                    .await
                    .expect("append");
                tokio::time::sleep(Duration::from_millis(rand_ms(w as usize, n as usize) * 3))
                    .await;
                tx.commit().await.expect("commit");
            }
        }));
    }
    // A reader tailing the log while they write: each pass resumes after the
    // last cursor it printed.
    let tail = {
        let source = log.source();
        let done = done.clone();
        let passes = passes.clone();
        tokio::spawn(async move {
            let mut seen: Vec<String> = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let args = EventsArgs {
                    after: seen.last().cloned(),
                    ..EventsArgs::default()
                };
                let page = cursors(&export_lines(&source, &args).await);
                let empty = page.is_empty();
                if !empty && !finished {
                    passes.fetch_add(1, Ordering::SeqCst);
                }
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let tailed = tail.await.expect("tail");
    let passes = passes.load(Ordering::SeqCst);

    let expected = log.sql_cursors("").await;
    assert!(expected.len() > 200, "the writers wrote {}", expected.len());
    let whole = export_lines(&log.source(), &EventsArgs::default()).await;
    assert_eq!(
        cursors(&whole),
        expected,
        "one export = the log in commit order"
    );
    assert_eq!(
        tailed, expected,
        "a tailing reader saw every event once, in order"
    );
    let event_ids: Vec<String> = sqlx::query_scalar(
        "SELECT event_id::text FROM events ORDER BY transaction_id, global_position",
    )
    .fetch_all(log.pool())
    .await
    .expect("ids");
    let exported_ids: Vec<&str> = whole
        .iter()
        .map(|l| l["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(exported_ids, event_ids);
    assert!(
        passes >= 3,
        "the tailing reader must have read while the writers wrote ({passes} passes)"
    );
}

fn rand_ms(a: usize, b: usize) -> u64 {
    ((a * 7 + b * 13) % 5) as u64
}

both!(resuming_after_every_kth_cursor_yields_exactly_the_rest);

async fn resuming_after_every_kth_cursor_yields_exactly_the_rest(log: Log) {
    let owner = log.register("owner").await;
    let channel = log.create_channel(owner, "general").await;
    for n in 0..60 {
        log.send(owner, channel, &format!("message {n}")).await;
    }
    let all = export_lines(&log.source(), &EventsArgs::default()).await;
    assert_eq!(all.len(), 62);
    for k in (0..all.len()).step_by(5) {
        let cursor = all[k]["cursor"].as_str().expect("cursor").to_owned();
        let rest = export_lines(
            &log.source(),
            &EventsArgs {
                after: Some(cursor.clone()),
                ..EventsArgs::default()
            },
        )
        .await;
        assert_eq!(rest, all[k + 1..].to_vec(), "after {cursor}");
    }
    let last = all.last().and_then(|l| l["cursor"].as_str()).expect("last");
    let nothing = export_lines(
        &log.source(),
        &EventsArgs {
            after: Some(last.to_owned()),
            ..EventsArgs::default()
        },
    )
    .await;
    assert!(nothing.is_empty());
}

/// Transaction ids are exported as text; ordering must stay numeric where the
/// text order differs ("100000" < "99999"). The boundary is a power of ten below
/// the cluster's own counter, so the stamped rows are settled and visible on a
/// new cluster (ids near 1,000) as on an old one.
#[tokio::test]
async fn commit_order_is_numeric_across_a_digit_boundary() {
    let log = Log::new().await;
    let p = test_support::settled_digit_boundary(log.pool(), 10).await;
    for (tx, n) in [(p + 1, 1), (p - 1, 2), (p, 3), (p - 2, 4), (p + 10, 5)] {
        sqlx::query(
            "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, \
             schema_version, data) VALUES ($1::text::xid8, 'digits', $2, $3, 'MemberMuted', 1, '{}')",
        )
        .bind(tx.to_string())
        .bind(n)
        .bind(uuid::Uuid::now_v7())
        .execute(log.pool())
        .await
        .expect("insert");
    }
    let exported: Vec<String> = cursors(&export_lines(&log.source(), &EventsArgs::default()).await)
        .iter()
        .map(|c| c.split('-').next().unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = [p - 2, p - 1, p, p + 1, p + 10]
        .iter()
        .map(u64::to_string)
        .collect();
    assert_eq!(exported, expected);
    let until = export_lines(
        &log.source(),
        &EventsArgs {
            after: Some(format!("{}-0", p - 1)),
            until: Some(format!("{}-999999", p + 1)),
            ..EventsArgs::default()
        },
    )
    .await;
    assert_eq!(until.len(), 3, "p - 1, p and p + 1");
}
