//! One behaviour, two adapters: every test here writes through the
//! `ReadWrites` port and reads through `ReadModel`, once on PostgreSQL and
//! once on SQLite, so the backends cannot drift. SQLite's own concerns (other
//! schemas as files, dead letters, the checkpoint listing) are at the end.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::{ChannelId, ChannelKind, Event, MessageId, Role, UserId};
use event_store::{Cursor, RecordedEvent};
use read_model::{
    ChannelAccess, LIVE_SCHEMA, MemberRow, MessageRow, MyChannelRow, PgReadModel, ReadModel,
    SqliteReadModel,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use test_support::TestDb;
use uuid::Uuid;

/// A read model and whatever must live as long as it (a database, a directory).
struct Backend {
    rm: Arc<dyn ReadModel>,
    _owner: Box<dyn std::any::Any + Send>,
}

async fn postgres() -> Backend {
    let db = TestDb::new_read_model().await;
    Backend {
        rm: Arc::new(PgReadModel::new(db.pool.clone())),
        _owner: Box::new(db),
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rm = SqliteReadModel::open(&dir.path().join("read.db"))
        .await
        .expect("open the SQLite read model");
    Backend {
        rm: Arc::new(rm),
        _owner: Box::new(dir),
    }
}

/// `both!(test)`: `test::postgres` and `test::sqlite`, each on a read model of its own.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let backend = super::postgres().await;
                super::$name(backend.rm.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let backend = super::sqlite().await;
                super::$name(backend.rm.clone()).await;
            }
        }
    )*};
}

both!(
    channel_access_follows_membership_bans_and_ownership,
    members_are_listed_in_joining_order,
    message_pages_are_bounded_and_ordered,
    my_channels_carry_unread_counts_and_last_messages,
    the_directory_matches_literally_without_regard_to_ascii_case,
    notifications_go_to_unmuted_members_but_the_sender,
    stream_positions_never_move_down,
    the_checkpoint_never_moves_back,
    a_dropped_transaction_leaves_nothing,
    re_applied_writes_change_nothing,
);

// ---- Building events ----

/// Every instant is whole microseconds, as both stores keep them.
fn at(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
        + Duration::milliseconds(ms)
}

/// The log as the projector would receive it: stream versions and global
/// positions in order, a clock advancing a millisecond per event.
#[derive(Default)]
struct History {
    versions: HashMap<String, u64>,
    position: i64,
    clock: i64,
}

type Item = (RecordedEvent, Event);

impl History {
    /// `event` at the next instant.
    fn next(&mut self, event: Event) -> Item {
        self.clock += 1;
        self.at(self.clock, event)
    }

    /// `event` recorded at `at(ms)` (ties on purpose).
    fn at(&mut self, ms: i64, event: Event) -> Item {
        let stream_id = stream_of(&event);
        let version = self.versions.entry(stream_id.clone()).or_default();
        *version += 1;
        self.position += 1;
        let stored = event.to_stored();
        let recorded = RecordedEvent {
            event_id: Uuid::new_v4(),
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            stream_id,
            stream_version: *version,
            global_position: self.position,
            transaction_id: self.position as u64,
            recorded_at: at(ms),
            data: stored.data,
            metadata: Default::default(),
        };
        (recorded, event)
    }
}

fn stream_of(event: &Event) -> String {
    let channel = match event {
        Event::UserRegistered(e) => return format!("user-{}", e.user_id.0),
        Event::ChannelCreated(e) => e.channel_id,
        Event::MemberJoined(e) => e.channel_id,
        Event::MemberInvited(e) => e.channel_id,
        Event::MemberLeft(e) => e.channel_id,
        Event::MemberKicked(e) => e.channel_id,
        Event::MemberBanned(e) => e.channel_id,
        Event::MemberUnbanned(e) => e.channel_id,
        Event::MemberRoleChanged(e) => e.channel_id,
        Event::ChannelArchived(e) => e.channel_id,
        Event::ChannelMuted(e) => e.channel_id,
        Event::ChannelUnmuted(e) => e.channel_id,
        Event::MessageSent(e) => e.channel_id,
        Event::MessageEdited(e) => e.channel_id,
        Event::MessageDeleted(e) => e.channel_id,
        Event::ReadUpTo(e) => e.channel_id,
    };
    format!("channel-{}", channel.0)
}

fn registered(user: Uuid, username: &str) -> Event {
    Event::UserRegistered(domain::UserRegistered {
        user_id: UserId(user),
        username: username.to_owned(),
        display_name: username.to_uppercase(),
    })
}

fn created(channel: Uuid, owner: Uuid, name: &str, kind: ChannelKind) -> Event {
    Event::ChannelCreated(domain::ChannelCreated {
        channel_id: ChannelId(channel),
        name: name.to_owned(),
        kind,
        max_members: (kind == ChannelKind::Private).then_some(8),
        owner_id: UserId(owner),
    })
}

fn joined(channel: Uuid, user: Uuid) -> Event {
    Event::MemberJoined(domain::MemberJoined {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
    })
}

fn invited(channel: Uuid, user: Uuid, by: Uuid) -> Event {
    Event::MemberInvited(domain::MemberInvited {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        invited_by: UserId(by),
    })
}

fn left(channel: Uuid, user: Uuid) -> Event {
    Event::MemberLeft(domain::MemberLeft {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
    })
}

fn kicked(channel: Uuid, user: Uuid, by: Uuid) -> Event {
    Event::MemberKicked(domain::MemberKicked {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        kicked_by: UserId(by),
    })
}

