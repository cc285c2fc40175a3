//! Model-based test of the projector (issue #11): a small valid history is
//! made through the domain and appended to a real log, then the projector's
//! own batch entry point (`apply_deliveries`, what the consuming loop does
//! with a batch up to its commit) is handed a random delivery schedule:
//! duplicates, reordering within and across streams, a batch whose commit
//! went through but whose ack was lost (redelivered), a batch lost before its
//! commit (rolled back by a crash, redelivered), restarts (a new pool, the
//! checkpoint read back), and events that are never delivered at all (healed
//! from the log). Against the real read database.
//!
//! The model is the log itself:
//! - after every step, each stream's projected position never moved back,
//!   and the read model equals, row by row, the fold of each stream's prefix
//!   up to that position (so no event was applied twice, skipped or
//!   reordered: a second `MemberJoined` would reset a read pointer, a
//!   skipped one would lose a member);
//! - a committed batch leaves each of its streams at least at its events;
//! - the checkpoint never moves back and stands at the latest (in commit
//!   order) event of any committed batch; a restart reads it back;
//! - no change is handed out for announcement twice;
//! - at the end (every stream's last event delivered), the read model equals
//!   the fold of the whole log, and the domain's own fold agrees.
//!
//! Proptest shrinks a failing case to its smallest history and schedule.
//! Set `PROPTEST_CASES` / `PROPTEST_RNG_SEED` to explore further.

use chrono::{DateTime, Utc};
use domain::{
    Channel, ChannelCommand, ChannelId, ChannelKind, Event, MessageFacts, MessageId, MessagePolicy,
    RegisterUser, Role, StoredEvent, User, UserId,
};
use event_store::{Cursor, ExpectedVersion, NewEvent, PgEventStore, RecordedEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use test_support::TestDb;
use uuid::Uuid;

// ------------------------------------------------------------------ history

const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Join,
    Invite(usize),
    Leave,
    Kick(usize),
    Ban(usize),
    Unban(usize),
    ChangeRole(usize, Role),
    SetMuted(bool),
    Send,
    Edit(usize),
    Delete(usize),
    /// Mark read up to `last_seq * n / 4`.
    MarkRead(u64),
    Archive,
}

#[derive(Debug, Clone)]
struct Command {
    channel: usize,
    actor: usize,
    op: Op,
}

#[derive(Debug, Clone)]
struct History {
    channels: Vec<ChannelKind>,
    commands: Vec<Command>,
}

fn user() -> impl Strategy<Value = usize> {
    0..USERS
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Join),
        2 => user().prop_map(Op::Invite),
        2 => Just(Op::Leave),
        1 => user().prop_map(Op::Kick),
        2 => user().prop_map(Op::Ban),
        1 => user().prop_map(Op::Unban),
        2 => (user(), prop_oneof![Just(Role::Member), Just(Role::Admin), Just(Role::Owner)])
            .prop_map(|(u, r)| Op::ChangeRole(u, r)),
        2 => any::<bool>().prop_map(Op::SetMuted),
        8 => Just(Op::Send),
        2 => (0..8usize).prop_map(Op::Edit),
        2 => (0..8usize).prop_map(Op::Delete),
        3 => (0..=4u64).prop_map(Op::MarkRead),
        1 => Just(Op::Archive),
    ]
}

fn history() -> impl Strategy<Value = History> {
    (
        proptest::collection::vec(
            prop_oneof![3 => Just(ChannelKind::Public), 1 => Just(ChannelKind::Private)],
            1..=2,
        ),
        proptest::collection::vec(
            (0..2usize, user(), op()).prop_map(|(channel, actor, op)| Command {
                channel,
                actor,
                op,
            }),
            0..=20,
        ),
    )
        .prop_map(|(channels, commands)| History { channels, commands })
}

// ------------------------------------------------------------------ schedule

