//! The people of the run and what they do: senders who send, edit, delete
//! and mark read in the load channels; a churner who joins and is kicked
//! again and again; the owner's probe that measures recovery.

use crate::api::{Api, Call};
use anyhow::Context;
use loadgen::http::{Client, register};
use loadgen::torture::{OpKind, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A registered user.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub id: Uuid,
    pub token: String,
}

/// Who and where: made once before the load starts.
pub struct World {
    pub owner: User,
    pub senders: Vec<User>,
    pub churner: User,
    pub channels: Vec<Uuid>,
    pub probe_channel: Uuid,
    /// The highest acknowledged seq per load channel (for read pointers).
    pub acked_seq: HashMap<Uuid, AtomicU64>,
}

async fn user(instance: &str, name: &str) -> anyhow::Result<User> {
    let mut client = Client::new(instance);
    let token = register(&mut client, name, "correct horse battery").await?;
    let id = user_id_of(&token).context("a token without a user id")?;
    Ok(User {
        name: name.to_owned(),
        id,
        token,
    })
}

/// The `sub` of a JWT (the payload is base64url JSON; no need to verify
/// what the server just issued).
fn user_id_of(token: &str) -> Option<Uuid> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str()?.parse().ok()
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut width = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        width += 6;
        if width >= 8 {
            width -= 8;
            out.push((bits >> width) as u8);
        }
    }
    Some(out)
}

async fn create_channel(client: &mut Client, token: &str, name: &str) -> anyhow::Result<Uuid> {
    let body = json!({"name": name, "kind": "public"});
    let created = client
        .request("POST", "/api/channels", Some(token), Some(&body))
        .await?
        .expect(201, "create channel")?;
    created["channel_id"]
        .as_str()
        .and_then(|c| c.parse::<Uuid>().ok())
        .context("create channel: no channel_id")
}

impl World {
    pub async fn create(instance: &str, run: &str, senders: usize) -> anyhow::Result<World> {
        let owner = user(instance, &format!("owner_{run}")).await?;
        let mut people = Vec::new();
        for i in 0..senders {
            people.push(user(instance, &format!("sender{i}_{run}")).await?);
        }
        let churner = user(instance, &format!("churner_{run}")).await?;
        let mut client = Client::new(instance);
        let mut channels = Vec::new();
        for i in 0..3 {
            channels.push(create_channel(&mut client, &owner.token, &format!("load{i}")).await?);
        }
        let probe_channel = create_channel(&mut client, &owner.token, "probe").await?;
        for sender in &people {
            for c in &channels {
                client
                    .request(
                        "POST",
                        &format!("/api/channels/{c}/members"),
                        Some(&sender.token),
                        Some(&json!({})),
                    )
                    .await?
                    .expect(204, "join")?;
            }
        }
        let acked_seq = channels.iter().map(|c| (*c, AtomicU64::new(0))).collect();
        Ok(World {
            owner,
            senders: people,
            churner,
            channels,
            probe_channel,
            acked_seq,
        })
    }
}