fn banned(channel: Uuid, user: Uuid, by: Uuid) -> Event {
    Event::MemberBanned(domain::MemberBanned {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        banned_by: UserId(by),
    })
}

fn unbanned(channel: Uuid, user: Uuid, by: Uuid) -> Event {
    Event::MemberUnbanned(domain::MemberUnbanned {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        unbanned_by: UserId(by),
    })
}

fn role_changed(channel: Uuid, user: Uuid, role: Role, by: Uuid) -> Event {
    Event::MemberRoleChanged(domain::MemberRoleChanged {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        role,
        changed_by: UserId(by),
    })
}

fn archived(channel: Uuid, by: Uuid) -> Event {
    Event::ChannelArchived(domain::ChannelArchived {
        channel_id: ChannelId(channel),
        archived_by: UserId(by),
    })
}

fn muted(channel: Uuid, user: Uuid, on: bool) -> Event {
    if on {
        Event::ChannelMuted(domain::ChannelMuted {
            channel_id: ChannelId(channel),
            user_id: UserId(user),
        })
    } else {
        Event::ChannelUnmuted(domain::ChannelUnmuted {
            channel_id: ChannelId(channel),
            user_id: UserId(user),
        })
    }
}

/// Message `seq` of `channel`; its id is derived from both, so a test can
/// name it again.
fn message_id(channel: Uuid, seq: u64) -> Uuid {
    let (high, low) = channel.as_u64_pair();
    Uuid::from_u64_pair(high, low ^ seq)
}

fn sent(channel: Uuid, seq: u64, sender: Uuid) -> Event {
    Event::MessageSent(domain::MessageSent {
        channel_id: ChannelId(channel),
        message_id: MessageId(message_id(channel, seq)),
        seq,
        sender_id: UserId(sender),
        content: format!("message {seq}"),
        message_type: "text".to_owned(),
        client_msg_id: None,
    })
}

fn edited(channel: Uuid, seq: u64, sender: Uuid, content: &str) -> Event {
    Event::MessageEdited(domain::MessageEdited {
        channel_id: ChannelId(channel),
        message_id: MessageId(message_id(channel, seq)),
        seq,
        sender_id: UserId(sender),
        content: content.to_owned(),
        edited_by: UserId(sender),
    })
}

fn deleted(channel: Uuid, seq: u64, sender: Uuid) -> Event {
    Event::MessageDeleted(domain::MessageDeleted {
        channel_id: ChannelId(channel),
        message_id: MessageId(message_id(channel, seq)),
        seq,
        sender_id: UserId(sender),
        deleted_by: UserId(sender),
    })
}

fn read_up_to(channel: Uuid, user: Uuid, seq: u64) -> Event {
    Event::ReadUpTo(domain::ReadUpTo {
        channel_id: ChannelId(channel),
        user_id: UserId(user),
        seq,
    })
}

/// Applies `items` in one transaction as the projector does: positions
/// locked, duplicates skipped, positions moved, checkpoint saved.
async fn apply(rm: &dyn ReadModel, items: &[Item]) {
    let streams: Vec<String> = items
        .iter()
        .map(|(r, _)| r.stream_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
    let mut positions = tx.lock_positions(&streams).await.expect("lock positions");
    for (recorded, event) in items {
        let applied = positions.entry(recorded.stream_id.clone()).or_default();
        if recorded.stream_version <= *applied {
            continue;
        }
        tx.write(recorded, event).await.expect("write");
        *applied = recorded.stream_version;
    }
    let moved: Vec<(String, i64)> = positions
        .into_iter()
        .map(|(stream, version)| (stream, version as i64))
        .collect();
    tx.save_positions(&moved).await.expect("save positions");
    if let Some((last, _)) = items.last() {
        let cursor = Cursor {
            transaction_id: last.transaction_id,
            global_position: last.global_position,
        };
        tx.save_checkpoint("live", Some(cursor), last.recorded_at)
            .await
            .expect("save checkpoint");
    }
    tx.commit().await.expect("commit");
}

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

// ---- The tests ----

async fn channel_access_follows_membership_bans_and_ownership(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let [owner, alice, bob, carol] = [0; 4].map(|_| Uuid::new_v4());
    let (lobby, secret) = (Uuid::new_v4(), Uuid::new_v4());
    let mut items = vec![
        h.next(registered(owner, "olga")),
        h.next(registered(alice, "alice")),
        h.next(created(lobby, owner, "lobby", ChannelKind::Public)),
        h.next(created(secret, owner, "secret", ChannelKind::Private)),
        h.next(joined(lobby, alice)),
        h.next(joined(lobby, bob)),
        h.next(invited(secret, carol, owner)),
        h.next(banned(lobby, bob, owner)),
    ];
    items.extend((1..=7).map(|seq| h.next(sent(lobby, seq, alice))));
    apply(&*rm, &items).await;

    let access = |c, u| {
        let rm = rm.clone();
        async move { rm.channel_for(c, u).await.expect("channel_for") }
    };
    assert_eq!(
        access(lobby, alice).await,
        Some(ChannelAccess {
            channel_id: lobby,
            name: "lobby".into(),
            kind: "public".into(),
            max_members: None,
            owner_id: owner,
            archived: false,
            created_at: at(3),
            last_seq: 7,
            is_member: true,
            is_banned: false,
        })
    );
    let bob_sees = access(lobby, bob).await.expect("the lobby");
    assert!(!bob_sees.is_member && bob_sees.is_banned, "{bob_sees:?}");
    let stranger = access(lobby, Uuid::new_v4()).await.expect("the lobby");
    assert!(!stranger.is_member && !stranger.is_banned, "{stranger:?}");
    assert_eq!(
        access(secret, carol).await,
        Some(ChannelAccess {
            channel_id: secret,
            name: "secret".into(),
            kind: "private".into(),
            max_members: Some(8),
            owner_id: owner,
            archived: false,
            created_at: at(4),
            last_seq: 0,
            is_member: true,
            is_banned: false,
        })
    );
    assert!(!access(secret, alice).await.expect("secret").is_member);
    assert_eq!(access(Uuid::new_v4(), alice).await, None, "unknown channel");
    assert_eq!(rm.last_seq(lobby).await.expect("last_seq"), 7);
    assert_eq!(rm.last_seq(secret).await.expect("last_seq"), 0);
    assert_eq!(rm.last_seq(Uuid::new_v4()).await.expect("last_seq"), 0);

    // Ownership moves; the old owner's step-down is its own event.
    let items = vec![
        h.next(unbanned(lobby, bob, owner)),
        h.next(role_changed(lobby, alice, Role::Owner, owner)),
        h.next(role_changed(lobby, owner, Role::Admin, alice)),
        h.next(archived(lobby, alice)),
    ];
    apply(&*rm, &items).await;
    let now = access(lobby, alice).await.expect("the lobby");
    assert_eq!((now.owner_id, now.archived), (alice, true));
    let bob_sees = access(lobby, bob).await.expect("the lobby");
    assert!(!bob_sees.is_member && !bob_sees.is_banned, "{bob_sees:?}");
    let roles: Vec<(Uuid, String)> = rm
        .members(lobby, 10)
        .await
        .expect("members")
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![(owner, "admin".into()), (alice, "owner".into())]
    );
}

