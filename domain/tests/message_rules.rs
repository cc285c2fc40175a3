//! Message rules of `Channel::decide` (send, edit, delete, mark read), the
//! `MessagePolicy` checks behind them, and `MessageFacts::evolve`.

mod common;

use common::*;
use domain::*;

fn darn_policy() -> MessagePolicy {
    MessagePolicy::new(4000, ["darn"])
}

fn send_typed(n: u128, content: &str, message_type: &str) -> ChannelCommand {
    ChannelCommand::SendMessage {
        message_id: msg_id(n),
        content: content.into(),
        message_type: message_type.into(),
        client_msg_id: None,
    }
}

/// `public_channel()` with message 1 (seq 1) by ALICE and message 2 (seq 2) by BOB.
fn with_two_messages() -> Vec<Event> {
    public_channel_and([sent(1, 1, ALICE, "first"), sent(2, 2, BOB, "second")])
}

// ------------------------------------------------------------------ send

#[test]
fn member_sends_a_message_with_the_next_seq() {
    let command = ChannelCommand::SendMessage {
        message_id: msg_id(7),
        content: "hello".into(),
        message_type: "image".into(),
        client_msg_id: Some("c-1".into()),
    };
    let channel = given(public_channel())
        .when(ALICE, command)
        .then([Event::MessageSent(MessageSent {
            channel_id: CH,
            message_id: msg_id(7),
            seq: 1,
            sender_id: ALICE,
            content: "hello".into(),
            message_type: "image".into(),
            client_msg_id: Some("c-1".into()),
        })]);
    assert_eq!(channel.last_seq, 1);
}

#[test]
fn seq_increments_one_two_three_without_gaps() {
    let mut state = fold_channel(&public_channel());
    let policy = MessagePolicy::default();
    for (n, actor) in [(1, ALICE), (2, OWNER), (3, ALICE)] {
        let events =
            Channel::decide(state.as_ref(), actor, send(n, "hi"), &policy).expect("accepted");
        let [Event::MessageSent(e)] = events.as_slice() else {
            panic!("one MessageSent expected: {events:?}")
        };
        assert_eq!(e.seq, n as u64);
        state = events.iter().fold(state, Channel::evolve);
    }
    assert_eq!(state.expect("channel").last_seq, 3);
}

#[test]
fn seq_continues_after_edits_and_deletes() {
    given(public_channel_and([
        sent(1, 1, ALICE, "a"),
        edited(1, 1, ALICE, "b"),
        deleted(1, 1, ALICE, ALICE),
    ]))
    .when(BOB, send(2, "next"))
    .then([sent(2, 2, BOB, "next")]);
}

#[test]
fn non_member_cannot_send() {
    given(public_channel())
        .when(CAROL, send(1, "hi"))
        .then_error(DomainError::NotAMember);
}

#[test]
fn banned_user_cannot_send() {
    given(public_channel_and([banned(ALICE, OWNER)]))
        .when(ALICE, send(1, "hi"))
        .then_error(DomainError::Banned);
}

#[test]
fn empty_or_whitespace_content_is_refused() {
    for content in ["", " ", "\n\t  ", "\u{3000}"] {
        given(public_channel())
            .when(ALICE, send(1, content))
            .then_invalid("content");
    }
}

#[test]
fn content_of_exactly_4000_chars_is_accepted() {
    for unit in ["a", "é", "한"] {
        let content = unit.repeat(4000);
        given(public_channel())
            .when(ALICE, send(1, &content))
            .then([sent(1, 1, ALICE, &content)]);
    }
}

#[test]
fn content_of_4001_chars_is_refused() {
    for unit in ["a", "é", "한"] {
        given(public_channel())
            .when(ALICE, send(1, &unit.repeat(4001)))
            .then_invalid("content");
    }
}

#[test]
fn the_limit_counts_chars_not_bytes() {
    // 2000 chars of 3 bytes each: 6000 bytes, well within 4000 chars.
    let content = "한".repeat(2000);
    assert!(content.len() > 4000);
    given(public_channel())
        .when(ALICE, send(1, &content))
        .then([sent(1, 1, ALICE, &content)]);
}

