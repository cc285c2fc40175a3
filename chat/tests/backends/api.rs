//! The public HTTP contract (DESIGN §6) as the tests speak it: users,
//! channels, messages, whole histories and the event log, each step
//! asserting its status so a failure names the step.

use crate::http::{self, Request};
use crate::server::{ADMIN, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the read model may take to show what the log holds.
const VISIBLE_WITHIN: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery";

/// A registered user with a valid token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
    pub username: String,
}

/// One message as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub message_id: String,
    pub seq: u64,
    pub sender_id: String,
    /// `None` for a tombstone.
    pub content: Option<String>,
    pub edited: bool,
    pub deleted: bool,
}

fn uuid_of(value: &Value, field: &str) -> Uuid {
    value[field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

impl Server {
    /// Registers a fresh user (`name` plus a unique suffix) and logs in.
    pub async fn user(&self, name: &str) -> User {
        let username = format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        self.register(&username).await
    }

    /// The user `CHAT_ADMINS` names, registered.
    pub async fn admin(&self) -> User {
        self.register(ADMIN).await
    }

    async fn register(&self, username: &str) -> User {
        let creds = json!({"username": username, "password": PASSWORD});
        let reply = self.send(&http::post("/api/users", &creds)).await;
        assert_eq!(reply.status, 201, "register {username}: {}", reply.text());
        let id = uuid_of(&reply.json(), "user_id");
        User {
            id,
            token: self.login(username).await,
            username: username.to_owned(),
        }
    }

    /// A new token for `username`.
    pub async fn login(&self, username: &str) -> String {
        let creds = json!({"username": username, "password": PASSWORD});
        let reply = self.send(&http::post("/api/auth/token", &creds)).await;
        assert_eq!(reply.status, 200, "login {username}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a channel of `kind` (public or private) as `owner`.
    pub async fn channel(&self, owner: &User, kind: &str) -> Uuid {
        let name = format!("room-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let body = json!({"name": name, "kind": kind});
        let reply = self
            .send(&http::post("/api/channels", &body).token(&owner.token))
            .await;
        assert_eq!(reply.status, 201, "create channel: {}", reply.text());
        uuid_of(&reply.json(), "channel_id")
    }

    /// `user` joins the public `channel`.
    pub async fn join(&self, user: &User, channel: Uuid) {
        let reply = self
            .send(
                &http::post(&format!("/api/channels/{channel}/members"), &json!({}))
                    .token(&user.token),
            )
            .await;
        assert!(
            [200, 201, 204].contains(&reply.status),
            "join: {}",
            reply.text()
        );
    }

    /// `POST /api/channels/{channel}/messages` as `user` with `content`.
    pub fn post_request(user: &User, channel: Uuid, content: &str) -> Request {
        http::post(
            &format!("/api/channels/{channel}/messages"),
            &json!({"content": content, "type": "text"}),
        )
        .token(&user.token)
    }

    /// Sends `content` as `user`: (message id, seq).
    pub async fn post(&self, user: &User, channel: Uuid, content: &str) -> (Uuid, u64) {
        let reply = self
            .send(&Server::post_request(user, channel, content))
            .await;
        assert_eq!(reply.status, 201, "send: {}", reply.text());
        let body = reply.json();
        (
            uuid_of(&body, "message_id"),
            body["seq"].as_u64().expect("seq"),
        )
    }

    /// One page of the channel's history: (messages, has_more).
    pub async fn page(&self, user: &User, channel: Uuid, query: &str) -> (Vec<Value>, bool) {
        let path = format!("/api/channels/{channel}/messages?{query}");
        let reply = self.send(&http::get(&path).token(&user.token)).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        let body = reply.json();
        let messages = body["messages"].as_array().cloned().expect("messages");
        let has_more = body["has_more"].as_bool().expect("has_more");
        (messages, has_more)
    }

    /// Waits until the history's newest message has `seq` (the read model
    /// caught up with the log), failing loudly after a minute. Until the
    /// projector has the channel, its history is 404.
    pub async fn wait_for_seq(&self, user: &User, channel: Uuid, seq: u64) {
        let path = format!("/api/channels/{channel}/messages?limit=1");
        let deadline = Instant::now() + VISIBLE_WITHIN;
        loop {
            let reply = self.send(&http::get(&path).token(&user.token)).await;
            let at = match reply.status {
                200 => reply.json()["messages"][0]["seq"].as_u64().unwrap_or(0),
                404 => 0,
                _ => panic!("GET {path}: {}", reply.text()),
            };
            if at >= seq {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "seq {seq} not visible in {channel} within {VISIBLE_WITHIN:?} (newest {at})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole history, paged with `before` 100 at a time, newest first,
    /// checking each page's order and `has_more` on the way.
    pub async fn history(&self, user: &User, channel: Uuid) -> Vec<Shown> {
        let mut all: Vec<Shown> = Vec::new();
        let mut query = "limit=100".to_owned();
        loop {
            let (page, has_more) = self.page(user, channel, &query).await;
            let shown: Vec<Shown> = page.iter().map(shown).collect();
            for pair in shown.windows(2) {
                assert!(pair[0].seq > pair[1].seq, "newest first: {pair:?}");
            }
            if let (Some(last), Some(first)) = (all.last(), shown.first()) {
                assert!(last.seq > first.seq, "pages continue: {last:?} {first:?}");
            }
            let oldest = shown.last().map(|m| m.seq);
            assert_eq!(
                has_more,
                oldest.is_some_and(|seq| seq > 1),
                "has_more on the page ending at {oldest:?}"
            );
            all.extend(shown);
            match (has_more, oldest) {
                (true, Some(seq)) => query = format!("limit=100&before={seq}"),
                _ => return all,
            }
        }
    }

    /// `GET /api/events` (all of it) as `admin`: one envelope per line.
    pub async fn events(&self, admin: &User) -> Vec<Value> {
        let reply = self
            .send(&http::get("/api/events").token(&admin.token))
            .await;
        assert_eq!(reply.status, 200, "GET /api/events: {}", reply.text());
        ndjson(&reply.body)
    }
}

impl Server {
    /// `GET /api/events` once what it lists satisfies `shows`. A whole-log
    /// reader sees a commit only when every older transaction of the cluster
    /// has ended (DESIGN §3), so on PostgreSQL the newest events may lag.
    pub async fn events_showing(
        &self,
        admin: &User,
        shows: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + VISIBLE_WITHIN;
        loop {
            let events = self.events(admin).await;
            if shows(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "/api/events did not show what the test wrote within {VISIBLE_WITHIN:?}: {} events",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Lines of NDJSON, each parsed.
pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("NDJSON line {l:?}: {e}")))
        .collect()
}

fn shown(message: &Value) -> Shown {
    let deleted = message["deleted"].as_bool().expect("deleted");
    Shown {
        message_id: message["message_id"]
            .as_str()
            .expect("message_id")
            .to_owned(),
        seq: message["seq"].as_u64().expect("seq"),
        sender_id: message["sender_id"].as_str().expect("sender_id").to_owned(),
        content: message["content"]
            .as_str()
            .filter(|_| !deleted)
            .map(str::to_owned),
        // A tombstone's edits are gone with its content.
        edited: !deleted && !message["edited_at"].is_null(),
        deleted,
    }
}

/// The history the log implies for `channel`: its `MessageSent`s with the
/// edits and deletes after them applied, newest first.
pub fn fold(events: &[Value], channel: Uuid) -> Vec<Shown> {
    let channel = channel.to_string();
    let mut messages: Vec<Shown> = Vec::new();
    for event in events {
        let data = &event["data"];
        if data["channel_id"] != channel.as_str() {
            continue;
        }
        let id = data["message_id"].as_str().unwrap_or_default();
        match event["event_type"].as_str().unwrap_or_default() {
            "MessageSent" => messages.push(Shown {
                message_id: id.to_owned(),
                seq: data["seq"].as_u64().expect("seq"),
                sender_id: data["sender_id"].as_str().expect("sender_id").to_owned(),
                content: data["content"].as_str().map(str::to_owned),
                edited: false,
                deleted: false,
            }),
            "MessageEdited" => {
                let message = messages
                    .iter_mut()
                    .find(|m| m.message_id == id)
                    .expect("an edit follows its message");
                message.content = data["content"].as_str().map(str::to_owned);
                message.edited = true;
            }
            "MessageDeleted" => {
                let message = messages
                    .iter_mut()
                    .find(|m| m.message_id == id)
                    .expect("a delete follows its message");
                message.content = None;
                message.edited = false;
                message.deleted = true;
            }
            _ => {}
        }
    }
    messages.sort_by_key(|m| std::cmp::Reverse(m.seq));
    messages
}
