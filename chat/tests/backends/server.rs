//! The real `chat up` on either backend, owned by one test: started on data
//! of its own (scratch databases and a vhost, or a temporary data
//! directory), with nothing of the caller's environment; stopped gracefully,
//! killed with SIGKILL, or restarted on the same data; the tools run on the
//! same data with the same environment.

use crate::http::{self, Reply};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The username `CHAT_ADMINS` names on every server of this suite.
pub const ADMIN: &str = "backends_admin";
/// The HS256 secret a services server is given (the embedded one keeps its own).
pub const SECRET: &str = "backends-suite-secret-backends-suite-secret";
/// How long a start may take before the test calls it hung.
const START_WITHIN: Duration = Duration::from_secs(90);
/// How long a graceful stop may take.
const STOP_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Services,
    Embedded,
}

/// What a server's data lives in; kept across its restarts, removed with it.
enum Data {
    Services {
        log_db: test_support::ScratchDb,
        read_db: test_support::ScratchDb,
        vhost: test_support::TestVhost,
    },
    Embedded {
        dir: TempDir,
    },
}

/// A directory under the system's temporary one, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `chat up` of one test (or none, between a stop and a restart), killed
/// when dropped; its data goes with it, its logs unless the test failed.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    /// The environment `chat up` and the tools are run with.
    env: Vec<(String, OsString)>,
    /// One stderr file per start, the current one last.
    logs: Vec<PathBuf>,
    scratch: TempDir,
    // Dropped last (fields drop after `Drop::drop`, which kills the child).
    data: Data,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Kept for the reader of the failure, outside the scratch directory.
            for log in &self.logs {
                let kept = std::env::temp_dir().join(format!(
                    "chat-backends-{}-{}",
                    Uuid::new_v4().simple(),
                    log.file_name().and_then(|n| n.to_str()).unwrap_or("up.log")
                ));
                if std::fs::copy(log, &kept).is_ok() {
                    eprintln!("chat up's log: {}", kept.display());
                }
            }
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// A server on `backend`, answering `/ready`.
    pub async fn start(backend: Backend) -> Server {
        let mut server = Server::prepare(backend);
        server.launch().await;
        server
    }

    /// A server on `backend` with its data ready but not yet started.
    pub fn prepare(backend: Backend) -> Server {
        let scratch = TempDir::new("chat-backends");
        let mut env: Vec<(String, OsString)> = vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("CHAT_ADMINS".into(), ADMIN.into()),
            // Tests register and send a lot from one address: no throttle flakes.
            ("CHAT_AUTH_ATTEMPTS_PER_MIN".into(), "100000".into()),
            ("CHAT_SEND_RATE_PER_SEC".into(), "100000".into()),
            ("CHAT_SEND_BURST".into(), "100000".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        let data = match backend {
            Backend::Services => {
                let log_db = test_support::ScratchDb::new("chat_be");
                let read_db = test_support::ScratchDb::new("chat_be_read");
                let vhost = test_support::TestVhost::new();
                env.extend([
                    ("CHAT_DATABASE_URL".into(), log_db.url.clone().into()),
                    ("CHAT_READ_DATABASE_URL".into(), read_db.url.clone().into()),
                    ("CHAT_AMQP_URL".into(), vhost.amqp_url.clone().into()),
                    ("CHAT_REDIS_URL".into(), test_support::redis_url().into()),
                    // Sessions survive a restart only with a secret kept outside.
                    ("CHAT_JWT_SECRET".into(), SECRET.into()),
                    // Many suites share one PostgreSQL of 100 connections.
                    ("CHAT_DATABASE_MAX_CONNECTIONS".into(), "4".into()),
                    ("CHAT_READ_DATABASE_MAX_CONNECTIONS".into(), "4".into()),
                ]);
                Data::Services {
                    log_db,
                    read_db,
                    vhost,
                }
            }
            Backend::Embedded => {
                let dir = TempDir::new("chat-backends-data");
                // No service URL and no secret: the embedded default, as a newcomer runs it.
                env.push(("CHAT_DATA_DIR".into(), dir.path().into()));
                Data::Embedded { dir }
            }
        };
        Server {
            port: 0,
            child: None,
            env,
            logs: Vec::new(),
            scratch,
            data,
        }
    }

    /// Without `CHAT_JWT_SECRET` (the embedded backend never has it here).
    pub fn without_jwt_secret(mut self) -> Server {
        self.env.retain(|(name, _)| name != "CHAT_JWT_SECRET");
        self
    }

    /// The embedded server's data directory.
    pub fn data_dir(&self) -> &Path {
        match &self.data {
            Data::Embedded { dir } => dir.path(),
            Data::Services { .. } => panic!("a services server has no data directory"),
        }
    }

    /// The services server's databases, for the test that names them.
    pub fn database_names(&self) -> (String, String, String) {
        match &self.data {
            Data::Services {
                log_db,
                read_db,
                vhost,
            } => (
                log_db.name.clone(),
                read_db.name.clone(),
                vhost.name.clone(),
            ),
            Data::Embedded { .. } => panic!("an embedded server has no databases"),
        }
    }

    /// `chat {args}` with this server's environment (no `CHAT_HTTP_ADDR`),
    /// stdin closed, stdout and stderr piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .args(args)
            // Nothing from the caller's environment leaks in.
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs a tool (`chat status --json`, `chat events`) on this server's
    /// data and returns what it wrote, within a minute.
    pub async fn tool(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::from(self.command(args));
        command.kill_on_drop(true);
        let child = command.spawn().expect("the chat binary runs");
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("chat {args:?} did not finish within 60 s"))
            .expect("the tool's output")
    }

    /// Starts `chat up` (again) on this server's data and a fresh port,
    /// and waits until it is ready.
    pub async fn launch(&mut self) {
        assert!(self.child.is_none(), "chat up is already running");
        self.port = free_port();
        let log = self
            .scratch
            .path()
            .join(format!("up-{}.log", self.logs.len() + 1));
        let mut command = self.command(&["up"]);
        command
            .env("CHAT_HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        self.child = Some(command.spawn().expect("chat up starts"));
        self.logs.push(log);
        self.wait_until_ready().await;
    }

    /// Stops `chat up` with SIGTERM, as an operator does, and waits for it
    /// to exit; a clean stop exits 0.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("chat up is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM: {sent}");
        let status = wait_for_exit(&mut child, STOP_WITHIN).await;
        assert!(
            status.success(),
            "chat up did not stop cleanly on SIGTERM ({status}): {}",
            self.log()
        );
    }

    /// Kills `chat up` with SIGKILL: no shutdown code runs.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("chat up is running");
        child.kill().expect("SIGKILL is sent");
        let status = wait_for_exit(&mut child, STOP_WITHIN).await;
        assert!(!status.success(), "a killed chat up exits by its signal");
    }

    /// What the current (or last) start wrote to stderr.
    pub fn log(&self) -> String {
        self.logs
            .last()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(reply) = http::try_send(self.port, &http::get("/ready")).await
                && reply.status == 200
            {
                return;
            }
            let child = self.child.as_mut().expect("chat up is running");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chat up exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "chat up was not ready within {START_WITHIN:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `request`, which must get an HTTP answer.
    pub async fn send(&self, request: &http::Request) -> Reply {
        http::send(self.port, request).await
    }
}

/// Waits for `child` to exit, failing the test after `within`.
pub async fn wait_for_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {within:?}", child.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
