//! More of the built-in authorization server end to end: client ID metadata
//! documents served by a local test server, the device flow, client
//! credentials with pre-registered clients (`mcpgate clients add`, all three
//! authentication methods), introspection, revocation, userinfo, RFC 7592
//! registration management and the DCR policies, `prompt`, remembered consent,
//! the OOB page, concurrent refresh within the grace window, the account page,
//! signing-key rotation and the expiry of unused dynamic clients.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::authserver::{
    Browser, add_user, authorize, config, form_encode, hidden_fields, location, pkce, query_of,
    register, token, whoami,
};
use crate::harness::{BIN, Gateway, free_port};

/// Runs `mcpgate ARGS --data-dir DATA`; (success, stdout, stderr).
fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
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
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(data: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(data, args);
    assert!(ok, "mcpgate {args:?}: {err}");
    out
}

/// The `/authorize` URL for a public client with PKCE.
fn authorize_url(
    base: &str,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut f: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect.into()),
        ("scope".into(), "notes:read".into()),
        ("state".into(), "st-1".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
        ("resource".into(), format!("{base}/mcp/demo")),
    ];
    for (k, v) in extra {
        f.retain(|(n, _)| n != k);
        f.push(((*k).into(), (*v).into()));
    }
    format!("{base}/authorize?{}", form_encode(&f))
}

