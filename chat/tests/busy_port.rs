//! `chat up` on a port that is already taken fails at once with one clear
//! line, before it reaches any database or broker (none is running at the
//! URLs given here), and without a panic on its way out.

use std::process::Command;

#[test]
fn a_taken_port_is_one_clear_line_and_no_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address");
    let out = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["up", "--addr", &addr.to_string()])
        // Nothing listens on port 1: had it reached any of them first, it
        // would have failed with that service's line instead.
        .env("CHAT_DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env(
            "CHAT_READ_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none",
        )
        .env("CHAT_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("CHAT_REDIS_URL", "redis://127.0.0.1:1")
        .env("CHAT_JWT_SECRET", "busy-port-test-secret-busy-port-test")
        .env_remove("CHAT_TLS_CERT")
        .env_remove("CHAT_TLS_KEY")
        .output()
        .expect("chat runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started anyway: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "no clear line: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic on the way out: {stderr}"
    );
    drop(taken);
}
