//! A random-command simulator for the property tests: one channel, a pool of five
//! users, commands applied with `Channel::decide`, accepted events folded with
//! `Channel::evolve` and appended to a log, message facts kept on the side.

use super::*;
use domain::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The users commands are drawn from; `POOL[0]` creates the channel.
pub const POOL: [UserId; 5] = [OWNER, ADMIN, ALICE, BOB, CAROL];

/// A fixed seed and no failure files: every run explores the same cases.
pub fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x00C0_FFEE),
        ..Config::default()
    }
}

pub fn policy() -> MessagePolicy {
    MessagePolicy::new(4000, ["darn"])
}

const CONTENTS: usize = 10;
/// `content(i)` is accepted for `i < VALID_CONTENTS` and refused above.
const VALID_CONTENTS: usize = 6;

/// Contents to send or edit with: valid ones and every way to be refused.
pub fn content(i: usize) -> String {
    match i % CONTENTS {
        0 | 1 => "hello".into(),
        2 => "ok 한 é".into(),
        3 => "darned good".into(),
        4 => "é".repeat(4000),
        5 => " hi ".into(),
        6 => String::new(),
        7 => " \t ".into(),
        8 => "Darn it".into(),
        _ => "한".repeat(4001),
    }
}

pub fn message_type(i: usize) -> &'static str {
    ["text", "text", "image", "file", "video"][i % 5]
}

/// A user, resolved against the state at the time of the step.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    /// `POOL[i]`, member or not.
    Pool(usize),
    /// The i-th current member (modulo their number); `POOL[i]` if there is none.
    Member(usize),
    /// The i-th banned user (modulo their number); `POOL[i]` if there is none.
    Banned(usize),
}

impl Who {
    fn resolve(self, state: Option<&Channel>) -> UserId {
        let pool = |i: usize| POOL[i % POOL.len()];
        let nth = |i: usize, users: Vec<UserId>| {
            if users.is_empty() {
                pool(i)
            } else {
                users[i % users.len()]
            }
        };
        match (self, state) {
            (Who::Pool(i), _) | (Who::Member(i) | Who::Banned(i), None) => pool(i),
            (Who::Member(i), Some(c)) => nth(i, c.members.keys().copied().collect()),
            (Who::Banned(i), Some(c)) => nth(i, c.banned.iter().copied().collect()),
        }
    }
}

/// Which message an edit or delete refers to.
#[derive(Debug, Clone, Copy)]
pub enum MsgRef {
    /// A message sent earlier (by index, modulo how many there are); None if there is none.
    Known(usize),
    /// A message id the channel never saw: the caller's lookup finds nothing.
    Unknown,
    /// A real message's facts but claiming another channel.
    OtherChannel(usize),
}

/// Which seq a mark-read names, relative to the channel's last seq.
#[derive(Debug, Clone, Copy)]
pub enum SeqRef {
    Zero,
    Half,
    Last,
    /// `last_seq + 1 + n`: out of range.
    Beyond(u64),
}

#[derive(Debug, Clone)]
pub enum Op {
    Create,
    Join,
    Invite(Who),
    Leave,
    Kick(Who),
    Ban(Who),
    Unban(Who),
    ChangeRole(Who, Role),
    Archive,
    SetMuted(bool),
    Send(usize, usize),
    Edit(MsgRef, usize),
    Delete(MsgRef),
    MarkRead(SeqRef),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub actor: Who,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: ChannelKind,
    pub max_members: Option<u32>,
    /// Users (indices into `POOL`) brought in right after creation: they join a
    /// public channel or the owner invites them into a private one.
    pub joiners: Vec<usize>,
    /// Whether the owner then makes `POOL[1]` an admin.
    pub promote_admin: bool,
    pub steps: Vec<Step>,
}

fn pool() -> impl Strategy<Value = Who> {
    (0..POOL.len()).prop_map(Who::Pool)
}

fn member() -> impl Strategy<Value = Who> {
    any::<usize>().prop_map(Who::Member)
}

/// Mostly a current member, sometimes anyone (members, outsiders, banned users).
fn actor() -> impl Strategy<Value = Who> {
    prop_oneof![3 => member(), 1 => pool()]
}

/// The target of a kick, ban or role change.
fn target() -> impl Strategy<Value = Who> {
    prop_oneof![1 => member(), 1 => pool()]
}

fn banned() -> impl Strategy<Value = Who> {
    prop_oneof![3 => any::<usize>().prop_map(Who::Banned), 1 => pool()]
}

