//! Federation end to end: users sign in to the built-in authorization server
//! through an external IdP, and their MCP client's token from our authserver
//! then calls tools through the gateway.
//!
//! - GitHub: a small axum server shaped like GitHub's OAuth (authorize,
//!   `login/oauth/access_token` answering JSON or form-encoded per `Accept`,
//!   PKCE checked) and user API (`/user`, `/user/emails`, `/user/orgs`); an org
//!   allow-list (a member gets in, a non-member gets a refusal page); the
//!   user's GitHub token forwarded to an upstream (`kind = "federated"`),
//!   refreshed when expired, and a revoked one failing the call with "sign in
//!   again" and sending the next authorization through GitHub.
//! - OIDC: a second real `mcpgate serve` whose authserver is the provider
//!   (discovery, JWKS, a validated `id_token`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode as AxStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::authserver::{
    Browser, add_user, form_encode, hidden_fields, location, pkce, query_of, token,
};
use crate::harness::raw::{Raw, tool_call};
use crate::harness::{DemoHttp, Gateway, free_port, toml_str};

const GH_SECRET: &str = "gh-client-secret-for-the-test";

/// A GitHub user of the fake GitHub.
#[derive(Clone)]
struct GhUser {
    id: u64,
    login: &'static str,
    email: &'static str,
    orgs: Vec<&'static str>,
}

#[derive(Default)]
struct FakeGithub {
    demo: String,
    http: reqwest::Client,
    /// Who is "signed in at GitHub" in the browser.
    current: Mutex<Option<GhUser>>,
    /// code → (user, code_challenge, redirect_uri)
    codes: Mutex<HashMap<String, (GhUser, String, String)>>,
    /// access token → user (valid ones)
    access: Mutex<HashMap<String, GhUser>>,
    /// refresh token → user (valid ones)
    refresh: Mutex<HashMap<String, GhUser>>,
    minted: AtomicUsize,
    refreshes: AtomicUsize,
    form_answers: AtomicUsize,
    /// The access token lifetime given out.
    expires_in: AtomicUsize,
    /// (subject header, bearer) per request at the upstream.
    seen: Mutex<Vec<(String, String)>>,
}

type Gh = Arc<FakeGithub>;

async fn gh_authorize(State(g): State<Gh>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q.get("client_id").map(String::as_str), Some("gh-client"));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(!q.contains_key("resource"));
    let user = g
        .current
        .lock()
        .unwrap()
        .clone()
        .expect("a signed-in GitHub user");
    let code = format!("ghcode-{}", g.minted.fetch_add(1, Ordering::SeqCst));
    let redirect = q["redirect_uri"].clone();
    g.codes.lock().unwrap().insert(
        code.clone(),
        (user, q["code_challenge"].clone(), redirect.clone()),
    );
    let to = format!(
        "{redirect}?{}",
        form_encode(&[("code".into(), code), ("state".into(), q["state"].clone())])
    );
    (AxStatus::FOUND, [(header::LOCATION, to)]).into_response()
}

fn mint(g: &FakeGithub, user: &GhUser) -> Value {
    let n = g.minted.fetch_add(1, Ordering::SeqCst);
    let access = format!("gho_{}_{n}", user.login);
    let refresh = format!("ghr_{}_{n}", user.login);
    g.access
        .lock()
        .unwrap()
        .insert(access.clone(), user.clone());
    let expires_in = g.expires_in.load(Ordering::SeqCst);
    if expires_in == 0 {
        // A classic OAuth app: the token neither expires nor refreshes.
        return json!({
            "access_token": access, "token_type": "bearer", "scope": "read:user,user:email,read:org",
        });
    }
    g.refresh
        .lock()
        .unwrap()
        .insert(refresh.clone(), user.clone());
    json!({
        "access_token": access, "refresh_token": refresh, "token_type": "bearer",
        "expires_in": expires_in, "scope": "read:user,user:email,read:org",
    })
}

