//! The built-in authorization server end to end: a client registers (DCR),
//! authorizes with PKCE while the test fills the login and consent forms over
//! HTTP, exchanges the code, calls a tool through the gateway with the access
//! token, refreshes, survives a restart, and every negative path that applies
//! answers with its exact OAuth error code.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::harness::raw::{Raw, tool_call};
use crate::harness::{BIN, Gateway, demo_stdio_upstream, free_port};

/// A browser without JavaScript: no automatic redirects, one cookie jar.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().expect("ascii cookie");
            let first = c.split(';').next().unwrap_or_default();
            let (k, v) = first.split_once('=').expect("name=value");
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> (StatusCode, HeaderMap, String) {
        let r = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let (s, h) = (r.status(), r.headers().clone());
        self.keep(&h);
        (s, h, r.text().await.expect("body"))
    }

    pub(crate) async fn post_form(
        &mut self,
        url: &str,
        form: &[(String, String)],
    ) -> (StatusCode, HeaderMap, String) {
        let body = form_encode(form);
        let r = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let (s, h) = (r.status(), r.headers().clone());
        self.keep(&h);
        (s, h, r.text().await.expect("body"))
    }
}

pub(crate) fn form_encode(form: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

pub(crate) fn unescape(s: &str) -> String {
    // Named and numeric (decimal or hex) character references.
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The hidden inputs of the first form in `html`.
pub(crate) fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once('"').expect("name");
        let value = rest
            .split_once("value=\"")
            .and_then(|(_, v)| v.split_once('"'))
            .map(|(v, _)| v)
            .expect("value");
        out.push((unescape(name), unescape(value)));
    }
    out
}

pub(crate) fn location(h: &HeaderMap) -> String {
    h.get(LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ascii")
        .to_owned()
}

pub(crate) fn query_of(url: &str) -> std::collections::BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("absolute URL")
        .query_pairs()
        .into_owned()
        .collect()
}

pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

pub(crate) fn pkce() -> Pkce {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// `mcpgate users add NAME --password-stdin --scopes … --data-dir DATA`.
pub(crate) fn add_user(data: &Path, name: &str, password: &str, scopes: &str) {
    add_user_with(data, name, password, scopes, &[]);
}

/// [`add_user`] with more arguments (e.g. `--store-url URL`).
pub(crate) fn add_user_with(data: &Path, name: &str, password: &str, scopes: &str, more: &[&str]) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(BIN)
        .args([
            "users",
            "add",
            name,
            "--password-stdin",
            "--scopes",
            scopes,
            "--data-dir",
        ])
        .arg(data)
        .args(more)
        .env_remove("MCPGATE_CONFIG")
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mcpgate users add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("password");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn config(notes: &Path, extra: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\nrefresh_grace = \"1s\"\n{extra}\n\n{}",
        demo_stdio_upstream(
            "demo",
            notes,
            "isolation = \"session\"\ntool_scopes = { \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }"
        )
    )
}

/// A registered public client.
pub(crate) async fn register(base: &str, redirect_uris: &[&str]) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "e2e client",
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    assert!(v["registration_access_token"].is_string(), "{v}");
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// Signs in (filling the forms) and allows; the code the client receives.
pub(crate) async fn authorize(
    b: &mut Browser,
    base: &str,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    scope: &str,
    user: (&str, &str),
) -> String {
    let url = format!(
        "{base}/authorize?{}",
        form_encode(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.into()),
            ("redirect_uri".into(), redirect.into()),
            ("scope".into(), scope.into()),
            ("state".into(), "st-1".into()),
            ("code_challenge".into(), challenge.into()),
            ("code_challenge_method".into(), "S256".into()),
            ("resource".into(), format!("{base}/mcp/demo")),
        ])
    );
    let (s, h, _) = b.get(&url).await;
    let mut next = if s == StatusCode::SEE_OTHER {
        location(&h)
    } else {
        String::new()
    };
    if next.contains("/login?") {
        let (s, h, html) = b.get(&format!("{base}{next}")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            h.get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("frame-ancestors 'none'")),
            "{h:?}"
        );
        assert_eq!(
            h.get("x-frame-options").map(|v| v.to_str().unwrap()),
            Some("DENY")
        );
        let mut form = hidden_fields(&html);
        form.push(("username".into(), user.0.into()));
        form.push(("password".into(), user.1.into()));
        let (s, h, body) = b.post_form(&format!("{base}/login"), &form).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        next = format!("{base}{}", location(&h));
    } else {
        next = url.clone();
    }
    let (s, h, html) = b.get(&next).await;
    let redirected = if s == StatusCode::SEE_OTHER {
        location(&h)
    } else {
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("e2e client"), "{html}");
        assert!(
            html.contains("127.0.0.1"),
            "the redirect host is shown: {html}"
        );
        assert!(html.contains("Read your notes"), "{html}");
        let mut form = hidden_fields(&html);
        form.retain(|(k, _)| k != "user_code");
        // The logout form's csrf duplicates the first: keep one of each.
        let mut seen = std::collections::BTreeSet::new();
        form.retain(|(k, _)| seen.insert(k.clone()));
        form.push(("decision".into(), "allow".into()));
        let (s, h, body) = b.post_form(&format!("{base}/consent"), &form).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
        location(&h)
    };
    let q = query_of(&redirected);
    let expected = url::Url::parse(redirect).expect("redirect URI");
    let got = url::Url::parse(&redirected).expect("redirected URL");
    assert_eq!(
        (got.host_str(), got.path()),
        (expected.host_str(), expected.path()),
        "{redirected}"
    );
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("st-1"),
        "{redirected}"
    );
    assert_eq!(q.get("iss").map(String::as_str), Some(base), "{redirected}");
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {redirected}"))
}