async fn members_are_listed_in_joining_order(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let owner = Uuid::new_v4();
    let channel = Uuid::new_v4();
    let users = ids(300);
    let mut items = vec![h.at(0, created(channel, owner, "crowd", ChannelKind::Public))];
    // Three joins share each instant: ties are ordered by user id.
    for (i, user) in users.iter().enumerate() {
        if i % 2 == 0 {
            items.push(h.at(1, registered(*user, &format!("user{i:03}"))));
        }
        items.push(h.at(10 + (i / 3) as i64, joined(channel, *user)));
    }
    apply(&*rm, &items).await;
    // 30 leave, 30 are kicked, 30 banned; one who left comes back last.
    let mut items = Vec::new();
    for user in &users[0..30] {
        items.push(h.at(1000, left(channel, *user)));
    }
    for user in &users[30..60] {
        items.push(h.at(1000, kicked(channel, *user, owner)));
    }
    for user in &users[60..90] {
        items.push(h.at(1000, banned(channel, *user, owner)));
    }
    items.push(h.at(2000, joined(channel, users[0])));
    items.push(h.at(2001, role_changed(channel, users[100], Role::Admin, owner)));
    apply(&*rm, &items).await;

    let mut expected: Vec<(DateTime<Utc>, Uuid)> = users[90..]
        .iter()
        .enumerate()
        .map(|(k, u)| (at(10 + ((k + 90) / 3) as i64), *u))
        .collect();
    expected.push((at(0), owner));
    expected.push((at(2000), users[0]));
    expected.sort();
    let index: HashMap<Uuid, usize> = users.iter().enumerate().map(|(i, u)| (*u, i)).collect();
    let row = |(joined_at, user_id): (DateTime<Utc>, Uuid)| {
        let i = index.get(&user_id).copied();
        let registered = i.filter(|i| i % 2 == 0);
        MemberRow {
            user_id,
            username: registered.map(|i| format!("user{i:03}")),
            display_name: registered.map(|i| format!("USER{i:03}")),
            role: match i {
                None => "owner".into(),
                Some(100) => "admin".into(),
                Some(_) => "member".into(),
            },
            joined_at,
        }
    };
    let expected: Vec<MemberRow> = expected.into_iter().map(row).collect();
    assert_eq!(expected.len(), 212);
    assert_eq!(rm.member_count(channel).await.expect("count"), 212);
    assert_eq!(
        rm.members(channel, 100).await.expect("members"),
        expected[..100]
    );
    assert_eq!(rm.members(channel, 1000).await.expect("members"), expected);
    assert_eq!(rm.member_count(Uuid::new_v4()).await.expect("count"), 0);
    assert!(
        rm.members(Uuid::new_v4(), 10)
            .await
            .expect("members")
            .is_empty()
    );
}

