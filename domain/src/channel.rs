//! The channel aggregate: membership, roles, bans, archive state and the
//! message sequence. Message bodies are not part of the state, so it stays
//! bounded by the number of members however long the channel's history grows.

use crate::DomainError;
use crate::event::*;
use crate::ids::{ChannelId, MessageId, UserId};
use crate::message::MessageFacts;
use crate::policy::MessagePolicy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Upper bound on `max_members`, so a typo cannot make a limit meaningless.
pub const MAX_MEMBERS_LIMIT: u32 = 100_000;
/// Longest channel name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Who may find and enter a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Anyone may join.
    Public,
    /// Only an owner or admin can add members.
    Private,
}

/// A member's role; ordered so that `Owner > Admin > Member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

/// A member's standing in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub muted: bool,
    pub read_seq: u64,
}

/// The state of an existing channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
    pub max_members: Option<u32>,
    pub members: BTreeMap<UserId, Member>,
    pub banned: BTreeSet<UserId>,
    pub archived: bool,
    /// The `seq` of the last message sent; 0 before the first.
    pub last_seq: u64,
}

/// What a user asks of a channel. The acting user is passed beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCommand {
    Create {
        channel_id: ChannelId,
        name: String,
        kind: ChannelKind,
        max_members: Option<u32>,
    },
    Join,
    Invite {
        user_id: UserId,
    },
    Leave,
    Kick {
        user_id: UserId,
    },
    Ban {
        user_id: UserId,
    },
    Unban {
        user_id: UserId,
    },
    ChangeRole {
        user_id: UserId,
        role: Role,
    },
    Archive,
    SetMuted {
        muted: bool,
    },
    SendMessage {
        message_id: MessageId,
        content: String,
        message_type: String,
        client_msg_id: Option<String>,
    },
    /// `message` is the target's current facts, looked up by the caller (None: unknown id).
    EditMessage {
        message: Option<MessageFacts>,
        content: String,
    },
    DeleteMessage {
        message: Option<MessageFacts>,
    },
    MarkRead {
        seq: u64,
    },
}

impl Channel {
    /// Decides what `actor` doing `command` on the channel `state` (None: not created) means.
    ///
    /// An empty result is a valid outcome: the command is already satisfied
    /// (joining a channel one is in, muting a muted channel) and nothing changes.
    pub fn decide(
        state: Option<&Channel>,
        actor: UserId,
        command: ChannelCommand,
        policy: &MessagePolicy,
    ) -> Result<Vec<Event>, DomainError> {
        let channel = match (state, command) {
            (
                None,
                ChannelCommand::Create {
                    channel_id,
                    name,
                    kind,
                    max_members,
                },
            ) => {
                return create(channel_id, actor, name, kind, max_members);
            }
            (Some(_), ChannelCommand::Create { .. }) => {
                return Err(DomainError::ChannelAlreadyExists);
            }
            (None, _) => return Err(DomainError::ChannelNotFound),
            (Some(channel), command) => (channel, command),
        };
        let (channel, command) = channel;
        channel.decide_existing(actor, command, policy)
    }

