//! `/metrics` parses as Prometheus text format and lists every family from
//! the start; requests show up by route and status.

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, HttpResponse, middleware, test, web};

async fn scrape(
    app: &impl Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
) -> prometheus_parse::Scrape {
    let res = test::call_service(app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), 200);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).expect("utf-8");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text format")
}

#[actix_web::test]
async fn metrics_parse_and_list_every_family_from_the_start() {
    let app = test::init_service(
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .configure(service_kit::metrics_route)
            .route(
                "/things/{id}",
                web::get().to(|| async { HttpResponse::NotFound().finish() }),
            ),
    )
    .await;
    let first = scrape(&app).await;
    for family in service_kit::metric_families() {
        assert!(
            first.samples.iter().any(|s| s.metric == family),
            "{family} is missing from a fresh scrape"
        );
        assert!(first.docs.contains_key(family), "{family} has no HELP text");
    }

    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/things/42").to_request(),
    )
    .await;
    assert_eq!(res.status(), 404);
    drop(res);
    let second = scrape(&app).await;
    let counted = second.samples.iter().any(|s| {
        s.metric == "http_requests_total"
            && s.labels.get("route") == Some("/things/:id")
            && s.labels.get("status") == Some("404")
            && matches!(s.value, prometheus_parse::Value::Counter(v) if v >= 1.0)
    });
    let seen: Vec<_> = second
        .samples
        .iter()
        .filter(|s| s.metric == "http_requests_total")
        .map(|s| (s.labels.clone(), format!("{:?}", s.value)))
        .collect();
    assert!(
        counted,
        "the request was not counted by route pattern and status: {seen:?}"
    );
}
