//! The embedded backend's data directory: its SQLite files, the JWT secret
//! made on first start, and the lock that lets one `chat up` own it.
//!
//! The lock is an OS file lock (`flock`) on `chat.lock`, held for the life of
//! the process: the kernel drops it when the process ends however it ends,
//! so a `kill -9` never leaves the directory locked. The tools open the files
//! without it: SQLite's own locking lets them read and write beside a
//! running `chat up`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The event log's file.
const EVENTS_FILE: &str = "events.db";
/// The read models' file.
const READ_FILE: &str = "read.db";
const LOCK_FILE: &str = "chat.lock";
const JWT_SECRET_FILE: &str = "jwt-secret";

/// Why the data directory cannot be used; each says what to do in one line.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data directory {path} is in use by another `chat up`{holder}: stop it, or set CHAT_DATA_DIR to another directory"
    )]
    InUse { path: String, holder: String },
    #[error("no embedded data in {0} (run `chat up` first, or set CHAT_DATA_DIR)")]
    Missing(String),
    #[error(
        "{0} holds no usable secret (at least 32 bytes): delete it to make a new one (signed-in sessions end)"
    )]
    BadSecret(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError {
    let path = path.display().to_string();
    move |source| DataDirError::Io { what, path, source }
}

/// A data directory, owned by this process when `claim`ed.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Held open: closing it (or the process ending) releases the lock.
    _lock: Option<File>,
}

impl DataDir {
    /// Creates the directory if missing and takes its lock; a directory
    /// another process holds is refused in one line naming it.
    pub fn claim(path: &Path) -> Result<DataDir, DataDirError> {
        std::fs::create_dir_all(path).map_err(io("cannot create the data directory", path))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io("cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (process {pid})"),
                };
                return Err(DataDirError::InUse {
                    path: path.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path)(e)),
        }
        // The holder's pid, for the refusal above (the lock is what counts).
        lock.set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .and_then(|()| lock.flush())
            .map_err(io("cannot write", &lock_path))?;
        Ok(DataDir {
            path: path.to_owned(),
            _lock: Some(lock),
        })
    }

    /// The directory as the tools open it: no lock, and it must exist.
    pub fn existing(path: &Path) -> Result<DataDir, DataDirError> {
        if !path.join(EVENTS_FILE).exists() {
            return Err(DataDirError::Missing(path.display().to_string()));
        }
        Ok(DataDir {
            path: path.to_owned(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn events_file(&self) -> PathBuf {
        self.path.join(EVENTS_FILE)
    }

    pub fn read_file(&self) -> PathBuf {
        self.path.join(READ_FILE)
    }

    /// The secret tokens are signed with: the one kept here, or a new random
    /// one written here first (owner-only), so sessions survive restarts.
    pub fn jwt_secret(&self) -> Result<String, DataDirError> {
        let file = self.path.join(JWT_SECRET_FILE);
        match std::fs::read_to_string(&file) {
            Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_owned()),
            Ok(_) => return Err(DataDirError::BadSecret(file.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot read", &file)(e)),
        }
        use rand::Rng;
        let secret: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(&file)
            .and_then(|mut out| {
                out.write_all(secret.as_bytes())?;
                out.sync_all()
            })
            .map_err(io("cannot create", &file))?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chat-data-dir-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_claim_is_refused_in_one_line_and_the_lock_dies_with_its_holder() {
        let dir = scratch("lock");
        let first = DataDir::claim(&dir).expect("first claim");
        let refused = DataDir::claim(&dir).expect_err("second claim");
        let line = refused.to_string();
        assert!(line.contains("in use by another `chat up`"), "{line}");
        assert!(
            line.contains(&format!("process {}", std::process::id())),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        drop(first);
        DataDir::claim(&dir).expect("claimed again once released");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_jwt_secret_is_made_once_and_kept() {
        let dir = scratch("jwt");
        let data = DataDir::claim(&dir).expect("claim");
        let made = data.jwt_secret().expect("made");
        assert_eq!(made.len(), 48);
        assert_eq!(data.jwt_secret().expect("kept"), made);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(JWT_SECRET_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read the secret");
        }
        std::fs::write(dir.join(JWT_SECRET_FILE), "short").expect("spoil");
        assert!(data.jwt_secret().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tools_need_an_existing_data_directory() {
        let dir = scratch("tools");
        let missing = DataDir::existing(&dir).expect_err("nothing there");
        assert!(format!("{missing}").contains("run `chat up` first"));
    }
}