async fn message_pages_are_bounded_and_ordered(rm: Arc<dyn ReadModel>) {
    const LAST: u64 = 10_001;
    let mut h = History::default();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (busy, other) = (Uuid::new_v4(), Uuid::new_v4());
    apply(
        &*rm,
        &[
            h.next(created(busy, alice, "busy", ChannelKind::Public)),
            h.next(joined(busy, bob)),
            h.next(created(other, alice, "other", ChannelKind::Public)),
        ],
    )
    .await;
    let sender = |seq: u64| if seq.is_multiple_of(2) { bob } else { alice };
    let mut sent_at = HashMap::new();
    let all: Vec<Item> = (1..=LAST)
        .map(|seq| {
            let item = h.next(sent(busy, seq, sender(seq)));
            sent_at.insert(seq, item.0.recorded_at);
            item
        })
        .collect();
    for batch in all.chunks(2_500) {
        apply(&*rm, batch).await;
    }
    let fix = vec![
        h.next(sent(other, 1, alice)),
        h.next(sent(other, 2, alice)),
        h.next(edited(busy, 2, bob, "second, edited")),
        h.next(deleted(busy, 5_000, bob)),
        h.next(edited(busy, 5_000, bob, "too late")),
        h.next(deleted(busy, LAST, alice)),
    ];
    let edited_at = fix[2].0.recorded_at;
    apply(&*rm, &fix).await;

    let message = |seq: u64| {
        let gone = seq == 5_000 || seq == LAST;
        MessageRow {
            message_id: message_id(busy, seq),
            seq: seq as i64,
            sender_id: sender(seq),
            content: match seq {
                _ if gone => None,
                2 => Some("second, edited".into()),
                _ => Some(format!("message {seq}")),
            },
            message_type: "text".into(),
            created_at: sent_at[&seq],
            edited_at: (seq == 2).then_some(edited_at),
            deleted: gone,
        }
    };
    let seqs = |rows: &[MessageRow]| rows.iter().map(|m| m.seq as u64).collect::<Vec<_>>();

    assert_eq!(rm.last_seq(busy).await.expect("last_seq"), LAST);
    assert_eq!(rm.last_seq(other).await.expect("last_seq"), 2);

    // Both bounds are exclusive; newest first; tombstones keep their seq.
    let page = rm
        .messages_between(busy, 4_990, 5_010, 100)
        .await
        .expect("page");
    assert_eq!(page, (4_991..5_010).rev().map(message).collect::<Vec<_>>());
    let newest = rm
        .messages_between(busy, i64::MIN, i64::MAX, 100)
        .await
        .expect("page");
    assert_eq!(seqs(&newest), (LAST - 99..=LAST).rev().collect::<Vec<_>>());
    assert_eq!(newest[0], message(LAST));
    assert_eq!(
        rm.messages_between(busy, 0, 3, 10).await.expect("page"),
        vec![message(2), message(1)]
    );
    assert_eq!(
        seqs(&rm.messages_between(busy, 100, 200, 5).await.expect("page")),
        vec![199, 198, 197, 196, 195]
    );
    assert!(
        rm.messages_between(busy, 7, 8, 10)
            .await
            .expect("page")
            .is_empty()
    );
    assert!(
        rm.messages_between(Uuid::new_v4(), i64::MIN, i64::MAX, 10)
            .await
            .expect("page")
            .is_empty()
    );

    // Oldest first from a seq on, as a resuming subscriber reads.
    let replay = rm.messages_after(busy, 0, 10_000).await.expect("after");
    assert_eq!(replay, (1..=10_000).map(message).collect::<Vec<_>>());
    assert_eq!(
        rm.messages_after(busy, 9_998, 10_000).await.expect("after"),
        vec![message(9_999), message(10_000), message(LAST)]
    );
    assert_eq!(
        seqs(&rm.messages_after(busy, 4_998, 3).await.expect("after")),
        vec![4_999, 5_000, 5_001]
    );
    assert!(
        rm.messages_after(busy, LAST as i64, 10)
            .await
            .expect("after")
            .is_empty()
    );
    assert_eq!(
        seqs(&rm.messages_after(other, -5, 10).await.expect("after")),
        vec![1, 2]
    );
}

async fn my_channels_carry_unread_counts_and_last_messages(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let (me, them) = (Uuid::new_v4(), Uuid::new_v4());
    let [busy, read, quiet, tie_1, tie_2, gone] = [0; 6].map(|_| Uuid::new_v4());
    let mut items = vec![
        h.at(1, created(busy, them, "busy", ChannelKind::Public)),
        h.at(2, created(read, them, "read", ChannelKind::Private)),
        h.at(3, created(gone, them, "gone", ChannelKind::Public)),
        h.at(4, joined(busy, me)),
        h.at(5, invited(read, me, them)),
        h.at(6, joined(gone, me)),
        h.at(7, left(gone, me)),
        h.at(8, role_changed(busy, me, Role::Admin, them)),
        h.at(9, muted(read, me, true)),
    ];
    // busy: 1,500 from them, 10 from me, 5 of theirs deleted.
    for seq in 1..=1_510u64 {
        let sender = if seq % 150 == 75 { me } else { them };
        items.push(h.at(100 + seq as i64, sent(busy, seq, sender)));
    }
    for seq in [1, 2, 3, 4, 5] {
        items.push(h.at(2_000, deleted(busy, seq, them)));
    }
    // read: six messages, read up to 3, the last one deleted.
    for seq in 1..=6 {
        items.push(h.at(3_000 + seq as i64, sent(read, seq, them)));
    }
    items.push(h.at(3_100, read_up_to(read, me, 3)));
    items.push(h.at(3_101, deleted(read, 6, them)));
    // quiet and the two ties: no messages; active when created.
    items.push(h.at(2_500, created(quiet, me, "quiet", ChannelKind::Public)));
    items.push(h.at(1_000, created(tie_1, me, "tie-1", ChannelKind::Public)));
    items.push(h.at(1_000, created(tie_2, me, "tie-2", ChannelKind::Public)));
    apply(&*rm, &items).await;

    let (tie_first, tie_second) = if tie_1 < tie_2 {
        (tie_1, tie_2)
    } else {
        (tie_2, tie_1)
    };
    let mine = rm.channels_of(me, 1_000).await.expect("channels_of");
    let order: Vec<Uuid> = mine.iter().map(|c| c.channel_id).collect();
    assert_eq!(order, vec![read, quiet, busy, tie_first, tie_second]);

    let busy_last = MessageRow {
        message_id: message_id(busy, 1_510),
        seq: 1_510,
        sender_id: them,
        content: Some("message 1510".into()),
        message_type: "text".into(),
        created_at: at(1_610),
        edited_at: None,
        deleted: false,
    };
    assert_eq!(
        mine[2],
        MyChannelRow {
            channel_id: busy,
            name: "busy".into(),
            kind: "public".into(),
            archived: false,
            role: "admin".into(),
            muted: false,
            read_seq: 0,
            last_seq: 1_510,
            unread_count: 1_000,
            last_message: Some(busy_last),
        }
    );
    assert_eq!(
        mine[0],
        MyChannelRow {
            channel_id: read,
            name: "read".into(),
            kind: "private".into(),
            archived: false,
            role: "member".into(),
            muted: true,
            read_seq: 3,
            last_seq: 6,
            unread_count: 2,
            last_message: Some(MessageRow {
                message_id: message_id(read, 6),
                seq: 6,
                sender_id: them,
                content: None,
                message_type: "text".into(),
                created_at: at(3_006),
                edited_at: None,
                deleted: true,
            }),
        }
    );
    assert_eq!(
        mine[1],
        MyChannelRow {
            channel_id: quiet,
            name: "quiet".into(),
            kind: "public".into(),
            archived: false,
            role: "owner".into(),
            muted: false,
            read_seq: 0,
            last_seq: 0,
            unread_count: 0,
            last_message: None,
        }
    );
    // Uncapped: all of theirs that are not deleted; none of mine.
    let uncapped = rm.channels_of(me, 100_000).await.expect("channels_of");
    assert_eq!(uncapped[2].unread_count, 1_500 - 5);
    // The other side sees its own messages as read.
    let theirs = rm.channels_of(them, 100_000).await.expect("channels_of");
    let counts: Vec<(Uuid, i64)> = theirs
        .iter()
        .map(|c| (c.channel_id, c.unread_count))
        .collect();
    assert_eq!(counts, vec![(read, 0), (busy, 10), (gone, 0)]);
    assert!(
        rm.channels_of(Uuid::new_v4(), 10)
            .await
            .expect("channels_of")
            .is_empty()
    );
}

