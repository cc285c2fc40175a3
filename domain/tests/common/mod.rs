//! Shared fixtures for the domain tests: fixed ids, event builders and a tiny
//! given/when/then harness over `Channel::decide`/`evolve` and `User::decide`/`evolve`.

#![allow(dead_code)]

pub mod sim;

use domain::*;
use uuid::Uuid;

// ---------------------------------------------------------------- fixed ids

pub const CH: ChannelId = ChannelId(Uuid::from_u128(0xC0FFEE));
pub const OTHER_CH: ChannelId = ChannelId(Uuid::from_u128(0xBADC0DE));

pub const OWNER: UserId = UserId(Uuid::from_u128(1));
pub const ADMIN: UserId = UserId(Uuid::from_u128(2));
pub const ALICE: UserId = UserId(Uuid::from_u128(3));
pub const BOB: UserId = UserId(Uuid::from_u128(4));
pub const CAROL: UserId = UserId(Uuid::from_u128(5));
pub const MALLORY: UserId = UserId(Uuid::from_u128(6));

pub fn msg_id(n: u128) -> MessageId {
    MessageId(Uuid::from_u128(0x1000 + n))
}

// ---------------------------------------------------------------- event builders

pub fn created(kind: ChannelKind, max_members: Option<u32>) -> Event {
    Event::ChannelCreated(ChannelCreated {
        channel_id: CH,
        name: "general".into(),
        kind,
        max_members,
        owner_id: OWNER,
    })
}

pub fn joined(user_id: UserId) -> Event {
    Event::MemberJoined(MemberJoined {
        channel_id: CH,
        user_id,
    })
}

pub fn invited(user_id: UserId, invited_by: UserId) -> Event {
    Event::MemberInvited(MemberInvited {
        channel_id: CH,
        user_id,
        invited_by,
    })
}

pub fn left(user_id: UserId) -> Event {
    Event::MemberLeft(MemberLeft {
        channel_id: CH,
        user_id,
    })
}

pub fn kicked(user_id: UserId, kicked_by: UserId) -> Event {
    Event::MemberKicked(MemberKicked {
        channel_id: CH,
        user_id,
        kicked_by,
    })
}

pub fn banned(user_id: UserId, banned_by: UserId) -> Event {
    Event::MemberBanned(MemberBanned {
        channel_id: CH,
        user_id,
        banned_by,
    })
}

pub fn unbanned(user_id: UserId, unbanned_by: UserId) -> Event {
    Event::MemberUnbanned(MemberUnbanned {
        channel_id: CH,
        user_id,
        unbanned_by,
    })
}

pub fn role_changed(user_id: UserId, role: Role, changed_by: UserId) -> Event {
    Event::MemberRoleChanged(MemberRoleChanged {
        channel_id: CH,
        user_id,
        role,
        changed_by,
    })
}

pub fn archived(archived_by: UserId) -> Event {
    Event::ChannelArchived(ChannelArchived {
        channel_id: CH,
        archived_by,
    })
}

pub fn muted(user_id: UserId) -> Event {
    Event::ChannelMuted(ChannelMuted {
        channel_id: CH,
        user_id,
    })
}

pub fn unmuted(user_id: UserId) -> Event {
    Event::ChannelUnmuted(ChannelUnmuted {
        channel_id: CH,
        user_id,
    })
}

pub fn sent(n: u128, seq: u64, sender_id: UserId, content: &str) -> Event {
    Event::MessageSent(MessageSent {
        channel_id: CH,
        message_id: msg_id(n),
        seq,
        sender_id,
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    })
}

pub fn edited(n: u128, seq: u64, sender_id: UserId, content: &str) -> Event {
    Event::MessageEdited(MessageEdited {
        channel_id: CH,
        message_id: msg_id(n),
        seq,
        sender_id,
        content: content.into(),
        edited_by: sender_id,
    })
}

pub fn deleted(n: u128, seq: u64, sender_id: UserId, deleted_by: UserId) -> Event {
    Event::MessageDeleted(MessageDeleted {
        channel_id: CH,
        message_id: msg_id(n),
        seq,
        sender_id,
        deleted_by,
    })
}

pub fn read_up_to(user_id: UserId, seq: u64) -> Event {
    Event::ReadUpTo(ReadUpTo {
        channel_id: CH,
        user_id,
        seq,
    })
}

/// The facts of message `n` as a caller would look them up.
pub fn facts(n: u128, seq: u64, sender_id: UserId) -> MessageFacts {
    MessageFacts {
        channel_id: CH,
        message_id: msg_id(n),
        seq,
        sender_id,
        deleted: false,
    }
}

