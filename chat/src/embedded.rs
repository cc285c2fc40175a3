//! The embedded backend (DESIGN §9): the event log and the read models in
//! SQLite files under the data directory, the projector fed from the log by
//! its own checkpoint, its announcements on an in-process bus, and presence,
//! typing and rate limits in memory. Nothing to install.

use crate::up::Wiring;
use anyhow::Context;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::SqliteEventStore;
use futures_util::FutureExt;
use memory_store::{MemoryCensus, MemoryPresence, MemorySocketSlots, MemoryThrottle};
use read_model::SqliteReadModel;
use service_kit::{DataDir, Readiness, Settings};
use std::sync::Arc;

/// Read connections of each SQLite file beside its one writer.
const READERS: u32 = 8;

/// The embedded backend, open.
pub struct Embedded {
    /// Held for the process's life: the lock on the directory goes with it.
    pub data: DataDir,
    pub log: SqliteEventStore,
    pub read: SqliteReadModel,
    pub bus: local_bus::Announcements,
    pub presence: Arc<MemoryPresence>,
}

impl Embedded {
    /// Claims the data directory (refused if another `chat up` holds it)
    /// and opens both files, creating them on first start.
    pub async fn open(settings: &Settings) -> anyhow::Result<Embedded> {
        let data = DataDir::claim(&settings.data_dir)?;
        let (log, read) = open_files(&data).await?;
        Ok(Embedded {
            data,
            log,
            read,
            bus: local_bus::Announcements::default(),
            presence: Arc::new(MemoryPresence::default()),
        })
    }

    /// The ports on SQLite and in memory; the gateway feeds from the
    /// in-process bus. Tokens are signed with `CHAT_JWT_SECRET` if set, else
    /// with the secret kept in the data directory (made on first start), so
    /// sessions survive restarts.
    pub fn wire(&self, settings: &Settings, policy: MessagePolicy) -> anyhow::Result<Wiring> {
        let store = Arc::new(self.log.clone());
        let send_throttle = MemoryThrottle::new(settings.send_rate_per_sec, settings.send_burst);
        let jwt = match settings.jwt_secret {
            Some(_) => settings.jwt()?,
            None => Settings {
                jwt_secret: Some(self.data.jwt_secret()?),
                ..settings.clone()
            }
            .jwt()?,
        };
        Ok(Wiring {
            commands: Arc::new(
                CommandService::new(store.clone(), policy).with_rate_limiter(send_throttle),
            ),
            log: store,
            read: Arc::new(self.read.clone()),
            live: gateway::LiveState {
                presence: self.presence.clone(),
                slots: Arc::new(MemorySocketSlots::new(settings.ws.max_sockets_per_user)),
                census: Arc::new(MemoryCensus::default()),
            },
            auth_throttle: Arc::new(MemoryThrottle::per_minute(settings.auth_attempts_per_min)),
            local_feed: Some(self.bus.clone()),
            jwt,
        })
    }

    /// The projector: the log from its checkpoint, onto the in-process bus.
    pub fn spawn_workers(
        &self,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let read = Arc::new(self.read.clone());
        let run = projector::run_from_log(
            read.clone(),
            Arc::new(self.log.clone()),
            read,
            self.bus.clone(),
            self.log.appended(),
            projector::LogTailConfig::default(),
            shutdown.clone(),
        );
        vec![tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %e, "projector stopped");
            }
        })]
    }

    /// Readiness: both files answer.
    pub fn readiness(&self) -> Readiness {
        let (log, read) = (self.log.clone(), self.read.clone());
        Readiness::new()
            .with(
                "event_log",
                Arc::new(move || {
                    let log = log.clone();
                    async move {
                        use event_store::EventLog;
                        answer(log.head().await.map(|_| ()), "event log")
                    }
                    .boxed()
                }),
            )
            .with(
                "read_model",
                Arc::new(move || {
                    let read = read.clone();
                    async move {
                        use read_model::ReadModel;
                        answer(read.ping().await, "read model")
                    }
                    .boxed()
                }),
            )
    }

    /// Checkpoints the write-ahead logs into the files (a clean stop).
    pub async fn close(&self) {
        self.log.close().await;
        self.read.close().await;
    }
}

async fn open_files(data: &DataDir) -> anyhow::Result<(SqliteEventStore, SqliteReadModel)> {
    let log = SqliteEventStore::open(&data.events_file(), READERS)
        .await
        .context("event log")?;
    let read = SqliteReadModel::open(&data.read_file())
        .await
        .with_context(|| format!("read model {}", data.read_file().display()))?;
    Ok((log, read))
}

fn answer(result: Result<(), sqlx::Error>, what: &str) -> Result<(), String> {
    result.map_err(|e| {
        tracing::warn!(error = %e, "readiness: {what}");
        "unreachable".to_owned()
    })
}
