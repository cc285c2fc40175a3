//! Property tests over random command sequences against one channel: replay,
//! stored-form round trips, gap-free seqs, pure refusals and membership invariants.

mod common;

use common::sim::{self, Trace};
use common::*;
use domain::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::{BTreeMap, BTreeSet};

proptest! {
    #![proptest_config(sim::config())]

    /// (a) Replaying the log from None rebuilds exactly the incremental state,
    /// at the end and after every accepted command.
    #[test]
    fn replaying_the_log_reproduces_the_state(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        prop_assert_eq!(fold_channel(&trace.log), trace.state.clone());
        for (len, state) in &trace.snapshots {
            prop_assert_eq!(fold_channel(&trace.log[..*len]), Some(state.clone()));
        }
    }

    /// (b) Every event survives its stored form, and so does the replay.
    #[test]
    fn every_event_survives_the_stored_form(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        let mut decoded = Vec::with_capacity(trace.log.len());
        for event in &trace.log {
            let stored = event.to_stored();
            prop_assert_eq!(stored.event_type.as_str(), event.event_type());
            let back = Event::from_stored(&stored);
            prop_assert!(back.is_ok(), "{:?} did not decode: {:?}", stored, back);
            let back = back.expect("checked");
            prop_assert_eq!(&back, event);
            decoded.push(back);
        }
        prop_assert_eq!(fold_channel(&decoded), trace.state);
    }

    /// (c) MessageSent seqs are exactly 1..=n in log order, and last_seq is n.
    #[test]
    fn message_seqs_are_gap_free(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        let seqs: Vec<u64> = trace
            .log
            .iter()
            .filter_map(|e| match e { Event::MessageSent(m) => Some(m.seq), _ => None })
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        prop_assert_eq!(&seqs, &expected);
        let state = trace.state.expect("the channel was created");
        prop_assert_eq!(state.last_seq, seqs.len() as u64);
        for (_, member) in &state.members {
            prop_assert!(member.read_seq <= state.last_seq, "read_seq beyond last_seq: {:?}", state);
        }
    }

    /// (d) Deciding is pure: it never changes the state it is given, and the same
    /// command on the same state always gets the same answer.
    #[test]
    fn decide_is_pure_and_refusals_change_nothing(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        prop_assert!(trace.impure.is_empty(), "{:?}", trace.impure);
    }

    /// (e) Nobody is ever both a member and banned; the member limit is never exceeded.
    #[test]
    fn no_member_is_ever_banned(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        for (_, state) in &trace.snapshots {
            let both: Vec<_> = state.members.keys().filter(|u| state.banned.contains(u)).collect();
            prop_assert!(both.is_empty(), "members also banned: {:?} in {:?}", both, state);
            if let Some(max) = state.max_members {
                prop_assert!(state.members.len() <= max as usize, "over the limit: {:?}", state);
            }
        }
    }

    /// (f) A channel always has exactly one owner, who is a member.
    #[test]
    fn exactly_one_owner_always(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        for (_, state) in &trace.snapshots {
            prop_assert_eq!(sim::owner_count(state), 1, "not exactly one owner: {:?}", state);
        }
    }

    /// The side map of MessageFacts agrees with the log: one fact per sent
    /// message, deleted iff a MessageDeleted was logged, deleted at most once,
    /// never edited after deletion, edits and deletes keep the seq and sender.
    #[test]
    fn message_facts_agree_with_the_log(scenario in sim::scenario()) {
        let trace = sim::run(&scenario);
        check_message_history(&trace)?;
    }
}

fn check_message_history(trace: &Trace) -> Result<(), TestCaseError> {
    let mut sent: BTreeMap<MessageId, (u64, UserId)> = BTreeMap::new();
    let mut deleted: BTreeSet<MessageId> = BTreeSet::new();
    for event in &trace.log {
        match event {
            Event::MessageSent(e) => {
                prop_assert!(
                    sent.insert(e.message_id, (e.seq, e.sender_id)).is_none(),
                    "sent twice: {:?}",
                    e
                );
            }
            Event::MessageEdited(e) => {
                prop_assert_eq!(sent.get(&e.message_id), Some(&(e.seq, e.sender_id)));
                prop_assert_eq!(e.edited_by, e.sender_id);
                prop_assert!(
                    !deleted.contains(&e.message_id),
                    "edited after delete: {:?}",
                    e
                );
            }
            Event::MessageDeleted(e) => {
                prop_assert_eq!(sent.get(&e.message_id), Some(&(e.seq, e.sender_id)));
                prop_assert!(deleted.insert(e.message_id), "deleted twice: {:?}", e);
            }
            _ => {}
        }
    }
    prop_assert_eq!(trace.facts.len(), sent.len());
    for (id, facts) in &trace.facts {
        prop_assert_eq!(facts.channel_id, CH);
        prop_assert_eq!(facts.message_id, *id);
        prop_assert_eq!(sent.get(id), Some(&(facts.seq, facts.sender_id)));
        prop_assert_eq!(facts.deleted, deleted.contains(id));
    }
    Ok(())
}

/// Guards the properties above against passing vacuously: over the same cases the
/// properties explore, the generator must produce every channel event type, hit
/// every channel refusal and no-op, and build long histories.
#[test]
fn the_generator_exercises_every_rule() {
    let mut runner = TestRunner::new(sim::config());
    let strategy = sim::scenario();
    let mut event_types = BTreeSet::new();
    let mut refusals = BTreeSet::new();
    let (mut no_ops, mut longest_log, mut max_seq) = (0, 0, 0);
    for _ in 0..256 {
        let scenario = strategy
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        let trace = sim::run(&scenario);
        event_types.extend(trace.log.iter().map(Event::event_type));
        refusals.extend(trace.refusals.keys().copied());
        no_ops += trace.no_ops;
        longest_log = longest_log.max(trace.log.len());
        max_seq = max_seq.max(trace.state.map_or(0, |s| s.last_seq));
    }
    let all_channel_events = BTreeSet::from([
        "ChannelCreated",
        "MemberJoined",
        "MemberInvited",
        "MemberLeft",
        "MemberKicked",
        "MemberBanned",
        "MemberUnbanned",
        "MemberRoleChanged",
        "ChannelArchived",
        "ChannelMuted",
        "ChannelUnmuted",
        "MessageSent",
        "MessageEdited",
        "MessageDeleted",
        "ReadUpTo",
    ]);
    assert_eq!(event_types, all_channel_events);
    let expected_refusals = BTreeSet::from([
        "channel_exists",
        "message_not_found",
        "not_a_member",
        "target_not_a_member",
        "banned",
        "target_banned",
        "private_channel",
        "insufficient_role",
        "outranked",
        "not_sender",
        "channel_archived",
        "channel_full",
        "owner_cannot_leave",
        "message_deleted",
        "banned_word",
        "seq_out_of_range",
        "validation_failed",
    ]);
    let missing: Vec<_> = expected_refusals.difference(&refusals).collect();
    assert!(missing.is_empty(), "refusals never produced: {missing:?}");
    assert!(no_ops > 0, "no command was ever already satisfied");
    assert!(longest_log >= 25, "histories stay short: {longest_log}");
    assert!(max_seq >= 10, "few messages are ever sent: {max_seq}");
}