// ---------------------------------------------------------------- command builders

pub fn send(n: u128, content: &str) -> ChannelCommand {
    ChannelCommand::SendMessage {
        message_id: msg_id(n),
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    }
}

pub fn edit(message: Option<MessageFacts>, content: &str) -> ChannelCommand {
    ChannelCommand::EditMessage {
        message,
        content: content.into(),
    }
}

pub fn delete(message: Option<MessageFacts>) -> ChannelCommand {
    ChannelCommand::DeleteMessage { message }
}

// ---------------------------------------------------------------- standard histories

/// A public channel: OWNER (owner), ADMIN (admin), ALICE and BOB (members).
pub fn public_channel() -> Vec<Event> {
    vec![
        created(ChannelKind::Public, None),
        joined(ADMIN),
        role_changed(ADMIN, Role::Admin, OWNER),
        joined(ALICE),
        joined(BOB),
    ]
}

/// A private channel: OWNER (owner), ADMIN (admin, invited), ALICE (member, invited).
pub fn private_channel() -> Vec<Event> {
    vec![
        created(ChannelKind::Private, None),
        invited(ADMIN, OWNER),
        role_changed(ADMIN, Role::Admin, OWNER),
        invited(ALICE, ADMIN),
    ]
}

/// `public_channel()` plus `tail`.
pub fn public_channel_and(tail: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut events = public_channel();
    events.extend(tail);
    events
}

// ---------------------------------------------------------------- channel given/when/then

pub fn fold_channel<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Channel> {
    events.into_iter().fold(None, Channel::evolve)
}

/// Given these events (folded from `None`)...
pub fn given(events: impl IntoIterator<Item = Event>) -> ChannelGiven {
    let events: Vec<Event> = events.into_iter().collect();
    ChannelGiven {
        state: fold_channel(&events),
        policy: MessagePolicy::default(),
    }
}

pub struct ChannelGiven {
    pub state: Option<Channel>,
    policy: MessagePolicy,
}

impl ChannelGiven {
    pub fn with_policy(mut self, policy: MessagePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// ...when `actor` issues `command`...
    pub fn when(self, actor: UserId, command: ChannelCommand) -> ChannelThen {
        let before = self.state.clone();
        let result = Channel::decide(self.state.as_ref(), actor, command, &self.policy);
        assert_eq!(
            self.state, before,
            "decide must not change the state it was given"
        );
        ChannelThen {
            state: self.state,
            result,
        }
    }
}

pub struct ChannelThen {
    state: Option<Channel>,
    pub result: Result<Vec<Event>, DomainError>,
}

impl ChannelThen {
    /// ...then exactly these events; returns the state with them folded in.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Event>) -> Channel {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events
                    .iter()
                    .fold(self.state, Channel::evolve)
                    .expect("the channel exists after its events")
            }
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// ...then the command is already satisfied: no events.
    #[track_caller]
    pub fn then_nothing(self) {
        match self.result {
            Ok(events) => assert!(events.is_empty(), "expected no events, got {events:?}"),
            Err(e) => panic!("expected no events, got error {e:?}"),
        }
    }

    /// ...then this refusal.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    /// ...then a validation refusal of `field`.
    #[track_caller]
    pub fn then_invalid(self, field: &str) {
        match self.result {
            Err(DomainError::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "wrong invalid field")
            }
            other => panic!("expected Invalid {{ field: {field:?} }}, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- user given/when/then

pub fn given_user(events: impl IntoIterator<Item = Event>) -> UserGiven {
    UserGiven {
        state: events.into_iter().fold(None, |s, e| User::evolve(s, &e)),
    }
}

pub struct UserGiven {
    pub state: Option<User>,
}

impl UserGiven {
    pub fn when(self, command: RegisterUser) -> UserThen {
        let before = self.state.clone();
        let result = User::decide(self.state.as_ref(), command);
        assert_eq!(
            self.state, before,
            "decide must not change the state it was given"
        );
        UserThen {
            state: self.state,
            result,
        }
    }
}

pub struct UserThen {
    state: Option<User>,
    pub result: Result<Vec<Event>, DomainError>,
}

impl UserThen {
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Event>) -> User {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events
                    .iter()
                    .fold(self.state, User::evolve)
                    .expect("the user exists after registering")
            }
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    #[track_caller]
    pub fn then_invalid(self, field: &str) {
        match self.result {
            Err(DomainError::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "wrong invalid field")
            }
            other => panic!("expected Invalid {{ field: {field:?} }}, got {other:?}"),
        }
    }
}