#[test]
fn the_limit_is_configurable() {
    given(public_channel())
        .with_policy(MessagePolicy::new(5, Vec::<String>::new()))
        .when(ALICE, send(1, "éééééé"))
        .then_invalid("content");
    given(public_channel())
        .with_policy(MessagePolicy::new(5, Vec::<String>::new()))
        .when(ALICE, send(1, "ééééé"))
        .then([sent(1, 1, ALICE, "ééééé")]);
}

#[test]
fn unknown_message_type_is_refused() {
    given(public_channel())
        .when(ALICE, send_typed(1, "hi", "video"))
        .then_invalid("type");
    given(public_channel())
        .when(ALICE, send_typed(1, "hi", "Text"))
        .then_invalid("type");
    given(public_channel())
        .when(ALICE, send_typed(1, "hi", ""))
        .then_invalid("type");
}

#[test]
fn known_message_types_are_accepted() {
    for message_type in ["text", "image", "file"] {
        let result = given(public_channel())
            .when(ALICE, send_typed(1, "hi", message_type))
            .result;
        assert!(
            matches!(&result, Ok(events) if events.len() == 1),
            "{message_type}: {result:?}"
        );
    }
}

#[test]
fn banned_word_is_refused_case_insensitively_as_a_whole_word() {
    for content in ["Darn it", "darn", "oh DARN!", "well,darn.", "x darn-y"] {
        given(public_channel())
            .with_policy(darn_policy())
            .when(ALICE, send(1, content))
            .then_error(DomainError::BannedWord);
    }
}

#[test]
fn words_containing_a_banned_word_are_allowed() {
    for content in ["darned", "I darnit", "undarn", "d a r n"] {
        given(public_channel())
            .with_policy(darn_policy())
            .when(ALICE, send(1, content))
            .then([sent(1, 1, ALICE, content)]);
    }
}

#[test]
fn banned_words_are_normalised_when_configured() {
    given(public_channel())
        .with_policy(MessagePolicy::new(4000, ["  DaRn  ", ""]))
        .when(ALICE, send(1, "darn"))
        .then_error(DomainError::BannedWord);
    // An empty banned word does not ban everything.
    given(public_channel())
        .with_policy(MessagePolicy::new(4000, ["", "   "]))
        .when(ALICE, send(1, "hello, world"))
        .then([sent(1, 1, ALICE, "hello, world")]);
}

#[test]
fn default_policy_bans_no_word() {
    given(public_channel())
        .when(ALICE, send(1, "Darn it"))
        .then([sent(1, 1, ALICE, "Darn it")]);
}

#[test]
fn banned_word_is_checked_on_edit_too() {
    given(with_two_messages())
        .with_policy(darn_policy())
        .when(ALICE, edit(Some(facts(1, 1, ALICE)), "Darn it"))
        .then_error(DomainError::BannedWord);
}

// ------------------------------------------------------------------ edit

#[test]
fn sender_edits_and_the_edit_keeps_the_seq() {
    let channel = given(with_two_messages())
        .when(ALICE, edit(Some(facts(1, 1, ALICE)), "first, fixed"))
        .then([edited(1, 1, ALICE, "first, fixed")]);
    assert_eq!(channel.last_seq, 2, "an edit does not take a seq");
}

#[test]
fn only_the_sender_may_edit() {
    given(with_two_messages())
        .when(BOB, edit(Some(facts(1, 1, ALICE)), "mine now"))
        .then_error(DomainError::NotSender);
    given(with_two_messages())
        .when(OWNER, edit(Some(facts(1, 1, ALICE)), "owner edit"))
        .then_error(DomainError::NotSender);
    given(with_two_messages())
        .when(ADMIN, edit(Some(facts(1, 1, ALICE)), "admin edit"))
        .then_error(DomainError::NotSender);
}

#[test]
fn editing_a_deleted_message_is_refused() {
    let mut message = facts(1, 1, ALICE);
    message.deleted = true;
    given(public_channel_and([
        sent(1, 1, ALICE, "x"),
        deleted(1, 1, ALICE, ALICE),
    ]))
    .when(ALICE, edit(Some(message), "back"))
    .then_error(DomainError::MessageDeleted);
}