async fn gh_token(State(g): State<Gh>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let answer = |v: Value| -> Response {
        // GitHub answers form-encoded unless asked for JSON.
        if headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) == Some("application/json") {
            axum::Json(v).into_response()
        } else {
            g.form_answers.fetch_add(1, Ordering::SeqCst);
            let pairs: Vec<(String, String)> = v
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect();
            (
                [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                form_encode(&pairs),
            )
                .into_response()
        }
    };
    if form.get("client_id").map(String::as_str) != Some("gh-client")
        || form.get("client_secret").map(String::as_str) != Some(GH_SECRET)
    {
        return answer(json!({"error": "incorrect_client_credentials"}));
    }
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            g.refreshes.fetch_add(1, Ordering::SeqCst);
            let user = g.refresh.lock().unwrap().remove(&form["refresh_token"]);
            match user {
                Some(u) => answer(mint(&g, &u)),
                None => answer(
                    json!({"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect or expired."}),
                ),
            }
        }
        _ => {
            let Some((user, challenge, redirect)) = g.codes.lock().unwrap().remove(&form["code"])
            else {
                return answer(json!({"error": "bad_verification_code"}));
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge
                || form.get("redirect_uri") != Some(&redirect)
            {
                return answer(json!({"error": "bad_verification_code"}));
            }
            answer(mint(&g, &user))
        }
    }
}

fn gh_user_of(g: &FakeGithub, headers: &HeaderMap) -> Option<GhUser> {
    let t = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .to_owned();
    g.access.lock().unwrap().get(&t).cloned()
}

async fn gh_user(State(g): State<Gh>, headers: HeaderMap) -> Response {
    match gh_user_of(&g, &headers) {
        Some(u) => {
            axum::Json(json!({"id": u.id, "login": u.login, "name": u.login})).into_response()
        }
        None => AxStatus::UNAUTHORIZED.into_response(),
    }
}

async fn gh_emails(State(g): State<Gh>, headers: HeaderMap) -> Response {
    match gh_user_of(&g, &headers) {
        Some(u) => axum::Json(json!([
            {"email": format!("old-{}", u.email), "primary": false, "verified": true},
            {"email": u.email, "primary": true, "verified": true},
        ]))
        .into_response(),
        None => AxStatus::UNAUTHORIZED.into_response(),
    }
}

