//! Opening databases for the analysts' tools. The event log is only read:
//! nothing is created or migrated, so the tools can point at a replica. URLs
//! are shown without passwords, and two URLs are compared by what they point
//! at (host, port, database), so a replay cannot be aimed at a live database
//! by spelling its URL differently.

use crate::AnalystError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::str::FromStr;
use std::time::Duration;

/// Connects to the event log at `url` for reading.
pub async fn open_log(url: &str) -> Result<PgPool, AnalystError> {
    let pool = open(url, "event log", 2).await?;
    event_store::check_stamps(&pool).await?;
    Ok(pool)
}

/// Connects a pool of `max_connections` to `url`; `what` names it in errors.
pub(crate) async fn open(
    url: &str,
    what: &'static str,
    max_connections: u32,
) -> Result<PgPool, AnalystError> {
    let options = options(url, "database URL")?;
    // One plain connection first: an unreachable server then fails at once
    // with its real cause, not after the pool's acquire timeout.
    let probe = PgConnection::connect_with(&options)
        .await
        .map_err(|source| connect_error(what, &options, source))?;
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|source| connect_error(what, &options, source))
}

fn connect_error(
    what: &'static str,
    options: &PgConnectOptions,
    cause: sqlx::Error,
) -> AnalystError {
    let hint = match cause {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
            "; is PostgreSQL running? start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        }
        _ => "",
    };
    AnalystError::Connect {
        what,
        target: describe(options),
        cause,
        hint,
    }
}

/// Parses a Postgres URL; a bad one is an invalid `flag`.
pub(crate) fn options(url: &str, flag: &'static str) -> Result<PgConnectOptions, AnalystError> {
    PgConnectOptions::from_str(url)
        .map(|o| o.options([("idle_in_transaction_session_timeout", "10s")]))
        .map_err(|_| AnalystError::InvalidArgument {
            flag,
            value: redact(url),
            expected: "a PostgreSQL URL like postgres://postgres@localhost:5432/chat_asof",
        })
}

/// `host:port/database`, safe to print.
pub fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// Whether two connection options name the same database on the same server
/// (loopback spellings count as one host).
pub fn same_database(a: &PgConnectOptions, b: &PgConnectOptions) -> bool {
    let host = |o: &PgConnectOptions| {
        let h = o.get_host().trim_matches(['[', ']']).to_ascii_lowercase();
        match h.as_str() {
            "localhost" | "127.0.0.1" | "::1" => "loopback".to_owned(),
            _ => h,
        }
    };
    let database = |o: &PgConnectOptions| o.get_database().unwrap_or("postgres").to_owned();
    host(a) == host(b) && a.get_port() == b.get_port() && database(a) == database(b)
}

/// A URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> PgConnectOptions {
        options(url, "test").expect("valid URL")
    }

    #[test]
    fn loopback_spellings_are_one_database() {
        assert!(same_database(
            &opts("postgres://postgres@localhost:5432/chat_read"),
            &opts("postgres://other:pw@127.0.0.1/chat_read"),
        ));
        assert!(!same_database(
            &opts("postgres://postgres@localhost:5432/chat_read"),
            &opts("postgres://postgres@localhost:5432/chat_asof"),
        ));
        assert!(!same_database(
            &opts("postgres://postgres@localhost:5432/chat_read"),
            &opts("postgres://postgres@localhost:5433/chat_read"),
        ));
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("postgres://ann:secret@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        assert_eq!(redact("postgres://ann@db/x"), "postgres://ann@db/x");
        let described = describe(&opts("postgres://ann:secret@db:5432/x"));
        assert_eq!(described, "db:5432/x");
    }
}