/// A content index, valid three times out of four.
fn valid_mostly() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..VALID_CONTENTS, 1 => VALID_CONTENTS..CONTENTS]
}

fn msg_ref() -> impl Strategy<Value = MsgRef> {
    prop_oneof![
        6 => any::<usize>().prop_map(MsgRef::Known),
        1 => Just(MsgRef::Unknown),
        1 => any::<usize>().prop_map(MsgRef::OtherChannel),
    ]
}

fn seq_ref() -> impl Strategy<Value = SeqRef> {
    prop_oneof![
        Just(SeqRef::Zero),
        Just(SeqRef::Half),
        Just(SeqRef::Last),
        (0..3u64).prop_map(SeqRef::Beyond),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Member), Just(Role::Admin), Just(Role::Owner)]
}

/// What a user does, weighted so that histories grow long (about one command in
/// three is accepted) while every refusal still comes up.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Create),
        6 => pool().prop_map(Op::Invite),
        2 => Just(Op::Leave),
        4 => target().prop_map(Op::Kick),
        4 => target().prop_map(Op::Ban),
        4 => banned().prop_map(Op::Unban),
        8 => (target(), role()).prop_map(|(u, r)| Op::ChangeRole(u, r)),
        1 => Just(Op::Archive),
        4 => any::<bool>().prop_map(Op::SetMuted),
        28 => (valid_mostly(), 0..5usize).prop_map(|(c, t)| Op::Send(c, t)),
        8 => (msg_ref(), valid_mostly()).prop_map(|(m, c)| Op::Edit(m, c)),
        8 => msg_ref().prop_map(Op::Delete),
        6 => seq_ref().prop_map(Op::MarkRead),
    ]
}

/// One step: anyone from the pool joining, or mostly a member doing something.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => pool().prop_map(|actor| Step { actor, op: Op::Join }),
        6 => (actor(), op()).prop_map(|(actor, op)| Step { actor, op }),
    ]
}

pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![3 => Just(ChannelKind::Public), 1 => Just(ChannelKind::Private)],
        prop_oneof![2 => Just(None), 1 => (1u32..=5).prop_map(Some)],
        proptest::sample::subsequence(vec![1, 2, 3, 4], 0..=4),
        any::<bool>(),
        proptest::collection::vec(step(), 0..=60),
    )
        .prop_map(
            |(kind, max_members, joiners, promote_admin, steps)| Scenario {
                kind,
                max_members,
                joiners,
                promote_admin,
                steps,
            },
        )
}

/// What one run produced.
#[derive(Debug, Default)]
pub struct Trace {
    /// Every accepted event, in order.
    pub log: Vec<Event>,
    /// The incrementally built state at the end.
    pub state: Option<Channel>,
    /// After each command that emitted events: the log length and the state then.
    pub snapshots: Vec<(usize, Channel)>,
    /// Commands whose decision changed its input or was not repeatable.
    pub impure: Vec<String>,
    /// Message facts folded with `MessageFacts::evolve`, by id.
    pub facts: BTreeMap<MessageId, MessageFacts>,
    /// Message ids in the order they were first sent.
    pub sent_order: Vec<MessageId>,
    /// Refused commands, counted by error code.
    pub refusals: BTreeMap<&'static str, usize>,
    /// Commands accepted with events.
    pub accepted: usize,
    /// Commands accepted without events (already satisfied).
    pub no_ops: usize,
}

impl Trace {
    fn message(&self, r: MsgRef) -> Option<MessageFacts> {
        let order = &self.sent_order;
        let nth =
            |i: usize| (!order.is_empty()).then(|| self.facts[&order[i % order.len()]].clone());
        match r {
            MsgRef::Known(i) => nth(i),
            MsgRef::Unknown => None,
            MsgRef::OtherChannel(i) => Some(match nth(i) {
                Some(m) => MessageFacts {
                    channel_id: OTHER_CH,
                    ..m
                },
                None => MessageFacts {
                    channel_id: OTHER_CH,
                    message_id: MessageId(Uuid::from_u128(0xDEAD)),
                    seq: 1,
                    sender_id: OWNER,
                    deleted: false,
                },
            }),
        }
    }