async fn gh_orgs(State(g): State<Gh>, headers: HeaderMap) -> Response {
    match gh_user_of(&g, &headers) {
        Some(u) => axum::Json(
            u.orgs
                .iter()
                .map(|o| json!({"login": o}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        None => AxStatus::UNAUTHORIZED.into_response(),
    }
}

/// An upstream that needs the caller's GitHub token.
async fn gh_upstream(State(g): State<Gh>, req: Request) -> Response {
    let (subject, bearer) = {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        (h("x-mcpgate-subject"), h("authorization"))
    };
    let token = bearer
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_owned();
    g.seen
        .lock()
        .unwrap()
        .push((subject.clone(), token.clone()));
    let owner = g.access.lock().unwrap().get(&token).map(|u| u.login);
    if owner != Some(subject.as_str()) {
        return AxStatus::UNAUTHORIZED.into_response();
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    let mut out = g.http.request(parts.method, &g.demo).body(body);
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "authorization") {
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

fn alice_gh() -> GhUser {
    GhUser {
        id: 5001,
        login: "octo-alice",
        email: "alice@acme.example",
        orgs: vec!["acme", "hobby"],
    }
}
fn outsider_gh() -> GhUser {
    GhUser {
        id: 5002,
        login: "outsider",
        email: "out@elsewhere.example",
        orgs: vec!["hobby"],
    }
}

async fn start_github(demo: &DemoHttp) -> (Gh, String) {
    let g = Arc::new(FakeGithub {
        demo: demo.url.clone(),
        http: reqwest::Client::new(),
        ..FakeGithub::default()
    });
    g.expires_in.store(3600, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/login/oauth/authorize", get(gh_authorize))
        .route("/login/oauth/access_token", post(gh_token))
        .route("/api/user", get(gh_user))
        .route("/api/user/emails", get(gh_emails))
        .route("/api/user/orgs", get(gh_orgs))
        .route("/mcp", any(gh_upstream))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (g, format!("http://{addr}"))
}

/// An OAuth client of gateway `base` authorizes through the pages, where the
/// test picks the "Sign in with …" button and follows the IdP round trip with
/// `idp_leg` (which returns the URL of our callback to open). Returns the
/// final page's status and body when no code came back, else the code.
async fn authorize_via_idp(
    b: &mut Browser,
    base: &str,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    button: &str,
    idp_leg: impl AsyncFnOnce(String) -> String,
) -> Result<String, (StatusCode, String)> {
    let url = format!(
        "{base}/authorize?{}",
        form_encode(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.into()),
            ("redirect_uri".into(), redirect.into()),
            ("scope".into(), "notes:read".into()),
            ("state".into(), "st-fed".into()),
            ("code_challenge".into(), challenge.into()),
            ("code_challenge_method".into(), "S256".into()),
            ("resource".into(), format!("{base}/mcp/demo")),
        ])
    );
    let (s, h, _) = b.get(&url).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, html) = b.get(&format!("{base}{}", location(&h))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let start = html
        .split("<a class=\"button primary\" href=\"")
        .skip(1)
        .find(|p| {
            p.split_once("</a>")
                .is_some_and(|(a, _)| a.contains(button))
        })
        .and_then(|p| p.split_once('"'))
        .map(|(href, _)| crate::authserver::unescape(href))
        .unwrap_or_else(|| panic!("no {button:?} button: {html}"));
    let (s, h, body) = b.get(&format!("{base}{start}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let callback = idp_leg(location(&h)).await;
    assert!(
        callback.starts_with(&format!("{base}/federation/")),
        "{callback}"
    );
    let (s, h, body) = b.get(&callback).await;
    if s != StatusCode::SEE_OTHER {
        return Err((s, body));
    }
    // Back at /authorize, signed in: consent, then the code.
    let (s, h, html) = b.get(&format!("{base}{}", location(&h))).await;
    let redirected = if s == StatusCode::SEE_OTHER {
        location(&h)
    } else {
        assert_eq!(s, StatusCode::OK, "{html}");
        let mut form = hidden_fields(&html);
        let mut seen = std::collections::BTreeSet::new();
        form.retain(|(k, _)| seen.insert(k.clone()));
        form.push(("decision".into(), "allow".into()));
        let (s, h, body) = b.post_form(&format!("{base}/consent"), &form).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        location(&h)
    };
    Ok(query_of(&redirected)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {redirected}")))
}

async fn access_token_for(
    base: &str,
    client_id: &str,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> String {
    let (s, tok) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
            ("resource", &format!("{base}/mcp/demo")),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    tok["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// `tools/call whoami` with a fresh session: the JSON-RPC answer (of the
/// initialize when that failed).
async fn whoami_raw(mcp: &str, access: &str) -> Value {
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {access}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let raw = Raw::with_client(http, mcp);
    let r = raw
        .post(None, &crate::harness::raw::initialize_request())
        .await;
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let msgs = crate::harness::raw::messages(r).await;
    let Some(session) = session else {
        return msgs.into_iter().next().unwrap_or(Value::Null);
    };
    raw.post(
        Some(&session),
        &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    )
    .await;
    raw.call(&session, &tool_call(json!(2), "whoami", json!({})))
        .await
}

/// The browser's trip through the fake GitHub: its authorize redirects at once.
async fn github_leg(to_github: String) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&to_github)
        .send()
        .await
        .expect("GitHub authorize");
    assert_eq!(r.status(), StatusCode::FOUND);
    r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_org_allow_list_and_federated_token_upstream() {
    let demo = DemoHttp::start().await;
    let (gh, gh_base) = start_github(&demo).await;
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n\
         [[authserver.federation]]\nkind = \"github\"\nname = \"github\"\nclient_id = \"gh-client\"\nclient_secret_env = \"GH_TEST_SECRET\"\n\
         allowed_orgs = [\"acme\"]\ncreate_users = true\nuser_scopes = [\"notes:read\"]\ngithub_url = {}\ngithub_api_url = {}\n\n\
         [[upstream]]\nname = \"demo\"\nurl = {}\ntransport = \"streamable-http\"\n\
         [upstream.credentials]\nkind = \"federated\"\nprovider = \"github\"\n",
        toml_str(&gh_base),
        toml_str(&format!("{gh_base}/api")),
        toml_str(&format!("{gh_base}/mcp"))
    );
    let gw = Gateway::start_with_env(&config, &[("GH_TEST_SECRET", GH_SECRET)]).await;
    let base = gw.base.clone();
    let redirect = "http://127.0.0.1:9/cb";
    let client_id = crate::authserver::register(&base, &[redirect]).await;

    // A non-member of the allowed org is refused with a page that says why.
    *gh.current.lock().unwrap() = Some(outsider_gh());
    let p = pkce();
    let mut b = Browser::new();
    let refused = authorize_via_idp(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "GitHub",
        async |u| github_leg(u).await,
    )
    .await;
    let (s, page) = refused.expect_err("an outsider gets no code");
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        page.contains("not a member of an organization allowed here") && page.contains("acme"),
        "{page}"
    );

    // A member signs in (a local user is created), and the MCP client's token works.
    *gh.current.lock().unwrap() = Some(alice_gh());
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize_via_idp(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "GitHub",
        async |u| github_leg(u).await,
    )
    .await
    .expect("a member gets a code");
    let access = access_token_for(&base, &client_id, redirect, &code, &p.verifier).await;
    let mcp = gw.mcp("demo");
    let resp = whoami_raw(&mcp, &access).await;
    assert_eq!(
        resp["result"]["structuredContent"]["subject"], "octo-alice",
        "{resp}"
    );
    let seen = gh.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|(s, t)| s == "octo-alice" && t.starts_with("gho_octo-alice_")),
        "{seen:?}"
    );
    assert_eq!(
        gh.form_answers.load(Ordering::SeqCst),
        0,
        "mcpgate asks GitHub for JSON"
    );

    assert_eq!(
        gh.refreshes.load(Ordering::SeqCst),
        0,
        "a live token is not refreshed"
    );

    // A sign-in whose GitHub token is (about to be) expired: the next call
    // refreshes it with GitHub's refresh token and forwards the new one.
    gh.expires_in.store(1, Ordering::SeqCst);
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize_via_idp(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "GitHub",
        async |u| github_leg(u).await,
    )
    .await
    .expect("code");
    let access = access_token_for(&base, &client_id, redirect, &code, &p.verifier).await;
    let stale: Vec<String> = gh.access.lock().unwrap().keys().cloned().collect();
    gh.expires_in.store(3600, Ordering::SeqCst);
    gh.seen.lock().unwrap().clear();
    // Several calls at once find it expired: GitHub rotates refresh tokens and
    // refuses a reused one, so only one of them may refresh.
    let calls = (0..6).map(|_| whoami_raw(&mcp, &access));
    for resp in futures_util::future::join_all(calls).await {
        assert_eq!(
            resp["result"]["structuredContent"]["subject"], "octo-alice",
            "{resp}"
        );
    }
    assert_eq!(gh.refreshes.load(Ordering::SeqCst), 1, "refreshed once");
    let seen = gh.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|(_, t)| !stale.contains(t)),
        "the refreshed token is forwarded: {seen:?}"
    );
    // The refreshed token is live for an hour: no further refresh.
    let resp = whoami_raw(&mcp, &access).await;
    assert_eq!(
        resp["result"]["structuredContent"]["subject"], "octo-alice",
        "{resp}"
    );
    assert_eq!(gh.refreshes.load(Ordering::SeqCst), 1);

    // A classic OAuth app's token (no expiry, no refresh token) revoked at
    // GitHub: the upstream's 401 makes mcpgate ask GitHub, which no longer
    // knows the token; it is marked revoked and the next call says so.
    gh.expires_in.store(0, Ordering::SeqCst);
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize_via_idp(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "GitHub",
        async |u| github_leg(u).await,
    )
    .await
    .expect("code");
    let access = access_token_for(&base, &client_id, redirect, &code, &p.verifier).await;
    let resp = whoami_raw(&mcp, &access).await;
    assert_eq!(
        resp["result"]["structuredContent"]["subject"], "octo-alice",
        "{resp}"
    );
    gh.access.lock().unwrap().clear();
    let resp = whoami_raw(&mcp, &access).await;
    assert!(
        resp["result"]["structuredContent"]["subject"].is_null(),
        "refused upstream: {resp}"
    );
    let resp = whoami_raw(&mcp, &access).await;
    let msg = resp.to_string();
    assert!(
        msg.contains("revoked") && msg.contains("sign in again"),
        "{msg}"
    );

    // Revoked at GitHub: the call fails telling the user to sign in again, and
    // their next authorization goes through GitHub.
    gh.expires_in.store(1, Ordering::SeqCst);
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize_via_idp(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "GitHub",
        async |u| github_leg(u).await,
    )
    .await
    .expect("code");
    let access = access_token_for(&base, &client_id, redirect, &code, &p.verifier).await;
    gh.refresh.lock().unwrap().clear();
    gh.access.lock().unwrap().clear();
    let resp = whoami_raw(&mcp, &access).await;
    let msg = resp.to_string();
    assert!(
        msg.contains("revoked") && msg.contains("sign in again"),
        "{msg}"
    );
    let url = format!(
        "{base}/authorize?{}",
        form_encode(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.clone()),
            ("redirect_uri".into(), redirect.into()),
            ("scope".into(), "notes:read".into()),
            ("state".into(), "st-again".into()),
            ("code_challenge".into(), p.challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
        ])
    );
    let (s, h, _) = b.get(&url).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(
        location(&h).contains("/federation/github/start"),
        "{}",
        location(&h)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mcpgate_as_the_oidc_provider() {
    let demo = DemoHttp::start().await;
    // B: the identity provider, a real mcpgate with its authserver and a user.
    let idp_config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n\
         [[upstream]]\nname = \"demo\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&demo.url)
    );
    let idp = Gateway::start(&idp_config).await;
    add_user(idp.data_dir(), "dora", "pw-dora-Long-77", "notes:read");
    // A: the gateway users sign in to through B; its callback must be known to register it at B.
    let a_port = free_port();
    let a_base = format!("http://127.0.0.1:{a_port}");
    let callback = format!("{a_base}/federation/corp/callback");
    let reg: Value = reqwest::Client::new()
        .post(format!("{}/register", idp.base))
        .json(&json!({
            "client_name": "gateway A",
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
        }))
        .send()
        .await
        .expect("register at B")
        .json()
        .await
        .expect("JSON");
    let (a_client, a_secret) = (
        reg["client_id"].as_str().expect("client_id"),
        reg["client_secret"].as_str().expect("client_secret"),
    );
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("corp-secret");
    std::fs::write(&secret_file, format!("{a_secret}\n")).unwrap();
    let a_config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\nlocal_login = false\n\n\
         [[authserver.federation]]\nkind = \"oidc\"\nname = \"corp\"\ndisplay_name = \"Corp SSO\"\nissuer = {}\nclient_id = {}\n\
         client_secret_file = {}\nscopes = [\"openid\", \"profile\"]\nmap_by = \"subject\"\ncreate_users = true\nuser_scopes = [\"notes:read\"]\n\n\
         [[upstream]]\nname = \"demo\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&idp.base),
        toml_str(a_client),
        toml_str(&secret_file.display().to_string()),
        toml_str(&demo.url)
    );
    let a = Gateway::start_listening(&a_config, &format!("127.0.0.1:{a_port}")).await;
    assert_eq!(a.base, a_base, "A listens where B will send users back");

    // The login page of A offers only the SSO button (local login is off).
    let mut browser_a = Browser::new();
    let mut browser_b = Browser::new();
    let redirect = "http://127.0.0.1:9/cb";
    let client_id = crate::authserver::register(&a_base, &[redirect]).await;
    let p = pkce();
    let idp_base = idp.base.clone();
    let code = authorize_via_idp(
        &mut browser_a,
        &a_base,
        &client_id,
        redirect,
        &p.challenge,
        "Corp SSO",
        async |to_b: String| {
            assert!(to_b.starts_with(&idp_base), "{to_b}");
            let q = query_of(&to_b);
            assert!(
                q.contains_key("nonce") && q["code_challenge_method"] == "S256",
                "{to_b}"
            );
            // At B: sign in as dora and allow gateway A.
            let (s, h, _) = browser_b.get(&to_b).await;
            assert_eq!(s, StatusCode::SEE_OTHER);
            let (_, _, html) = browser_b.get(&format!("{idp_base}{}", location(&h))).await;
            let mut form = hidden_fields(&html);
            form.push(("username".into(), "dora".into()));
            form.push(("password".into(), "pw-dora-Long-77".into()));
            let (s, h, body) = browser_b
                .post_form(&format!("{idp_base}/login"), &form)
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
            let (s, h2, html) = browser_b.get(&format!("{idp_base}{}", location(&h))).await;
            if s == StatusCode::SEE_OTHER {
                return location(&h2);
            }
            assert!(html.contains("gateway A"), "{html}");
            let mut form = hidden_fields(&html);
            let mut seen = std::collections::BTreeSet::new();
            form.retain(|(k, _)| seen.insert(k.clone()));
            form.push(("decision".into(), "allow".into()));
            let (s, h, body) = browser_b
                .post_form(&format!("{idp_base}/consent"), &form)
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
            location(&h)
        },
    )
    .await
    .expect("signed in through B");
    let access = access_token_for(&a_base, &client_id, redirect, &code, &p.verifier).await;
    let resp = whoami_raw(&a.mcp("demo"), &access).await;
    assert_eq!(
        resp["result"]["structuredContent"]["subject"], "dora",
        "{resp}"
    );

    // The password form is off at A.
    let (_, _, html) = browser_a.get(&format!("{a_base}/login")).await;
    assert!(
        html.contains("Sign in with Corp SSO") && !html.contains("name=\"password\""),
        "{html}"
    );
    // A forged callback (unknown state) is refused.
    let (s, _, body) = browser_a
        .get(&format!(
            "{a_base}/federation/corp/callback?code=x&state=forged"
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
}