    fn decide_existing(
        &self,
        actor: UserId,
        command: ChannelCommand,
        policy: &MessagePolicy,
    ) -> Result<Vec<Event>, DomainError> {
        let channel_id = self.id;
        match command {
            ChannelCommand::Create { .. } => Err(DomainError::ChannelAlreadyExists),
            ChannelCommand::Join => {
                if self.members.contains_key(&actor) {
                    return Ok(vec![]);
                }
                self.check_can_enter(actor)?;
                if self.kind == ChannelKind::Private {
                    return Err(DomainError::PrivateChannel);
                }
                Ok(vec![Event::MemberJoined(MemberJoined {
                    channel_id,
                    user_id: actor,
                })])
            }
            ChannelCommand::Invite { user_id } => {
                self.require_role(actor, Role::Admin)?;
                if self.members.contains_key(&user_id) {
                    return Ok(vec![]);
                }
                if self.banned.contains(&user_id) {
                    return Err(DomainError::TargetBanned);
                }
                self.check_can_enter(user_id)?;
                Ok(vec![Event::MemberInvited(MemberInvited {
                    channel_id,
                    user_id,
                    invited_by: actor,
                })])
            }
            ChannelCommand::Leave => {
                // A channel never loses its owner: ownership is transferred, not dropped.
                if self.member(actor)?.role == Role::Owner {
                    return Err(DomainError::OwnerCannotLeave);
                }
                Ok(vec![Event::MemberLeft(MemberLeft {
                    channel_id,
                    user_id: actor,
                })])
            }
            ChannelCommand::Kick { user_id } => {
                if user_id == actor {
                    return self.decide_existing(actor, ChannelCommand::Leave, policy);
                }
                self.require_outranks(actor, user_id)?;
                Ok(vec![Event::MemberKicked(MemberKicked {
                    channel_id,
                    user_id,
                    kicked_by: actor,
                })])
            }
            ChannelCommand::Ban { user_id } => {
                self.require_role(actor, Role::Admin)?;
                if self.banned.contains(&user_id) {
                    return Ok(vec![]);
                }
                if user_id == actor {
                    return Err(DomainError::OutrankedTarget);
                }
                if self.members.contains_key(&user_id) {
                    self.require_outranks(actor, user_id)?;
                }
                Ok(vec![Event::MemberBanned(MemberBanned {
                    channel_id,
                    user_id,
                    banned_by: actor,
                })])
            }
            ChannelCommand::Unban { user_id } => {
                self.require_role(actor, Role::Admin)?;
                if !self.banned.contains(&user_id) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::MemberUnbanned(MemberUnbanned {
                    channel_id,
                    user_id,
                    unbanned_by: actor,
                })])
            }
            ChannelCommand::ChangeRole { user_id, role } => self.change_role(actor, user_id, role),
            ChannelCommand::Archive => {
                self.require_role(actor, Role::Admin)?;
                if self.archived {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ChannelArchived(ChannelArchived {
                    channel_id,
                    archived_by: actor,
                })])
            }
            ChannelCommand::SetMuted { muted } => {
                let member = self.member(actor)?;
                Ok(match (member.muted, muted) {
                    (false, true) => vec![Event::ChannelMuted(ChannelMuted {
                        channel_id,
                        user_id: actor,
                    })],
                    (true, false) => vec![Event::ChannelUnmuted(ChannelUnmuted {
                        channel_id,
                        user_id: actor,
                    })],
                    _ => vec![],
                })
            }
            ChannelCommand::SendMessage {
                message_id,
                content,
                message_type,
                client_msg_id,
            } => {
                self.member(actor)?;
                self.require_open()?;
                policy.check_type(&message_type)?;
                policy.check_content(&content)?;
                if let Some(id) = &client_msg_id {
                    crate::check_text("client_msg_id", id)?;
                }
                Ok(vec![Event::MessageSent(MessageSent {
                    channel_id,
                    message_id,
                    seq: self.last_seq + 1,
                    sender_id: actor,
                    content,
                    message_type,
                    client_msg_id,
                })])
            }
            ChannelCommand::EditMessage { message, content } => {
                self.member(actor)?;
                let message = self.live_message(message)?;
                if message.sender_id != actor {
                    return Err(DomainError::NotSender);
                }
                self.require_open()?;
                policy.check_content(&content)?;
                Ok(vec![Event::MessageEdited(MessageEdited {
                    channel_id,
                    message_id: message.message_id,
                    seq: message.seq,
                    sender_id: message.sender_id,
                    content,
                    edited_by: actor,
                })])
            }
            ChannelCommand::DeleteMessage { message } => {
                let role = self.member(actor)?.role;
                let message = match message {
                    Some(m) if m.channel_id == channel_id => m,
                    _ => return Err(DomainError::MessageNotFound),
                };
                if message.sender_id != actor && role < Role::Admin {
                    return Err(DomainError::InsufficientRole {
                        required: "sender, owner or admin",
                    });
                }
                if message.deleted {
                    return Ok(vec![]);
                }
                Ok(vec![Event::MessageDeleted(MessageDeleted {
                    channel_id,
                    message_id: message.message_id,
                    seq: message.seq,
                    sender_id: message.sender_id,
                    deleted_by: actor,
                })])
            }
            ChannelCommand::MarkRead { seq } => {
                let member = self.member(actor)?;
                if seq > self.last_seq {
                    return Err(DomainError::SeqOutOfRange {
                        seq,
                        last_seq: self.last_seq,
                    });
                }
                if seq <= member.read_seq {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ReadUpTo(ReadUpTo {
                    channel_id,
                    user_id: actor,
                    seq,
                })])
            }
        }
    }

    fn change_role(
        &self,
        actor: UserId,
        user_id: UserId,
        role: Role,
    ) -> Result<Vec<Event>, DomainError> {
        let channel_id = self.id;
        let actor_role = self.member(actor)?.role;
        if actor_role < Role::Admin {
            return Err(DomainError::InsufficientRole {
                required: "owner or admin",
            });
        }
        let current = self
            .members
            .get(&user_id)
            .ok_or(DomainError::TargetNotAMember)?
            .role;
        if current == role {
            return Ok(vec![]);
        }
        if role == Role::Owner {
            // Ownership is transferred, never shared: the old owner steps down to admin.
            if actor_role != Role::Owner {
                return Err(DomainError::InsufficientRole { required: "owner" });
            }
            return Ok(vec![
                Event::MemberRoleChanged(MemberRoleChanged {
                    channel_id,
                    user_id,
                    role: Role::Owner,
                    changed_by: actor,
                }),
                Event::MemberRoleChanged(MemberRoleChanged {
                    channel_id,
                    user_id: actor,
                    role: Role::Admin,
                    changed_by: actor,
                }),
            ]);
        }
        if user_id != actor && current >= actor_role {
            return Err(DomainError::OutrankedTarget);
        }
        if user_id == actor && actor_role == Role::Owner {
            // An owner stepping down would leave the channel ownerless.
            return Err(DomainError::OwnerCannotLeave);
        }
        Ok(vec![Event::MemberRoleChanged(MemberRoleChanged {
            channel_id,
            user_id,
            role,
            changed_by: actor,
        })])
    }

    fn member(&self, user: UserId) -> Result<&Member, DomainError> {
        self.members
            .get(&user)
            .ok_or(if self.banned.contains(&user) {
                DomainError::Banned
            } else {
                DomainError::NotAMember
            })
    }

    fn require_role(&self, actor: UserId, at_least: Role) -> Result<(), DomainError> {
        if self.member(actor)?.role >= at_least {
            Ok(())
        } else {
            Err(DomainError::InsufficientRole {
                required: "owner or admin",
            })
        }
    }

    fn require_outranks(&self, actor: UserId, target: UserId) -> Result<(), DomainError> {
        self.require_role(actor, Role::Admin)?;
        let target_role = self
            .members
            .get(&target)
            .ok_or(DomainError::TargetNotAMember)?
            .role;
        if self.member(actor)?.role > target_role {
            Ok(())
        } else {
            Err(DomainError::OutrankedTarget)
        }
    }

    /// The seed's `EnterChannelValidator`: ban, channel state and capacity.
    fn check_can_enter(&self, user: UserId) -> Result<(), DomainError> {
        if self.banned.contains(&user) {
            return Err(DomainError::Banned);
        }
        self.require_open()?;
        if let Some(max) = self.max_members
            && self.members.len() >= max as usize
        {
            return Err(DomainError::ChannelFull);
        }
        Ok(())
    }

    fn require_open(&self) -> Result<(), DomainError> {
        if self.archived {
            Err(DomainError::ChannelArchived)
        } else {
            Ok(())
        }
    }

    fn live_message(&self, message: Option<MessageFacts>) -> Result<MessageFacts, DomainError> {
        match message {
            Some(m) if m.channel_id == self.id && m.deleted => Err(DomainError::MessageDeleted),
            Some(m) if m.channel_id == self.id => Ok(m),
            _ => Err(DomainError::MessageNotFound),
        }
    }

    /// Folds one event into the state. Events of other aggregates leave it unchanged.
    pub fn evolve(state: Option<Channel>, event: &Event) -> Option<Channel> {
        if let Event::ChannelCreated(e) = event {
            let mut members = BTreeMap::new();
            members.insert(
                e.owner_id,
                Member {
                    role: Role::Owner,
                    muted: false,
                    read_seq: 0,
                },
            );
            return Some(Channel {
                id: e.channel_id,
                name: e.name.clone(),
                kind: e.kind,
                max_members: e.max_members,
                members,
                banned: BTreeSet::new(),
                archived: false,
                last_seq: 0,
            });
        }
        let mut channel = state?;
        match event {
            Event::MemberJoined(MemberJoined { user_id, .. })
            | Event::MemberInvited(MemberInvited { user_id, .. }) => {
                channel.members.insert(
                    *user_id,
                    Member {
                        role: Role::Member,
                        muted: false,
                        read_seq: 0,
                    },
                );
            }
            Event::MemberLeft(MemberLeft { user_id, .. })
            | Event::MemberKicked(MemberKicked { user_id, .. }) => {
                channel.members.remove(user_id);
            }
            Event::MemberBanned(MemberBanned { user_id, .. }) => {
                channel.members.remove(user_id);
                channel.banned.insert(*user_id);
            }
            Event::MemberUnbanned(MemberUnbanned { user_id, .. }) => {
                channel.banned.remove(user_id);
            }
            Event::MemberRoleChanged(e) => {
                if let Some(m) = channel.members.get_mut(&e.user_id) {
                    m.role = e.role;
                }
            }
            Event::ChannelArchived(_) => channel.archived = true,
            Event::ChannelMuted(ChannelMuted { user_id, .. }) => {
                set_muted(&mut channel, *user_id, true)
            }
            Event::ChannelUnmuted(ChannelUnmuted { user_id, .. }) => {
                set_muted(&mut channel, *user_id, false)
            }
            Event::MessageSent(e) => channel.last_seq = channel.last_seq.max(e.seq),
            Event::ReadUpTo(e) => {
                if let Some(m) = channel.members.get_mut(&e.user_id) {
                    m.read_seq = m.read_seq.max(e.seq);
                }
            }
            Event::MessageEdited(_)
            | Event::MessageDeleted(_)
            | Event::ChannelCreated(_)
            | Event::UserRegistered(_) => {}
        }
        Some(channel)
    }
}

fn set_muted(channel: &mut Channel, user: UserId, muted: bool) {
    if let Some(m) = channel.members.get_mut(&user) {
        m.muted = muted;
    }
}

fn create(
    channel_id: ChannelId,
    owner_id: UserId,
    name: String,
    kind: ChannelKind,
    max_members: Option<u32>,
) -> Result<Vec<Event>, DomainError> {
    crate::check_name("name", &name)?;
    let name = name.trim().to_owned();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            "name",
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if let Some(max) = max_members
        && !(1..=MAX_MEMBERS_LIMIT).contains(&max)
    {
        return Err(DomainError::invalid(
            "max_members",
            format!("must be between 1 and {MAX_MEMBERS_LIMIT}"),
        ));
    }
    Ok(vec![Event::ChannelCreated(ChannelCreated {
        channel_id,
        name,
        kind,
        max_members,
        owner_id,
    })])
}
