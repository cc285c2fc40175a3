//! How `chat state` prints a state: aligned text for people, one JSON object
//! (`--json`) for scripts.

use crate::state::ChannelState;
use domain::{ChannelKind, Role};
use std::io::{self, Write};

/// Writes `state` as JSON (one object, then a newline).
pub fn channel_json(out: &mut impl Write, state: &ChannelState) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, state)?;
    out.write_all(b"\n")
}

/// Writes `state` as text.
pub fn channel_text(out: &mut impl Write, s: &ChannelState) -> io::Result<()> {
    let kind = match s.kind {
        ChannelKind::Public => "public",
        ChannelKind::Private => "private",
    };
    let limit = s.max_members.map_or_else(
        || "no member limit".to_owned(),
        |m| format!("at most {m} members"),
    );
    writeln!(out, "channel   {} {:?}", s.channel_id, s.name)?;
    writeln!(
        out,
        "as of     {} (stream version {})",
        s.as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        s.stream_version
    )?;
    writeln!(out, "kind      {kind}, {limit}")?;
    writeln!(out, "archived  {}", if s.archived { "yes" } else { "no" })?;
    writeln!(
        out,
        "messages  {} sent, {} edited, {} deleted; last seq {}",
        s.message_count, s.edited_count, s.deleted_count, s.last_seq
    )?;
    writeln!(out, "members   {}", s.members.len())?;
    for m in &s.members {
        let role = match m.role {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        };
        let muted = if m.muted { "  (muted)" } else { "" };
        writeln!(
            out,
            "  {role:<7} {}  {}  read up to {}{muted}",
            m.user_id,
            name(&m.username),
            m.read_seq
        )?;
    }
    writeln!(out, "banned    {}", s.banned.len())?;
    for b in &s.banned {
        writeln!(out, "  {}  {}", b.user_id, name(&b.username))?;
    }
    Ok(())
}

fn name(username: &Option<String>) -> &str {
    username.as_deref().unwrap_or("(no UserRegistered event)")
}
