//! RFC 7662 introspection against a real HTTP endpoint on loopback: caching,
//! single flight, client authentication, and an identity provider that is down,
//! slow or failing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mcpgate_guard::{
    AuthMethod, AuthRejection, Chain, ClientAuthMethod, Credential, Introspection,
    IntrospectionConfig, Verifier, VerifyError,
};
use serde_json::{Value, json};

/// The `Authorization` header and the form fields of one introspection request.
type Seen = (Option<String>, HashMap<String, String>);

/// What the fake identity provider saw and will answer.
#[derive(Default)]
struct Idp {
    calls: AtomicUsize,
    /// token → answer; unknown tokens are inactive.
    answers: Mutex<HashMap<String, Value>>,
    delay: Mutex<Duration>,
    status: Mutex<Option<StatusCode>>,
    /// The last request.
    last: Mutex<Option<Seen>>,
}

impl Idp {
    fn answer(&self, token: &str, v: Value) {
        self.answers.lock().unwrap().insert(token.into(), v);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn introspect(State(idp): State<Arc<Idp>>, headers: HeaderMap, body: String) -> Response {
    idp.calls.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *idp.last.lock().unwrap() = Some((auth, form.clone()));
    let delay = *idp.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if let Some(s) = *idp.status.lock().unwrap() {
        return (s, "boom").into_response();
    }
    let answer = form
        .get("token")
        .and_then(|t| idp.answers.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}

async fn serve(idp: Arc<Idp>) -> String {
    let app = axum::Router::new()
        .route("/introspect", axum::routing::post(introspect))
        .with_state(idp);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/introspect")
}

fn config(endpoint: &str) -> IntrospectionConfig {
    toml::from_str(&format!(
        "endpoint = \"{endpoint}\"\nclient_id = \"mcpgate\"\nclient_secret = \"s3:cr&t+/\""
    ))
    .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer(t: &str) -> Credential {
    Credential::Bearer(t.into())
}

#[tokio::test]
async fn an_active_token_becomes_a_principal_and_is_cached() {
    let idp = Arc::new(Idp::default());
    let exp = unix_now() + 3600;
    idp.answer(
        "tok-alice",
        json!({"active": true, "sub": "alice", "client_id": "cursor", "scope": "notes:read",
               "aud": "https://mcp.example/mcp", "exp": exp, "groups": ["eng"]}),
    );
    let v = Introspection::new(&config(&serve(idp.clone()).await)).unwrap();
    let ok = v.verify(&bearer("tok-alice")).await.unwrap();
    let p = &ok.principal();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.client_id().map(|c| c.as_str()), Some("cursor"));
    assert!(p.has_scope("notes:read") && !p.has_scope("notes:write"));
    assert_eq!(p.audience(), ["https://mcp.example/mcp"]);
    assert_eq!(p.method(), AuthMethod::Introspection);
    assert_eq!(p.claims()["groups"], json!(["eng"]));
    assert!(
        ok.cache_for() <= Duration::from_secs(300) && ok.cache_for() > Duration::from_secs(290)
    );
    v.verify(&bearer("tok-alice")).await.unwrap();
    assert_eq!(
        idp.calls(),
        1,
        "the second verification is served from the cache"
    );
}

#[tokio::test]
async fn an_inactive_token_is_invalid_and_cached_briefly() {
    let idp = Arc::new(Idp::default());
    let mut cfg = config(&serve(idp.clone()).await);
    cfg.negative_ttl = Duration::from_millis(300);
    let v = Introspection::new(&cfg).unwrap();
    for _ in 0..3 {
        assert_eq!(
            v.verify(&bearer("revoked")).await.unwrap_err(),
            VerifyError::Invalid("Token is not active (revoked or expired)".into())
        );
    }
    assert_eq!(idp.calls(), 1, "negative answers are cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    idp.answer("revoked", json!({"active": true, "sub": "back"}));
    assert_eq!(
        v.verify(&bearer("revoked"))
            .await
            .unwrap()
            .principal()
            .subject(),
        "back"
    );
    assert_eq!(idp.calls(), 2, "and only briefly");
}

#[tokio::test]
async fn concurrent_misses_share_one_call() {
    let idp = Arc::new(Idp::default());
    *idp.delay.lock().unwrap() = Duration::from_millis(200);
    idp.answer("popular", json!({"active": true, "sub": "bob"}));
    let v = Arc::new(Introspection::new(&config(&serve(idp.clone()).await)).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let v = v.clone();
        tasks.spawn(async move { v.verify(&bearer("popular")).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().principal().subject(), "bob");
    }
    assert_eq!(
        idp.calls(),
        1,
        "20 concurrent verifications, one introspection"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_failure_too_and_it_is_not_cached() {
    let idp = Arc::new(Idp::default());
    *idp.delay.lock().unwrap() = Duration::from_millis(100);
    *idp.status.lock().unwrap() = Some(StatusCode::BAD_GATEWAY);
    idp.answer("t", json!({"active": true, "sub": "carol"}));
    let v = Arc::new(Introspection::new(&config(&serve(idp.clone()).await)).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let v = v.clone();
        tasks.spawn(async move { v.verify(&bearer("t")).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(
            r.unwrap().unwrap_err(),
            VerifyError::Unavailable("the token introspection endpoint answered HTTP 502".into())
        );
    }
    assert_eq!(idp.calls(), 1);
    *idp.status.lock().unwrap() = None;
    assert_eq!(
        v.verify(&bearer("t")).await.unwrap().principal().subject(),
        "carol"
    );
    assert_eq!(idp.calls(), 2, "an unavailable answer is never cached");
}

#[tokio::test]
async fn an_unreachable_idp_is_unavailable_and_the_chain_answers_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let v = Introspection::new(&config(&format!("http://{addr}/introspect"))).unwrap();
    let e = v.verify(&bearer("any")).await.unwrap_err();
    assert_eq!(
        e,
        VerifyError::Unavailable("the token introspection endpoint is unreachable".into())
    );
    let chain = Chain::new(vec![Arc::new(v)]);
    let e = chain.authenticate(&bearer("any")).await.unwrap_err();
    assert!(matches!(e, AuthRejection::Unavailable(_)), "{e:?}");
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_slow_idp_is_unavailable_after_the_timeout() {
    let idp = Arc::new(Idp::default());
    *idp.delay.lock().unwrap() = Duration::from_secs(3);
    idp.answer("slow", json!({"active": true, "sub": "dave"}));
    let mut cfg = config(&serve(idp.clone()).await);
    cfg.timeout = Duration::from_millis(300);
    let v = Introspection::new(&cfg).unwrap();
    let started = Instant::now();
    let e = v.verify(&bearer("slow")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        e,
        VerifyError::Unavailable(
            "the token introspection endpoint did not answer within 300ms".into()
        )
    );
}

#[tokio::test]
async fn server_errors_and_refusals_of_mcpgate_are_unavailable_not_invalid() {
    let idp = Arc::new(Idp::default());
    idp.answer("t", json!({"active": true, "sub": "erin"}));
    let v = Introspection::new(&config(&serve(idp.clone()).await)).unwrap();
    for s in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        *idp.status.lock().unwrap() = Some(s);
        assert!(
            matches!(
                v.verify(&bearer("t")).await,
                Err(VerifyError::Unavailable(_))
            ),
            "{s}"
        );
    }
}

#[tokio::test]
async fn the_positive_cache_ends_at_exp() {
    let idp = Arc::new(Idp::default());
    let exp = unix_now() + 2;
    idp.answer(
        "short-lived",
        json!({"active": true, "sub": "frank", "exp": exp}),
    );
    let v = Introspection::new(&config(&serve(idp.clone()).await)).unwrap();
    let ok = v.verify(&bearer("short-lived")).await.unwrap();
    assert!(
        ok.cache_for() <= Duration::from_secs(2),
        "{:?}",
        ok.cache_for()
    );
    v.verify(&bearer("short-lived")).await.unwrap();
    assert_eq!(idp.calls(), 1);
    // Past exp the cached answer is gone; the IdP now says inactive.
    idp.answer("short-lived", json!({"active": false}));
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    assert_eq!(
        v.verify(&bearer("short-lived")).await.unwrap_err(),
        VerifyError::Invalid("Token is not active (revoked or expired)".into())
    );
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn an_active_answer_past_exp_is_refused_as_expired() {
    let idp = Arc::new(Idp::default());
    idp.answer(
        "stale",
        json!({"active": true, "sub": "g", "exp": 1_767_225_600}),
    );
    let v = Introspection::new(&config(&serve(idp.clone()).await)).unwrap();
    assert_eq!(
        v.verify(&bearer("stale")).await.unwrap_err(),
        VerifyError::Invalid("Token expired at 2026-01-01T00:00:00Z".into())
    );
}

#[tokio::test]
async fn client_secret_basic_is_a_form_encoded_authorization_header() {
    let idp = Arc::new(Idp::default());
    let v = Introspection::new(&config(&serve(idp.clone()).await)).unwrap();
    let _ = v.verify(&bearer("abc.def")).await;
    let (auth, form) = idp.last.lock().unwrap().clone().unwrap();
    let auth = auth.expect("an Authorization header");
    let encoded = auth.strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "mcpgate:s3%3Acr%26t%2B%2F"
    );
    assert_eq!(form.get("token").map(String::as_str), Some("abc.def"));
    assert_eq!(
        form.get("token_type_hint").map(String::as_str),
        Some("access_token")
    );
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_form() {
    let idp = Arc::new(Idp::default());
    let mut cfg = config(&serve(idp.clone()).await);
    cfg.auth_method = ClientAuthMethod::ClientSecretPost;
    let v = Introspection::new(&cfg).unwrap();
    let _ = v.verify(&bearer("xyz")).await;
    let (auth, form) = idp.last.lock().unwrap().clone().unwrap();
    assert_eq!(auth, None);
    assert_eq!(form.get("client_id").map(String::as_str), Some("mcpgate"));
    assert_eq!(
        form.get("client_secret").map(String::as_str),
        Some("s3:cr&t+/")
    );
    assert_eq!(form.get("token").map(String::as_str), Some("xyz"));
}

#[tokio::test]
async fn the_audience_must_match_and_api_keys_are_not_introspected() {
    let idp = Arc::new(Idp::default());
    idp.answer(
        "for-other",
        json!({"active": true, "sub": "h", "aud": ["https://other.example/mcp"]}),
    );
    idp.answer(
        "for-us",
        json!({"active": true, "sub": "h", "aud": ["https://other.example/mcp", "https://mcp.example/mcp/"]}),
    );
    let mut cfg = config(&serve(idp.clone()).await);
    cfg.audience = Some("https://mcp.example/mcp".into());
    let v = Arc::new(Introspection::new(&cfg).unwrap());
    assert_eq!(
        v.verify(&bearer("for-other")).await.unwrap_err(),
        VerifyError::Invalid("Token audience does not include https://mcp.example/mcp".into())
    );
    v.verify(&bearer("for-us")).await.unwrap();
    let chain = Chain::new(vec![v]);
    chain
        .authenticate(&Credential::ApiKey("for-us".into()))
        .await
        .unwrap_err();
    assert_eq!(idp.calls(), 2, "the API key never reached the IdP");
}
