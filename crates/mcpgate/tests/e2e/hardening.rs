//! The authorization server against an attacker on the open internet (issue 10):
//! login guesses capped under concurrency, consent choices only from the form,
//! failed redemptions that do not burn codes, raw-string loopback redirect
//! matching, private data-directory files, and control characters in
//! parameters that end up in headers. Each refusal is also checked in the log.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::authserver::{
    Browser, add_user, authorize, config, form_encode, hidden_fields, location, pkce, query_of,
    register, token,
};
use crate::authserver_more::sign_in;
use crate::harness::Gateway;

async fn eventually_logged(gw: &Gateway, what: &str) {
    for _ in 0..100 {
        if gw.log_tail(400).contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no log line containing {what:?}:\n{}", gw.log_tail(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_is_capped_before_any_password_is_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "alice", "correct horse", "notes:read");
    let cfg = config(
        &tmp.path().join("notes"),
        "login_max_failures = 4\nlogin_window = \"10m\"",
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mut b = Browser::new();
    let (s, _, html) = b.get(&format!("{base}/login")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let hidden = hidden_fields(&html);
    let cookie = b.cookie_header();
    let attempt = |password: &str| {
        let mut form = hidden.clone();
        form.push(("username".into(), "alice".into()));
        form.push(("password".into(), password.into()));
        b.http
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&form))
            .send()
    };
    let answers = join_all((0..100).map(|i| attempt(&format!("guess number {i}")))).await;
    let (mut wrong, mut throttled) = (0, 0);
    for r in answers {
        let r = r.expect("login answered");
        match r.status() {
            StatusCode::UNAUTHORIZED => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let after: u64 = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After in seconds");
                assert!((1..=600).contains(&after), "{after}");
                throttled += 1;
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    assert_eq!(
        (wrong, throttled),
        (4, 96),
        "exactly login_max_failures passwords are evaluated"
    );
    // The right password after the limit does not sign in.
    let r = attempt("correct horse").await.expect("login answered");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("location").is_none());
    eventually_logged(&gw, "sign-in refused: too many attempts").await;
}

async fn authserver(user: (&str, &str)) -> (tempfile::TempDir, Gateway) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, user.0, user.1, "notes:read notes:write");
    let cfg = config(&tmp.path().join("notes"), "");
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    (tmp, gw)
}

fn authorize_url(base: &str, client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut f: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), "http://127.0.0.1/cb".into()),
        ("scope".into(), "notes:read".into()),
        ("state".into(), "st-1".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (k, v) in extra {
        f.retain(|(n, _)| n != k);
        f.push(((*k).into(), (*v).into()));
    }
    format!("{base}/authorize?{}", form_encode(&f))
}

