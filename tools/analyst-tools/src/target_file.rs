//! The SQLite file an embedded replay writes into: never one of the live
//! data directory's files (the read model, its other schemas, the event log)
//! however its path is spelled, never one that holds rows unless `--force`
//! (which replaces the file); created if missing, with the read-model tables.
//! The file is the replayed model's schema `rm`, as `SqliteReadModel`
//! attaches it, so its tables are named `rm.<table>` as on PostgreSQL.

use crate::AnalystError;
use read_model::{LIVE_SCHEMA, SqliteReadModel, quote_ident};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};

/// The files of a data directory a replay must never write, and why.
const LIVE_FILES: [(&str, &str); 2] = [
    (
        "read.db",
        "it is the live read model (read.db in CHAT_DATA_DIR)",
    ),
    (
        "events.db",
        "it is the event log (events.db in CHAT_DATA_DIR)",
    ),
];

/// A replay target file, ready to be written.
pub struct TargetFile {
    pub model: SqliteReadModel,
    /// The path as given, to print.
    pub described: String,
}

/// Checks the `--into` path: a file path, not a database URL.
pub fn path_of(into: &str) -> Result<&Path, AnalystError> {
    if into.trim().is_empty() || into.contains("://") {
        return Err(AnalystError::InvalidArgument {
            flag: "--into",
            value: into.chars().take(80).collect(),
            expected: "a SQLite file path like ./chat_asof.db (the embedded backend)",
        });
    }
    Ok(Path::new(into))
}

/// Checks, replaces if `force`, and opens the replay target at `into`.
pub async fn prepare(
    into: &str,
    settings: &service_kit::Settings,
    force: bool,
) -> Result<TargetFile, AnalystError> {
    let path = path_of(into)?;
    let described = path.display().to_string();
    if let Some(reason) = live_file(path, &settings.data_dir) {
        return Err(AnalystError::Refused {
            target: described,
            reason: reason.to_owned(),
        });
    }
    let filled = tables_with_rows(path).await?;
    if !filled.is_empty() {
        if !force {
            return Err(AnalystError::Refused {
                target: described,
                reason: format!(
                    "it already holds data ({}); pass --force to replace the file",
                    filled.join(", ")
                ),
            });
        }
        // The file is known to be a SQLite database (its tables were listed).
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AnalystError::TargetFile(e)),
            }
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(AnalystError::TargetFile)?;
    }
    let model = SqliteReadModel::open(path)
        .await
        .map_err(AnalystError::Target)?;
    Ok(TargetFile { model, described })
}

/// Why `target` is one of the live files of `data_dir`, if it is: the same
/// path once resolved, or the same file under another name (a link).
fn live_file(target: &Path, data_dir: &Path) -> Option<&'static str> {
    let resolved_target = resolved(target);
    let in_data_dir = |name: &str| {
        resolved_target.as_ref().is_some_and(|t| {
            t.file_name().is_some_and(|n| n.to_string_lossy() == name)
                && t.parent()
                    .zip(data_dir.canonicalize().ok())
                    .is_some_and(|(parent, dir)| parent == dir)
        })
    };
    for (name, reason) in LIVE_FILES {
        if in_data_dir(name) || same_inode(target, &data_dir.join(name)) {
            return Some(reason);
        }
    }
    let other_schema = resolved_target.as_ref().is_some_and(|t| {
        let name = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.starts_with("read-") && name.ends_with(".db") && in_data_dir(&name)
    });
    other_schema.then_some("it is a schema of the live read model (in CHAT_DATA_DIR)")
}

/// The path with its directory resolved (links, `..`), whether or not the
/// file exists yet; None when its directory does not exist either.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(full) = path.canonicalize() {
        return Some(full);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(name))
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// The tables of the file that hold at least one row (`rm.table`); none when
/// there is no file yet.
async fn tables_with_rows(path: &Path) -> Result<Vec<String>, AnalystError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(AnalystError::Target)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(AnalystError::Target)?;
    let mut filled = Vec::new();
    for table in tables {
        let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quote_ident(&table)
        )))
        .fetch_one(&mut conn)
        .await
        .map_err(AnalystError::Target)?;
        if has_rows {
            filled.push(format!("{LIVE_SCHEMA}.{table}"));
        }
    }
    let _ = conn.close().await;
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_files_are_refused_however_spelled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).expect("dirs");
        std::fs::write(data.join("read.db"), b"").expect("file");
        let spelled = data.join("sub").join("..").join("read.db");
        assert!(live_file(&spelled, &data).is_some_and(|r| r.contains("live read model")));
        assert!(live_file(&data.join("events.db"), &data).is_some_and(|r| r.contains("event log")));
        assert!(live_file(&data.join("read-rebuild.db"), &data).is_some());
        #[cfg(unix)]
        {
            let link = dir.path().join("elsewhere.db");
            std::os::unix::fs::symlink(data.join("read.db"), &link).expect("link");
            assert!(live_file(&link, &data).is_some(), "a link to read.db");
            let hard = dir.path().join("hard.db");
            std::fs::hard_link(data.join("read.db"), &hard).expect("hard link");
            assert!(live_file(&hard, &data).is_some(), "a hard link to read.db");
        }
        assert_eq!(live_file(&data.join("asof.db"), &data), None);
        assert_eq!(live_file(&dir.path().join("read.db"), &data), None);
        assert!(path_of("postgres://localhost/x").is_err());
        assert!(path_of(" ").is_err());
    }
}
