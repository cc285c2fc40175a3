//! Security tests of issue #11: the real `chat up` binary attacked from
//! outside, over raw TCP, HTTP and WebSockets — forged and foreign tokens,
//! browser origins, hostile strings in every client-set field, path
//! traversal, size limits and slowloris. Each test asserts the exact status
//! and DESIGN.md §6 error code, and that nothing was stored where it must
//! not be (counted in the event log's own database).
//!
//! `server` starts one `chat up` per test process (shared by the tests of a
//! `cargo test` run while they overlap); `http` and `ws` (in `tests/common`,
//! shared with the backends suite) are raw clients that send exactly the
//! bytes a test wrote.

mod accounts;
mod channels;
#[path = "../common/http.rs"]
mod http;
mod inputs;
mod jwt;
mod limits;
mod logs;
mod messages;
mod origin;
mod server;
mod slowloris;
mod strings;
mod tokens;
mod traversal;
#[path = "../common/ws.rs"]
mod ws;