/// The consent form's fields as the page rendered them, once each.
fn consent_form(html: &str) -> Vec<(String, String)> {
    let mut form = hidden_fields(html);
    let mut seen = std::collections::BTreeSet::new();
    form.retain(|(k, _)| seen.insert(k.clone()));
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_form_carries_only_what_the_server_put_there() {
    let user = ("carol", "pw-carol-123");
    let (_tmp, gw) = authserver(user).await;
    let base = gw.base.clone();
    let client_id = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let mut b = Browser::new();
    // A link crafted to pre-tick "remember" (and to swap the redirect after consent).
    let url = authorize_url(&base, &client_id, &p.challenge, &[("remember", "yes")]);
    let (s, h, _) = b.get(&url).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let back = sign_in(&mut b, &base, &location(&h), user).await;
    let (s, _, html) = b.get(&back).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let form = consent_form(&html);
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["csrf", "request"],
        "only the CSRF token and the request reference are hidden: {form:?}"
    );
    // Parameters added to the POST are not the request: it comes from the server's record.
    let mut forged = form.clone();
    forged.push(("decision".into(), "allow".into()));
    forged.push(("redirect_uri".into(), "http://127.0.0.1/evil".into()));
    let (s, h, body) = b.post_form(&format!("{base}/consent"), &forged).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let to = location(&h);
    assert!(to.starts_with("http://127.0.0.1/cb?"), "{to}");
    assert!(query_of(&to).contains_key("code"), "{to}");
    // Single use: the same form again is refused.
    let mut again = form.clone();
    again.push(("decision".into(), "allow".into()));
    let (s, _, body) = b.post_form(&format!("{base}/consent"), &again).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("already"), "{body}");
    // The user did not tick "remember": a silent request still needs consent.
    let (s, h, _) = b
        .get(&authorize_url(
            &base,
            &client_id,
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        query_of(&location(&h)).get("error").map(String::as_str),
        Some("consent_required"),
        "{}",
        location(&h)
    );
    eventually_logged(&gw, "consent refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_redemptions_do_not_burn_the_code() {
    let user = ("dave", "pw-dave-123");
    let (_tmp, gw) = authserver(user).await;
    let base = gw.base.clone();
    let client_id = register(&base, &["http://127.0.0.1/cb"]).await;
    let other = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        "http://127.0.0.1/cb",
        &p.challenge,
        "notes:read",
        user,
    )
    .await;
    let wrong_verifier = pkce().verifier;
    // Someone who saw the code: as another client, and with a wrong verifier.
    for (cid, verifier) in [
        (other.as_str(), p.verifier.as_str()),
        (client_id.as_str(), wrong_verifier.as_str()),
    ] {
        let (s, e) = token(
            &base,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", cid),
                ("redirect_uri", "http://127.0.0.1/cb"),
                ("code_verifier", verifier),
            ],
        )
        .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{e}"
        );
    }
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("code_verifier", p.verifier.as_str()),
    ];
    let (s, t) = token(&base, &form).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the real client still redeems its code: {t}"
    );
    // A second successful-looking use is a replay.
    let (s, e) = token(&base, &form).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("used already")),
        "{e}"
    );
    eventually_logged(&gw, "code_verifier does not match").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirects_match_byte_for_byte_except_the_port() {
    let user = ("erin", "pw-erin-123");
    let (_tmp, gw) = authserver(user).await;
    let base = gw.base.clone();
    let client_id = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for bad in [
        "http://127.1/cb",
        "http://2130706433/cb",
        "http://0x7f000001/cb",
        "http://127.0.0.1./cb",
        "http://127.0.0.1:5555/x/../cb",
        "http://127.0.0.1:0080/cb",
    ] {
        let r = b
            .get(authorize_url(
                &base,
                &client_id,
                &p.challenge,
                &[("redirect_uri", bad)],
            ))
            .send()
            .await
            .expect("authorize");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}");
    }
    let r = b
        .get(authorize_url(
            &base,
            &client_id,
            &p.challenge,
            &[("redirect_uri", "http://127.0.0.1:5555/cb")],
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "any port of the loopback URI"
    );
    // Dynamic registration: no out-of-band, no spellings that normalize to loopback.
    for bad in [
        "urn:ietf:wg:oauth:2.0:oob",
        "http://LOCALHOST/cb",
        "http://127.1/cb",
        "http://127.0.0.1/cb\r\nX-Injected: 1",
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/register"))
            .json(&serde_json::json!({
                "client_name": "x",
                "redirect_uris": [bad],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .expect("register");
        let status = r.status();
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")),
            "{bad:?}: {v}"
        );
    }
    eventually_logged(&gw, "redirect_uri refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_header_bound_parameters_get_a_400_page() {
    let user = ("fay", "pw-fay-123");
    let (_tmp, gw) = authserver(user).await;
    let base = gw.base.clone();
    let client_id = register(&base, &["http://127.0.0.1/cb"]).await;
    let p = pkce();
    let mut b = Browser::new();
    let evil_next = "/authorize?x=1\r\nSet-Cookie: a=b";
    // `next` on the login page, and after a correct password.
    let (s, _, html) = b
        .get(&format!(
            "{base}/login?{}",
            form_encode(&[("next".into(), evil_next.into())])
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    let (s, _, html) = b.get(&format!("{base}/login")).await;
    assert_eq!(s, StatusCode::OK);
    let mut form = hidden_fields(&html);
    form.retain(|(k, _)| k != "next");
    form.push(("next".into(), evil_next.into()));
    form.push(("username".into(), user.0.into()));
    form.push(("password".into(), user.1.into()));
    let (s, h, body) = b.post_form(&format!("{base}/login"), &form).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(h.get("location").is_none());
    // `state` (and every other /authorize parameter).
    for (k, v) in [("state", "a\r\nb"), ("state", "a\u{7}b"), ("nonce", "n\nx")] {
        let (s, h, body) = b
            .get(&authorize_url(&base, &client_id, &p.challenge, &[(k, v)]))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{k}={v:?}: {body}");
        assert!(h.get("location").is_none());
        assert!(body.contains("control character"), "{body}");
    }
    eventually_logged(&gw, "control character").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_of_the_demo_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let gw = Gateway::start_demo(&data).await;
    // A session starts the demo server, which opens its own database.
    let raw = crate::harness::raw::Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let r = raw
        .call(
            &session,
            &crate::harness::raw::tool_call(
                serde_json::json!(2),
                "echo",
                serde_json::json!({"text": "hi"}),
            ),
        )
        .await;
    assert!(r["result"].is_object(), "{r}");
    let mut seen = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        seen.push((dir.display().to_string(), mode));
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
                seen.push((p.display().to_string(), mode));
            }
        }
    }
    assert!(
        seen.iter().any(|(p, _)| p.ends_with("demo.sqlite-wal")),
        "{seen:?}"
    );
    for (p, mode) in &seen {
        let want = if std::path::Path::new(p).is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(*mode, want, "{p} is {mode:o}: {seen:?}");
    }
}
