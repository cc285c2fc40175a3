//! Folding a page of events in memory into row changes, so a page is written
//! with a handful of set-based statements instead of one round trip per event.
//!
//! The result equals applying the page event by event with
//! `projector::apply_event`, including its corner cases: each key (a member,
//! a ban, a message) collapses to one final change; where a row's prior state
//! is unknown (it was written by an earlier page), the change is a patch that
//! the database applies to whatever is there. Rows created in the page carry
//! the page's later changes; the patch of every change in the page is applied
//! first, to rows that existed before it, and the creation inserts only if
//! absent — together exactly what the sequential writes do.

use super::copy::MessageRow;
use super::rows::*;
use super::source::LogEvent;
use chrono::{DateTime, Utc};
use domain::{ChannelKind, Event, Role};
use std::collections::HashMap;
use uuid::Uuid;

/// What folding one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Applied,
    /// At or below the stream's applied version.
    Duplicate,
    /// Beyond the next version, or undecodable: the live projector cannot
    /// apply it either (and nothing after it in that stream).
    Skipped,
}

/// The row changes of one page.
#[derive(Debug, Default)]
pub struct PageFold {
    pub users: HashMap<Uuid, UserRow>,
    pub channel_inserts: HashMap<Uuid, ChannelRow>,
    pub channel_patches: HashMap<Uuid, ChannelPatch>,
    pub members: HashMap<(Uuid, Uuid), MemberChange>,
    pub bans: HashMap<(Uuid, Uuid), BanChange>,
    /// Every `MessageSent` of the page, in order (inserted if absent).
    pub message_inserts: Vec<MessageRow>,
    inserts_by_id: HashMap<Uuid, Vec<usize>>,
    pub message_patches: HashMap<Uuid, MessagePatch>,
    /// The stream versions reached in this page.
    pub positions: HashMap<String, u64>,
    pub applied: u64,
}

/// The applied version of every stream, carried from page to page.
pub type StreamVersions = HashMap<String, u64>;

impl PageFold {
    /// Folds one event, checking its stream version as `apply_event` does.
    pub fn fold(&mut self, versions: &mut StreamVersions, e: LogEvent) -> Admit {
        let applied = versions.get(e.stream_id.as_str()).copied().unwrap_or(0);
        if e.stream_version <= applied {
            return Admit::Duplicate;
        }
        let Ok(event) = e.event else {
            return Admit::Skipped;
        };
        if e.stream_version != applied + 1 {
            return Admit::Skipped;
        }
        self.apply(event, e.recorded_at);
        match versions.get_mut(e.stream_id.as_str()) {
            Some(v) => *v = e.stream_version,
            None => {
                versions.insert(e.stream_id.clone(), e.stream_version);
            }
        }
        match self.positions.get_mut(e.stream_id.as_str()) {
            Some(v) => *v = e.stream_version,
            None => {
                self.positions.insert(e.stream_id, e.stream_version);
            }
        }
        self.applied += 1;
        Admit::Applied
    }

