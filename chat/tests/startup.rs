//! What `chat up` and `chat gateway` refuse before they serve anything, each
//! with one clear line and no panic: a backend that does not exist, a
//! gateway alone or a standalone projector on the embedded backend (both
//! only make sense beside other processes, on the services one).

use std::process::{Command, Output};

/// `chat` with only the given variables (nothing leaks in from the caller).
fn chat(args: &[&str], vars: &[(&str, &str)], data: &std::path::Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CHAT_DATA_DIR", data)
        .env("CHAT_HTTP_ADDR", "127.0.0.1:0");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("chat runs")
}

fn refused(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it ran: {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    stderr
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn an_unknown_backend_is_refused_naming_the_variable_or_the_flag() {
    let data = scratch();
    let stderr = refused(&chat(&["up"], &[("CHAT_BACKEND", "postgres")], data.path()));
    assert!(
        stderr.contains("CHAT_BACKEND=\"postgres\" is invalid: expected embedded or services"),
        "{stderr}"
    );
    let stderr = refused(&chat(&["up", "--backend", "sqlite"], &[], data.path()));
    assert!(stderr.contains("--backend"), "{stderr}");
    assert!(stderr.contains("expected embedded or services"), "{stderr}");
    assert!(
        !data.path().join("events.db").exists(),
        "nothing was created"
    );
}

#[test]
fn a_gateway_alone_needs_the_services_backend() {
    let data = scratch();
    let stderr = refused(&chat(&["gateway"], &[], data.path()));
    assert!(
        stderr.contains("`chat gateway` runs beside other instances, on the services backend only"),
        "{stderr}"
    );
    assert!(
        stderr.contains("none of CHAT_DATABASE_URL"),
        "why: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| !l.is_empty()).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn no_projector_is_refused_on_the_embedded_backend_before_it_listens() {
    let data = scratch();
    let stderr = refused(&chat(&["up", "--no-projector"], &[], data.path()));
    assert!(stderr.contains("chat: backend embedded"), "{stderr}");
    assert!(
        stderr.contains("--no-projector is for the services backend"),
        "{stderr}"
    );
}
