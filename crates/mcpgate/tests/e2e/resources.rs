//! Audience binding and registered resource servers: a token works only at the
//! endpoint it was issued for; mcpgate as the authorization server of another
//! (guard-only) mcpgate that checks tokens by introspection; who may introspect.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::authserver::{config, whoami};
use crate::harness::raw::{Raw, initialize_request};
use crate::harness::{BIN, Gateway, demo_stdio_upstream};

/// Runs `mcpgate ARGS --data-dir DATA`; its stdout, or a panic with its stderr.
fn cli_ok(data: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .env_remove("MCPGATE_CONFIG")
        .env_remove("MCPGATE_MASTER_KEY")
        .output()
        .expect("run mcpgate");
    assert!(
        out.status.success(),
        "mcpgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pre-registered confidential client-credentials client; its secret.
fn service_client(data: &Path, id: &str) -> String {
    cli_ok(
        data,
        &[
            "clients",
            "add",
            id,
            "--confidential",
            "--grant-type",
            "client_credentials",
            "--client-id",
            id,
        ],
    )
    .trim()
    .to_owned()
}

/// `POST url` with a form, optionally as a Basic-authenticated client.
async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut rb = reqwest::Client::new().post(url).form(form);
    if let Some((id, secret)) = basic {
        rb = rb.basic_auth(id, Some(secret));
    }
    let r = rb.send().await.expect("POST");
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A client-credentials access token for `resource`.
async fn cc_token(base: &str, client: (&str, &str), resource: &str) -> String {
    let (s, t) = post_form(
        &format!("{base}/token"),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "notes:read"),
            ("resource", resource),
        ],
        Some(client),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t["access_token"].as_str().expect("access token").to_owned()
}

/// An initialize at `mcp` with `access`: the status and the `WWW-Authenticate` header.
async fn initialize_with(mcp: &str, access: &str) -> (StatusCode, String) {
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
    let r = Raw::with_client(http, mcp)
        .post(None, &initialize_request())
        .await;
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status(), www)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_only_at_the_upstream_it_was_issued_for() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let secret = service_client(&data, "svc");
    let cfg = format!(
        "{}\n{}",
        config(&tmp.path().join("notes"), ""),
        demo_stdio_upstream("echo", &tmp.path().join("notes-echo"), "")
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let (demo, echo) = (gw.mcp("demo"), gw.mcp("echo"));

    let for_demo = cc_token(&base, ("svc", &secret), &demo).await;
    assert_eq!(whoami(&demo, &for_demo).await, Ok("svc".to_owned()));
    let (s, www) = initialize_with(&echo, &for_demo).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{www}");
    assert!(www.contains("error=\"invalid_token\""), "{www}");
    assert!(
        www.contains(&format!("Token audience does not include {echo}")),
        "{www}"
    );
    crate::harness::eventually(
        std::time::Duration::from_secs(5),
        "the refusal is logged",
        || {
            gw.log_tail(50)
                .contains("refused a token issued for another resource")
        },
    )
    .await;

    // Asked for the other endpoint (in another spelling of its URL): works there only.
    let loud = echo.replacen("http://", "HTTP://", 1) + "/";
    let for_echo = cc_token(&base, ("svc", &secret), &loud).await;
    assert_eq!(whoami(&echo, &for_echo).await, Ok("svc".to_owned()));
    assert_eq!(
        initialize_with(&demo, &for_echo).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_upstream_accepts_tokens_for_either_of_its_urls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let secret = service_client(&data, "svc");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let alias = format!("{base}/mcp");
    let named = gw.mcp("demo");
    for resource in [&alias, &named] {
        let t = cc_token(&base, ("svc", &secret), resource).await;
        for at in [&alias, &named] {
            assert_eq!(
                whoami(at, &t).await,
                Ok("svc".to_owned()),
                "{resource} at {at}"
            );
        }
    }
}

/// `POST /introspect` for `token` as the Basic-authenticated `who`.
async fn introspect(base: &str, who: (&str, &str), token: &str) -> (StatusCode, Value) {
    post_form(
        &format!("{base}/introspect"),
        &[("token", token)],
        Some(who),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_tells_a_token_only_to_the_client_it_was_issued_to() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let svc = service_client(&data, "svc");
    let other = service_client(&data, "other");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let token = cc_token(&base, ("svc", &svc), &gw.mcp("demo")).await;
    let (s, mine) = introspect(&base, ("svc", &svc), &token).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_eq!(mine["active"], true, "{mine}");
    assert_eq!(mine["client_id"], "svc", "{mine}");
    // Another client authenticates fine, and learns nothing (RFC 7662 §4).
    let (s, theirs) = introspect(&base, ("other", &other), &token).await;
    assert_eq!(s, StatusCode::OK, "{theirs}");
    assert_eq!(theirs, serde_json::json!({ "active": false }));
    crate::harness::eventually(
        std::time::Duration::from_secs(5),
        "the reason is logged",
        || {
            gw.log_tail(50)
                .contains("introspection answered active=false")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_resource_server_introspects_the_tokens_issued_for_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let svc = service_client(&data, "svc");
    // Nothing needs to listen there: the resource server only introspects.
    let rs = "http://127.0.0.1:9/mcp";
    let rs_secret = cli_ok(
        &data,
        &[
            "resources",
            "add",
            rs,
            "--name",
            "Notes elsewhere",
            "--scopes",
            "notes:read",
            "--client-id",
            "rs-notes",
        ],
    )
    .trim()
    .to_owned();
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let for_rs = cc_token(&base, ("svc", &svc), rs).await;
    let (s, v) = introspect(&base, ("rs-notes", &rs_secret), &for_rs).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["active"].clone(), v["aud"].clone()),
        (true.into(), rs.into()),
        "{v}"
    );
    assert_eq!(v["scope"], "notes:read", "{v}");
    // A scope it does not accept is not granted for it.
    let (s, t) = post_form(
        &format!("{base}/token"),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "notes:write"),
            ("resource", rs),
        ],
        Some(("svc", &svc)),
    )
    .await;
    assert!(
        s != StatusCode::OK
            || t["scope"]
                .as_str()
                .is_none_or(|sc| !sc.contains("notes:write")),
        "{t}"
    );
    // Tokens for the gateway's own endpoints are none of its business.
    let for_demo = cc_token(&base, ("svc", &svc), &gw.mcp("demo")).await;
    let (_, v) = introspect(&base, ("rs-notes", &rs_secret), &for_demo).await;
    assert_eq!(v, serde_json::json!({ "active": false }));
    // A wrong secret is a failed client authentication.
    let (s, e) = introspect(&base, ("rs-notes", "not-the-secret-at-all"), &for_rs).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    // Its tokens do not open the gateway's own endpoint.
    let (s, www) = initialize_with(&gw.mcp("demo"), &for_rs).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{www}");
    // Removed: no more tokens for it, and its credentials no longer work.
    cli_ok(&data, &["resources", "remove", "rs-notes"]);
    let (s, e) = post_form(
        &format!("{base}/token"),
        &[("grant_type", "client_credentials"), ("resource", rs)],
        Some(("svc", &svc)),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{e}"
    );
    let (s, _) = introspect(&base, ("rs-notes", &rs_secret), &for_rs).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_page_names_the_registered_resource_server() {
    use crate::authserver::{
        Browser, add_user, form_encode, hidden_fields, location, pkce, register,
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "erin", "pw-erin-123", "notes:read notes:write");
    let rs = "https://notes.example/mcp";
    cli_ok(
        &data,
        &[
            "resources",
            "add",
            rs,
            "--name",
            "Team notes",
            "--scopes",
            "notes:read",
        ],
    );
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let client = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let url = format!(
        "{base}/authorize?{}",
        form_encode(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), client.clone()),
            ("redirect_uri".into(), "http://127.0.0.1/cb".into()),
            ("scope".into(), "notes:read".into()),
            ("state".into(), "st".into()),
            ("code_challenge".into(), p.challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
            ("resource".into(), rs.into()),
        ])
    );
    let mut b = Browser::new();
    let (s, h, _) = b.get(&url).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, _, html) = b.get(&format!("{base}{}", location(&h))).await;
    let mut form = hidden_fields(&html);
    form.push(("username".into(), "erin".into()));
    form.push(("password".into(), "pw-erin-123".into()));
    let (s, h, body) = b.post_form(&format!("{base}/login"), &form).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let (s, _, consent) = b.get(&format!("{base}{}", location(&h))).await;
    assert_eq!(s, StatusCode::OK, "{consent}");
    assert!(
        consent.contains("Access to <strong>Team notes</strong>") && consent.contains(rs),
        "{consent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_audience_override_holds_external_jwts_to_their_api() {
    const SECRET: &str = "e2e-hmac-secret-of-at-least-32-bytes!";
    let notes = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n\
         [[auth.jwt]]\nissuer = \"https://idp.example\"\naudience = \"api://all\"\n\
         hmac_secret_env = \"E2E_AUDIENCE_HMAC\"\nalgorithms = [\"HS256\"]\n\n{}\n{}",
        demo_stdio_upstream("demo", &notes.path().join("demo"), ""),
        demo_stdio_upstream(
            "echo",
            &notes.path().join("echo"),
            "audience = \"api://echo\""
        ),
    );
    let gw = Gateway::start_with_env(&cfg, &[("E2E_AUDIENCE_HMAC", SECRET)]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sign = |aud: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({
                "iss": "https://idp.example", "aud": aud, "sub": "jwt-carol",
                "iat": now - 10, "exp": now + 300,
            }),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    };
    let (demo, echo) = (gw.mcp("demo"), gw.mcp("echo"));
    let (for_all, for_echo) = (sign("api://all"), sign("api://echo"));
    assert_eq!(whoami(&demo, &for_all).await, Ok("jwt-carol".to_owned()));
    assert_eq!(whoami(&echo, &for_echo).await, Ok("jwt-carol".to_owned()));
    let (s, www) = initialize_with(&echo, &for_all).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{www}");
    assert!(
        www.contains("Token audience does not include api://echo"),
        "{www}"
    );
    let (s, www) = initialize_with(&demo, &for_echo).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{www}");
    assert!(
        www.contains("Token audience does not include api://all"),
        "{www}"
    );
}
