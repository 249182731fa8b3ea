//! The authorization server under a path issuer (`authserver.issuer_path`):
//! every metadata form MCP clients try finds it, its endpoints live under the
//! path, the protected resource names it, and authorization responses carry
//! it as `iss`. Also `unknown_scopes = "reject"`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::{config, location, pkce, query_of, register};
use crate::harness::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_issuer_metadata_forms_endpoints_and_unknown_scopes_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &tmp.path().join("notes"),
        "issuer_path = \"/t1\"\nunknown_scopes = \"reject\"",
    );
    let gw = Gateway::start(&cfg).await;
    let base = gw.base.clone();
    let issuer = format!("{base}/t1");

    // RFC 8414 path insertion, OpenID path insertion, OpenID path appending.
    for path in [
        "/.well-known/oauth-authorization-server/t1",
        "/.well-known/openid-configuration/t1",
        "/t1/.well-known/openid-configuration",
    ] {
        let r = reqwest::get(format!("{base}{path}"))
            .await
            .expect("metadata");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let m: Value = r.json().await.expect("json");
        assert_eq!(m["issuer"], issuer.as_str(), "{path}: {m}");
        for endpoint in [
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
        ] {
            let e = m[endpoint].as_str().unwrap_or_default();
            assert!(
                e.starts_with(&format!("{issuer}/")),
                "{path}: {endpoint} = {e}"
            );
        }
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    }
    // The root forms belong to a root issuer, which this server is not.
    let root = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
        .await
        .expect("root metadata");
    assert_eq!(root.status(), StatusCode::NOT_FOUND);

    // The protected resource names the path issuer.
    let prm: Value = reqwest::get(format!(
        "{base}/.well-known/oauth-protected-resource/mcp/demo"
    ))
    .await
    .expect("PRM")
    .json()
    .await
    .expect("json");
    assert_eq!(prm["authorization_servers"], json!([issuer]), "{prm}");

    // Registration and authorization under the path; errors carry the issuer.
    let redirect = "http://127.0.0.1:9/cb";
    let client_id = register(&issuer, &[redirect]).await;
    let p = pkce();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = url::Url::parse_with_params(
        &format!("{issuer}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("scope", "notes:read made:up"),
            ("state", "st-path"),
            ("code_challenge", p.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .expect("authorize URL");
    let r = http.get(url).send().await.expect("authorize");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(r.headers()));
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("invalid_scope"),
        "{q:?}"
    );
    assert_eq!(q.get("state").map(String::as_str), Some("st-path"));
    assert_eq!(q.get("iss").map(String::as_str), Some(issuer.as_str()));
}