/// The query service's pattern: `text` anywhere in the name, literally.
fn contains(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

async fn the_directory_matches_literally_without_regard_to_ascii_case(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let (me, them) = (Uuid::new_v4(), Uuid::new_v4());
    let names = [
        "50% off",
        "50_off",
        "5000 off",
        r"back\slash",
        "backslash",
        "General",
        "general-chat",
        "GENERAL",
        "generally",
    ];
    let mut items = Vec::new();
    let mut channel_of = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let id = Uuid::new_v4();
        channel_of.insert(*name, id);
        items.push(h.at(10 * i as i64, created(id, them, name, ChannelKind::Public)));
    }
    let (private, old) = (Uuid::new_v4(), Uuid::new_v4());
    items.push(h.at(
        500,
        created(private, them, "general-secret", ChannelKind::Private),
    ));
    items.push(h.at(501, created(old, them, "general-old", ChannelKind::Public)));
    items.push(h.at(502, archived(old, them)));
    items.push(h.at(503, joined(channel_of["General"], me)));
    // 150 rooms, three to an instant: ties newest id first.
    let rooms = ids(150);
    for (i, room) in rooms.iter().enumerate() {
        items.push(h.at(
            1_000 + (i / 3) as i64,
            created(*room, them, &format!("room {i}"), ChannelKind::Public),
        ));
        if i % 5 == 0 {
            items.push(h.at(5_000, joined(*room, me)));
        }
    }
    apply(&*rm, &items).await;

    let names_of = |text: &str, limit: i64| {
        let rm = rm.clone();
        let pattern = contains(text);
        async move {
            rm.directory(&pattern, me, limit)
                .await
                .expect("directory")
                .into_iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names_of("%", 10).await, vec!["50% off"]);
    assert_eq!(names_of("_", 10).await, vec!["50_off"]);
    assert_eq!(names_of(r"\", 10).await, vec![r"back\slash"]);
    assert_eq!(names_of("0 o", 10).await, vec!["5000 off"]);
    assert_eq!(
        names_of("gEnEr", 10).await,
        vec!["generally", "GENERAL", "general-chat", "General"]
    );
    assert_eq!(names_of("GENERAL-", 10).await, vec!["general-chat"]);
    assert!(names_of("secret", 10).await.is_empty(), "private");
    assert!(names_of("old", 10).await.is_empty(), "archived");
    assert_eq!(names_of("gEnEr", 2).await, vec!["generally", "GENERAL"]);

    let general = rm
        .directory(&contains("General"), me, 10)
        .await
        .expect("directory");
    let row = general
        .iter()
        .find(|d| d.channel_id == channel_of["General"])
        .expect("General is listed");
    assert_eq!(
        (row.created_at, row.member_count, row.is_member),
        (at(50), 2, true)
    );
    assert!(
        general
            .iter()
            .filter(|d| d.name != "General")
            .all(|d| !d.is_member && d.member_count == 1)
    );

    // Newest first, ties by id descending, at most the limit.
    let mut expected: Vec<(i64, Uuid, usize)> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| ((i / 3) as i64, *r, i))
        .collect();
    expected.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    let listed = rm
        .directory(&contains("room "), me, 100)
        .await
        .expect("directory");
    assert_eq!(
        listed.iter().map(|d| d.channel_id).collect::<Vec<_>>(),
        expected[..100].iter().map(|e| e.1).collect::<Vec<_>>()
    );
    for (d, (_, _, i)) in listed.iter().zip(&expected) {
        assert_eq!(d.is_member, i % 5 == 0, "{}", d.name);
        assert_eq!(d.member_count, if i % 5 == 0 { 2 } else { 1 }, "{}", d.name);
    }
    let everything = rm.directory("%%", me, 1_000).await.expect("directory");
    assert_eq!(everything.len(), names.len() + rooms.len());
}

async fn notifications_go_to_unmuted_members_but_the_sender(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let owner = Uuid::new_v4();
    let channel = Uuid::new_v4();
    let users = ids(300);
    let mut items = vec![h.next(created(channel, owner, "loud", ChannelKind::Public))];
    items.extend(users.iter().map(|u| h.next(joined(channel, *u))));
    items.extend(users[..40].iter().map(|u| h.next(muted(channel, *u, true))));
    items.push(h.next(muted(channel, users[0], false)));
    // A rejoin starts unmuted.
    items.push(h.next(left(channel, users[1])));
    items.push(h.next(joined(channel, users[1])));
    items.push(h.next(left(channel, users[299])));
    apply(&*rm, &items).await;

    let mut expected: BTreeSet<Uuid> = users[40..299].iter().copied().collect();
    expected.extend([owner, users[0], users[1]]);
    let sender = users[50];
    expected.remove(&sender);
    let got: BTreeSet<Uuid> = rm
        .unmuted_members_except(channel, sender)
        .await
        .expect("recipients")
        .into_iter()
        .collect();
    assert_eq!(got, expected);
    let got: Vec<Uuid> = rm
        .unmuted_members_except(channel, Uuid::new_v4())
        .await
        .expect("recipients");
    assert_eq!(got.len(), expected.len() + 1);
    assert!(
        rm.unmuted_members_except(Uuid::new_v4(), owner)
            .await
            .expect("recipients")
            .is_empty()
    );
}

async fn stream_positions_never_move_down(rm: Arc<dyn ReadModel>) {
    let streams: Vec<String> = (0..200).map(|i| format!("channel-{i}")).collect();
    let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
    let locked = tx.lock_positions(&streams).await.expect("lock");
    assert_eq!(
        locked,
        streams
            .iter()
            .map(|s| (s.clone(), 0))
            .collect::<HashMap<_, _>>()
    );
    let moved: Vec<(String, i64)> = streams[..100]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), 10 + i as i64))
        .collect();
    tx.save_positions(&moved).await.expect("save");
    tx.commit().await.expect("commit");

    let read = rm
        .stream_positions(LIVE_SCHEMA, &streams)
        .await
        .expect("positions");
    let expected: HashMap<String, u64> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), if i < 100 { 10 + i as u64 } else { 0 }))
        .collect();
    assert_eq!(read, expected, "locked streams get a version-0 row");

    // Down is ignored, up is taken, a new stream appears.
    let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
    let locked = tx.lock_positions(&streams[..3]).await.expect("lock");
    assert_eq!(locked[&streams[0]], 10);
    tx.save_positions(&[
        (streams[0].clone(), 3),
        (streams[1].clone(), 50),
        (streams[150].clone(), 7),
        ("user-new".into(), 2),
    ])
    .await
    .expect("save");
    tx.commit().await.expect("commit");
    let asked = vec![
        streams[0].clone(),
        streams[1].clone(),
        streams[150].clone(),
        "user-new".to_owned(),
        "never".to_owned(),
    ];
    let read = rm
        .stream_positions(LIVE_SCHEMA, &asked)
        .await
        .expect("positions");
    assert_eq!(
        read,
        HashMap::from([
            (streams[0].clone(), 10),
            (streams[1].clone(), 50),
            (streams[150].clone(), 7),
            ("user-new".to_owned(), 2),
        ])
    );
    assert!(
        rm.stream_positions(LIVE_SCHEMA, &[])
            .await
            .expect("positions")
            .is_empty()
    );
}

