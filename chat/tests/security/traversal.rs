//! Path traversal against the web client's routes (`/`, `/static/{file}`):
//! whatever the path, the answer is one of the embedded files or a 404/400
//! that shows nothing of the disk.

use crate::http;
use crate::server;

/// Text that would only appear if a file outside the embedded table leaked.
const LEAKS: &[&str] = &[
    "[package]",
    "[workspace]",
    "root:x:0:0",
    "root:*:0:0",
    "PRIVATE KEY",
    "[core]",
    "ref: refs/",
];

/// Whether `body` is exactly one of the files `chat up` embeds.
fn embedded(body: &[u8]) -> bool {
    body == web_client::INDEX.body || web_client::ASSETS.iter().any(|a| a.body == body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_routes_never_serve_a_file_outside_the_embedded_table() {
    let server = server::server().await;
    let dots = |n: usize, sep: &str| vec![".."; n].join(sep);
    let mut paths: Vec<String> = vec![
        "/../Cargo.toml".into(),
        "/../../../../etc/passwd".into(),
        "/%2e%2e/Cargo.toml".into(),
        "/%2e%2e/".into(),
        "/%2E%2E/%2E%2E/etc/passwd".into(),
        "/..%2f..%2fetc/passwd".into(),
        "/..%2F..%2Fetc%2Fpasswd".into(),
        "/static/../../Cargo.toml".into(),
        "/static/../../../../../../etc/passwd".into(),
        "/static/..%2f..%2fCargo.toml".into(),
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd".into(),
        "/static/%2e%2e%2f%2e%2e%2fCargo.toml".into(),
        "/static/%252e%252e%252fCargo.toml".into(),
        "/static/%252e%252e/%252e%252e/etc/passwd".into(),
        "/static/..%252f..%252fetc%252fpasswd".into(),
        "/static/..\\..\\Cargo.toml".into(),
        "/static/..%5c..%5cCargo.toml".into(),
        "/static/%5c..%5c..%5cetc%5cpasswd".into(),
        "/static/....//....//etc/passwd".into(),
        "/static/..;/..;/Cargo.toml".into(),
        "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd".into(),
        "/static/%e0%80%ae%e0%80%ae/Cargo.toml".into(),
        "/static/app.js%00.html".into(),
        "/static/app.js%00".into(),
        "/static//etc/passwd".into(),
        "/static/%2fetc%2fpasswd".into(),
        "/static/./app.js".into(),
        "/static/.%2fapp.js".into(),
        "/static/app.js/".into(),
        "/static/app.js/..".into(),
        "/static/APP.JS".into(),
        "/static/index.html".into(),
        "/static/".into(),
        "/static".into(),
        "/static/.".into(),
        "/static/..".into(),
        "/static/.env".into(),
        "/static/.git/config".into(),
        "/static/../web-client/src/lib.rs".into(),
        "/static/../static/app.js".into(),
        "//etc/passwd".into(),
        "///etc/passwd".into(),
        "/./Cargo.toml".into(),
        "/Cargo.toml".into(),
        "/index.html".into(),
        "/.git/HEAD".into(),
        "/etc/passwd".into(),
        "/%00".into(),
        "/?file=../../etc/passwd".into(),
        format!("/static/{}/etc/passwd", dots(20, "/")),
        format!("/static/{}%2fetc%2fpasswd", dots(20, "%2f")),
        format!("/{}", dots(40, "/")),
    ];
    // Absolute-form and odd request targets.
    paths.push("http://127.0.0.1/../Cargo.toml".into());
    paths.push("*".into());
    for path in &paths {
        let reply = match http::try_send(server.port, &http::get(path)).await {
            Ok(reply) => reply,
            // The parser may refuse a target outright by closing: nothing served.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
            Err(e) => panic!("{path}: {e}"),
        };
        if reply.status == 200 && embedded(&reply.body) {
            continue;
        }
        let body = String::from_utf8_lossy(&reply.body);
        for leak in LEAKS {
            assert!(
                !body.contains(leak),
                "{path}: {} leaked {leak:?}",
                reply.status
            );
        }
        match reply.status {
            400 | 404 => assert!(
                reply.body.is_empty() || reply.is_error_contract(),
                "{path}: {}",
                reply.text()
            ),
            other => panic!("{path}: {other} {}", reply.text()),
        }
    }
    // The files that are served are served, so the checks above can fail.
    for asset in web_client::ASSETS {
        let reply = server
            .send(&http::get(&format!("/static/{}", asset.name)))
            .await;
        assert_eq!(reply.status, 200, "{}", asset.name);
        assert!(embedded(&reply.body), "{}", asset.name);
        assert_eq!(reply.header("content-type"), Some(asset.content_type));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    assert!(embedded(&server.send(&http::get("/")).await.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_long_paths_are_refused_and_the_server_keeps_serving() {
    let server = server::server().await;
    for length in [1_000, 8_000, 16_000, 64_000, 120_000, 140_000, 1_000_000] {
        for path in [
            format!("/static/{}", "a".repeat(length)),
            format!("/static/{}", "../".repeat(length / 3)),
            format!("/{}", "%2e%2e%2f".repeat(length / 9)),
        ] {
            match http::try_send(server.port, &http::get(&path)).await {
                Ok(reply) => {
                    assert!(
                        [400, 404, 414, 431].contains(&reply.status),
                        "{length}: {}",
                        reply.text()
                    );
                    assert!(!embedded(&reply.body) || reply.body.is_empty(), "{length}");
                }
                // Past the head limit the server may close without a word.
                Err(e) => assert!(length > 100_000, "a {length}-byte path got no answer: {e}"),
            }
        }
        assert_eq!(
            server.send(&http::get("/health")).await.status,
            200,
            "after {length}"
        );
    }
}