#[test]
fn editing_an_unknown_or_foreign_message_is_not_found() {
    given(with_two_messages())
        .when(ALICE, edit(None, "x"))
        .then_error(DomainError::MessageNotFound);
    let mut foreign = facts(1, 1, ALICE);
    foreign.channel_id = OTHER_CH;
    given(with_two_messages())
        .when(ALICE, edit(Some(foreign.clone()), "x"))
        .then_error(DomainError::MessageNotFound);
    foreign.deleted = true;
    given(with_two_messages())
        .when(ALICE, edit(Some(foreign), "x"))
        .then_error(DomainError::MessageNotFound);
}

#[test]
fn edit_needs_membership_an_open_channel_and_valid_content() {
    given(public_channel_and([sent(1, 1, ALICE, "x"), left(ALICE)]))
        .when(ALICE, edit(Some(facts(1, 1, ALICE)), "y"))
        .then_error(DomainError::NotAMember);
    given(public_channel_and([
        sent(1, 1, ALICE, "x"),
        archived(OWNER),
    ]))
    .when(ALICE, edit(Some(facts(1, 1, ALICE)), "y"))
    .then_error(DomainError::ChannelArchived);
    given(with_two_messages())
        .when(ALICE, edit(Some(facts(1, 1, ALICE)), "   "))
        .then_invalid("content");
    given(with_two_messages())
        .when(ALICE, edit(Some(facts(1, 1, ALICE)), &"é".repeat(4001)))
        .then_invalid("content");
}

// ------------------------------------------------------------------ delete

#[test]
fn sender_deletes_own_message() {
    let channel = given(with_two_messages())
        .when(ALICE, delete(Some(facts(1, 1, ALICE))))
        .then([deleted(1, 1, ALICE, ALICE)]);
    assert_eq!(channel.last_seq, 2, "a delete keeps the seq");
}

#[test]
fn admin_and_owner_delete_someone_elses_message() {
    given(with_two_messages())
        .when(ADMIN, delete(Some(facts(1, 1, ALICE))))
        .then([deleted(1, 1, ALICE, ADMIN)]);
    given(with_two_messages())
        .when(OWNER, delete(Some(facts(2, 2, BOB))))
        .then([deleted(2, 2, BOB, OWNER)]);
}

#[test]
fn another_member_cannot_delete() {
    given(with_two_messages())
        .when(BOB, delete(Some(facts(1, 1, ALICE))))
        .then_error(DomainError::InsufficientRole {
            required: "sender, owner or admin",
        });
}

#[test]
fn deleting_a_deleted_message_changes_nothing() {
    let mut message = facts(1, 1, ALICE);
    message.deleted = true;
    let events = public_channel_and([sent(1, 1, ALICE, "x"), deleted(1, 1, ALICE, ALICE)]);
    given(events.clone())
        .when(ALICE, delete(Some(message.clone())))
        .then_nothing();
    given(events)
        .when(ADMIN, delete(Some(message)))
        .then_nothing();
}

#[test]
fn deleting_an_unknown_or_foreign_message_is_not_found() {
    given(with_two_messages())
        .when(ALICE, delete(None))
        .then_error(DomainError::MessageNotFound);
    let mut foreign = facts(1, 1, ALICE);
    foreign.channel_id = OTHER_CH;
    given(with_two_messages())
        .when(OWNER, delete(Some(foreign)))
        .then_error(DomainError::MessageNotFound);
}

#[test]
fn non_member_cannot_delete() {
    given(public_channel_and([
        sent(1, 1, ALICE, "x"),
        kicked(ALICE, OWNER),
    ]))
    .when(ALICE, delete(Some(facts(1, 1, ALICE))))
    .then_error(DomainError::NotAMember);
}

// ------------------------------------------------------------------ mark read

#[test]
fn mark_read_moves_the_members_read_seq_forward() {
    let channel = given(with_two_messages())
        .when(ALICE, ChannelCommand::MarkRead { seq: 1 })
        .then([read_up_to(ALICE, 1)]);
    assert_eq!(channel.members[&ALICE].read_seq, 1);
    assert_eq!(
        channel.members[&BOB].read_seq, 0,
        "read state is per member"
    );
    given(with_two_messages())
        .when(ALICE, ChannelCommand::MarkRead { seq: 2 })
        .then([read_up_to(ALICE, 2)]);
}