async fn the_checkpoint_never_moves_back(rm: Arc<dyn ReadModel>) {
    let cursor = |transaction_id, global_position| Cursor {
        transaction_id,
        global_position,
    };
    let save = |c: Option<Cursor>, ms: i64| {
        let rm = rm.clone();
        async move {
            let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
            tx.save_checkpoint("live", c, at(ms)).await.expect("save");
            tx.commit().await.expect("commit");
            rm.checkpoint("live").await.expect("checkpoint")
        }
    };
    assert_eq!(rm.checkpoint("live").await.expect("checkpoint"), None);
    assert_eq!(save(Some(cursor(50, 100)), 1).await, Some(cursor(50, 100)));
    // Commit order, not position: a later transaction with a lower position moves it.
    assert_eq!(save(Some(cursor(60, 90)), 2).await, Some(cursor(60, 90)));
    assert_eq!(save(Some(cursor(60, 95)), 3).await, Some(cursor(60, 95)));
    assert_eq!(save(Some(cursor(60, 94)), 4).await, Some(cursor(60, 95)));
    assert_eq!(save(Some(cursor(55, 500)), 5).await, Some(cursor(60, 95)));
    assert_eq!(save(None, 6).await, Some(cursor(60, 95)));
    assert_eq!(
        save(Some(cursor(1 << 40, 7)), 7).await,
        Some(cursor(1 << 40, 7))
    );
    // A projection seen for the first time with no cursor starts at the start.
    let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
    tx.save_checkpoint("other", None, at(8))
        .await
        .expect("save");
    tx.commit().await.expect("commit");
    assert_eq!(
        rm.checkpoint("other").await.expect("checkpoint"),
        Some(Cursor::START)
    );
    assert_eq!(
        rm.checkpoint("live").await.expect("checkpoint"),
        Some(cursor(1 << 40, 7))
    );
}

