//! Outbound upstream credentials through the real gateway: a REST API with
//! username/password login and short-lived JWTs (refresh, re-login, one
//! renewal for many concurrent requests), OAuth client credentials, static
//! secrets to stdio children and HTTP upstreams (and what a missing one looks
//! like), and RFC 8693 token exchange per user.
//!
//! One small axum server in the test plays every remote party: the login API,
//! the token endpoint, the security token service, and checking proxies in
//! front of the demo server that answer 401 unless the right credential came.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::harness::raw::{Raw, tool_call, tool_text};
use crate::harness::{BIN, DemoHttp, Gateway, demo_stdio_upstream, toml_str};

const USER: &str = "svc-user";
const PASSWORD: &str = "pw-Correct-Horse-42";
const JWT_KEY: &[u8] = b"the REST API's own HMAC key, for the test only";
const ACCESS_TTL: u64 = 3;
const CC_TTL: u64 = 2;
const STATIC_KEY: &str = "wx-static-key-9f8e7d";

/// Everything the remote parties remember, for the assertions.
#[derive(Default)]
struct Remote {
    demo: String,
    http: reqwest::Client,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    renewing: AtomicUsize,
    max_renewing: AtomicUsize,
    /// Access tokens minted before this generation are refused.
    access_generation: AtomicUsize,
    refresh_tokens: Mutex<HashSet<String>>,
    unauthorized: AtomicUsize,
    cc_requests: AtomicUsize,
    cc_tokens: Mutex<Vec<(String, Instant)>>,
    cc_unauthorized: AtomicUsize,
    gateway: OnceLock<String>,
    sts_url: OnceLock<String>,
    exchanges: Mutex<Vec<String>>,
    /// (subject the gateway named, bearer token it sent) at the exchange upstream.
    exchange_seen: Mutex<Vec<(String, String)>>,
}

type Shared = Arc<Remote>;

async fn start_remote(demo: &DemoHttp) -> (Shared, String) {
    let remote = Arc::new(Remote {
        demo: demo.url.clone(),
        http: reqwest::Client::new(),
        ..Remote::default()
    });
    let app = axum::Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/admin/revoke-access", post(revoke_access))
        .route("/admin/revoke-refresh", post(revoke_refresh))
        .route("/api/mcp", any(api_upstream))
        .route("/cc/token", post(cc_token))
        .route("/cc/mcp", any(cc_upstream))
        .route("/static/mcp", any(static_upstream))
        .route("/sts/token", post(sts_token))
        .route("/xt/mcp", any(xt_upstream))
        .with_state(remote.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the remote parties");
    });
    (remote, base)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": "invalid_token" })),
    )
        .into_response()
}

/// Counts a renewal in flight for its duration, remembering the most at once.
async fn renewing<T>(r: &Remote, f: impl Future<Output = T>) -> T {
    let n = r.renewing.fetch_add(1, Ordering::SeqCst) + 1;
    r.max_renewing.fetch_max(n, Ordering::SeqCst);
    // Slow enough that concurrent renewals would overlap.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let out = f.await;
    r.renewing.fetch_sub(1, Ordering::SeqCst);
    out
}

fn issue(r: &Remote) -> Value {
    let gen_now = r.access_generation.load(Ordering::SeqCst);
    let claims = json!({ "sub": USER, "exp": now() + ACCESS_TTL, "gen": gen_now, "jti": uuid() });
    let access = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_KEY),
    )
    .expect("sign");
    let refresh = format!("rt-{}", uuid());
    r.refresh_tokens
        .lock()
        .expect("lock")
        .insert(refresh.clone());
    // Nested on purpose: the gateway reads configured dotted paths.
    json!({ "data": { "access_token": access, "refresh_token": refresh } })
}

