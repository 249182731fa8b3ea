//! The user's own upstream key against a real `verify_url` on loopback: the
//! format message, 2xx / 401 / 5xx, caching, and the carrier header.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use mcpgate_guard::{
    AuthMethod, AuthRejection, Chain, Credential, UpstreamKey, UpstreamKeyConfig, Verifier,
    VerifyError,
};

const GOOD: &str = "GOOD0123456789abcdefghijABCDEFGHIJ012345";
const OTHER: &str = "OTHR0123456789abcdefghijABCDEFGHIJ012345";
const BROKEN: &str = "BRKN0123456789abcdefghijABCDEFGHIJ012345";

#[derive(Default)]
struct Api {
    calls: AtomicUsize,
    /// Which header carried the key last: "x-api-key" or "bearer".
    carrier: std::sync::Mutex<Option<&'static str>>,
}

/// 200 for GOOD, 500 for BROKEN, 401 for anything else — read from `X-Api-Key`
/// or `Authorization: Bearer`.
async fn viewer(State(api): State<Arc<Api>>, headers: HeaderMap) -> StatusCode {
    api.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = match (header("x-api-key"), header("authorization")) {
        (Some(k), None) => {
            *api.carrier.lock().unwrap() = Some("x-api-key");
            Some(k)
        }
        (None, Some(a)) => {
            *api.carrier.lock().unwrap() = Some("bearer");
            a.strip_prefix("Bearer ")
        }
        _ => None,
    };
    match key {
        Some(GOOD) => StatusCode::OK,
        Some(BROKEN) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn serve(api: Arc<Api>) -> String {
    let app = axum::Router::new()
        .route("/viewer", axum::routing::get(viewer))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/viewer")
}

fn config(extra: &str) -> UpstreamKeyConfig {
    toml::from_str(&format!(
        "upstream = \"wandb\"\nformat = \"[A-Za-z0-9]{{40}}\"\nformat_description = \"exactly 40 alphanumeric characters\"\n{extra}"
    ))
    .unwrap()
}

#[tokio::test]
async fn a_malformed_key_is_not_recognized_by_the_chain() {
    let chain = Chain::new(vec![Arc::new(UpstreamKey::new(&config("")).unwrap())]);
    let e = chain
        .authenticate(&Credential::Bearer("not-a-wandb-key".into()))
        .await
        .unwrap_err();
    // The gateway replaces this with UpstreamKey::format_error on the key's own upstream.
    assert_eq!(
        e,
        AuthRejection::InvalidToken(mcpgate_guard::UNRECOGNIZED.into())
    );
}

#[tokio::test]
async fn verify_url_accepts_2xx_and_caches_it() {
    let api = Arc::new(Api::default());
    let url = serve(api.clone()).await;
    let v = UpstreamKey::new(&config(&format!("verify_url = \"{url}\""))).unwrap();
    let ok = v.verify(&Credential::Bearer(GOOD.into())).await.unwrap();
    assert_eq!(ok.principal().method(), AuthMethod::UpstreamKey);
    assert_eq!(ok.principal().claims()["key_verified"], true);
    assert!(ok.principal().subject().as_str().starts_with("wandb:"));
    assert!(!ok.principal().subject().as_str().contains(GOOD));
    assert!(
        ok.cache_for() > Duration::from_secs(590) && ok.cache_for() <= Duration::from_secs(600)
    );
    for _ in 0..3 {
        v.verify(&Credential::ApiKey(GOOD.into())).await.unwrap();
    }
    assert_eq!(api.calls.load(Ordering::SeqCst), 1, "cached for 10 minutes");
    assert_eq!(*api.carrier.lock().unwrap(), Some("x-api-key"));
}

#[tokio::test]
async fn verify_url_401_is_invalid_and_cached_briefly_and_5xx_is_unavailable() {
    let api = Arc::new(Api::default());
    let url = serve(api.clone()).await;
    let v = UpstreamKey::new(&config(&format!("verify_url = \"{url}\""))).unwrap();
    for _ in 0..2 {
        assert_eq!(
            v.verify(&Credential::Bearer(OTHER.into()))
                .await
                .unwrap_err(),
            VerifyError::Invalid("Invalid API key: wandb refused it".into())
        );
    }
    assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    for _ in 0..2 {
        assert_eq!(
            v.verify(&Credential::Bearer(BROKEN.into()))
                .await
                .unwrap_err(),
            VerifyError::Unavailable("cannot check the API key with wandb".into())
        );
    }
    assert_eq!(
        api.calls.load(Ordering::SeqCst),
        3,
        "an unavailable answer is asked again"
    );
    // A malformed key never reaches verify_url.
    v.verify(&Credential::Bearer("short".into()))
        .await
        .unwrap_err();
    assert_eq!(api.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_checks_of_one_key_share_one_call_and_the_bearer_carrier_is_used() {
    let api = Arc::new(Api::default());
    let url = serve(api.clone()).await;
    let v = Arc::new(
        UpstreamKey::new(&config(&format!(
            "verify_url = \"{url}\"\nheader = \"bearer\""
        )))
        .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let v = v.clone();
        tasks.spawn(async move { v.verify(&Credential::Bearer(GOOD.into())).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    assert_eq!(*api.carrier.lock().unwrap(), Some("bearer"));
}

#[tokio::test]
async fn an_unreachable_verify_url_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let v = UpstreamKey::new(&config(&format!(
        "verify_url = \"http://{addr}/viewer\"\nverify_timeout = \"500ms\""
    )))
    .unwrap();
    let chain = Chain::new(vec![Arc::new(v)]);
    let e = chain
        .authenticate(&Credential::Bearer(GOOD.into()))
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}