    fn command(&self, scenario: &Scenario, i: usize, op: &Op) -> ChannelCommand {
        let state = self.state.as_ref();
        let last_seq = state.map_or(0, |c| c.last_seq);
        match op {
            Op::Create => ChannelCommand::Create {
                channel_id: CH,
                name: "general".into(),
                kind: scenario.kind,
                max_members: scenario.max_members,
            },
            Op::Join => ChannelCommand::Join,
            Op::Invite(u) => ChannelCommand::Invite {
                user_id: u.resolve(state),
            },
            Op::Leave => ChannelCommand::Leave,
            Op::Kick(u) => ChannelCommand::Kick {
                user_id: u.resolve(state),
            },
            Op::Ban(u) => ChannelCommand::Ban {
                user_id: u.resolve(state),
            },
            Op::Unban(u) => ChannelCommand::Unban {
                user_id: u.resolve(state),
            },
            Op::ChangeRole(u, role) => ChannelCommand::ChangeRole {
                user_id: u.resolve(state),
                role: *role,
            },
            Op::Archive => ChannelCommand::Archive,
            Op::SetMuted(muted) => ChannelCommand::SetMuted { muted: *muted },
            Op::Send(c, t) => ChannelCommand::SendMessage {
                message_id: MessageId(Uuid::from_u128(0x1_0000 + i as u128)),
                content: content(*c),
                message_type: message_type(*t).into(),
                client_msg_id: Some(format!("client-{i}")),
            },
            Op::Edit(r, c) => ChannelCommand::EditMessage {
                message: self.message(*r),
                content: content(*c),
            },
            Op::Delete(r) => ChannelCommand::DeleteMessage {
                message: self.message(*r),
            },
            Op::MarkRead(s) => ChannelCommand::MarkRead {
                seq: match s {
                    SeqRef::Zero => 0,
                    SeqRef::Half => last_seq / 2,
                    SeqRef::Last => last_seq,
                    SeqRef::Beyond(n) => last_seq + 1 + n,
                },
            },
        }
    }

    fn apply(&mut self, events: Vec<Event>) {
        for event in events {
            self.state = Channel::evolve(self.state.take(), &event);
            let message_id = match &event {
                Event::MessageSent(e) => Some(e.message_id),
                Event::MessageEdited(e) => Some(e.message_id),
                Event::MessageDeleted(e) => Some(e.message_id),
                _ => None,
            };
            if let Some(id) = message_id {
                let current = self.facts.remove(&id);
                let known = current.is_some();
                if let Some(facts) = MessageFacts::evolve(current, &event) {
                    if !known {
                        self.sent_order.push(id);
                    }
                    self.facts.insert(id, facts);
                }
            }
            self.log.push(event);
        }
        let state = self
            .state
            .clone()
            .expect("a channel exists once it has events");
        self.snapshots.push((self.log.len(), state));
    }
}

/// Runs the scenario: create, the prelude, then every step.
pub fn run(scenario: &Scenario) -> Trace {
    let policy = policy();
    let mut trace = Trace::default();
    let owner = Who::Pool(0);
    let mut prelude = vec![Step {
        actor: owner,
        op: Op::Create,
    }];
    for &user in &scenario.joiners {
        prelude.push(match scenario.kind {
            ChannelKind::Public => Step {
                actor: Who::Pool(user),
                op: Op::Join,
            },
            ChannelKind::Private => Step {
                actor: owner,
                op: Op::Invite(Who::Pool(user)),
            },
        });
    }
    if scenario.promote_admin {
        prelude.push(Step {
            actor: owner,
            op: Op::ChangeRole(Who::Pool(1), Role::Admin),
        });
    }

    for (i, step) in prelude.iter().chain(&scenario.steps).enumerate() {
        let actor = step.actor.resolve(trace.state.as_ref());
        let command = trace.command(scenario, i, &step.op);

        let before = trace.state.clone();
        let result = Channel::decide(trace.state.as_ref(), actor, command.clone(), &policy);
        if trace.state != before {
            trace
                .impure
                .push(format!("step {i}: {command:?} changed the state"));
        }
        let again = Channel::decide(before.as_ref(), actor, command.clone(), &policy);
        if again != result {
            trace.impure.push(format!(
                "step {i}: {command:?} decided {result:?} then {again:?}"
            ));
        }

        match result {
            Err(e) => *trace.refusals.entry(e.code()).or_default() += 1,
            Ok(events) if events.is_empty() => trace.no_ops += 1,
            Ok(events) => {
                trace.accepted += 1;
                trace.apply(events);
            }
        }
    }
    trace
}

pub fn owner_count(channel: &Channel) -> usize {
    channel
        .members
        .values()
        .filter(|m| m.role == Role::Owner)
        .count()
}
