//! Model-based test of the relay's checkpoint-after-confirm rule (issue
//! #11): the relay's own round (`round`: read the log in commit order from
//! the cursor, publish with confirms, then move the checkpoint) and its
//! restart from the durable checkpoint, against a real log, with a simulated
//! broker that stores what it confirms and may lose unconfirmed publishes,
//! lose every confirm of a batch it stored (the connection died), or nack a
//! batch. The behaviour under test is the relay's, not the broker's.
//!
//! Random schedules of appends (to a few streams), rounds (each with a
//! broker fault or none), restarts, and crashes that lose the newest
//! checkpoint writes (they commit without a WAL flush), after which the
//! relay re-publishes from an older checkpoint. After every step: the checkpoint
//! never moves back, and every event at or before it (in commit order) is
//! stored by the broker; each relay term publishes in strictly increasing
//! commit order, starting right after the checkpoint it loaded. At the end
//! (rounds without faults until the log is drained) the broker holds every
//! event of the log.

use super::*;
use event_store::{ExpectedVersion, NewEvent, RecordedEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::collections::HashSet;

const STREAMS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Every publish stored and confirmed.
    None,
    /// The publishes whose index in the batch has its bit set are lost
    /// unconfirmed (the others are stored and confirmed).
    Lose(u8),
    /// Every publish stored, but no confirm comes back (the connection died).
    ConfirmsLost,
    /// The broker refuses the batch: nothing stored.
    Nack,
}

#[derive(Debug, Clone)]
enum Step {
    /// `count` events appended to stream `stream` in one transaction.
    Append { stream: usize, count: usize },
    /// One relay round, the broker behaving as `fault` says.
    Round(Fault),
    /// The relay dies and a new term starts from the checkpoint.
    Restart,
    /// Postgres crashed and lost the newest checkpoint writes (they commit
    /// without waiting for the WAL flush): the checkpoint is back at an
    /// older value it held, and the relay restarts from there.
    CheckpointLost,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::None),
        2 => (1..=255u8).prop_map(Fault::Lose),
        1 => Just(Fault::ConfirmsLost),
        1 => Just(Fault::Nack),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..STREAMS, 1..=3usize).prop_map(|(stream, count)| Step::Append { stream, count }),
        4 => fault().prop_map(Step::Round),
        1 => Just(Step::Restart),
        1 => Just(Step::CheckpointLost),
    ]
}

fn schedule() -> impl Strategy<Value = (i64, Vec<Step>)> {
    (1..=4i64, proptest::collection::vec(step(), 0..=24))
}

fn config() -> Config {
    let from_env = Config::default();
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(32),
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            from_env.rng_seed
        } else {
            RngSeed::Fixed(0x00E1_A7E0)
        },
        source_file: Some(file!()),
        ..from_env
    }
}

/// A broker that stores what it confirms, and loses as told.
struct SimBroker {
    /// What its queue received, with the relay term that sent it.
    stored: Vec<(RecordedEvent, u32)>,
    fault: Fault,
    term: u32,
}

impl publish::Publish for SimBroker {
    async fn publish_confirmed(&mut self, batch: &[RecordedEvent]) -> Result<(), RelayError> {
        let refused = |e: &RecordedEvent| Err(RelayError::Nacked(e.event_id));
        match self.fault {
            Fault::None => {
                self.stored
                    .extend(batch.iter().map(|e| (e.clone(), self.term)));
                Ok(())
            }
            Fault::Lose(mask) => {
                let mut lost = None;
                for (i, e) in batch.iter().enumerate() {
                    if mask & (1 << (i % 8)) != 0 {
                        lost = lost.or(Some(e));
                    } else {
                        self.stored.push((e.clone(), self.term));
                    }
                }
                lost.map_or(Ok(()), refused)
            }
            Fault::ConfirmsLost => {
                self.stored
                    .extend(batch.iter().map(|e| (e.clone(), self.term)));
                batch.first().map_or(Ok(()), refused)
            }
            Fault::Nack => batch.first().map_or(Ok(()), refused),
        }
    }
}

fn new_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: serde_json::json!({ "n": n }),
        metadata: serde_json::json!({}),
    }
}

struct Relay {
    cursor: Cursor,
    term: u32,
    /// The first event the current term published, if it did.
    term_started: bool,
    /// The batch read ahead by the last round.
    ahead: Option<Vec<RecordedEvent>>,
}