fn uuid() -> String {
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn login(State(r): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    renewing(&r, async {
        r.logins.fetch_add(1, Ordering::SeqCst);
        if body["username"] != USER || body["password"] != PASSWORD {
            return unauthorized();
        }
        axum::Json(issue(&r)).into_response()
    })
    .await
}

async fn refresh(State(r): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    renewing(&r, async {
        r.refreshes.fetch_add(1, Ordering::SeqCst);
        let token = body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Refresh tokens rotate: each works once.
        if !r.refresh_tokens.lock().expect("lock").remove(&token) {
            return unauthorized();
        }
        axum::Json(issue(&r)).into_response()
    })
    .await
}

async fn revoke_access(State(r): State<Shared>) -> StatusCode {
    r.access_generation.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn revoke_refresh(State(r): State<Shared>) -> StatusCode {
    r.refresh_tokens.lock().expect("lock").clear();
    StatusCode::NO_CONTENT
}

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

async fn api_upstream(State(r): State<Shared>, req: Request) -> Response {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.required_spec_claims = ["exp"].into_iter().map(str::to_owned).collect();
    let ok = bearer(&req)
        .and_then(|t| {
            jsonwebtoken::decode::<Value>(&t, &jsonwebtoken::DecodingKey::from_secret(JWT_KEY), &v)
                .ok()
        })
        .is_some_and(|d| d.claims["gen"] == r.access_generation.load(Ordering::SeqCst));
    if !ok {
        r.unauthorized.fetch_add(1, Ordering::SeqCst);
        return unauthorized();
    }
    forward(&r, req).await
}

async fn cc_token(
    State(r): State<Shared>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    r.cc_requests.fetch_add(1, Ordering::SeqCst);
    renewing(&r, async {
        use base64::Engine;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("gw-client:cc-secret-Value")
        );
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
        if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(want.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "invalid_client" })),
            )
                .into_response();
        }
        if !has("grant_type", "client_credentials") || !has("scope", "weather:read") {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_request" })),
            )
                .into_response();
        }
        let token = format!("cc-{}", uuid());
        r.cc_tokens
            .lock()
            .expect("lock")
            .push((token.clone(), Instant::now()));
        axum::Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": CC_TTL }))
            .into_response()
    })
    .await
}

async fn cc_upstream(State(r): State<Shared>, req: Request) -> Response {
    let ok = bearer(&req).is_some_and(|t| {
        r.cc_tokens
            .lock()
            .expect("lock")
            .iter()
            .any(|(tok, at)| *tok == t && at.elapsed() < Duration::from_secs(CC_TTL))
    });
    if !ok {
        r.cc_unauthorized.fetch_add(1, Ordering::SeqCst);
        return unauthorized();
    }
    forward(&r, req).await
}

async fn static_upstream(State(r): State<Shared>, req: Request) -> Response {
    if req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) != Some(STATIC_KEY) {
        return unauthorized();
    }
    forward(&r, req).await
}

/// The STS: RFC 8693, with the gateway's identity token as the subject token.
async fn sts_token(State(r): State<Shared>, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_request", "error_description": why })),
        )
            .into_response()
    };
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return bad("grant_type");
    }
    if get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt"
        || get("audience") != "weather-api"
    {
        return bad("subject_token_type or audience");
    }
    let gateway = r.gateway.get().cloned().unwrap_or_default();
    let jwks: JwkSet = r
        .http
        .get(format!("{gateway}/.well-known/mcpgate/identity-jwks.json"))
        .send()
        .await
        .expect("the gateway's identity JWKS")
        .json()
        .await
        .expect("a JWKS");
    let token = get("subject_token");
    let Ok(header) = jsonwebtoken::decode_header(&token) else {
        return bad("subject_token is not a JWS");
    };
    let Some(jwk) = header.kid.as_deref().and_then(|k| jwks.find(k)) else {
        return bad("unknown kid");
    };
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[gateway.as_str()]);
    // Signed for this STS, not for an upstream.
    v.set_audience(&[r.sts_url.get().cloned().unwrap_or_default()]);
    let claims = match jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_jwk(jwk).expect("a key"),
        &v,
    ) {
        Ok(d) => d.claims,
        Err(e) => return bad(&format!("subject_token does not verify: {e}")),
    };
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    r.exchanges.lock().expect("lock").push(sub.clone());
    axum::Json(json!({
        "access_token": format!("xt-{sub}-{}", uuid()),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 300
    }))
    .into_response()
}

async fn xt_upstream(State(r): State<Shared>, req: Request) -> Response {
    let subject = req
        .headers()
        .get("x-mcpgate-subject")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let token = bearer(&req).unwrap_or_default();
    r.exchange_seen
        .lock()
        .expect("lock")
        .push((subject.clone(), token.clone()));
    if subject.is_empty() || !token.starts_with(&format!("xt-{subject}-")) {
        return unauthorized();
    }
    forward(&r, req).await
}

