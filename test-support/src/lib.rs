//! Test-only helpers: every test gets its own freshly migrated database, so
//! tests run in parallel against the real Postgres without seeing each other.

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;

/// The server tests create their databases on (`CHAT_TEST_DATABASE_URL`, default local).
pub fn server_url() -> String {
    std::env::var("CHAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into())
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty database with the event log's schema.
    pub async fn new_event_log() -> TestDb {
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&server_url())
            .expect("CHAT_TEST_DATABASE_URL is a valid URL");
        let url = options.clone().database(&name).to_url_lossy().to_string();
        let pool = event_store::connect(&url, 20)
            .await
            .expect("test database is created and migrated");
        TestDb { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // short-lived thread with its own runtime removes the database.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio_current_thread() else {
                return;
            };
            rt.block_on(async move {
                let Ok(options) = PgConnectOptions::from_str(&server_url()) else {
                    return;
                };
                if let Ok(mut conn) = PgConnection::connect_with(&options).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

fn tokio_current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

impl TestDb {
    /// Creates an empty read database with the live read-model schema.
    pub async fn new_read_model() -> TestDb {
        let name = format!("chat_test_read_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&server_url())
            .expect("CHAT_TEST_DATABASE_URL is a valid URL");
        let url = options.clone().database(&name).to_url_lossy().to_string();
        let pool = read_model::connect(&url, 20)
            .await
            .expect("read database is created");
        TestDb { name, url, pool }
    }
}

/// A RabbitMQ virtual host that exists for one test, so tests declaring the
/// same exchange and queue names run in parallel without seeing each other.
pub struct TestVhost {
    pub name: String,
    pub amqp_url: String,
}

impl TestVhost {
    pub fn new() -> TestVhost {
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let amqp_url = format!("amqp://guest:guest@127.0.0.1:5672/{name}");
        TestVhost { name, amqp_url }
    }

    /// Messages waiting in `queue` of this vhost.
    pub fn queue_depth(&self, queue: &str) -> Option<u64> {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "-p", &self.name, "name", "messages"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let mut cols = line.split_whitespace();
                (cols.next() == Some(queue))
                    .then(|| cols.next().and_then(|n| n.parse().ok()))
                    .flatten()
            })
    }
}

impl Default for TestVhost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (is RabbitMQ installed?)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