/// Which event of the log a delivery carries, relative to the broker's
/// cursor (the relay publishes in commit order).
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The next one in commit order.
    Next,
    /// One `k + 1` ahead of the cursor, the cursor staying put: those in
    /// between come later (or never).
    Ahead(usize),
    /// One `k + 1` behind the cursor: a duplicate (or a late arrival).
    Back(usize),
}

/// What happens to a batch once it was applied.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Committed and acked.
    Acked,
    /// Committed, but the ack was lost: the broker delivers it again.
    AckLost,
    /// The projector died before the commit: rolled back, redelivered, and
    /// the projector starts again.
    Crashed,
}

#[derive(Debug, Clone)]
enum Step {
    Batch(Vec<Pick>, Fate),
    /// The projector restarts: a new pool, the checkpoint read back.
    Restart,
}

/// How the broker ends the schedule: everything not yet applied delivered,
/// or only each stream's last event (the rest healed from the log).
#[derive(Debug, Clone, Copy)]
enum Flush {
    All,
    HeadsOnly,
}

#[derive(Debug, Clone)]
struct Schedule {
    steps: Vec<Step>,
    flush: Flush,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => Just(Pick::Next),
        2 => (0..6usize).prop_map(Pick::Ahead),
        2 => (0..6usize).prop_map(Pick::Back),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![5 => Just(Fate::Acked), 2 => Just(Fate::AckLost), 2 => Just(Fate::Crashed)]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(
            prop_oneof![
                8 => (proptest::collection::vec(pick(), 1..=5), fate())
                    .prop_map(|(p, f)| Step::Batch(p, f)),
                1 => Just(Step::Restart),
            ],
            0..=12,
        ),
        prop_oneof![Just(Flush::All), Just(Flush::HeadsOnly)],
    )
        .prop_map(|(steps, flush)| Schedule { steps, flush })
}

#[derive(Debug, Clone)]
struct Case {
    history: History,
    schedule: Schedule,
}

fn case() -> impl Strategy<Value = Case> {
    (history(), schedule()).prop_map(|(history, schedule)| Case { history, schedule })
}

fn config() -> Config {
    let from_env = Config::default();
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(40),
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            from_env.rng_seed
        } else {
            RngSeed::Fixed(0x000C_0FFE_E011)
        },
        source_file: Some(file!()),
        max_shrink_iters: 2048,
        ..from_env
    }
}

// ------------------------------------------------------------------ the run

/// One log database and one read database for the whole run: every case has
/// ids of its own in the log, and the read model is emptied between cases.
struct Env {
    _log_db: TestDb,
    read_db: TestDb,
    log: PgEventStore,
}

impl Env {
    async fn new() -> Env {
        let log_db = TestDb::new_event_log().await;
        let read_db = TestDb::new_read_model().await;
        log_db.pool.close().await;
        read_db.pool.close().await;
        let log_pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&log_db.url)
            .await
            .expect("log pool");
        Env {
            log: PgEventStore::new(log_pool),
            _log_db: log_db,
            read_db,
        }
    }

    async fn read_pool(&self) -> PgPool {
        read_model::connect(&self.read_db.url, 2)
            .await
            .expect("read pool")
    }
}

static CASE: AtomicU64 = AtomicU64::new(1);

/// Ids of one case: distinct from every other case's, in a fixed order.
struct Ids(u128);

impl Ids {
    fn new() -> Ids {
        Ids(u128::from(CASE.fetch_add(1, Ordering::SeqCst)) << 64)
    }
    fn user(&self, i: usize) -> UserId {
        UserId(Uuid::from_u128(self.0 | 0xA00 | i as u128))
    }
    fn channel(&self, i: usize) -> ChannelId {
        ChannelId(Uuid::from_u128(self.0 | 0xC00 | i as u128))
    }
    fn message(&self, n: usize) -> MessageId {
        MessageId(Uuid::from_u128(self.0 | 0x10_0000 | n as u128))
    }
}