    /// The same writes as `projector`'s `write`, in memory.
    fn apply(&mut self, event: Event, at: DateTime<Utc>) {
        match event {
            Event::UserRegistered(e) => {
                self.users.entry(e.user_id.0).or_insert_with(|| UserRow {
                    user_id: e.user_id.0,
                    username: e.username,
                    display_name: e.display_name,
                    registered_at: at,
                });
            }
            Event::ChannelCreated(e) => {
                self.channel_inserts
                    .entry(e.channel_id.0)
                    .or_insert_with(|| ChannelRow {
                        channel_id: e.channel_id.0,
                        name: e.name,
                        kind: if e.kind == ChannelKind::Private {
                            "private"
                        } else {
                            "public"
                        },
                        max_members: e.max_members.map(|m| m as i32),
                        owner_id: e.owner_id.0,
                        archived: false,
                        created_at: at,
                        last_seq: 0,
                        updated_at: at,
                    });
                self.put_member(e.channel_id.0, e.owner_id.0, "owner", at);
            }
            Event::MemberJoined(e) => self.put_member(e.channel_id.0, e.user_id.0, "member", at),
            Event::MemberInvited(e) => self.put_member(e.channel_id.0, e.user_id.0, "member", at),
            Event::MemberLeft(e) => self.delete_member(e.channel_id.0, e.user_id.0),
            Event::MemberKicked(e) => self.delete_member(e.channel_id.0, e.user_id.0),
            Event::MemberBanned(e) => {
                self.delete_member(e.channel_id.0, e.user_id.0);
                let ban = self.bans.entry((e.channel_id.0, e.user_id.0)).or_default();
                ban.insert.get_or_insert(at);
            }
            Event::MemberUnbanned(e) => {
                let ban = self.bans.entry((e.channel_id.0, e.user_id.0)).or_default();
                ban.deleted = true;
                ban.insert = None;
            }
            Event::MemberRoleChanged(e) => {
                let role = match e.role {
                    Role::Owner => "owner",
                    Role::Admin => "admin",
                    Role::Member => "member",
                };
                match self.member(e.channel_id.0, e.user_id.0) {
                    MemberChange::Patch(p) => p.role = Some(role),
                    MemberChange::Put(row) => row.role = role,
                    MemberChange::Delete => {}
                }
                if e.role == Role::Owner {
                    let patch = self.channel_patches.entry(e.channel_id.0).or_default();
                    patch.owner_id = Some(e.user_id.0);
                    if let Some(row) = self.channel_inserts.get_mut(&e.channel_id.0) {
                        row.owner_id = e.user_id.0;
                    }
                }
            }
            Event::ChannelArchived(e) => {
                let patch = self.channel_patches.entry(e.channel_id.0).or_default();
                patch.archived = true;
                patch.updated_at = Some(at);
                if let Some(row) = self.channel_inserts.get_mut(&e.channel_id.0) {
                    row.archived = true;
                    row.updated_at = at;
                }
            }
            Event::ChannelMuted(e) => self.set_muted(e.channel_id.0, e.user_id.0, true),
            Event::ChannelUnmuted(e) => self.set_muted(e.channel_id.0, e.user_id.0, false),
            Event::MessageSent(e) => {
                let seq = e.seq as i64;
                self.inserts_by_id
                    .entry(e.message_id.0)
                    .or_default()
                    .push(self.message_inserts.len());
                self.message_inserts.push(MessageRow {
                    channel_id: e.channel_id.0,
                    seq,
                    message_id: e.message_id.0,
                    sender_id: e.sender_id.0,
                    content: Some(e.content),
                    message_type: e.message_type,
                    created_at: at,
                    edited_at: None,
                    deleted: false,
                });
                let patch = self.channel_patches.entry(e.channel_id.0).or_default();
                patch.max_seq = Some(patch.max_seq.map_or(seq, |m| m.max(seq)));
                patch.updated_at = Some(at);
                if let Some(row) = self.channel_inserts.get_mut(&e.channel_id.0) {
                    row.last_seq = row.last_seq.max(seq);
                    row.updated_at = at;
                }
            }
            Event::MessageEdited(e) => {
                let patch = self.message_patches.entry(e.message_id.0).or_default();
                if !patch.deleted {
                    patch.edit = Some((e.content.clone(), at));
                }
                self.for_inserted(e.message_id.0, |row| {
                    if !row.deleted {
                        row.content = Some(e.content.clone());
                        row.edited_at = Some(at);
                    }
                });
            }
            Event::MessageDeleted(e) => {
                self.message_patches
                    .entry(e.message_id.0)
                    .or_default()
                    .deleted = true;
                self.for_inserted(e.message_id.0, |row| {
                    row.content = None;
                    row.deleted = true;
                });
            }
            Event::ReadUpTo(e) => {
                let seq = e.seq as i64;
                match self.member(e.channel_id.0, e.user_id.0) {
                    MemberChange::Patch(p) => {
                        p.read_seq = Some(p.read_seq.map_or(seq, |r| r.max(seq)));
                    }
                    MemberChange::Put(row) => row.read_seq = row.read_seq.max(seq),
                    MemberChange::Delete => {}
                }
            }
        }
    }

    fn member(&mut self, channel: Uuid, user: Uuid) -> &mut MemberChange {
        self.members
            .entry((channel, user))
            .or_insert_with(|| MemberChange::Patch(MemberPatch::default()))
    }

    /// A (re)joining member starts afresh, as in the domain.
    fn put_member(&mut self, channel: Uuid, user: Uuid, role: &'static str, at: DateTime<Utc>) {
        *self.member(channel, user) = MemberChange::Put(MemberRow {
            role,
            muted: false,
            read_seq: 0,
            joined_at: at,
        });
    }

    fn delete_member(&mut self, channel: Uuid, user: Uuid) {
        *self.member(channel, user) = MemberChange::Delete;
    }

    fn set_muted(&mut self, channel: Uuid, user: Uuid, muted: bool) {
        match self.member(channel, user) {
            MemberChange::Patch(p) => p.muted = Some(muted),
            MemberChange::Put(row) => row.muted = muted,
            MemberChange::Delete => {}
        }
    }

    /// Applies a change to every row of this message inserted earlier in the page.
    fn for_inserted(&mut self, message_id: Uuid, mut change: impl FnMut(&mut MessageRow)) {
        if let Some(indexes) = self.inserts_by_id.get(&message_id) {
            for &i in indexes {
                if let Some(row) = self.message_inserts.get_mut(i) {
                    change(row);
                }
            }
        }
    }

    /// Whether a message id was sent in this page.
    pub fn sent_in_page(&self, message_id: &Uuid) -> bool {
        self.inserts_by_id.contains_key(message_id)
    }

    /// Whether the page's inserts collide with each other (same id, or same
    /// channel and seq): then only the ordered insert-if-absent path is exact.
    pub fn inserts_collide(&self) -> bool {
        if self.inserts_by_id.len() != self.message_inserts.len() {
            return true;
        }
        let mut keys = std::collections::HashSet::with_capacity(self.message_inserts.len());
        !self
            .message_inserts
            .iter()
            .all(|m| keys.insert((m.channel_id, m.seq)))
    }
}
