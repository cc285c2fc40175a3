//! The page, its files and their headers, and the rules the files keep: no
//! inline code, no markup built from strings, every reference embedded.

use super::*;
use actix_web::App;
use actix_web::test as web_test;
use std::collections::BTreeSet;

fn client() -> WebClient {
    WebClient::new(&[
        "http://127.0.0.1:8080".to_owned(),
        "https://chat.example.com/".to_owned(),
    ])
}

fn text(asset: &Asset) -> &'static str {
    std::str::from_utf8(asset.body).expect("embedded files are UTF-8")
}

/// `(status, content-type, csp, nosniff, referrer, body)` of a GET.
async fn get(path: &str) -> (u16, String, String, String, String, Vec<u8>) {
    let app = web_test::init_service(App::new().configure(client().configure())).await;
    let res =
        web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request()).await;
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let parts = (
        res.status().as_u16(),
        header("content-type"),
        header("content-security-policy"),
        header("x-content-type-options"),
        header("referrer-policy"),
    );
    let body = web_test::read_body(res).await.to_vec();
    (parts.0, parts.1, parts.2, parts.3, parts.4, body)
}

#[actix_web::test]
async fn the_page_and_every_file_come_with_their_type_and_the_security_headers() {
    let mut paths = vec![("/".to_owned(), INDEX)];
    paths.extend(ASSETS.iter().map(|a| (format!("/static/{}", a.name), *a)));
    for (path, asset) in paths {
        let (status, content_type, csp, nosniff, referrer, body) = get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type, asset.content_type, "{path}");
        assert_eq!(csp, client().content_security_policy(), "{path}");
        assert_eq!(
            (nosniff.as_str(), referrer.as_str()),
            ("nosniff", "no-referrer")
        );
        assert_eq!(body, asset.body, "{path}");
    }
    assert!(INDEX.content_type.starts_with("text/html"));
    assert!(
        ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js"))
            .all(|a| a.content_type.starts_with("text/javascript"))
    );
}

#[actix_web::test]
async fn nothing_outside_the_table_is_served() {
    for path in [
        "/static/nope.js",
        "/static/%2e%2e%2fCargo.toml",
        "/static/..%2Fsrc%2Flib.rs",
        "/static/APP.JS",
        "/static/app.js%00",
        "/static/../Cargo.toml",
        "/static/",
        "/static/index.html/x",
        "/index.html/../../Cargo.toml",
    ] {
        let (status, _, _, _, _, body) = get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("[package]"),
            "{path} leaked a file"
        );
    }
}

#[test]
fn the_policy_allows_only_own_origins_and_no_inline_code() {
    let csp = client().content_security_policy().to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self' ws://127.0.0.1:8080 wss://chat.example.com;",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let odd = WebClient::new(&["http://a\nb".to_owned()]);
    assert!(odd.content_security_policy().contains("connect-src 'self'"));
}

#[test]
fn the_page_has_no_inline_script_style_or_handlers() {
    let html = text(&INDEX).to_lowercase();
    assert!(!html.contains("<style"), "inline <style>");
    assert!(!html.contains(" style="), "inline style attribute");
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').expect("closed tag")];
        assert!(tag.contains(" src=\"/static/"), "inline script: {tag}");
    }
    let handler = html
        .split(|c: char| c.is_whitespace())
        .find(|word| word.starts_with("on") && word.contains('='));
    assert_eq!(handler, None, "inline event handler");
}

#[test]
fn every_reference_is_an_embedded_file_and_every_file_is_embedded() {
    let html = text(&INDEX);
    let mut referenced = BTreeSet::new();
    for attr in ["src=\"/static/", "href=\"/static/"] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            referenced.insert(rest[..rest.find('"').expect("quoted")].to_owned());
        }
    }
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for (i, _) in text(asset).match_indices("from './") {
            let rest = &text(asset)[i + "from './".len()..];
            referenced.insert(rest[..rest.find('\'').expect("quoted")].to_owned());
        }
    }
    assert!(referenced.contains("app.js") && referenced.contains("socket.js"));
    for name in &referenced {
        assert!(
            asset_named(name).is_some(),
            "{name} is referenced but not embedded"
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    for entry in std::fs::read_dir(&dir).expect("static dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        assert!(
            name == INDEX.name || asset_named(&name).is_some(),
            "static/{name} is not embedded"
        );
    }
}

#[test]
fn scripts_never_build_markup_from_strings() {
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(
                !text(asset).contains(sink),
                "{} uses {sink}: message content must only ever be text",
                asset.name
            );
        }
    }
}