/// What the port shows of one channel and its people.
async fn snapshot(rm: &dyn ReadModel, channel: Uuid, people: &[Uuid]) -> String {
    let mut seen = String::new();
    for user in people {
        seen += &format!(
            "{:?}\n",
            rm.channel_for(channel, *user).await.expect("channel_for")
        );
        seen += &format!(
            "{:?}\n",
            rm.channels_of(*user, 1_000).await.expect("channels_of")
        );
    }
    seen += &format!("{:?}\n", rm.members(channel, 1_000).await.expect("members"));
    seen += &format!(
        "{:?}\n",
        rm.messages_after(channel, 0, 1_000)
            .await
            .expect("messages")
    );
    seen += &format!(
        "{:?}\n",
        rm.directory("%", people[0], 100).await.expect("directory")
    );
    seen
}

async fn a_dropped_transaction_leaves_nothing(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let (owner, member) = (Uuid::new_v4(), Uuid::new_v4());
    let channel = Uuid::new_v4();
    apply(
        &*rm,
        &[h.next(created(channel, owner, "kept", ChannelKind::Public))],
    )
    .await;
    let before = snapshot(&*rm, channel, &[owner, member]).await;
    let positions_before = rm
        .stream_positions(
            LIVE_SCHEMA,
            &[stream_of(&joined(channel, member)), "fresh".into()],
        )
        .await
        .expect("positions");
    let checkpoint_before = rm.checkpoint("live").await.expect("checkpoint");

    let mut items = vec![
        h.next(registered(member, "mo")),
        h.next(joined(channel, member)),
    ];
    items.extend((1..=300).map(|seq| h.next(sent(channel, seq, member))));
    items.push(h.next(archived(channel, owner)));
    {
        let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
        tx.lock_positions(&["fresh".to_owned(), items[1].0.stream_id.clone()])
            .await
            .expect("lock");
        for (recorded, event) in &items {
            tx.write(recorded, event).await.expect("write");
        }
        tx.save_positions(&[("fresh".into(), 9), (items[1].0.stream_id.clone(), 400)])
            .await
            .expect("save");
        tx.save_checkpoint(
            "live",
            Some(Cursor {
                transaction_id: 999,
                global_position: 999,
            }),
            at(999),
        )
        .await
        .expect("checkpoint");
        // Readers neither see the open transaction nor wait for it.
        let seen = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            snapshot(&*rm, channel, &[owner, member]),
        )
        .await
        .expect("reads do not wait for the writer");
        assert_eq!(seen, before);
        // Dropped here, uncommitted.
    }
    assert_eq!(snapshot(&*rm, channel, &[owner, member]).await, before);
    assert_eq!(
        rm.stream_positions(
            LIVE_SCHEMA,
            &[stream_of(&joined(channel, member)), "fresh".into()]
        )
        .await
        .expect("positions"),
        positions_before
    );
    assert_eq!(
        rm.checkpoint("live").await.expect("checkpoint"),
        checkpoint_before
    );
    // The store is free for the next transaction.
    apply(&*rm, &items).await;
    assert_eq!(rm.last_seq(channel).await.expect("last_seq"), 300);
}

async fn re_applied_writes_change_nothing(rm: Arc<dyn ReadModel>) {
    let mut h = History::default();
    let [owner, alice, bob] = [0; 3].map(|_| Uuid::new_v4());
    let channel = Uuid::new_v4();
    let mut items = vec![
        h.next(registered(owner, "olga")),
        h.next(registered(alice, "alice")),
        h.next(created(channel, owner, "again", ChannelKind::Public)),
        h.next(joined(channel, alice)),
        h.next(joined(channel, bob)),
    ];
    items.extend(
        (1..=50).map(|seq| h.next(sent(channel, seq, if seq % 2 == 0 { alice } else { owner }))),
    );
    items.extend([
        h.next(edited(channel, 3, owner, "three")),
        h.next(deleted(channel, 4, alice)),
        h.next(read_up_to(channel, alice, 40)),
        h.next(muted(channel, bob, true)),
        h.next(banned(channel, bob, owner)),
        h.next(role_changed(channel, alice, Role::Admin, owner)),
    ]);
    apply(&*rm, &items).await;
    let people = [owner, alice, bob];
    let before = snapshot(&*rm, channel, &people).await;
    let positions = rm
        .stream_positions(LIVE_SCHEMA, &[items[2].0.stream_id.clone()])
        .await
        .expect("positions");
    assert_eq!(positions[&items[2].0.stream_id], 59);

    // Redelivered, whole or in part: the positions make them duplicates.
    apply(&*rm, &items).await;
    apply(&*rm, &items[20..40]).await;
    assert_eq!(snapshot(&*rm, channel, &people).await, before);

    // Written again without the positions' guard, the writes that are
    // idempotent by themselves leave the same rows; older ones lose.
    let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
    let again = [
        h.next(registered(owner, "someone else")),
        h.next(Event::MessageSent(domain::MessageSent {
            channel_id: ChannelId(channel),
            message_id: MessageId(message_id(channel, 10)),
            seq: 10,
            sender_id: UserId(bob),
            content: "replaced".into(),
            message_type: "text".into(),
            client_msg_id: None,
        })),
        h.next(sent(channel, 7, owner)),
        h.next(deleted(channel, 4, alice)),
        h.next(edited(channel, 4, alice, "back from the dead")),
        h.next(read_up_to(channel, alice, 12)),
        h.next(banned(channel, bob, owner)),
        h.next(unbanned(channel, Uuid::new_v4(), owner)),
    ];
    for (recorded, event) in &again {
        tx.write(recorded, event).await.expect("write");
    }
    tx.commit().await.expect("commit");
    let after = snapshot(&*rm, channel, &people).await;
    assert_eq!(after, before);
}

