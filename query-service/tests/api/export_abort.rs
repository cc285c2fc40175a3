//! An export that the log fails in the middle of ends with an aborted body,
//! over a real socket: the client must never mistake it for a complete file.

use crate::helpers::*;
use crate::seed::new_events;
use actix_web::{App, HttpServer, middleware, web};
use event_store::{ExpectedVersion, PgEventStore};
use query_service::QueryService;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The chunked-encoding trailer that marks a complete body.
const LAST_CHUNK: &[u8] = b"\r\n0\r\n\r\n";

#[actix_web::test]
async fn a_log_failure_mid_export_aborts_the_body() {
    let app = spawn().await;
    let store = app.store();
    // Far more than the socket buffers hold, so the export is still reading
    // the log when it fails.
    for batch in 0..120 {
        let stream = format!("channel-{}", batch % 7);
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                &new_events(&vec!["MessageSent"; 250]),
            )
            .await
            .expect("append batch");
    }
    app.settle().await;

    // The export's own small pool, so its sessions can be told apart and ended.
    let export_pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&app.log.url)
        .await
        .expect("export pool");
    let service = web::Data::new(QueryService::new(
        std::sync::Arc::new(read_model::PgReadModel::new(app.read.pool.clone())),
        std::sync::Arc::new(PgEventStore::new(export_pool.clone())),
        vec![ADMIN.to_owned()],
    ));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .app_data(service.clone())
            .app_data(web::Data::new(jwt()))
            .configure(|cfg| service_kit::configure_extractors(cfg, 16 * 1024))
            .configure(query_service::configure)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut client = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token(Uuid::new_v4(), ADMIN)
    );
    client
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut received = vec![0u8; 64 * 1024];
    client
        .read_exact(&mut received)
        .await
        .expect("the export starts");
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &received[..64]
    );

    // The log goes away: the export's sessions end and no new one is let in.
    let name = app.log.name.clone();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    )))
    .execute(&app.read.pool)
    .await
    .expect("refuse connections");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&app.read.pool)
    .await
    .expect("terminate the export's sessions");

    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut rest))
        .await
        .expect("the response ends");
    received.extend_from_slice(&rest);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
    )))
    .execute(&app.read.pool)
    .await;
    handle.stop(false).await;

    let lines = received.iter().filter(|b| **b == b'\n').count();
    assert!(
        lines < 30_000,
        "the whole export was sent before the log failed ({lines} lines): the test proves nothing"
    );
    assert!(
        ended.is_err() || !received.ends_with(LAST_CHUNK),
        "an export cut short by the log ended like a complete one ({lines} lines, then the last chunk)"
    );
}
