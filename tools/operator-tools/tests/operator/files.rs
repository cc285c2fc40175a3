//! An embedded data directory in a temporary directory: the SQLite log and
//! read model as `chat up` opens them, its command side, and its projector
//! (`projector::run_from_log`), started and stopped at will. The tools open
//! the same files on their own, as beside a running `chat up`.

use command_service::CommandService;
use domain::MessagePolicy;
use event_store::{EventLog, SqliteEventStore};
use read_model::{ReadModel, SqliteReadModel};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Files {
    pub dir: tempfile::TempDir,
    pub log: Arc<SqliteEventStore>,
    pub read: SqliteReadModel,
    pub commands: CommandService,
    projector: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Files {
    /// The files, with no projector running.
    pub async fn new() -> Files {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = Arc::new(
            SqliteEventStore::open(&dir.path().join("events.db"), 4)
                .await
                .expect("open the log"),
        );
        let read = SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("open the read model");
        let commands = CommandService::new(log.clone(), MessagePolicy::default());
        Files {
            dir,
            log,
            read,
            commands,
            projector: None,
        }
    }

    /// The files with the projector running.
    pub async fn running() -> Files {
        let mut f = Files::new().await;
        f.start_projector();
        f
    }

    /// Starts the live projector, as `chat up` runs it.
    pub fn start_projector(&mut self) {
        let (stop, shutdown) = watch::channel(false);
        let read = Arc::new(self.read.clone());
        let log: Arc<dyn EventLog> = self.log.clone();
        let run = projector::run_from_log(
            read.clone(),
            log,
            read,
            local_bus::Announcements::default(),
            self.log.appended(),
            projector::LogTailConfig {
                poll_interval: Duration::from_millis(50),
                ..projector::LogTailConfig::default()
            },
            shutdown,
        );
        let task = tokio::spawn(async move {
            run.await.expect("projector runs");
        });
        self.projector = Some((stop, task));
    }

    /// Stops the projector and waits until it has.
    pub async fn stop_projector(&mut self) {
        if let Some((stop, task)) = self.projector.take() {
            let _ = stop.send(true);
            task.await.expect("projector stops");
        }
    }

    /// Settings of the embedded backend on this directory.
    pub fn settings(&self) -> service_kit::Settings {
        let dir = self.dir.path().display().to_string();
        service_kit::Settings::from_lookup(move |name| match name {
            "CHAT_BACKEND" => Some("embedded".into()),
            "CHAT_DATA_DIR" => Some(dir.clone()),
            _ => None,
        })
        .expect("settings")
    }

    pub async fn chat(&self, args: &[&str]) -> (anyhow::Result<std::process::ExitCode>, String) {
        crate::helpers::chat(&self.settings(), args).await
    }

    /// Waits until the live checkpoint stands at the log's head.
    pub async fn wait_projected(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let head = self.log.head().await.expect("head");
            let at = self
                .read
                .checkpoint(read_model::LIVE_PROJECTION)
                .await
                .expect("checkpoint");
            if at.is_some_and(|c| c.global_position >= head.global_position) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the projector did not reach the head in 30 s ({at:?} of {head:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A second connection to the live read file, for tests that reach
    /// past the port (to damage or dump it).
    pub async fn raw_read(&self) -> sqlx::SqlitePool {
        raw(&self.dir.path().join("read.db")).await
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.projector.take() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

/// A pool on one SQLite file as its main database.
pub async fn raw(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open the file")
}
