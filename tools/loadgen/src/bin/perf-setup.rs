//! The setup step of the `wrk` benchmarks (issue #14): users with tokens and
//! channels they are members of, made beforehand so the timed run is only
//! message sends.
//!
//! ```text
//! perf-setup BASE_URL --users 64 --channels 1 --out TARGETS
//! ```
//!
//! Registers `--users` users and creates `--channels` public channels (user
//! `c` creates channel `c`); user `i` joins channel `i % channels`. Writes one
//! line per user to `--out`: `TOKEN CHANNEL_ID`, which `wrk-send.lua` hands
//! out one per connection. With `--channels 1` every connection sends into
//! the same channel; with `--channels` = `--users` each has its own.

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use loadgen::http;
use serde_json::json;
use std::sync::Arc;

const USAGE: &str = "usage: perf-setup BASE_URL --users 64 --channels 1 --out TARGETS";
const PASSWORD: &str = "perf-setup-password-1";
/// Registrations in flight at once (each is an argon2 hash on the server).
const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut base = None;
    let (mut users, mut channels, mut out) = (64usize, 1usize, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--users" => users = value()?.parse().context("--users")?,
            "--channels" => channels = value()?.parse().context("--channels")?,
            "--out" => out = Some(value()?),
            other if !other.starts_with("--") => base = Some(other.to_owned()),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let (Some(base), Some(out)) = (base, out) else {
        bail!("{USAGE}");
    };
    if channels == 0 || users < channels {
        bail!("need at least one channel and at least as many users as channels");
    }
    let authority = http::authority(&base)?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let pool = Arc::new(http::Pool::new(&authority));
    let register = |i: usize| {
        let (pool, run) = (pool.clone(), &run);
        async move {
            let mut client = pool.take();
            let token = http::register(&mut client, &format!("ps{run}u{i}"), PASSWORD).await;
            pool.put(client);
            token.with_context(|| format!("user {i}"))
        }
    };
    let tokens: Vec<String> = stream::iter(0..users)
        .map(register)
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut client = http::Client::new(&authority);
    let mut channel_ids = Vec::with_capacity(channels);
    for (c, token) in tokens.iter().enumerate().take(channels) {
        let created = client
            .request(
                "POST",
                "/api/channels",
                Some(token),
                Some(&json!({ "name": format!("ps-{run}-{c}"), "kind": "public" })),
            )
            .await?
            .expect(201, "create channel")?;
        channel_ids.push(
            created["channel_id"]
                .as_str()
                .context("create channel: no channel_id")?
                .to_owned(),
        );
    }
    let mut lines = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let channel = &channel_ids[i % channels];
        if i >= channels {
            let joined = client
                .request(
                    "POST",
                    &format!("/api/channels/{channel}/members"),
                    Some(token),
                    Some(&json!({})),
                )
                .await?;
            if !(200..300).contains(&joined.status) {
                joined.expect(204, "join")?;
            }
        }
        lines.push_str(&format!("{token} {channel}\n"));
    }
    std::fs::write(&out, lines).with_context(|| format!("writing {out}"))?;
    eprintln!("{users} users over {channels} channels written to {out}");
    Ok(())
}
