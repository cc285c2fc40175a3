//! The operators' tools on the embedded backend (DESIGN §9): the SQLite
//! files of the data directory, opened without its lock, so they work
//! whether or not `chat up` runs beside them (SQLite's busy timeout
//! serialises the writers of both processes). No relay and no RabbitMQ:
//! the projector reads the log from its checkpoint, and its dead letters
//! are the table `rm.dead_letters`.

pub(crate) mod commands;
pub mod dlq;
pub mod rebuild;
pub mod status;

use event_store::{SqliteEventStore, SqliteOpenError};
use read_model::SqliteReadModel;
use service_kit::{DataDir, DataDirError};
use std::path::Path;

/// Read connections of a tool (it reads little, and never in parallel).
const READERS: u32 = 2;

/// Why the data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Log(#[from] SqliteOpenError),
    #[error("cannot open the read model {path}: {source}")]
    Read { path: String, source: sqlx::Error },
}

/// The embedded backend's files, opened for a tool.
#[derive(Debug)]
pub struct Embedded {
    pub data: DataDir,
    pub log: SqliteEventStore,
    pub read: SqliteReadModel,
}

impl Embedded {
    /// Opens the data directory at `path`, which `chat up` must have made.
    pub async fn open(path: &Path) -> Result<Embedded, OpenError> {
        let data = DataDir::existing(path)?;
        let log = SqliteEventStore::open(&data.events_file(), READERS).await?;
        let read = SqliteReadModel::open(&data.read_file())
            .await
            .map_err(|source| OpenError::Read {
                path: data.read_file().display().to_string(),
                source,
            })?;
        Ok(Embedded { data, log, read })
    }

    /// Closes both files (checkpointing their write-ahead logs).
    pub async fn close(&self) {
        self.read.close().await;
        self.log.close().await;
    }
}