#[test]
fn mark_read_beyond_the_last_seq_is_refused() {
    given(with_two_messages())
        .when(ALICE, ChannelCommand::MarkRead { seq: 3 })
        .then_error(DomainError::SeqOutOfRange {
            seq: 3,
            last_seq: 2,
        });
    given(public_channel())
        .when(ALICE, ChannelCommand::MarkRead { seq: 1 })
        .then_error(DomainError::SeqOutOfRange {
            seq: 1,
            last_seq: 0,
        });
}

#[test]
fn mark_read_backwards_or_at_the_same_seq_changes_nothing() {
    let events = {
        let mut e = with_two_messages();
        e.push(read_up_to(ALICE, 2));
        e
    };
    given(events.clone())
        .when(ALICE, ChannelCommand::MarkRead { seq: 1 })
        .then_nothing();
    given(events.clone())
        .when(ALICE, ChannelCommand::MarkRead { seq: 2 })
        .then_nothing();
    given(events)
        .when(ALICE, ChannelCommand::MarkRead { seq: 0 })
        .then_nothing();
    given(public_channel())
        .when(ALICE, ChannelCommand::MarkRead { seq: 0 })
        .then_nothing();
}

#[test]
fn mark_read_needs_membership() {
    given(with_two_messages())
        .when(CAROL, ChannelCommand::MarkRead { seq: 1 })
        .then_error(DomainError::NotAMember);
}

#[test]
fn evolve_never_moves_read_seq_backwards() {
    let mut events = with_two_messages();
    events.extend([read_up_to(ALICE, 2), read_up_to(ALICE, 1)]);
    assert_eq!(
        fold_channel(&events).expect("channel").members[&ALICE].read_seq,
        2
    );
}

// ------------------------------------------------------------------ MessageFacts

fn fold_facts(events: &[Event]) -> Option<MessageFacts> {
    events.iter().fold(None, MessageFacts::evolve)
}

#[test]
fn facts_of_a_sent_message() {
    assert_eq!(
        fold_facts(&[sent(1, 5, ALICE, "x")]),
        Some(MessageFacts {
            channel_id: CH,
            message_id: msg_id(1),
            seq: 5,
            sender_id: ALICE,
            deleted: false,
        })
    );
}

#[test]
fn facts_fold_sent_then_deleted_to_deleted() {
    let facts = fold_facts(&[sent(1, 1, ALICE, "x"), deleted(1, 1, ALICE, ADMIN)]).expect("facts");
    assert!(facts.deleted);
    assert_eq!(facts.seq, 1);
    assert_eq!(facts.sender_id, ALICE);
}

#[test]
fn facts_ignore_edits_and_other_messages_events() {
    let facts = fold_facts(&[
        sent(1, 1, ALICE, "x"),
        edited(1, 1, ALICE, "y"),
        sent(2, 2, BOB, "other"),
        deleted(2, 2, BOB, BOB),
    ])
    .expect("facts");
    assert_eq!(facts.message_id, msg_id(1));
    assert_eq!(facts.sender_id, ALICE);
    assert!(!facts.deleted);
}

#[test]
fn facts_stay_none_without_a_sent_event() {
    assert_eq!(
        fold_facts(&[deleted(1, 1, ALICE, ALICE), edited(1, 1, ALICE, "y")]),
        None
    );
}

#[test]
fn facts_from_the_log_drive_edit_and_delete() {
    let log = with_two_messages();
    let mut facts = fold_facts(&log[log.len() - 2..log.len() - 1]);
    given(log.clone())
        .when(ALICE, edit(facts.clone(), "edited"))
        .then([edited(1, 1, ALICE, "edited")]);
    given(log.clone())
        .when(ALICE, delete(facts.clone()))
        .then([deleted(1, 1, ALICE, ALICE)]);
    facts = MessageFacts::evolve(facts, &deleted(1, 1, ALICE, ALICE));
    given(log.clone())
        .when(ALICE, edit(facts.clone(), "again"))
        .then_error(DomainError::MessageDeleted);
    given(log).when(ALICE, delete(facts)).then_nothing();
}
