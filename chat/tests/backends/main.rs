//! One behaviour, two backends (DESIGN §9): the real `chat up` started on
//! `services` (PostgreSQL, RabbitMQ, Redis) and on `embedded` (SQLite files
//! in a data directory, nothing else), driven from outside over HTTP and
//! WebSockets. Every test in `rest`, `socket` and `lifecycle` is written once
//! and run on both (`both!` makes `name::services` and `name::embedded`), so
//! the backends cannot drift; `embedded_only` holds what only the embedded
//! one has (its directory lock, and `kill -9` during sends).
//!
//! `server` owns one `chat up` per test; `api` speaks the HTTP contract;
//! `http` and `ws` are the raw clients shared with the security suite.

/// `both!(test, …)`: for each `async fn test(backend: Backend)`, the tests
/// `test::services` and `test::embedded`, each on a server of its own.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn services() {
                super::$name(crate::server::Backend::Services).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name(crate::server::Backend::Embedded).await;
            }
        }
    )*};
}

mod api;
mod embedded_only;
// Shared with the security suite, which uses the parts this one does not.
#[allow(dead_code)]
#[path = "../common/http.rs"]
mod http;
mod lifecycle;
mod rest;
mod server;
mod socket;
#[allow(dead_code)]
#[path = "../common/ws.rs"]
mod ws;
