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

/// Restarts the PostgreSQL cluster that serves `CHAT_TEST_DATABASE_URL` (asked
/// for its Debian `cluster_name`, e.g. `15/main`), whichever one that is.
pub async fn restart_test_cluster() {
    let options =
        PgConnectOptions::from_str(&server_url()).expect("CHAT_TEST_DATABASE_URL is a valid URL");
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("the test cluster answers");
    let cluster: String = sqlx::query_scalar("SELECT current_setting('cluster_name')")
        .fetch_one(&mut conn)
        .await
        .expect("cluster_name");
    drop(conn);
    let Some((version, name)) = cluster.split_once('/') else {
        panic!(
            "the test cluster's cluster_name {cluster:?} is not Debian's version/name: cannot restart it with pg_ctlcluster"
        );
    };
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, name, "restart"])
        .status()
        .expect("pg_ctlcluster runs (is postgresql-common installed?)");
    assert!(
        status.success(),
        "pg_ctlcluster {cluster} restart: {status}"
    );
}

/// The Redis tests use (`CHAT_TEST_REDIS_URL`, default local); each test keys
/// under a prefix of its own.
pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A power of ten `p` such that every transaction id in `p - margin ..= p + margin`
/// is already settled (below the oldest running transaction of the cluster), so
/// rows stamped with those ids are visible to whole-log readers. Derived from
/// the cluster's own counter: a new cluster starts near 1,000, an old one may
/// be in the billions, and a test of the digit boundary must hold on both.
pub async fn settled_digit_boundary(pool: &PgPool, margin: u64) -> u64 {
    let xmin: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
        .expect("the cluster's oldest running transaction id");
    let xmin: u64 = xmin.parse().expect("xid8 prints as a number");
    let mut boundary = 1u64;
    while boundary
        .checked_mul(10)
        .is_some_and(|next| next + margin < xmin)
    {
        boundary *= 10;
    }
    assert!(
        boundary > margin,
        "the cluster's transaction ids ({xmin}) are too young for a digit boundary with margin {margin}"
    );
    boundary
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    _dropper: DropDatabase,
}

/// A database name on the test server that no one has created yet (a tool under
/// test creates it); dropped, if it was, at the end of the test.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
    _dropper: DropDatabase,
}

impl ScratchDb {
    pub fn new(prefix: &str) -> ScratchDb {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&server_url())
            .expect("CHAT_TEST_DATABASE_URL is a valid URL");
        let url = options.database(&name).to_url_lossy().to_string();
        ScratchDb {
            _dropper: DropDatabase(name.clone()),
            name,
            url,
        }
    }
}

impl TestDb {
    /// Creates an empty database with the event log's schema.
    pub async fn new_event_log() -> TestDb {
        let scratch = ScratchDb::new("chat_test");
        let pool = event_store::connect(&scratch.url, 20)
            .await
            .expect("test database is created and migrated");
        TestDb::from_scratch(scratch, pool)
    }

    /// Creates an empty read database with the live read-model schema.
    pub async fn new_read_model() -> TestDb {
        let scratch = ScratchDb::new("chat_test_read");
        let pool = read_model::connect(&scratch.url, 20)
            .await
            .expect("read database is created");
        TestDb::from_scratch(scratch, pool)
    }

    fn from_scratch(scratch: ScratchDb, pool: PgPool) -> TestDb {
        TestDb {
            name: scratch.name,
            url: scratch.url,
            pool,
            _dropper: scratch._dropper,
        }
    }
}

/// Drops the named database from the test server when dropped itself.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // short-lived thread with its own runtime removes the database.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
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
