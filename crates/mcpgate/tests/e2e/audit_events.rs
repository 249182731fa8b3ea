//! Issue 15's audit events, each caused through the real binary and read back
//! with `mcpgate audit list --json`: a client registered (dynamic and with
//! `clients add`) and removed, a sign-in, consent given and revoked, tokens
//! issued and revoked, a signing key rotated, a vault secret set. No record
//! holds a token or a secret, and the chain verifies.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::authserver::{
    Browser, add_user, authorize, config, hidden_fields, pkce, register, token,
};
use crate::harness::{BIN, Gateway};

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
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

fn audit(data: &Path) -> Vec<Value> {
    cli(data, &["audit", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The first record of `kind`, or a failure listing what there is.
fn find<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    all.iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} record in {all:#?}"))
}

/// Signs in (first time), consents, exchanges the code: the token response.
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
    let (s, t) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_reach_the_trail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "gina", "pw-gina-123", "notes:read");
    let mut gw =
        Gateway::start_with_data(&config(&tmp.path().join("notes"), ""), "127.0.0.1:0", &data)
            .await;
    let base = gw.base.clone();
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&base, &[redirect]).await;
    let mut b = Browser::new();

    // A grant whose refresh token the client revokes (RFC 7009).
    let first = grant(&mut b, &base, &client_id, redirect).await;
    let refresh = first["refresh_token"].as_str().expect("refresh").to_owned();
    let r = reqwest::Client::new()
        .post(format!("{base}/revoke"))
        .form(&[
            ("token", refresh.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::OK);

    // A second grant the user withdraws on the account page.
    let second = grant(&mut b, &base, &client_id, redirect).await;
    let (s, _, html) = b.get(&format!("{base}/account")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let fields = hidden_fields(&html);
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .expect("csrf")
        .1
        .clone();
    let gid = fields
        .iter()
        .find(|(k, _)| k == "grant")
        .expect("a grant to revoke")
        .1
        .clone();
    let (s, _, html) = b
        .post_form(
            &format!("{base}/account/revoke"),
            &[("csrf".to_owned(), csrf), ("grant".to_owned(), gid.clone())],
        )
        .await;
    assert!(s.is_success(), "{s}: {html}");
    // Written by the server's writer; a clean stop drains its queue.
    gw.stop().await;

    // The CLI's own changes.
    let cli_client = cli(
        &data,
        &["clients", "add", "cli-app", "--redirect-uri", redirect],
    )
    .trim()
    .to_owned();
    cli(&data, &["clients", "remove", &cli_client]);
    let kid = cli(&data, &["signing-keys", "rotate"]).trim().to_owned();

    let all = audit(&data);
    let text = serde_json::to_string(&all).expect("json");
    for secret in [
        first["access_token"].as_str().expect("access"),
        refresh.as_str(),
        second["access_token"].as_str().expect("access"),
        second["refresh_token"].as_str().expect("refresh"),
        "pw-gina-123",
    ] {
        assert!(!text.contains(secret), "a secret reached the trail: {text}");
    }

    let registered = find(&all, "client_registered");
    assert_eq!(registered["client_id"], client_id.as_str(), "{registered}");
    assert_eq!(registered["outcome"], "dynamic", "{registered}");
    assert_eq!(find(&all, "sign_in")["subject"], "gina");
    let consents: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "consent_given")
        .collect();
    assert_eq!(consents.len(), 2, "{all:#?}");
    assert_eq!(consents[0]["subject"], "gina", "{}", consents[0]);
    assert_eq!(consents[0]["client_id"], client_id.as_str());
    assert_eq!(consents[0]["detail"]["scope"], "notes:read");
    let issued: Vec<&Value> = all.iter().filter(|r| r["kind"] == "token_issued").collect();
    assert_eq!(issued.len(), 2, "{all:#?}");
    let revoked = find(&all, "token_revoked");
    assert_eq!(revoked["subject"], "gina", "{revoked}");
    assert_eq!(revoked["client_id"], client_id.as_str(), "{revoked}");
    let withdrawn = find(&all, "consent_revoked");
    assert_eq!(withdrawn["subject"], "gina", "{withdrawn}");
    assert_eq!(withdrawn["detail"]["grant"], gid.as_str(), "{withdrawn}");
    let added: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "client_registered" && r["client_id"] == cli_client.as_str())
        .collect();
    assert_eq!(added.len(), 1, "{all:#?}");
    assert_eq!(added[0]["outcome"], "cli");
    assert_eq!(
        find(&all, "client_removed")["client_id"],
        cli_client.as_str()
    );
    let rotated = find(&all, "signing_key_rotated");
    assert_eq!(rotated["detail"]["kid"], kid.as_str(), "{rotated}");
    assert!(rotated["detail"]["previous_kid"].is_string(), "{rotated}");

    // In the order they happened, each linked to the one before.
    let order: Vec<&str> = all.iter().filter_map(|r| r["kind"].as_str()).collect();
    let pos = |k: &str| order.iter().position(|o| *o == k).expect(k);
    assert!(pos("client_registered") < pos("consent_given"), "{order:?}");
    assert!(pos("consent_given") < pos("token_revoked"), "{order:?}");
    assert!(pos("token_revoked") < pos("consent_revoked"), "{order:?}");
    assert!(pos("consent_revoked") < pos("client_removed"), "{order:?}");
    for w in all.windows(2) {
        assert_eq!(w[1]["prev_hash"], w[0]["hash"], "{w:#?}");
        assert_eq!(w[1]["seq"].as_i64(), w[0]["seq"].as_i64().map(|s| s + 1));
    }
    let verified = cli(&data, &["audit", "verify"]);
    assert!(
        verified.contains(&format!("OK ({} records checked)", all.len())),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_secret_set_is_on_the_record_without_the_secret() {
    // Saving a secret does not contact the upstream: a closed port will do.
    let mut gw = Gateway::start(&crate::vault::vault_config("http://127.0.0.1:9/mcp")).await;
    let base = gw.base.clone();
    let data = gw.data_dir().to_owned();
    add_user(&data, "alice", "pw-alice-Long-1", "notes:read");
    let (mut b, page) = crate::vault::sign_in(&base, "alice", "pw-alice-Long-1").await;
    let (s, html) = crate::vault::save(&mut b, &base, &page, "save", "wx-alice001").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    // A refused value is no event.
    let (s, _) = crate::vault::save(&mut b, &base, &page, "save", "not-a-key").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    gw.stop().await;
    let all = audit(&data);
    let set: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "vault_secret_set")
        .collect();
    assert_eq!(set.len(), 1, "{all:#?}");
    assert_eq!(set[0]["subject"], "alice");
    assert_eq!(set[0]["upstream"], "demo");
    let text = serde_json::to_string(&all).expect("json");
    assert!(!text.contains("wx-alice001"), "{text}");
    assert!(!text.contains("not-a-key"), "{text}");
}
