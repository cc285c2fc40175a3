//! The real `chat up` binary under attack: started once per test process on
//! databases, a vhost and a port of its own, shared by the tests that run in
//! that process at the same time, and stopped (its databases and vhost
//! dropped) when the last of them lets go.
//!
//! Under nextest every test is a process of its own, so each gets a server;
//! under `cargo test` the tests of a binary share one while they overlap.

use crate::http::{self, Reply};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The HS256 secret the server is started with, so tests can sign tokens.
pub const SECRET: &str = "security-test-secret-security-test-secret";
/// The username `CHAT_ADMINS` names (registered by the tests that need it).
pub const ADMIN: &str = "sec_admin_user";
/// An origin on the `CHAT_ALLOWED_ORIGINS` list.
pub const ALLOWED_ORIGIN: &str = "https://allowed.example.com";
/// How long a request head may take (`CHAT_HTTP_HEAD_TIMEOUT_SECS` here).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request body may take (`CHAT_HTTP_BODY_TIMEOUT_SECS` here).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(4);
/// How long an idle connection stays open (`CHAT_HTTP_KEEP_ALIVE_SECS` here).
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// A running `chat up`, killed when dropped; its databases and vhost go with
/// it, and its log unless a test failed (the path is in the failure message).
pub struct Server {
    child: Mutex<Child>,
    pub port: u16,
    pub log_path: std::path::PathBuf,
    // Dropped after the child is killed (fields drop after `Drop::drop`).
    pub log_db: test_support::ScratchDb,
    _read_db: test_support::ScratchDb,
    _vhost: test_support::TestVhost,
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        // The log is kept only for a test that failed.
        if std::thread::panicking() {
            eprintln!("chat up's log: {}", self.log_path.display());
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());

/// The server of this process, started if none runs, and answering.
pub async fn server() -> Arc<Server> {
    let server = {
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.upgrade() {
            Some(server) => server,
            None => {
                let server = Arc::new(Server::spawn());
                *slot = Arc::downgrade(&server);
                server
            }
        }
    };
    server.wait_until_healthy().await;
    server
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    fn spawn() -> Server {
        let log_db = test_support::ScratchDb::new("chat_sec");
        let read_db = test_support::ScratchDb::new("chat_sec_read");
        let vhost = test_support::TestVhost::new();
        let port = free_port();
        let log_path =
            std::env::temp_dir().join(format!("chat-security-{}.log", Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .arg("up")
            // Nothing from the caller's environment leaks into the server.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CHAT_DATABASE_URL", &log_db.url)
            .env("CHAT_READ_DATABASE_URL", &read_db.url)
            .env("CHAT_AMQP_URL", &vhost.amqp_url)
            .env("CHAT_REDIS_URL", test_support::redis_url())
            .env("CHAT_JWT_SECRET", SECRET)
            .env("CHAT_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("CHAT_ADMINS", ADMIN)
            .env("CHAT_ALLOWED_ORIGINS", ALLOWED_ORIGIN)
            // Other tests register from 127.0.0.1 through the same Redis at
            // once, and these tests send many messages: no throttle flakes.
            .env("CHAT_AUTH_ATTEMPTS_PER_MIN", "100000")
            .env("CHAT_SEND_RATE_PER_SEC", "10000")
            .env("CHAT_SEND_BURST", "10000")
            // Many suites run at once against one PostgreSQL of 100 connections.
            .env("CHAT_DATABASE_MAX_CONNECTIONS", "6")
            .env("CHAT_READ_DATABASE_MAX_CONNECTIONS", "6")
            .env(
                "CHAT_HTTP_HEAD_TIMEOUT_SECS",
                HEAD_TIMEOUT.as_secs().to_string(),
            )
            .env(
                "CHAT_HTTP_BODY_TIMEOUT_SECS",
                BODY_TIMEOUT.as_secs().to_string(),
            )
            .env(
                "CHAT_HTTP_KEEP_ALIVE_SECS",
                KEEP_ALIVE.as_secs().to_string(),
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"));
        let child = command.spawn().expect("chat up starts");
        Server {
            child: Mutex::new(child),
            port,
            log_path,
            log_db,
            _read_db: read_db,
            _vhost: vhost,
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(reply) = http::try_send(self.port, &http::get("/health")).await
                && reply.status == 200
            {
                return;
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                panic!("chat up exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "chat up did not answer /health within 90 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends `request`, which must get an HTTP answer.
    pub async fn send(&self, request: &http::Request) -> Reply {
        http::send(self.port, request).await
    }

    /// Registers a fresh user (`name` plus a unique suffix): (user id, token, username).
    pub async fn user(&self, name: &str) -> User {
        let username = format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        self.register_as(&username, "correct horse battery").await
    }

    /// The user `CHAT_ADMINS` names, registered by whichever test asks first.
    pub async fn admin(&self) -> User {
        let password = "admin password 1";
        let creds = json!({"username": ADMIN, "password": password});
        let reply = self.send(&http::post("/api/users", &creds)).await;
        assert!(
            [201, 409].contains(&reply.status),
            "register the admin: {}",
            reply.text()
        );
        let token = self.login(ADMIN, password).await;
        let claims = token
            .split('.')
            .nth(1)
            .map(|c| c.to_owned())
            .unwrap_or_default();
        User {
            id: crate::tokens::subject(&claims),
            token,
            username: ADMIN.to_owned(),
        }
    }

    /// Registers `username` with `password` and logs in.
    pub async fn register_as(&self, username: &str, password: &str) -> User {
        let creds = json!({"username": username, "password": password});
        let reply = self.send(&http::post("/api/users", &creds)).await;
        assert_eq!(reply.status, 201, "register {username}: {}", reply.text());
        let id = reply.json()["user_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .expect("user_id");
        let token = self.login(username, password).await;
        User {
            id,
            token,
            username: username.to_owned(),
        }
    }

    /// A token for `username`/`password`.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let creds = json!({"username": username, "password": password});
        let reply = self.send(&http::post("/api/auth/token", &creds)).await;
        assert_eq!(reply.status, 200, "login {username}: {}", reply.text());
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a public channel named `name` as `owner`.
    pub async fn channel(&self, owner: &User, name: &str) -> Uuid {
        let body = json!({"name": name, "kind": "public"});
        let reply = self
            .send(&http::post("/api/channels", &body).token(&owner.token))
            .await;
        assert_eq!(reply.status, 201, "create channel: {}", reply.text());
        reply.json()["channel_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .expect("channel_id")
    }

    /// Sends `content` to `channel` as `user`: the reply.
    pub async fn post_message(&self, user: &User, channel: Uuid, body: &Value) -> Reply {
        self.send(
            &http::post(&format!("/api/channels/{channel}/messages"), body).token(&user.token),
        )
        .await
    }

    /// The channel's messages (newest first), once `seq` is visible.
    pub async fn messages_up_to(&self, user: &User, channel: Uuid, seq: u64) -> Vec<Value> {
        let path = format!("/api/channels/{channel}/messages?limit=100");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.send(&http::get(&path).token(&user.token)).await;
            // 404 until the projection has the channel.
            assert!(
                [200, 404].contains(&reply.status),
                "history: {}",
                reply.text()
            );
            let messages = reply.json()["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let newest = messages.first().and_then(|m| m["seq"].as_u64());
            if newest.is_some_and(|n| n >= seq) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "seq {seq} never became visible in {channel}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A connection to the event log.
    async fn log_connection(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.log_db.url)
            .await
            .expect("the event log answers")
    }

    /// Events whose actor is `user`.
    pub async fn events_by(&self, user: Uuid) -> i64 {
        let mut conn = self.log_connection().await;
        sqlx::query_scalar("SELECT count(*) FROM events WHERE metadata->>'actor_id' = $1")
            .bind(user.to_string())
            .fetch_one(&mut conn)
            .await
            .expect("count events")
    }

    /// Events whose data or metadata contains `marker` anywhere.
    pub async fn events_mentioning(&self, marker: &str) -> i64 {
        let mut conn = self.log_connection().await;
        sqlx::query_scalar(
            "SELECT count(*) FROM events \
             WHERE strpos(data::text, $1) > 0 OR strpos(metadata::text, $1) > 0",
        )
        .bind(marker)
        .fetch_one(&mut conn)
        .await
        .expect("count events")
    }
}

/// A registered user with a valid token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
    pub username: String,
}

/// A marker unique to one test, to find its rows among everyone's.
pub fn marker() -> String {
    format!("mk{}", &Uuid::new_v4().simple().to_string()[..10])
}