fn new_event(event: &Event, actor: UserId) -> NewEvent {
    let stored = event.to_stored();
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: serde_json::json!({
            "correlation_id": Uuid::now_v7().to_string(),
            "actor_id": actor.0.to_string(),
        }),
    }
}

fn decode(recorded: &RecordedEvent) -> Event {
    Event::from_stored(&StoredEvent {
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        data: recorded.data.clone(),
    })
    .expect("log events decode")
}

/// Runs the history through the domain and appends every accepted command
/// (one append each); returns the log in commit order.
async fn write_history(log: &PgEventStore, ids: &Ids, history: &History) -> Vec<RecordedEvent> {
    let policy = MessagePolicy::default();
    let mut recorded = Vec::new();
    let mut append = async |stream: String, version: u64, events: &[Event], actor: UserId| {
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        let new: Vec<NewEvent> = events.iter().map(|e| new_event(e, actor)).collect();
        let appended = log.append(&stream, expected, &new).await.expect("append");
        recorded.extend(appended);
    };
    for u in 0..USERS {
        let register = RegisterUser {
            user_id: ids.user(u),
            username: format!("user{u}"),
            display_name: (u % 2 == 0).then(|| format!("User {u}")),
        };
        let events = User::decide(None, register).expect("registers");
        append(domain::user_stream(ids.user(u)), 0, &events, ids.user(u)).await;
    }
    let mut channels: Vec<(Option<Channel>, u64, Vec<MessageFacts>)> = Vec::new();
    for (i, kind) in history.channels.iter().enumerate() {
        let owner = ids.user(i % USERS);
        let create = ChannelCommand::Create {
            channel_id: ids.channel(i),
            name: format!("channel-{i}"),
            kind: *kind,
            max_members: None,
        };
        let events = Channel::decide(None, owner, create, &policy).expect("creates");
        append(domain::channel_stream(ids.channel(i)), 0, &events, owner).await;
        let state = events.iter().fold(None, Channel::evolve);
        channels.push((state, events.len() as u64, Vec::new()));
    }
    for (n, command) in history.commands.iter().enumerate() {
        let index = command.channel % channels.len();
        let (state, version, messages) = &mut channels[index];
        let actor = ids.user(command.actor);
        let message =
            |i: usize| (!messages.is_empty()).then(|| messages[i % messages.len()].clone());
        let last_seq = state.as_ref().map_or(0, |c| c.last_seq);
        let decided = match &command.op {
            Op::Join => ChannelCommand::Join,
            Op::Invite(u) => ChannelCommand::Invite {
                user_id: ids.user(*u),
            },
            Op::Leave => ChannelCommand::Leave,
            Op::Kick(u) => ChannelCommand::Kick {
                user_id: ids.user(*u),
            },
            Op::Ban(u) => ChannelCommand::Ban {
                user_id: ids.user(*u),
            },
            Op::Unban(u) => ChannelCommand::Unban {
                user_id: ids.user(*u),
            },
            Op::ChangeRole(u, role) => ChannelCommand::ChangeRole {
                user_id: ids.user(*u),
                role: *role,
            },
            Op::SetMuted(muted) => ChannelCommand::SetMuted { muted: *muted },
            Op::Send => ChannelCommand::SendMessage {
                message_id: ids.message(n),
                content: format!("message {n}"),
                message_type: "text".into(),
                client_msg_id: None,
            },
            Op::Edit(i) => ChannelCommand::EditMessage {
                message: message(*i),
                content: format!("edited {n}"),
            },
            Op::Delete(i) => ChannelCommand::DeleteMessage {
                message: message(*i),
            },
            Op::MarkRead(q) => ChannelCommand::MarkRead {
                seq: last_seq * q / 4,
            },
            Op::Archive => ChannelCommand::Archive,
        };
        let Ok(events) = Channel::decide(state.as_ref(), actor, decided, &policy) else {
            continue;
        };
        if events.is_empty() {
            continue;
        }
        append(
            domain::channel_stream(ids.channel(index)),
            *version,
            &events,
            actor,
        )
        .await;
        *version += events.len() as u64;
        for event in &events {
            *state = Channel::evolve(state.take(), event);
            let id = match event {
                Event::MessageSent(e) => Some(e.message_id),
                Event::MessageEdited(e) => Some(e.message_id),
                Event::MessageDeleted(e) => Some(e.message_id),
                _ => None,
            };
            if let Some(id) = id {
                let at = messages.iter().position(|m| m.message_id == id);
                let current = at.map(|i| messages[i].clone());
                if let Some(facts) = MessageFacts::evolve(current, event) {
                    match at {
                        Some(i) => messages[i] = facts,
                        None => messages.push(facts),
                    }
                }
            }
        }
    }
    recorded
}