async fn run_case(
    pool: &PgPool,
    (batch_size, steps): &(i64, Vec<Step>),
) -> Result<(), TestCaseError> {
    sqlx::query("TRUNCATE events, relay_checkpoints")
        .execute(pool)
        .await
        .expect("empty log");
    let store = PgEventStore::new(pool.clone());
    let streams: Vec<String> = (0..STREAMS)
        .map(|i| format!("stream-{i}-{}", uuid::Uuid::now_v7()))
        .collect();
    let mut logged: Vec<RecordedEvent> = Vec::new();
    let mut broker = SimBroker {
        stored: Vec::new(),
        fault: Fault::None,
        term: 0,
    };
    let mut relay = Relay {
        cursor: load_checkpoint(pool).await.expect("checkpoint"),
        term: 0,
        term_started: false,
        ahead: None,
    };
    let mut checkpoint = relay.cursor;
    // Every value the checkpoint held, oldest first (what a crash goes back to).
    let mut held = vec![checkpoint];
    let mut n = 0;
    for step in steps {
        match step {
            Step::Append { stream, count } => {
                let events: Vec<NewEvent> = (0..*count)
                    .map(|_| {
                        n += 1;
                        new_event(n)
                    })
                    .collect();
                let appended = store
                    .append(&streams[*stream], ExpectedVersion::Any, &events)
                    .await
                    .expect("append");
                logged.extend(appended);
            }
            Step::Round(fault) => {
                broker.fault = *fault;
                round_checked(pool, &store, *batch_size, &mut relay, &mut broker).await?;
            }
            Step::Restart => restart(pool, &mut relay, &mut broker).await,
            Step::CheckpointLost => {
                let older = held[held.len().saturating_sub(3)];
                sqlx::query(
                    "UPDATE relay_checkpoints SET transaction_id = $1, global_position = $2 WHERE name = $3",
                )
                .bind(older.transaction_id as i64)
                .bind(older.global_position)
                .bind(RELAY_NAME)
                .execute(pool)
                .await
                .expect("roll the checkpoint back");
                checkpoint = load_checkpoint(pool).await.expect("checkpoint");
                restart(pool, &mut relay, &mut broker).await;
            }
        }
        checkpoint = check(pool, &logged, &broker, checkpoint).await?;
        if held.last() != Some(&checkpoint) {
            held.push(checkpoint);
        }
    }
    // The end: rounds without faults until the broker has the whole log
    // (other tests' open transactions may hold the newest rows back a while).
    broker.fault = Fault::None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stored: HashSet<uuid::Uuid> = broker.stored.iter().map(|(e, _)| e.event_id).collect();
        if logged.iter().all(|e| stored.contains(&e.event_id)) {
            break;
        }
        prop_assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never got {} events of the log",
            logged
                .iter()
                .filter(|e| !stored.contains(&e.event_id))
                .count()
        );
        let before = broker.stored.len();
        round_checked(pool, &store, *batch_size, &mut relay, &mut broker).await?;
        checkpoint = check(pool, &logged, &broker, checkpoint).await?;
        if broker.stored.len() == before {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// A new term: the cursor read back from the checkpoint.
async fn restart(pool: &PgPool, relay: &mut Relay, broker: &mut SimBroker) {
    relay.cursor = load_checkpoint(pool).await.expect("checkpoint");
    relay.term += 1;
    relay.term_started = false;
    relay.ahead = None;
    broker.term = relay.term;
}

/// One round; a failed one ends the term (the relay restarts from its checkpoint).
async fn round_checked(
    pool: &PgPool,
    store: &PgEventStore,
    batch_size: i64,
    relay: &mut Relay,
    broker: &mut SimBroker,
) -> Result<(), TestCaseError> {
    let before = broker.stored.len();
    let result = round(
        pool,
        store,
        relay.cursor,
        &mut relay.ahead,
        batch_size,
        broker,
    )
    .await;
    // What this round sent that the broker kept: in commit order, and, as
    // the term's first, right after the checkpoint the term started from.
    let sent: Vec<Cursor> = broker.stored[before..]
        .iter()
        .map(|(e, _)| e.cursor())
        .collect();
    prop_assert!(
        sent.windows(2).all(|w| w[0] < w[1]),
        "a round published out of commit order: {:?}",
        sent
    );
    if let Some(first) = sent.first() {
        prop_assert!(
            *first > relay.cursor,
            "a round republished before its cursor"
        );
        if !relay.term_started {
            let expected = store
                .read_all(relay.cursor, 1, &LogFilter::default())
                .await
                .expect("log")
                .first()
                .map(|e| e.cursor());
            if matches!(broker.fault, Fault::None | Fault::ConfirmsLost) {
                prop_assert_eq!(
                    Some(*first),
                    expected,
                    "a term did not resume right after its checkpoint"
                );
            }
        }
    }
    match result {
        Ok((cursor, published)) => {
            prop_assert!(cursor >= relay.cursor, "the cursor moved back");
            relay.cursor = cursor;
            relay.term_started |= published > 0;
        }
        Err(_) => restart(pool, relay, broker).await,
    }
    Ok(())
}

/// The checkpoint never moves back, and everything up to it is stored.
async fn check(
    pool: &PgPool,
    logged: &[RecordedEvent],
    broker: &SimBroker,
    before: Cursor,
) -> Result<Cursor, TestCaseError> {
    let checkpoint = load_checkpoint(pool).await.expect("checkpoint");
    prop_assert!(
        checkpoint >= before,
        "the checkpoint moved back from {} to {}",
        before,
        checkpoint
    );
    let stored: HashSet<uuid::Uuid> = broker.stored.iter().map(|(e, _)| e.event_id).collect();
    let missing: Vec<String> = logged
        .iter()
        .filter(|e| e.cursor() <= checkpoint && !stored.contains(&e.event_id))
        .map(|e| format!("{} v{}", e.stream_id, e.stream_version))
        .collect();
    prop_assert!(
        missing.is_empty(),
        "the checkpoint {} passed events the broker never stored: {:?}",
        checkpoint,
        missing
    );
    Ok(checkpoint)
}

#[test]
fn the_relay_checkpoints_only_what_the_broker_confirmed() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = runtime.block_on(test_support::TestDb::new_event_log());
    let mut runner = TestRunner::new(config());
    let result = runner.run(&schedule(), |case| {
        runtime.block_on(run_case(&db.pool, &case))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(db);
}