pub(crate) async fn token(base: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .expect("token request");
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "every token response is no-store"
    );
    let s = r.status();
    (s, r.json().await.expect("token JSON"))
}

/// `whoami` through the gateway with `access`; the subject, or the HTTP status.
pub(crate) async fn whoami(mcp: &str, access: &str) -> Result<String, StatusCode> {
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {access}").parse().expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let raw = Raw::with_client(http, mcp);
    let r = raw
        .post(None, &crate::harness::raw::initialize_request())
        .await;
    if r.status() != StatusCode::OK {
        return Err(r.status());
    }
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session")
        .to_owned();
    let _ = crate::harness::raw::messages(r).await;
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    raw.post(Some(&session), &note).await;
    let resp = raw
        .call(&session, &tool_call(json!(2), "whoami", json!({})))
        .await;
    Ok(resp["result"]["structuredContent"]["subject"]
        .as_str()
        .unwrap_or_else(|| panic!("whoami: {resp}"))
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcr_pkce_login_consent_token_call_refresh_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "alice", "correct horse", "notes:read notes:write");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cfg = config(&tmp.path().join("notes"), "");
    let mut gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");

    // Discovery: the resource names this issuer; the issuer's metadata is complete.
    let prm: Value = reqwest::get(format!(
        "{base}/.well-known/oauth-protected-resource/mcp/demo"
    ))
    .await
    .expect("PRM")
    .json()
    .await
    .expect("json");
    assert_eq!(prm["authorization_servers"], json!([base]), "{prm}");
    assert!(
        !prm["scopes_supported"]
            .to_string()
            .contains("offline_access"),
        "{prm}"
    );
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = reqwest::get(format!("{base}{path}"))
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        assert_eq!(m["issuer"], base.as_str(), "{m}");
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert!(
            m["token_endpoint_auth_methods_supported"]
                .to_string()
                .contains("\"none\"")
        );
    }

    // Without a token: 401 with a challenge naming the metadata.
    assert_eq!(
        whoami(&mcp, "not-a-token").await,
        Err(StatusCode::UNAUTHORIZED)
    );

    let redirect = "http://127.0.0.1/cb";
    let client_id = register(
        &base,
        &[redirect, "cursor://anysphere.cursor-mcp/oauth/callback"],
    )
    .await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        "http://127.0.0.1:4321/cb",
        &p.challenge,
        "notes:read notes:write",
        ("alice", "correct horse"),
    )
    .await;

    // A wrong verifier: invalid_grant (and the code is spent).
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:4321/cb"),
            ("code_verifier", &pkce().verifier),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );

    // A fresh code (the session is kept: no second login), exchanged properly.
    let p = pkce();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        "http://127.0.0.1:4321/cb",
        &p.challenge,
        "notes:read notes:write",
        ("alice", "correct horse"),
    )
    .await;
    let (s, t) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:4321/cb"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "notes:read notes:write");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(whoami(&mcp, &access).await, Ok("alice".to_owned()));

    // Refresh: narrowing works, widening is invalid_scope.
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
            ("scope", "notes:read admin"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{e}"
    );
    let (s, t2) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
            ("scope", "notes:read"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    assert_eq!(t2["scope"], "notes:read");
    let refresh2 = t2["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(refresh2, refresh);

    // A restart in the middle: the rotated token still works, and its access token too.
    gw.stop().await;
    let gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    assert_eq!(
        whoami(&mcp, &access).await,
        Ok("alice".to_owned()),
        "keys and grants survive a restart"
    );
    let (s, t3) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t3}");
    assert_eq!(
        t3["scope"], "notes:read notes:write",
        "the refresh token kept its scopes"
    );
    let access3 = t3["access_token"].as_str().expect("access").to_owned();
    assert_eq!(whoami(&mcp, &access3).await, Ok("alice".to_owned()));

    // Reusing a rotated refresh token after the grace window revokes the grant:
    // its access tokens stop working at the gateway too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    let t4 = t3["refresh_token"].as_str().expect("refresh").to_owned();
    let (_, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t4),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        e["error"], "invalid_grant",
        "the whole grant is revoked: {e}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&mcp, &access3).await, Err(StatusCode::UNAUTHORIZED));
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_replay_revokes_what_the_code_issued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "bob", "pw-bob-123", "notes:read");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let client_id = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        "http://127.0.0.1/cb",
        &p.challenge,
        "notes:read",
        ("bob", "pw-bob-123"),
    )
    .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("code_verifier", p.verifier.as_str()),
    ];
    let (s, t) = token(&base, &form).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&mcp, &access).await, Ok("bob".to_owned()));
    let (s, e) = token(&base, &form).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        whoami(&mcp, &access).await,
        Err(StatusCode::UNAUTHORIZED),
        "the access token from a replayed code is rejected"
    );
    let (_, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(e["error"], "invalid_grant", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_errors_never_redirect_to_unvalidated_uris() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let client_id = register(&base, &["https://app.example/cb"]).await;
    let p = pkce();
    let mut b = Browser::new();
    let authz = |extra: &[(&str, &str)]| {
        let mut f: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.clone()),
            ("state".into(), "s".into()),
            ("code_challenge".into(), p.challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
        ];
        for (k, v) in extra {
            f.retain(|(n, _)| n != k);
            if !v.is_empty() {
                f.push(((*k).into(), (*v).into()));
            }
        }
        format!("{base}/authorize?{}", form_encode(&f))
    };
    // Open-redirect attempts: an error page, no Location.
    for bad in [
        "https://evil.example/cb",
        "https://app.example/cb/../evil",
        "https://app.example.evil/cb",
        "javascript:alert(1)",
    ] {
        let (s, h, html) = b.get(&authz(&[("redirect_uri", bad)])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {html}");
        assert!(h.get(LOCATION).is_none(), "{bad}");
        assert!(html.contains("not registered"), "{html}");
    }
    let (s, h, _) = b
        .get(&authz(&[
            ("client_id", "nobody"),
            ("redirect_uri", "https://evil.example/cb"),
        ]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(h.get(LOCATION).is_none());
    // PKCE missing or plain: invalid_request, redirected with state and iss.
    for extra in [
        vec![("code_challenge", "")],
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge_method", "")],
    ] {
        let (s, h, _) = b.get(&authz(&extra)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{extra:?}");
        let q = query_of(&location(&h));
        assert!(location(&h).starts_with("https://app.example/cb?"), "{h:?}");
        assert_eq!(q["error"], "invalid_request", "{extra:?}");
        assert_eq!(q["state"], "s");
        assert_eq!(q["iss"], base);
    }
    let (_, h, _) = b.get(&authz(&[("response_type", "token")])).await;
    assert_eq!(
        query_of(&location(&h))["error"],
        "unsupported_response_type"
    );
    let (_, h, _) = b
        .get(&authz(&[("resource", "https://elsewhere.example/mcp")]))
        .await;
    assert_eq!(query_of(&location(&h))["error"], "invalid_target");
    let (_, h, _) = b.get(&authz(&[("prompt", "none")])).await;
    assert_eq!(query_of(&location(&h))["error"], "login_required");
    // A repeated parameter is invalid_request.
    let (s, _, _) = b.get(&format!("{}&client_id=x", authz(&[]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Unknown grant types and clients at /token.
    let (s, e) = token(
        &base,
        &[("grant_type", "password"), ("client_id", &client_id)],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{e}"
    );
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
            ("code", "x"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    // Registration refuses what is unsafe, with a reason.
    for (uri, why) in [
        ("javascript:alert(1)", "scheme"),
        ("http://evil.example/cb", "loopback"),
        ("https://a.example/cb#x", "fragment"),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/register"))
            .json(&json!({ "client_name": "x", "redirect_uris": ["https://ok.example/cb", uri], "token_endpoint_auth_method": "none" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_redirect_uri", "{v}");
        assert!(
            v["error_description"].as_str().unwrap().contains(why),
            "{v}"
        );
    }
}