// ---- SQLite only ----

mod sqlite_only {
    use super::*;

    async fn open() -> (SqliteReadModel, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let rm = SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("open");
        (rm, dir)
    }

    #[tokio::test]
    async fn another_schema_is_a_file_beside_the_live_one() {
        let (rm, dir) = open().await;
        assert!(
            rm.stream_positions("rebuild_1", &["s".into()])
                .await
                .expect("positions")
                .is_empty(),
            "a schema never written has no file and no positions"
        );
        assert!(!dir.path().join("read-rebuild_1.db").exists());
        let mut h = History::default();
        let (owner, channel) = (Uuid::new_v4(), Uuid::new_v4());
        let item = h.next(created(channel, owner, "rebuilt", ChannelKind::Public));
        let mut tx = rm.begin("rebuild_1").await.expect("begin");
        tx.lock_positions(std::slice::from_ref(&item.0.stream_id))
            .await
            .expect("lock");
        tx.write(&item.0, &item.1).await.expect("write");
        tx.save_positions(&[(item.0.stream_id.clone(), 1)])
            .await
            .expect("save");
        tx.commit().await.expect("commit");
        assert!(dir.path().join("read-rebuild_1.db").exists());
        assert_eq!(
            rm.stream_positions("rebuild_1", std::slice::from_ref(&item.0.stream_id))
                .await
                .expect("positions"),
            HashMap::from([(item.0.stream_id.clone(), 1)])
        );
        assert!(
            rm.stream_positions(LIVE_SCHEMA, std::slice::from_ref(&item.0.stream_id))
                .await
                .expect("positions")
                .is_empty()
        );
        assert_eq!(rm.channel_for(channel, owner).await.expect("live"), None);
        assert!(rm.begin("bad name").await.is_err());
        assert!(rm.stream_positions("../x", &[]).await.is_err());
        rm.close().await;

        // Opened again, the rebuilt file is found and read.
        let again = SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("reopen");
        assert_eq!(
            again
                .stream_positions("rebuild_1", std::slice::from_ref(&item.0.stream_id))
                .await
                .expect("positions")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn dead_letters_are_kept_listed_removed_and_pass_the_checkpoint() {
        let (rm, _dir) = open().await;
        let events = ids(3);
        let letters: Vec<RecordedEvent> = events
            .iter()
            .enumerate()
            .map(|(i, event_id)| RecordedEvent {
                event_id: *event_id,
                event_type: "MessageSent".into(),
                schema_version: 1,
                stream_id: "channel-x".into(),
                stream_version: i as u64 + 1,
                global_position: 10 + i as i64,
                transaction_id: 10 + i as u64,
                recorded_at: at(i as i64),
                data: serde_json::json!({ "n": i }),
                metadata: serde_json::json!({}),
            })
            .collect();
        for letter in &letters {
            rm.dead_letter(letter, "cannot heal")
                .await
                .expect("dead letter");
            assert_eq!(
                rm.checkpoint(read_model::LIVE_PROJECTION)
                    .await
                    .expect("checkpoint"),
                Some(letter.cursor()),
                "the projector steps past it"
            );
        }
        // Again after a crash before the projector moved on: stored once.
        rm.dead_letter(&letters[2], "cannot heal")
            .await
            .expect("again");
        let listed = rm.dead_letters(10).await.expect("list");
        assert_eq!(
            listed.iter().map(|d| d.event_id).collect::<Vec<_>>(),
            events
        );
        let body: serde_json::Value =
            serde_json::from_str(&listed[1].body).expect("the envelope as JSON");
        assert_eq!(
            (
                listed[1].stream_version,
                &body["data"],
                listed[1].reason.as_str()
            ),
            (2, &serde_json::json!({ "n": 1 }), "cannot heal")
        );
        assert_eq!(rm.dead_letters(2).await.expect("list").len(), 2);
        assert!(rm.remove_dead_letter(listed[0].id).await.expect("remove"));
        assert!(!rm.remove_dead_letter(listed[0].id).await.expect("remove"));
        assert_eq!(
            rm.dead_letters(10)
                .await
                .expect("list")
                .iter()
                .map(|d| d.event_id)
                .collect::<Vec<_>>(),
            events[1..]
        );
    }

    #[tokio::test]
    async fn every_checkpoint_is_listed() {
        let (rm, _dir) = open().await;
        let mut tx = rm.begin(LIVE_SCHEMA).await.expect("begin");
        tx.save_checkpoint(
            "live",
            Some(Cursor {
                transaction_id: 4,
                global_position: 9,
            }),
            at(5),
        )
        .await
        .expect("save");
        tx.save_checkpoint("analyst", None, at(3))
            .await
            .expect("save");
        tx.commit().await.expect("commit");
        let rows = rm.checkpoints().await.expect("checkpoints");
        let seen: Vec<(&str, Cursor, DateTime<Utc>)> = rows
            .iter()
            .map(|r| (r.projection.as_str(), r.cursor, r.recorded_at))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("analyst", Cursor::START, at(3)),
                (
                    "live",
                    Cursor {
                        transaction_id: 4,
                        global_position: 9
                    },
                    at(5)
                ),
            ]
        );
        let now = Utc::now();
        assert!(
            rows.iter()
                .all(|r| r.applied_at <= now && r.applied_at > now - Duration::minutes(1))
        );
    }
}