/// Fills the login form at `login` (a `/login?next=…` path); where it sends us.
pub(crate) async fn sign_in(
    b: &mut Browser,
    base: &str,
    login: &str,
    user: (&str, &str),
) -> String {
    let (s, _, html) = b.get(&format!("{base}{login}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let mut form = hidden_fields(&html);
    form.push(("username".into(), user.0.into()));
    form.push(("password".into(), user.1.into()));
    let (s, h, body) = b.post_form(&format!("{base}/login"), &form).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    format!("{base}{}", location(&h))
}

/// Submits the consent form in `html` with `decision` (and `extra` fields); the response.
async fn decide(
    b: &mut Browser,
    base: &str,
    html: &str,
    decision: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut form = hidden_fields(html);
    let mut seen = std::collections::BTreeSet::new();
    form.retain(|(k, _)| seen.insert(k.clone()));
    form.push(("decision".into(), decision.into()));
    for (k, v) in extra {
        form.push(((*k).into(), (*v).into()));
    }
    b.post_form(&format!("{base}/consent"), &form).await
}

async fn exchange(
    base: &str,
    client_id: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> Value {
    let (s, t) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).expect("a JWT part"))
            .expect("base64url"),
    )
    .expect("JSON")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_metadata_documents() {
    // The documents' URLs contain the server's port: bind first, then fill them in.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let doc_port = listener.local_addr().expect("addr").port();
    drop(listener);
    let origin = format!("http://127.0.0.1:{doc_port}");
    let good = format!("{origin}/clients/good.json");
    let docs = vec![
        (
            "/clients/good.json".to_owned(),
            json!({
                "client_id": good,
                "client_name": "e2e client",
                "redirect_uris": ["http://127.0.0.1/cb"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            })
            .to_string(),
        ),
        (
            "/clients/web.json".to_owned(),
            json!({
                "client_id": format!("{origin}/clients/web.json"),
                "client_name": "web app",
                "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"],
            })
            .to_string(),
        ),
        (
            "/clients/other-id.json".to_owned(),
            json!({
                "client_id": format!("{origin}/clients/good.json"),
                "client_name": "impostor",
                "redirect_uris": ["http://127.0.0.1/cb"],
            })
            .to_string(),
        ),
        (
            "/clients/no-redirects.json".to_owned(),
            json!({
                "client_id": format!("{origin}/clients/no-redirects.json"),
                "client_name": "no redirects",
            })
            .to_string(),
        ),
        (
            "/clients/big.json".to_owned(),
            json!({
                "client_id": format!("{origin}/clients/big.json"),
                "client_name": "big",
                "redirect_uris": ["http://127.0.0.1/cb"],
                "padding": "x".repeat(70 * 1024),
            })
            .to_string(),
        ),
    ];
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", doc_port))
        .await
        .expect("rebind the document port");
    let mut router = axum::Router::new();
    for (path, body) in docs {
        router = router.route(
            &path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
    }
    let _server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "carol", "pw-carol-123", "notes:read notes:write");
    let cfg = config(
        &tmp.path().join("notes"),
        &format!(
            "maintenance_interval = \"1s\"\n[authserver.cimd]\nallow_hosts = [\"127.0.0.1:{doc_port}\"]\n"
        ),
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");

    // The whole flow with the document's URL as client_id, ending in a tools/call.
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &good,
        "http://127.0.0.1:5555/cb",
        &p.challenge,
        "notes:read",
        ("carol", "pw-carol-123"),
    )
    .await;
    let t = exchange(&base, &good, &code, "http://127.0.0.1:5555/cb", &p.verifier).await;
    let access = t["access_token"].as_str().expect("access").to_owned();
    assert_eq!(jwt_part(&access, 1)["client_id"], good.as_str());
    assert_eq!(whoami(&mcp, &access).await, Ok("carol".to_owned()));

    // The grant outlives the periodic purge (a document client has no stored row of its own).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(whoami(&mcp, &access).await, Ok("carol".to_owned()));
    let (s, t2) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                t["refresh_token"].as_str().expect("refresh"),
            ),
            ("client_id", &good),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t2}");

    // Localhost-only redirect URIs are flagged on the consent page; a document
    // that also has an https redirect is not.
    let flagged = b
        .get(&authorize_url(
            &base,
            &good,
            "http://127.0.0.1/cb",
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(flagged.0, StatusCode::OK, "{}", flagged.2);
    assert!(flagged.2.contains("(localhost)"), "{}", flagged.2);
    let web = format!("{origin}/clients/web.json");
    let unflagged = b
        .get(&authorize_url(
            &base,
            &web,
            "https://app.example/cb",
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(unflagged.0, StatusCode::OK, "{}", unflagged.2);
    assert!(unflagged.2.contains("web app"), "{}", unflagged.2);
    assert!(!unflagged.2.contains("(localhost)"), "{}", unflagged.2);

    // Refusals: an error page, never a redirect.
    let refused = [
        (
            format!("{origin}/clients/other-id.json"),
            "http://127.0.0.1/cb",
            "must equal its URL",
        ),
        (
            format!("{origin}/clients/no-redirects.json"),
            "http://127.0.0.1/cb",
            "no redirect_uris",
        ),
        (
            good.clone(),
            "http://127.0.0.1.evil.example/cb",
            "not registered",
        ),
        (
            good.replace("127.0.0.1", "localhost"),
            "http://127.0.0.1/cb",
            "Unknown application",
        ),
        // Loopback, but not the allow-listed port: the SSRF guard refuses it.
        (
            format!("https://127.0.0.1:{}/clients/good.json", free_port()),
            "http://127.0.0.1/cb",
            "loopback",
        ),
        (
            format!("{origin}/clients/big.json"),
            "http://127.0.0.1/cb",
            "64 KiB",
        ),
    ];
    for (client_id, redirect, why) in refused {
        let (s, h, html) = b
            .get(&authorize_url(
                &base,
                &client_id,
                redirect,
                &p.challenge,
                &[],
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{client_id}: {html}");
        assert!(h.get(LOCATION).is_none(), "{client_id}: no redirect");
        assert!(
            html.contains(why),
            "{client_id}: expected {why:?} in {html}"
        );
    }
    // At /token a refused document is invalid_client.
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &format!("{origin}/clients/other-id.json")),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
}

/// Polls the device code once.
async fn poll(base: &str, client_id: &str, device_code: &str) -> (StatusCode, Value) {
    token(
        base,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client_id),
        ],
    )
    .await
}

async fn device_authorization(base: &str, client_id: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/device_authorization"))
        .form(&[
            ("client_id", client_id),
            ("scope", "notes:read"),
            ("resource", &format!("{base}/mcp/demo")),
        ])
        .send()
        .await
        .expect("device_authorization");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

/// Enters `user_code` at `/device` (signed in already) and decides.
async fn device_decide(b: &mut Browser, base: &str, user_code: &str, decision: &str) {
    let (s, _, html) = b.get(&format!("{base}/device")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let mut form = hidden_fields(&html);
    form.push((
        "user_code".into(),
        user_code.to_lowercase().replace('-', " "),
    ));
    let (s, _, html) = b.post_form(&format!("{base}/device"), &form).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("device client"), "{html}");
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), decision.into()));
    let (s, _, html) = b.post_form(&format!("{base}/device"), &form).await;
    assert_eq!(s, StatusCode::OK, "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "dave", "pw-dave-123", "notes:read");
    let cfg = config(
        &tmp.path().join("notes"),
        "device_poll_interval = 1\ndevice_code_ttl = \"12s\"\n",
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let r = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "device client",
            "token_endpoint_auth_method": "none",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::CREATED);
    let client_id = r.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    // A client without the device grant may not start it.
    let plain = register(&base, &["http://127.0.0.1/cb"]).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/device_authorization"))
        .form(&[("client_id", plain.as_str())])
        .send()
        .await
        .expect("device_authorization");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "unauthorized_client"
    );

    let started = std::time::Instant::now();
    let expiring = device_authorization(&base, &client_id).await;
    let d = device_authorization(&base, &client_id).await;
    assert_eq!(d["verification_uri"], format!("{base}/device"));
    assert_eq!(d["interval"], 1);
    let device_code = d["device_code"].as_str().expect("device_code");
    let user_code = d["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9, "{user_code}");

    let (s, e) = poll(&base, &client_id, device_code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending")),
        "{e}"
    );
    let (s, e) = poll(&base, &client_id, device_code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("slow_down")),
        "{e}"
    );
    // Another client cannot redeem it.
    let (_, e) = poll(&base, &plain, device_code).await;
    assert_ne!(e["error"], "authorization_pending", "{e}");

    // The user opens the verification page, signs in and approves.
    let mut b = Browser::new();
    let (s, h, _) = b
        .get(
            d["verification_uri_complete"]
                .as_str()
                .expect("complete URI"),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let login = location(&h);
    assert!(login.contains("/login?"), "{login}");
    let back = sign_in(&mut b, &base, &login, ("dave", "pw-dave-123")).await;
    assert!(back.contains("/device"), "{back}");
    device_decide(&mut b, &base, user_code, "allow").await;

    // slow_down raised the interval by 5 s; polling sooner is slow_down again.
    tokio::time::sleep(Duration::from_millis(6200)).await;
    let (s, t) = poll(&base, &client_id, device_code).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["scope"], "notes:read");
    let access = t["access_token"].as_str().expect("access");
    assert!(t["refresh_token"].is_string(), "{t}");
    assert_eq!(whoami(&gw.mcp("demo"), access).await, Ok("dave".to_owned()));
    let (_, e) = poll(&base, &client_id, device_code).await;
    assert_eq!(e["error"], "invalid_grant", "used once: {e}");

    // A denied code: access_denied.
    let denied = device_authorization(&base, &client_id).await;
    device_decide(
        &mut b,
        &base,
        denied["user_code"].as_str().expect("user_code"),
        "deny",
    )
    .await;
    let (s, e) = poll(
        &base,
        &client_id,
        denied["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("access_denied")),
        "{e}"
    );

    // An expired code: expired_token.
    let ttl = Duration::from_secs(12);
    if let Some(left) = ttl.checked_sub(started.elapsed()) {
        tokio::time::sleep(left + Duration::from_millis(1200)).await;
    }
    let (s, e) = poll(
        &base,
        &client_id,
        expiring["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expired_token")),
        "{e}"
    );
}