/// Passes a checked request on to the demo server (without the credential).
async fn forward(r: &Remote, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("read the body");
    let mut out = r.http.request(parts.method, &r.demo).body(body);
    for (k, v) in &parts.headers {
        if !matches!(
            k.as_str(),
            "host" | "content-length" | "authorization" | "x-api-key"
        ) {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.expect("the demo answers");
    let mut answer = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            answer = answer.header(k, v);
        }
    }
    answer
        .body(Body::from_stream(resp.bytes_stream()))
        .expect("a response")
}

fn http_upstream(name: &str, url: &str, credentials: &str) -> String {
    format!(
        "[[upstream]]\nname = {}\nurl = {}\ntransport = \"streamable-http\"\n{credentials}\n",
        toml_str(name),
        toml_str(url)
    )
}

fn disabled_auth(upstreams: &str) -> String {
    format!("[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"disabled\"\n\n{upstreams}")
}

async fn whoami_many(raw: &Raw, session: &str, n: usize, first_id: u64) {
    let calls = (0..n).map(|i| {
        let body = tool_call(json!(first_id + i as u64), "whoami", json!({}));
        async move { raw.call(session, &body).await }
    });
    for resp in futures_util::future::join_all(calls).await {
        assert!(resp["result"]["isError"] != true, "{resp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_session_refreshes_relogs_and_renews_once_for_many() {
    let demo = DemoHttp::start().await;
    let (remote, base) = start_remote(&demo).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let user_file = secrets.path().join("user");
    std::fs::write(&user_file, format!("{USER}\n")).expect("write");
    let creds = format!(
        "[upstream.credentials]\nkind = \"login\"\nlogin_url = {}\nrefresh_url = {}\n\
         username_file = {}\npassword_env = \"E2E_API_PASSWORD\"\n\
         access_token_field = \"data.access_token\"\nrefresh_token_field = \"data.refresh_token\"\n",
        toml_str(&format!("{base}/login")),
        toml_str(&format!("{base}/refresh")),
        toml_str(&user_file.display().to_string()),
    );
    let metrics = crate::harness::free_port();
    let gw = Gateway::start_with_env(
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n{}",
            disabled_auth(&http_upstream("api", &format!("{base}/api/mcp"), &creds))
        ),
        &[("E2E_API_PASSWORD", PASSWORD)],
    )
    .await;
    let raw = Raw::new(&gw.mcp("api"));
    let session = raw.initialize().await;
    whoami_many(&raw, &session, 1, 10).await;
    assert_eq!(remote.logins.load(Ordering::SeqCst), 1);
    assert_eq!(remote.refreshes.load(Ordering::SeqCst), 0);

    // The JWT expires: twenty requests at once cause one refresh.
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 + 200)).await;
    whoami_many(&raw, &session, 20, 100).await;
    assert_eq!(remote.logins.load(Ordering::SeqCst), 1);
    assert_eq!(remote.refreshes.load(Ordering::SeqCst), 1);

    // The API revokes its access tokens: twenty 401s, one refresh, every request retried.
    let before = remote.unauthorized.load(Ordering::SeqCst);
    remote
        .http
        .post(format!("{base}/admin/revoke-access"))
        .send()
        .await
        .expect("revoke");
    whoami_many(&raw, &session, 20, 200).await;
    assert!(
        remote.unauthorized.load(Ordering::SeqCst) > before,
        "no 401 was seen"
    );
    assert_eq!(remote.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(remote.logins.load(Ordering::SeqCst), 1);

    // Refresh fails too: the gateway logs in again.
    remote
        .http
        .post(format!("{base}/admin/revoke-refresh"))
        .send()
        .await
        .expect("revoke");
    remote
        .http
        .post(format!("{base}/admin/revoke-access"))
        .send()
        .await
        .expect("revoke");
    whoami_many(&raw, &session, 10, 300).await;
    assert_eq!(remote.refreshes.load(Ordering::SeqCst), 3);
    assert_eq!(remote.logins.load(Ordering::SeqCst), 2);
    assert_eq!(
        remote.max_renewing.load(Ordering::SeqCst),
        1,
        "more than one renewal was in flight"
    );

    let log = std::fs::read_to_string(gw.data_dir().join("../gateway.log")).unwrap_or_default();
    assert!(!log.contains(PASSWORD), "the password reached the log");
    let ready = gw.readyz().await;
    assert_eq!(
        ready["upstreams"]["api"]["credentials"][0]["status"], "configured",
        "{ready}"
    );
    assert!(!ready.to_string().contains(PASSWORD));

    // Four renewals, each counted once: the login, two refreshes, and the
    // refresh that failed and fell back to a new login (which succeeded).
    use crate::observability::{sample, scrape};
    let text = scrape(metrics).await;
    assert_eq!(
        sample(
            &text,
            "mcpgate_credential_renewals_total{upstream=\"api\",kind=\"login\",outcome=\"ok\"}"
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcpgate_credential_renewals_total{upstream=\"api\",kind=\"login\",outcome=\"failed\"}"
        ),
        None,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_credentials_are_cached_renewed_early_and_fetched_once() {
    let demo = DemoHttp::start().await;
    let (remote, base) = start_remote(&demo).await;
    let creds = format!(
        "[upstream.credentials]\nkind = \"client_credentials\"\ntoken_url = {}\n\
         client_id = \"gw-client\"\nclient_secret_env = \"E2E_CC_SECRET\"\nscope = \"weather:read\"\n",
        toml_str(&format!("{base}/cc/token")),
    );
    let metrics = crate::harness::free_port();
    let gw = Gateway::start_with_env(
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n{}",
            disabled_auth(&http_upstream("cc", &format!("{base}/cc/mcp"), &creds))
        ),
        &[("E2E_CC_SECRET", "cc-secret-Value")],
    )
    .await;
    let raw = Raw::new(&gw.mcp("cc"));
    let session = raw.initialize().await;
    whoami_many(&raw, &session, 20, 10).await;
    assert_eq!(
        remote.cc_requests.load(Ordering::SeqCst),
        1,
        "one token for all"
    );

    // Renewed before it expires (a tenth of its life early): no request is refused.
    tokio::time::sleep(Duration::from_millis(CC_TTL * 1000 - 150)).await;
    whoami_many(&raw, &session, 20, 100).await;
    assert_eq!(
        remote.cc_requests.load(Ordering::SeqCst),
        2,
        "one renewal for twenty"
    );
    assert_eq!(remote.cc_unauthorized.load(Ordering::SeqCst), 0);
    assert_eq!(remote.max_renewing.load(Ordering::SeqCst), 1);

    // The two renewals are counted, and the upstream answered.
    use crate::observability::{sample, scrape};
    let text = scrape(metrics).await;
    assert_eq!(
        sample(
            &text,
            "mcpgate_credential_renewals_total{upstream=\"cc\",kind=\"client_credentials\",outcome=\"ok\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcpgate_upstream_up{upstream=\"cc\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcpgate_sessions_active{upstream=\"cc\"}"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_secrets_reach_stdio_children_and_http_upstreams_by_name_only() {
    let demo = DemoHttp::start().await;
    let (_remote, base) = start_remote(&demo).await;
    let data = tempfile::tempdir().expect("tempdir");
    let stdio = demo_stdio_upstream(
        "weather",
        data.path(),
        "[[upstream.credentials]]\nkind = \"static\"\nvalue_env = \"E2E_WEATHER_KEY\"\nenv = \"WEATHER_API_KEY\"\n",
    )
    .replace(
        "\"demo-server\",",
        "\"demo-server\", \"--credential\", \"WEATHER_API_KEY\", \"--credential\", \"OTHER_KEY\",",
    );
    let http = http_upstream(
        "wxhttp",
        &format!("{base}/static/mcp"),
        "[[upstream.credentials]]\nkind = \"static\"\nheader = \"X-Api-Key\"\nvalue_env = \"E2E_WEATHER_KEY\"\n",
    );
    let gw = Gateway::start_with_env(
        &disabled_auth(&format!("{stdio}\n{http}")),
        &[("E2E_WEATHER_KEY", STATIC_KEY)],
    )
    .await;

    let raw = Raw::new(&gw.mcp("weather"));
    let session = raw.initialize().await;
    let resp = raw
        .call(&session, &tool_call(json!(2), "health_check", json!({})))
        .await;
    let text = tool_text(&resp);
    assert!(
        !text.contains(STATIC_KEY),
        "health_check showed the value: {text}"
    );
    let health: Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(
        health["credentials"],
        json!([
            { "name": "WEATHER_API_KEY", "status": "configured" },
            { "name": "OTHER_KEY", "status": "missing" }
        ]),
        "{health}"
    );

    let raw = Raw::new(&gw.mcp("wxhttp"));
    let session = raw.initialize().await;
    whoami_many(&raw, &session, 2, 10).await;
    let ready = gw.readyz().await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(!ready.to_string().contains(STATIC_KEY), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_static_secret_shows_in_readyz_check_config_and_calls() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = disabled_auth(&demo_stdio_upstream(
        "weather",
        data.path(),
        "[[upstream.credentials]]\nkind = \"static\"\nvalue_env = \"WEATHER_API_KEY_E2E_UNSET\"\nenv = \"WEATHER_API_KEY\"\n",
    ));
    let want = "Missing credential WEATHER_API_KEY_E2E_UNSET for upstream weather: set the environment variable WEATHER_API_KEY_E2E_UNSET";

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, &config).expect("write");
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("WEATHER_API_KEY_E2E_UNSET")
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config passed: {stderr}");
    assert!(stderr.contains(want), "{stderr}");

    let gw = Gateway::start(&config).await;
    let r = reqwest::get(format!("{}/readyz", gw.base))
        .await
        .expect("GET /readyz");
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let doc: Value = r.json().await.expect("JSON");
    assert_eq!(doc["status"], "not_ready", "{doc}");
    assert_eq!(doc["missing_credentials"], json!([want]), "{doc}");
    let cred = &doc["upstreams"]["weather"]["credentials"][0];
    assert_eq!(cred["status"], "missing", "{doc}");
    assert_eq!(cred["name"], "WEATHER_API_KEY_E2E_UNSET", "{doc}");

    let resp = Raw::new(&gw.mcp("weather"))
        .post(None, &crate::harness::raw::initialize_request())
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.expect("a JSON-RPC error");
    assert_eq!(body["error"]["message"], want, "{body}");
}

fn create_key(data: &std::path::Path, name: &str, subject: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args([
            "keys",
            "create",
            "--name",
            name,
            "--scopes",
            "*",
            "--subject",
            subject,
        ])
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .output()
        .expect("mcpgate keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_exchange_gives_each_user_their_own_token() {
    let demo = DemoHttp::start().await;
    let (remote, base) = start_remote(&demo).await;
    let sts = format!("{base}/sts/token");
    let _ = remote.sts_url.set(sts.clone());
    let creds = format!(
        "[upstream.credentials]\nkind = \"token_exchange\"\ntoken_url = {}\naudience = \"weather-api\"\n",
        toml_str(&sts)
    );
    let metrics = crate::harness::free_port();
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n{}",
        http_upstream("shared", &format!("{base}/xt/mcp"), &creds)
    );
    let gw = Gateway::start(&config).await;
    let _ = remote.gateway.set(gw.base.clone());
    let users = ["alice", "bob"];
    let mut sessions = Vec::new();
    for u in users {
        let key = create_key(gw.data_dir(), &format!("{u}-key"), u);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {key}").parse().expect("a header"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client");
        let raw = Raw::with_client(http, &gw.mcp("shared"));
        let session = raw.initialize().await;
        sessions.push((u, raw, session));
    }
    let calls = sessions.iter().flat_map(|(u, raw, session)| {
        (0..5u64).map(move |i| async move {
            let resp = raw
                .call(session, &tool_call(json!(10 + i), "whoami", json!({})))
                .await;
            let me: Value = serde_json::from_str(tool_text(&resp)).expect("JSON");
            assert_eq!(me["subject"], *u, "{me}");
        })
    });
    futures_util::future::join_all(calls).await;

    let mut exchanged = remote.exchanges.lock().expect("lock").clone();
    exchanged.sort();
    assert_eq!(
        exchanged,
        ["alice", "bob"],
        "one exchange per user, then cached"
    );
    let seen = remote.exchange_seen.lock().expect("lock").clone();
    assert!(seen.len() >= 10, "{seen:?}");
    for (subject, token) in &seen {
        assert!(
            token.starts_with(&format!("xt-{subject}-")),
            "{subject} received {token}"
        );
    }
    // One exchange per user, each counted as a renewal.
    use crate::observability::{sample, scrape};
    let text = scrape(metrics).await;
    assert_eq!(
        sample(
            &text,
            "mcpgate_credential_renewals_total{upstream=\"shared\",kind=\"token_exchange\",outcome=\"ok\"}"
        ),
        Some(2.0),
        "{text}"
    );
}