/// One sender's loop: about four commands a second until `stop`.
pub async fn sender(
    api: Arc<Api>,
    world: Arc<World>,
    who: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) {
    let me = &world.senders[who];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<(Uuid, Uuid)> = Vec::new();
    let mut read_up_to: HashMap<Uuid, u64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let channel = world.channels[rng.random_range(0..world.channels.len())];
        let first = rng.random_range(0..2);
        let key = Uuid::now_v7().to_string();
        let roll = rng.random_range(0..100);
        let latest = world.acked_seq[&channel].load(Ordering::Relaxed);
        let call = if roll < 12 && !mine.is_empty() {
            let (c, m) = mine[rng.random_range(0..mine.len())];
            Call {
                kind: OpKind::Edit,
                method: "PATCH",
                path: format!("/api/channels/{c}/messages/{m}"),
                token: &me.token,
                body: Some(json!({"content": format!("edited {key}")})),
                channel_id: c,
                user_id: me.id,
                message_id: Some(m),
                key,
            }
        } else if roll < 20 && !mine.is_empty() {
            let (c, m) = mine.swap_remove(rng.random_range(0..mine.len()));
            Call {
                kind: OpKind::Delete,
                method: "DELETE",
                path: format!("/api/channels/{c}/messages/{m}"),
                token: &me.token,
                body: None,
                channel_id: c,
                user_id: me.id,
                message_id: Some(m),
                key,
            }
        } else if roll < 35 && latest > read_up_to.get(&channel).copied().unwrap_or(0) {
            // Strictly past my pointer: a read at or below it appends nothing.
            read_up_to.insert(channel, latest);
            Call {
                kind: OpKind::Read,
                method: "POST",
                path: format!("/api/channels/{channel}/read"),
                token: &me.token,
                body: Some(json!({"seq": latest})),
                channel_id: channel,
                user_id: me.id,
                message_id: None,
                key,
            }
        } else {
            Call {
                kind: OpKind::Send,
                method: "POST",
                path: format!("/api/channels/{channel}/messages"),
                token: &me.token,
                body: Some(
                    json!({"content": format!("{} says {key}", me.name), "type": "text", "client_msg_id": key}),
                ),
                channel_id: channel,
                user_id: me.id,
                message_id: None,
                key,
            }
        };
        let record = api.command(call, first).await;
        if let (
            OpKind::Send,
            Outcome::Acked {
                message_id: Some(m),
                seq: Some(seq),
            },
        ) = (record.kind, &record.outcome)
        {
            mine.push((record.channel_id, *m));
            world.acked_seq[&record.channel_id].fetch_max(*seq, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..350))).await;
    }
}

/// The churner joins the first load channel, the owner kicks it out, again.
pub async fn churn(api: Arc<Api>, world: Arc<World>, stop: Arc<AtomicBool>) {
    let channel = world.channels[0];
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = Uuid::now_v7().to_string();
        let call = if turn.is_multiple_of(2) {
            Call {
                kind: OpKind::Join,
                method: "POST",
                path: format!("/api/channels/{channel}/members"),
                token: &world.churner.token,
                body: Some(json!({})),
                channel_id: channel,
                user_id: world.churner.id,
                message_id: None,
                key,
            }
        } else {
            Call {
                kind: OpKind::Kick,
                method: "DELETE",
                path: format!("/api/channels/{channel}/members/{}", world.churner.id),
                token: &world.owner.token,
                body: None,
                channel_id: channel,
                user_id: world.owner.id,
                message_id: None,
                key,
            }
        };
        api.command(call, turn % 2).await;
        turn += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// Sends a probe message and waits until both instances' query API shows
/// it: the write path, relay, broker, projector and read path all serve.
/// Seconds from the call, or None past `within`.
pub async fn probe(api: &Api, world: &World, within: Duration) -> Option<f64> {
    let started = Instant::now();
    let key = Uuid::now_v7().to_string();
    let channel = world.probe_channel;
    let record = api
        .command(
            Call {
                kind: OpKind::Send,
                method: "POST",
                path: format!("/api/channels/{channel}/messages"),
                token: &world.owner.token,
                body: Some(json!({"content": "probe", "type": "text", "client_msg_id": key})),
                channel_id: channel,
                user_id: world.owner.id,
                message_id: None,
                key,
            },
            0,
        )
        .await;
    let Outcome::Acked { seq: Some(seq), .. } = record.outcome else {
        return None;
    };
    let path = format!("/api/channels/{channel}/messages?after={}&limit=1", seq - 1);
    for instance in 0..2 {
        loop {
            if started.elapsed() > within {
                return None;
            }
            if let Some((200, body)) = api.get(instance, &path, &world.owner.token).await
                && body["messages"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["seq"].as_u64() == Some(seq)))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Some(started.elapsed().as_secs_f64())
}