/// An ES256 key pair for `private_key_jwt`: (PKCS#8 DER, public JWKS).
pub(crate) fn client_key() -> (Vec<u8>, Value) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref();
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "test-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    (pkcs8.as_ref().to_vec(), jwks)
}

pub(crate) fn assertion(der: &[u8], client_id: &str, aud: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("test-1".into());
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now(), "exp": now() + 120,
        "jti": URL_SAFE_NO_PAD.encode(rand_bytes()),
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(der),
    )
    .expect("sign")
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b
}

async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().post(url).form(form);
    if let Some((u, p)) = basic {
        r = r.basic_auth(u, Some(p));
    }
    let r = r.send().await.expect("POST");
    let s = r.status();
    let text = r.text().await.expect("body");
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_introspection_revocation_userinfo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "erin", "pw-erin-123", "notes:read notes:write");
    // Pre-registered clients, before the server starts.
    let basic_secret = cli_ok(
        &data,
        &[
            "clients",
            "add",
            "svc basic",
            "--confidential",
            "--grant-type",
            "client_credentials",
            "--client-id",
            "svc-basic",
        ],
    )
    .trim()
    .to_owned();
    let post_secret = cli_ok(
        &data,
        &[
            "clients",
            "add",
            "svc post",
            "--confidential",
            "--auth-method",
            "client_secret_post",
            "--grant-type",
            "client_credentials",
            "--client-id",
            "svc-post",
        ],
    )
    .trim()
    .to_owned();
    let (der, jwks) = client_key();
    let jwks_file = tmp.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).expect("write jwks");
    cli_ok(
        &data,
        &[
            "clients",
            "add",
            "svc jwt",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_file.to_str().expect("utf-8"),
            "--grant-type",
            "client_credentials",
            "--client-id",
            "svc-jwt",
        ],
    );
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let token_url = format!("{base}/token");
    let resource = format!("{base}/mcp/demo");
    let cc = [
        ("grant_type", "client_credentials"),
        ("scope", "notes:read"),
        ("resource", resource.as_str()),
    ];

    let (s, t) = post_form(&token_url, &cc, Some(("svc-basic", &basic_secret))).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert!(t.get("refresh_token").is_none(), "{t}");
    let basic_access = t["access_token"].as_str().expect("access").to_owned();
    assert_eq!(
        whoami(&mcp, &basic_access).await,
        Ok("svc-basic".to_owned())
    );

    let mut form = cc.to_vec();
    form.extend([
        ("client_id", "svc-post"),
        ("client_secret", post_secret.as_str()),
    ]);
    let (s, t) = post_form(&token_url, &form, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        whoami(&mcp, t["access_token"].as_str().expect("access")).await,
        Ok("svc-post".to_owned())
    );

    let a = assertion(&der, "svc-jwt", &token_url);
    let mut form = cc.to_vec();
    form.extend([
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", a.as_str()),
    ]);
    let (s, t) = post_form(&token_url, &form, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        whoami(&mcp, t["access_token"].as_str().expect("access")).await,
        Ok("svc-jwt".to_owned())
    );
    // The same assertion twice: refused.
    let (s, e) = post_form(&token_url, &form, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    // An assertion signed by another key: refused.
    let (other, _) = client_key();
    let forged = assertion(&other, "svc-jwt", &token_url);
    let mut form = cc.to_vec();
    form.extend([
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", forged.as_str()),
    ]);
    let (s, e) = post_form(&token_url, &form, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );

    // A wrong secret: 401 invalid_client, and the secret is not echoed.
    let (s, e) = post_form(&token_url, &cc, Some(("svc-basic", "wrong-secret"))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-secret"));
    // A public client: unauthorized_client.
    let public = register(&base, &["http://127.0.0.1/cb"]).await;
    let mut form = cc.to_vec();
    form.push(("client_id", public.as_str()));
    let (s, e) = post_form(&token_url, &form, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{e}"
    );

    // A user's tokens, for introspection and revocation.
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &public,
        "http://127.0.0.1/cb",
        &p.challenge,
        "notes:read",
        ("erin", "pw-erin-123"),
    )
    .await;
    let t = exchange(&base, &public, &code, "http://127.0.0.1/cb", &p.verifier).await;
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();

    // A client introspects the tokens issued to it (details); another client's
    // tokens, even live ones, read as inactive (RFC 7662 §4: svc-basic is
    // neither erin's client nor a registered resource server; see
    // resources::introspection_tells_a_token_only_to_the_client_it_was_issued_to).
    let introspect = format!("{base}/introspect");
    let (s, i) = post_form(
        &introspect,
        &[("token", &basic_access)],
        Some(("svc-basic", &basic_secret)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{i}");
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["scope"], "notes:read");
    assert_eq!(i["sub"], "svc-basic");
    assert_eq!(i["client_id"], "svc-basic");
    assert_eq!(i["aud"], resource.as_str());
    assert!(i["exp"].as_u64().is_some_and(|e| e > now()), "{i}");
    for other in [&access, &refresh] {
        let (s, i) = post_form(
            &introspect,
            &[("token", other)],
            Some(("svc-basic", &basic_secret)),
        )
        .await;
        assert_eq!(
            (s, i),
            (StatusCode::OK, serde_json::json!({ "active": false }))
        );
    }
    let (s, i) = post_form(
        &introspect,
        &[("token", "garbage")],
        Some(("svc-basic", &basic_secret)),
    )
    .await;
    assert_eq!(
        (s, i["active"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{i}"
    );
    // Unauthenticated (or a public client naming itself): 401.
    let (s, e) = post_form(&introspect, &[("token", &access)], None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    let (s, e) = post_form(
        &introspect,
        &[("token", &access), ("client_id", &public)],
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );

    // /userinfo.
    let r = reqwest::Client::new()
        .get(format!("{base}/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.expect("json");
    assert_eq!(
        (u["sub"].as_str(), u["preferred_username"].as_str()),
        (Some("erin"), Some("erin")),
        "{u}"
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/userinfo"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());

    // /revoke: an unknown token is 200; revoking the refresh token ends the grant.
    let revoke = format!("{base}/revoke");
    let (s, _) = post_form(
        &revoke,
        &[("token", "never-issued"), ("client_id", &public)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Another client cannot revoke it (200, but nothing happens).
    let (s, _) = post_form(
        &revoke,
        &[("token", &refresh)],
        Some(("svc-basic", &basic_secret)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(whoami(&mcp, &access).await, Ok("erin".to_owned()));
    let (s, _) = post_form(
        &revoke,
        &[("token", &refresh), ("client_id", &public)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &public),
        ],
    )
    .await;
    assert_eq!(e["error"], "invalid_grant", "{e}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&mcp, &access).await, Err(StatusCode::UNAUTHORIZED));
    let (_, i) = post_form(
        &introspect,
        &[("token", &access)],
        Some(("svc-basic", &basic_secret)),
    )
    .await;
    assert_eq!(i["active"], false, "{i}");

    // `clients list` shows every kind and never a secret; `clients remove` ends the client's tokens.
    let list = cli_ok(&data, &["clients", "list"]);
    for needle in [
        "svc-basic",
        "pre-registered",
        "client_secret_post",
        "private_key_jwt",
        "dynamic",
        public.as_str(),
    ] {
        assert!(list.contains(needle), "{needle}: {list}");
    }
    assert!(
        !list.contains(&basic_secret) && !list.contains(&post_secret),
        "{list}"
    );
    cli_ok(&data, &["clients", "remove", "svc-basic"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        whoami(&mcp, &basic_access).await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let (s, e) = post_form(&token_url, &cc, Some(("svc-basic", &basic_secret))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
}

async fn register_full(base: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "managed",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
        }));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("register")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_management_and_policies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let notes = tmp.path().join("notes");
    let gw =
        Gateway::start_with_data(&config(&notes, ""), "127.0.0.1:0", &tmp.path().join("d1")).await;
    let base = gw.base.clone();
    let r = register_full(&base, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    let client_id = v["client_id"].as_str().expect("id").to_owned();
    let rat = v["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_owned();
    let uri = v["registration_client_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    assert_eq!(uri, format!("{base}/register/{client_id}"));
    let http = reqwest::Client::new();

    let r = http.get(&uri).bearer_auth(&rat).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.expect("json");
    assert_eq!(
        (got["client_id"].as_str(), got["client_name"].as_str()),
        (Some(client_id.as_str()), Some("managed"))
    );
    for bad in [Some("wrong-token"), None] {
        let mut req = http.get(&uri);
        if let Some(t) = bad {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("GET");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let r = http.put(&uri).bearer_auth("wrong-token").json(&json!({"client_id": client_id, "client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"]})).send().await.expect("PUT");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .put(&uri)
        .bearer_auth(&rat)
        .json(&json!({
            "client_id": client_id,
            "client_name": "renamed",
            "redirect_uris": ["http://127.0.0.1/cb", "https://app.example/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::OK);
    let put: Value = r.json().await.expect("json");
    assert_eq!(put["client_name"], "renamed", "{put}");
    // An unsafe update is refused with the reason.
    let r = http.put(&uri).bearer_auth(&rat).json(&json!({"client_id": client_id, "client_name": "x", "redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "none"})).send().await.expect("PUT");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_redirect_uri"
    );
    let got: Value = http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(got["client_name"], "renamed", "{got}");
    assert_eq!(
        got["redirect_uris"],
        json!(["http://127.0.0.1/cb", "https://app.example/cb"])
    );
    // The consent page shows the new name: the update is live.
    let p = pkce();
    let (s, _, _) = Browser::new()
        .get(&authorize_url(
            &base,
            &client_id,
            "https://app.example/cb",
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "the new redirect URI is accepted");
    let r = http
        .delete(&uri)
        .bearer_auth("wrong-token")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .delete(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http.get(&uri).bearer_auth(&rat).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "deleted");
    let (s, _, html) = Browser::new()
        .get(&authorize_url(
            &base,
            &client_id,
            "http://127.0.0.1/cb",
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    drop(gw);

    // Policy initial_access_token.
    let cfg = config(
        &notes,
        "[authserver.registration]\npolicy = \"initial_access_token\"\ninitial_access_tokens = [\"iat-e2e-secret\"]\n",
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &tmp.path().join("d2")).await;
    for bad in [None, Some("not-the-token")] {
        let r = register_full(&gw.base, bad).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["error"], "invalid_token", "{e}");
    }
    let r = register_full(&gw.base, Some("iat-e2e-secret")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(gw);

    // Policy off.
    let cfg = config(&notes, "[authserver.registration]\npolicy = \"off\"\n");
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &tmp.path().join("d3")).await;
    let r = register_full(&gw.base, None).await;
    // A refused registration is 400 (RFC 7591 §3.2.2).
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"], "access_denied", "{e}");
    let m: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gw.base
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert!(
        m.get("registration_endpoint").is_none(),
        "no registration endpoint advertised: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_remembered_consent_and_oob() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "frank", "pw-frank-123", "notes:read notes:write");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let redirect = "http://127.0.0.1/cb";
    // Out-of-band needs a client an administrator registered.
    let client_id = cli_ok(
        &data,
        &[
            "clients",
            "add",
            "e2e client",
            "--redirect-uri",
            redirect,
            "--redirect-uri",
            "urn:ietf:wg:oauth:2.0:oob",
        ],
    )
    .trim()
    .to_owned();
    let p = pkce();
    let mut b = Browser::new();

    // First time: login, then consent with "remember".
    let (s, h, _) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let next = sign_in(&mut b, &base, &location(&h), ("frank", "pw-frank-123")).await;
    let (s, _, html) = b.get(&next).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let (s, h, _) = decide(&mut b, &base, &html, "allow", &[("remember", "yes")]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(query_of(&location(&h)).contains_key("code"));

    // Remembered: straight back with a code, no page.
    let (s, h, _) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let q = query_of(&location(&h));
    assert_eq!(
        (q.get("state").map(String::as_str), q.get("iss")),
        (Some("st-1"), Some(&base))
    );
    let t = exchange(&base, &client_id, &q["code"], redirect, &p.verifier).await;
    assert_eq!(
        whoami(&mcp, t["access_token"].as_str().expect("access")).await,
        Ok("frank".to_owned())
    );
    // A wider request than remembered asks again.
    let (s, _, html) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[("scope", "notes:read notes:write")],
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("notes:write") || html.contains("Create and change your notes"),
        "{html}"
    );

    // prompt=consent shows the page although remembered; deny → access_denied.
    let (s, _, html) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[("prompt", "consent")],
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let (s, h, _) = decide(&mut b, &base, &html, "deny", &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let q = query_of(&location(&h));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "st-1", base.as_str())
    );

    // prompt=none with a session and remembered consent: a code.
    let (s, h, _) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(query_of(&location(&h)).contains_key("code"));

    // prompt=login forces the form despite the session, then no consent page (remembered).
    let (s, h, _) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[("prompt", "login")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let login = location(&h);
    assert!(login.contains("/login?"), "{login}");
    let next = sign_in(&mut b, &base, &login, ("frank", "pw-frank-123")).await;
    assert!(!next.contains("prompt=login"), "no login loop: {next}");
    let (s, h, _) = b.get(&next).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(query_of(&location(&h)).contains_key("code"));

    // The consent form without its CSRF token: 403.
    let (_, _, html) = b
        .get(&authorize_url(
            &base,
            &client_id,
            redirect,
            &p.challenge,
            &[("prompt", "consent")],
        ))
        .await;
    let mut form = hidden_fields(&html);
    form.retain(|(k, _)| k != "csrf");
    form.push(("decision".into(), "allow".into()));
    let (s, h, _) = b.post_form(&format!("{base}/consent"), &form).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get(LOCATION).is_none());

    // OOB: the code is shown on a page and exchanges.
    let oob = "urn:ietf:wg:oauth:2.0:oob";
    let p = pkce();
    let (s, _, html) = b
        .get(&authorize_url(
            &base,
            &client_id,
            oob,
            &p.challenge,
            &[("prompt", "consent")],
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("copy a code"), "{html}");
    let (s, h, page) = decide(&mut b, &base, &html, "allow", &[]).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(h.get(LOCATION).is_none());
    let csrf: Vec<String> = hidden_fields(&page).into_iter().map(|(_, v)| v).collect();
    let code = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .find(|w| w.len() == 43 && !csrf.iter().any(|c| c == w))
        .unwrap_or_else(|| panic!("no code on the page: {page}"))
        .to_owned();
    let t = exchange(&base, &client_id, &code, oob, &p.verifier).await;
    assert_eq!(
        whoami(&mcp, t["access_token"].as_str().expect("access")).await,
        Ok("frank".to_owned())
    );
}

/// Signs in (if needed), consents and exchanges the code: the token response.
async fn grant(b: &mut Browser, base: &str, client_id: &str, redirect: &str) -> Value {
    let p = pkce();
    let code = authorize(
        b,
        base,
        client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("gina", "pw-gina-123"),
    )
    .await;
    exchange(base, client_id, &code, redirect, &p.verifier).await
}

async fn refresh(base: &str, client_id: &str, rt: &str) -> (StatusCode, Value) {
    token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
        ],
    )
    .await
}

/// RFC 8707 §2.2: a refresh that names another resource than its grant's is
/// `invalid_target`, not a token for the old audience; it does not rotate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_for_another_resource_is_invalid_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "gina", "pw-gina-123", "notes:read");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&base, &[redirect]).await;
    let mut b = Browser::new();
    let t = grant(&mut b, &base, &client_id, redirect).await;
    let rt = t["refresh_token"].as_str().expect("refresh").to_owned();
    let other = format!("{base}/mcp/elsewhere");
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
            ("resource", &other),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{e}"
    );
    // Refused, so not rotated: the same token still refreshes, naming its own resource.
    let own = gw.mcp("demo");
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
            ("resource", &own),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert!(e["access_token"].is_string(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_and_the_account_page() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "gina", "pw-gina-123", "notes:read");
    let gw = Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
        .await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&base, &[redirect]).await;
    let mut b = Browser::new();
    let t = grant(&mut b, &base, &client_id, redirect).await;
    let rt = t["refresh_token"].as_str().expect("refresh").to_owned();

    // Two refreshes at once with the same token (within refresh_grace): both succeed.
    let (a, c) = tokio::join!(
        refresh(&base, &client_id, &rt),
        refresh(&base, &client_id, &rt)
    );
    assert_eq!(
        (a.0, c.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        c.1
    );
    let newest = c.1["refresh_token"].as_str().expect("rotated").to_owned();
    let access = c.1["access_token"].as_str().expect("access").to_owned();
    assert_eq!(whoami(&mcp, &access).await, Ok("gina".to_owned()));
    // After the grace window the reuse revokes the grant.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, e) = refresh(&base, &client_id, &rt).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    let (_, e) = refresh(&base, &client_id, &newest).await;
    assert_eq!(e["error"], "invalid_grant", "{e}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&mcp, &access).await, Err(StatusCode::UNAUTHORIZED));

    // The account page lists a live grant with a revoke button.
    let t = grant(&mut b, &base, &client_id, redirect).await;
    let access = t["access_token"].as_str().expect("access").to_owned();
    let rt = t["refresh_token"].as_str().expect("refresh").to_owned();
    let (s, _, html) = b.get(&format!("{base}/account")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("e2e client"), "{html}");
    let fields = hidden_fields(&html);
    let gid = jwt_part(&access, 1)["gid"]
        .as_str()
        .expect("gid")
        .to_owned();
    assert!(
        fields.iter().any(|(k, v)| k == "grant" && *v == gid),
        "{html}"
    );
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .expect("csrf")
        .1
        .clone();
    // Without the CSRF token (or with another one): 403, and nothing is revoked.
    for bad in [
        vec![("grant".to_owned(), gid.clone())],
        vec![
            ("grant".to_owned(), gid.clone()),
            ("csrf".to_owned(), "forged".to_owned()),
        ],
    ] {
        let (s, _, _) = b.post_form(&format!("{base}/account/revoke"), &bad).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert_eq!(whoami(&mcp, &access).await, Ok("gina".to_owned()));
    let (s, _, html) = b
        .post_form(
            &format!("{base}/account/revoke"),
            &[("csrf".to_owned(), csrf), ("grant".to_owned(), gid.clone())],
        )
        .await;
    assert!(s.is_success() || s == StatusCode::SEE_OTHER, "{s}: {html}");
    let (_, e) = refresh(&base, &client_id, &rt).await;
    assert_eq!(e["error"], "invalid_grant", "{e}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&mcp, &access).await, Err(StatusCode::UNAUTHORIZED));
    let (_, _, html) = b.get(&format!("{base}/account")).await;
    assert!(
        !hidden_fields(&html)
            .iter()
            .any(|(k, v)| k == "grant" && *v == gid),
        "{html}"
    );
}

async fn jwks_kids(base: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!("{base}/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotation() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "hank", "pw-hank-123", "notes:read");
    let cfg = config(&tmp.path().join("notes"), "maintenance_interval = \"1s\"\n");
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&base, &[redirect]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("hank", "pw-hank-123"),
    )
    .await;
    let t = exchange(&base, &client_id, &code, redirect, &p.verifier).await;
    let old_access = t["access_token"].as_str().expect("access").to_owned();
    let old_kid = jwt_part(&old_access, 0)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_eq!(jwks_kids(&base).await, vec![old_kid.clone()]);
    let list = cli_ok(&data, &["signing-keys", "list"]);
    assert!(
        list.contains(&old_kid) && list.contains("active") && list.contains("ES256"),
        "{list}"
    );

    let new_kid = cli_ok(&data, &["signing-keys", "rotate", "--alg", "EdDSA"])
        .trim()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    let list = cli_ok(&data, &["signing-keys", "list"]);
    assert!(
        list.contains("retiring until") && list.contains("EdDSA"),
        "{list}"
    );
    assert!(
        !list.contains("\"d\"") && !list.to_lowercase().contains("private"),
        "{list}"
    );
    // The running server picks the new key up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !jwks_kids(&base).await.contains(&new_kid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not pick up the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kids = jwks_kids(&base).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    // The old token still verifies; new tokens carry the new kid and verify too.
    assert_eq!(whoami(&mcp, &old_access).await, Ok("hank".to_owned()));
    let (s, t2) = refresh(
        &base,
        &client_id,
        t["refresh_token"].as_str().expect("refresh"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    let new_access = t2["access_token"].as_str().expect("access").to_owned();
    let h = jwt_part(&new_access, 0);
    assert_eq!(
        (h["kid"].as_str(), h["alg"].as_str()),
        (Some(new_kid.as_str()), Some("EdDSA")),
        "{h}"
    );
    assert_eq!(whoami(&mcp, &new_access).await, Ok("hank".to_owned()));

    // Rotating with no overlap drops the previous key at once: its tokens stop verifying.
    let newest = cli_ok(&data, &["signing-keys", "rotate", "--overlap", "0s"])
        .trim()
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while jwks_kids(&base).await.contains(&new_kid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the retired key stayed published"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kids = jwks_kids(&base).await;
    assert!(
        kids.contains(&newest) && kids.contains(&old_kid),
        "{kids:?}"
    );
    // The guard caches a verification for a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        whoami(&mcp, &new_access).await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        whoami(&mcp, &old_access).await,
        Ok("hank".to_owned()),
        "still within its overlap"
    );
    // A bad algorithm is refused with the choices.
    let (ok, _, err) = cli(&data, &["signing-keys", "rotate", "--alg", "HS256"]);
    assert!(!ok && err.contains("ES256, EdDSA or RS256"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_dynamic_clients_expire_and_rows_are_purged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "ivy", "pw-ivy-123", "notes:read");
    cli_ok(
        &data,
        &[
            "clients",
            "add",
            "static app",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--client-id",
            "static-app",
        ],
    );
    let cfg = config(
        &tmp.path().join("notes"),
        "maintenance_interval = \"1s\"\ndynamic_client_ttl = \"6s\"\ncode_ttl = \"2s\"\n",
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let redirect = "http://127.0.0.1/cb";
    let unused = register(&base, &[redirect]).await;
    let used = register(&base, &[redirect]).await;
    let list = cli_ok(&data, &["clients", "list"]);
    assert!(
        list.contains(&unused) && list.contains(&used) && list.contains("static-app"),
        "{list}"
    );

    // `used` gets a token; an expired code is refused (and later purged).
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &used,
        redirect,
        &p.challenge,
        "notes:read",
        ("ivy", "pw-ivy-123"),
    )
    .await;
    let stale = authorize(
        &mut b,
        &base,
        &used,
        redirect,
        &p.challenge,
        "notes:read",
        ("ivy", "pw-ivy-123"),
    )
    .await;
    let t = exchange(&base, &used, &code, redirect, &p.verifier).await;
    let rt = t["refresh_token"].as_str().expect("refresh").to_owned();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &stale),
            ("client_id", &used),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    // Keep `used` in use (each refresh moves its expiry out) while `unused` expires.
    let mut rt = rt;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (s, t) = refresh(&base, &used, &rt).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        rt = t["refresh_token"].as_str().expect("refresh").to_owned();
        let list = cli_ok(&data, &["clients", "list"]);
        assert!(
            list.contains(&used) && list.contains("static-app"),
            "{list}"
        );
        if !list.contains(&unused) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unused dynamic client was not purged: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (s, _, html) = b
        .get(&authorize_url(&base, &unused, redirect, &p.challenge, &[]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("Unknown application"), "{html}");
    let (s, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &unused),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    // Pre-registered clients never expire.
    let (s, _, _) = b
        .get(&authorize_url(
            &base,
            "static-app",
            redirect,
            &p.challenge,
            &[],
        ))
        .await;
    assert!(s == StatusCode::OK || s == StatusCode::SEE_OTHER, "{s}");
}
