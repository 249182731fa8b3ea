//! Open dynamic registration is rate-limited per client address
//! (`authserver.registration_rate`, 20 a minute by default): past it, 429 with
//! `Retry-After` and an RFC 7591-shaped JSON error, and a log line for the operator.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::config;
use crate::harness::Gateway;

async fn register(http: &reqwest::Client, base: &str, i: usize) -> reqwest::Response {
    http.post(format!("{base}/register"))
        .json(&json!({
            "client_name": format!("burst-{i}"),
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .expect("register")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_registration_is_limited_per_address_by_default() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&config(&tmp.path().join("notes"), "")).await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let r = register(&http, &gw.base, i).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "registration {i} of the burst"
        );
    }
    let r = register(&http, &gw.base, 20).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=4).contains(&retry),
        "one registration per 3 s: {retry}"
    );
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body: Value = r.json().await.expect("JSON error");
    assert_eq!(body["error"], "too_many_requests", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("too many client registrations")),
        "{body}"
    );
    assert!(
        gw.log_tail(50)
            .contains("registration refused: too many registrations"),
        "the operator sees why: {}",
        gw.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_rate_is_configurable_and_can_be_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&config(
        &tmp.path().join("notes"),
        "registration_rate = \"2/h\"",
    ))
    .await;
    let http = reqwest::Client::new();
    for i in 0..2 {
        assert_eq!(
            register(&http, &gw.base, i).await.status(),
            StatusCode::CREATED
        );
    }
    let r = register(&http, &gw.base, 2).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 1700, "2 an hour: one per 30 min, got {retry}");
    drop(gw);

    let gw = Gateway::start(&config(
        &tmp.path().join("notes2"),
        "registration_rate = \"off\"",
    ))
    .await;
    for i in 0..30 {
        assert_eq!(
            register(&http, &gw.base, i).await.status(),
            StatusCode::CREATED,
            "registration {i} with the limit off"
        );
    }
}