/// The projector's state that a restart keeps: nothing but its databases.
struct Projector {
    read: PgPool,
}

impl Projector {
    async fn restart(&mut self, env: &Env) {
        self.read.close().await;
        self.read = env.read_pool().await;
    }
}

/// What the model remembers between steps.
struct Model<'a> {
    log: &'a [RecordedEvent],
    /// Each stream's events in version order.
    streams: BTreeMap<String, Vec<&'a RecordedEvent>>,
    /// Positions last seen.
    positions: BTreeMap<String, u64>,
    /// The checkpoint the committed batches leave.
    checkpoint: Option<Cursor>,
    /// Events handed out as changes by committed batches.
    announced: BTreeSet<Uuid>,
    /// Log indices some committed batch carried.
    committed: BTreeSet<usize>,
}

impl<'a> Model<'a> {
    fn new(log: &'a [RecordedEvent]) -> Model<'a> {
        let mut streams: BTreeMap<String, Vec<&RecordedEvent>> = BTreeMap::new();
        for e in log {
            streams.entry(e.stream_id.clone()).or_default().push(e);
        }
        for events in streams.values_mut() {
            events.sort_by_key(|e| e.stream_version);
        }
        Model {
            log,
            streams,
            positions: BTreeMap::new(),
            checkpoint: None,
            announced: BTreeSet::new(),
            committed: BTreeSet::new(),
        }
    }
}

async fn run_case(env: &Env, case: &Case) -> Result<(), TestCaseError> {
    let ids = Ids::new();
    let log = write_history(&env.log, &ids, &case.history).await;
    let mut projector = Projector {
        read: env.read_pool().await,
    };
    sqlx::query(
        "TRUNCATE rm.users, rm.channels, rm.members, rm.bans, rm.messages, rm.stream_positions, rm.checkpoints",
    )
    .execute(&projector.read)
    .await
    .expect("empty read model");
    let decoded: Vec<Event> = log.iter().map(decode).collect();
    let mut model = Model::new(&log);
    let mut cursor = 0usize;
    let mut redeliver: Vec<usize> = Vec::new();
    for step in &case.schedule.steps {
        match step {
            Step::Restart => {
                projector.restart(env).await;
                let loaded = projector::load_checkpoint(
                    &read_model::PgReadModel::new(projector.read.clone()),
                    &env.log,
                )
                .await
                .expect("checkpoint loads");
                prop_assert_eq!(
                    loaded,
                    model.checkpoint.unwrap_or(Cursor::START),
                    "a restart read back another checkpoint"
                );
            }
            Step::Batch(picks, fate) => {
                let mut batch = std::mem::take(&mut redeliver);
                for p in picks {
                    match *p {
                        Pick::Next if cursor < log.len() => {
                            batch.push(cursor);
                            cursor += 1;
                        }
                        Pick::Ahead(k) if cursor + 1 + k < log.len() => batch.push(cursor + 1 + k),
                        Pick::Back(k) if cursor > k => batch.push(cursor - 1 - k),
                        _ => {}
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                deliver(env, &mut projector, &mut model, &decoded, &batch, *fate).await?;
                if !matches!(fate, Fate::Acked) {
                    redeliver = batch.clone();
                }
            }
        }
    }
    // The broker ends the schedule: whatever is waiting for redelivery, then
    // everything never applied (or only each stream's last event).
    let mut rest = std::mem::take(&mut redeliver);
    match case.schedule.flush {
        Flush::All => rest.extend((0..log.len()).filter(|i| !model.committed.contains(i))),
        Flush::HeadsOnly => {
            for events in model.streams.values() {
                if let Some(last) = events.last() {
                    let i = log
                        .iter()
                        .position(|e| e.event_id == last.event_id)
                        .expect("in the log");
                    rest.push(i);
                }
            }
        }
    }
    for chunk in rest.chunks(4) {
        deliver(
            env,
            &mut projector,
            &mut model,
            &decoded,
            chunk,
            Fate::Acked,
        )
        .await?;
    }
    // Every stream at its head, the read model the fold of the whole log.
    for (stream, events) in &model.streams {
        let head = events.last().map_or(0, |e| e.stream_version);
        prop_assert_eq!(
            model.positions.get(stream).copied().unwrap_or(0),
            head,
            "{} is not at its head after the schedule",
            stream
        );
    }
    check_domain_agrees(&projector.read, &model).await?;
    projector.read.close().await;
    Ok(())
}

/// Hands `batch` (log indices) to the projector, then checks the model.
async fn deliver(
    env: &Env,
    projector: &mut Projector,
    model: &mut Model<'_>,
    decoded: &[Event],
    batch: &[usize],
    fate: Fate,
) -> Result<(), TestCaseError> {
    let log = model.log;
    let items: Vec<(&RecordedEvent, &Event)> =
        batch.iter().map(|&i| (&log[i], &decoded[i])).collect();
    let pending = projector::apply_deliveries(
        &read_model::PgReadModel::new(projector.read.clone()),
        &env.log,
        &items,
    )
    .await
    .map_err(|(index, e)| TestCaseError::fail(format!("the batch failed at {index:?}: {e}")))?;
    match fate {
        Fate::Crashed => {
            drop(pending);
            projector.restart(env).await;
        }
        Fate::Acked | Fate::AckLost => {
            let (changes, cursor) = pending.commit().await.expect("commit");
            let latest = batch.iter().map(|&i| log[i].cursor()).max();
            prop_assert_eq!(
                cursor,
                latest,
                "the batch's checkpoint is not its latest event: {:?}",
                batch
                    .iter()
                    .map(|&i| (i, log[i].cursor(), &log[i].stream_id, log[i].stream_version))
                    .collect::<Vec<_>>()
            );
            model.checkpoint = model.checkpoint.max(latest);
            model.committed.extend(batch.iter().copied());
            let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
            for change in &changes {
                prop_assert!(
                    model.announced.insert(change.event.event_id),
                    "{} v{} was handed out for announcement twice",
                    change.event.stream_id,
                    change.event.stream_version
                );
                let previous =
                    versions.insert(&change.event.stream_id, change.event.stream_version);
                prop_assert!(
                    previous.is_none_or(|p| p < change.event.stream_version),
                    "the changes of {} are out of order",
                    change.event.stream_id
                );
            }
        }
    }
    check_step(&projector.read, model, batch, fate).await
}

/// The invariants after every step.
async fn check_step(
    read: &PgPool,
    model: &mut Model<'_>,
    batch: &[usize],
    fate: Fate,
) -> Result<(), TestCaseError> {
    let positions: BTreeMap<String, u64> =
        sqlx::query_as::<_, (String, i64)>("SELECT stream_id, version FROM rm.stream_positions")
            .fetch_all(read)
            .await
            .expect("positions")
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(s, v)| (s, v as u64))
            .collect();
    for (stream, before) in &model.positions {
        let now = positions.get(stream).copied().unwrap_or(0);
        prop_assert!(
            now >= *before,
            "{} moved back from {} to {}",
            stream,
            before,
            now
        );
    }
    for (stream, now) in &positions {
        let head = model.streams.get(stream).map_or(0, |e| e.len() as u64);
        prop_assert!(
            *now <= head,
            "{} is at {} beyond its head {}",
            stream,
            now,
            head
        );
    }
    if !matches!(fate, Fate::Crashed) {
        for &i in batch {
            let e = &model.log[i];
            let now = positions.get(&e.stream_id).copied().unwrap_or(0);
            prop_assert!(
                now >= e.stream_version,
                "{} is at {} after a committed batch with its v{}",
                e.stream_id,
                now,
                e.stream_version
            );
        }
    }
    model.positions = positions;

    // The read model is the fold of each stream's prefix up to its position.
    let mut expected = Rows::default();
    for (stream, events) in &model.streams {
        let at = model.positions.get(stream).copied().unwrap_or(0);
        for e in events.iter().take_while(|e| e.stream_version <= at) {
            expected.apply(e, &decode(e));
        }
    }
    let actual = Rows::read(read).await;
    prop_assert_eq!(&actual.users, &expected.users, "users differ from the fold");
    prop_assert_eq!(
        &actual.channels,
        &expected.channels,
        "channels differ from the fold"
    );
    prop_assert_eq!(
        &actual.members,
        &expected.members,
        "members differ from the fold"
    );
    prop_assert_eq!(&actual.bans, &expected.bans, "bans differ from the fold");
    prop_assert_eq!(
        &actual.messages,
        &expected.messages,
        "messages differ from the fold"
    );

    let checkpoint: Option<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, global_position FROM rm.checkpoints WHERE projection = $1",
    )
    .bind(projector::LIVE_PROJECTION)
    .fetch_optional(read)
    .await
    .expect("checkpoint");
    let checkpoint = checkpoint.map(|(tx, position)| Cursor {
        transaction_id: tx as u64,
        global_position: position,
    });
    prop_assert_eq!(
        checkpoint,
        model.checkpoint,
        "the checkpoint is not the latest committed event"
    );
    Ok(())
}

/// The domain's own fold of each channel agrees with the read model at the end.
async fn check_domain_agrees(read: &PgPool, model: &Model<'_>) -> Result<(), TestCaseError> {
    let actual = Rows::read(read).await;
    for events in model.streams.values() {
        let decoded: Vec<Event> = events.iter().map(|e| decode(e)).collect();
        let Some(channel) = decoded.iter().fold(None, Channel::evolve) else {
            continue;
        };
        let c = channel.id.0;
        let members: BTreeMap<Uuid, (String, bool, i64)> = actual
            .members
            .iter()
            .filter(|((ch, _), _)| *ch == c)
            .map(|((_, u), m)| (*u, (m.0.clone(), m.1, m.2)))
            .collect();
        let folded: BTreeMap<Uuid, (String, bool, i64)> = channel
            .members
            .iter()
            .map(|(u, m)| {
                (
                    u.0,
                    (role_name(m.role).to_owned(), m.muted, m.read_seq as i64),
                )
            })
            .collect();
        prop_assert_eq!(members, folded, "members differ from the domain's fold");
        let bans: BTreeSet<Uuid> = actual
            .bans
            .keys()
            .filter(|(ch, _)| *ch == c)
            .map(|(_, u)| *u)
            .collect();
        prop_assert_eq!(
            bans,
            channel.banned.iter().map(|u| u.0).collect::<BTreeSet<_>>()
        );
        let row = actual.channels.get(&c).expect("the channel's row");
        prop_assert_eq!(
            (row.archived, row.last_seq),
            (channel.archived, channel.last_seq as i64)
        );
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

// ------------------------------------------------------------------ rows

#[derive(Debug, Clone, PartialEq, Eq)]
struct ChannelRow {
    name: String,
    kind: String,
    max_members: Option<i32>,
    owner_id: Uuid,
    archived: bool,
    created_at: DateTime<Utc>,
    last_seq: i64,
    updated_at: DateTime<Utc>,
}

/// role, muted, read_seq, joined_at.
type MemberRow = (String, bool, i64, DateTime<Utc>);
/// message_id, sender_id, content, message_type, created_at, edited_at, deleted.
type MessageRow = (
    Uuid,
    Uuid,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    bool,
);

/// Every row of the read model, or what the fold of the log says they are.
#[derive(Debug, Default)]
struct Rows {
    users: BTreeMap<Uuid, (String, String, DateTime<Utc>)>,
    channels: BTreeMap<Uuid, ChannelRow>,
    members: BTreeMap<(Uuid, Uuid), MemberRow>,
    bans: BTreeMap<(Uuid, Uuid), DateTime<Utc>>,
    messages: BTreeMap<(Uuid, i64), MessageRow>,
}

impl Rows {
    async fn read(read: &PgPool) -> Rows {
        let users = sqlx::query_as::<_, (Uuid, String, String, DateTime<Utc>)>(
            "SELECT user_id, username, display_name, registered_at FROM rm.users",
        )
        .fetch_all(read)
        .await
        .expect("users")
        .into_iter()
        .map(|(id, name, display, at)| (id, (name, display, at)))
        .collect();
        type ChannelTuple = (
            Uuid,
            String,
            String,
            Option<i32>,
            Uuid,
            bool,
            DateTime<Utc>,
            i64,
            DateTime<Utc>,
        );
        let channels = sqlx::query_as::<_, ChannelTuple>(
            "SELECT channel_id, name, kind, max_members, owner_id, archived, created_at, last_seq, updated_at FROM rm.channels",
        )
        .fetch_all(read)
        .await
        .expect("channels")
        .into_iter()
        .map(|(id, name, kind, max_members, owner_id, archived, created_at, last_seq, updated_at)| {
            (
                id,
                ChannelRow {
                    name,
                    kind,
                    max_members,
                    owner_id,
                    archived,
                    created_at,
                    last_seq,
                    updated_at,
                },
            )
        })
        .collect();
        let members = sqlx::query_as::<_, (Uuid, Uuid, String, bool, i64, DateTime<Utc>)>(
            "SELECT channel_id, user_id, role, muted, read_seq, joined_at FROM rm.members",
        )
        .fetch_all(read)
        .await
        .expect("members")
        .into_iter()
        .map(|(c, u, role, muted, read_seq, joined_at)| {
            ((c, u), (role, muted, read_seq, joined_at))
        })
        .collect();
        let bans = sqlx::query_as::<_, (Uuid, Uuid, DateTime<Utc>)>(
            "SELECT channel_id, user_id, banned_at FROM rm.bans",
        )
        .fetch_all(read)
        .await
        .expect("bans")
        .into_iter()
        .map(|(c, u, at)| ((c, u), at))
        .collect();
        type MessageTuple = (
            Uuid,
            i64,
            Uuid,
            Uuid,
            Option<String>,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            bool,
        );
        let messages = sqlx::query_as::<_, MessageTuple>(
            "SELECT channel_id, seq, message_id, sender_id, content, message_type, created_at, edited_at, deleted FROM rm.messages",
        )
        .fetch_all(read)
        .await
        .expect("messages")
        .into_iter()
        .map(|(c, seq, id, sender, content, kind, created, edited, deleted)| {
            ((c, seq), (id, sender, content, kind, created, edited, deleted))
        })
        .collect();
        Rows {
            users,
            channels,
            members,
            bans,
            messages,
        }
    }

    /// Folds one event in: what DESIGN.md §5 says the read model holds.
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let at = recorded.recorded_at;
        let join = |rows: &mut Rows, c: Uuid, u: Uuid, role: &str| {
            rows.members.insert((c, u), (role.to_owned(), false, 0, at));
        };
        match event {
            Event::UserRegistered(e) => {
                self.users.insert(
                    e.user_id.0,
                    (e.username.clone(), e.display_name.clone(), at),
                );
            }
            Event::ChannelCreated(e) => {
                self.channels.insert(
                    e.channel_id.0,
                    ChannelRow {
                        name: e.name.clone(),
                        kind: if e.kind == ChannelKind::Private {
                            "private".into()
                        } else {
                            "public".into()
                        },
                        max_members: e.max_members.map(|m| m as i32),
                        owner_id: e.owner_id.0,
                        archived: false,
                        created_at: at,
                        last_seq: 0,
                        updated_at: at,
                    },
                );
                join(self, e.channel_id.0, e.owner_id.0, "owner");
            }
            Event::MemberJoined(e) => join(self, e.channel_id.0, e.user_id.0, "member"),
            Event::MemberInvited(e) => join(self, e.channel_id.0, e.user_id.0, "member"),
            Event::MemberLeft(e) => {
                self.members.remove(&(e.channel_id.0, e.user_id.0));
            }
            Event::MemberKicked(e) => {
                self.members.remove(&(e.channel_id.0, e.user_id.0));
            }
            Event::MemberBanned(e) => {
                self.members.remove(&(e.channel_id.0, e.user_id.0));
                self.bans.entry((e.channel_id.0, e.user_id.0)).or_insert(at);
            }
            Event::MemberUnbanned(e) => {
                self.bans.remove(&(e.channel_id.0, e.user_id.0));
            }
            Event::MemberRoleChanged(e) => {
                if let Some(m) = self.members.get_mut(&(e.channel_id.0, e.user_id.0)) {
                    m.0 = role_name(e.role).to_owned();
                }
                if e.role == Role::Owner
                    && let Some(c) = self.channels.get_mut(&e.channel_id.0)
                {
                    c.owner_id = e.user_id.0;
                }
            }
            Event::ChannelArchived(e) => {
                if let Some(c) = self.channels.get_mut(&e.channel_id.0) {
                    c.archived = true;
                    c.updated_at = at;
                }
            }
            Event::ChannelMuted(e) => {
                if let Some(m) = self.members.get_mut(&(e.channel_id.0, e.user_id.0)) {
                    m.1 = true;
                }
            }
            Event::ChannelUnmuted(e) => {
                if let Some(m) = self.members.get_mut(&(e.channel_id.0, e.user_id.0)) {
                    m.1 = false;
                }
            }
            Event::MessageSent(e) => {
                self.messages
                    .entry((e.channel_id.0, e.seq as i64))
                    .or_insert_with(|| {
                        (
                            e.message_id.0,
                            e.sender_id.0,
                            Some(e.content.clone()),
                            e.message_type.clone(),
                            at,
                            None,
                            false,
                        )
                    });
                if let Some(c) = self.channels.get_mut(&e.channel_id.0) {
                    c.last_seq = c.last_seq.max(e.seq as i64);
                    c.updated_at = at;
                }
            }
            Event::MessageEdited(e) => {
                if let Some(m) = self.messages.get_mut(&(e.channel_id.0, e.seq as i64))
                    && !m.6
                {
                    m.2 = Some(e.content.clone());
                    m.5 = Some(at);
                }
            }
            Event::MessageDeleted(e) => {
                if let Some(m) = self.messages.get_mut(&(e.channel_id.0, e.seq as i64)) {
                    m.2 = None;
                    m.6 = true;
                }
            }
            Event::ReadUpTo(e) => {
                if let Some(m) = self.members.get_mut(&(e.channel_id.0, e.user_id.0)) {
                    m.2 = m.2.max(e.seq as i64);
                }
            }
        }
    }
}

// ------------------------------------------------------------------ the tests

#[test]
fn the_projector_matches_the_fold_of_the_log_under_any_delivery_schedule() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = runtime.block_on(Env::new());
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&case(), |case| runtime.block_on(run_case(&env, &case)));
    eprintln!("projector model: {:?} for the run", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(env);
}
