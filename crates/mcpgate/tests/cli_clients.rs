//! `mcpgate clients` and `mcpgate signing-keys`, run as the real binary
//! against a temporary data directory (the flows through a running server are
//! in the e2e suite, `authserver_more`).

use std::path::Path;
use std::process::{Command, Output};

use mcpgate_store::Store;
use mcpgate_store::oauth::{ClientKind, digest_hex};

fn mcpgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(args)
        .env_remove("MCPGATE_SERVER__DATA_DIR")
        .env_remove("MCPGATE_CONFIG")
        .env_remove("MCPGATE_MASTER_KEY")
        .output()
        .expect("run mcpgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> (String, String) {
    let out = mcpgate(args);
    assert!(
        out.status.success(),
        "mcpgate {args:?} failed: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn fails(args: &[&str]) -> String {
    let out = mcpgate(args);
    assert!(!out.status.success(), "mcpgate {args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    text(&out.stderr)
}

fn d(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn add_list_remove() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let dir = d(&data);

    // A confidential client_credentials client: no redirect URI needed, the
    // secret printed once on stdout, only its digest stored.
    let (secret, err) = ok(&[
        "clients",
        "add",
        "nightly job",
        "--confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "notes:read",
        "--client-id",
        "nightly",
        "--data-dir",
        dir,
    ]);
    let secret = secret.trim().to_owned();
    assert!(secret.len() >= 40, "{secret:?}");
    assert!(
        err.contains("client_id: nightly") && err.contains("only this once"),
        "{err}"
    );
    // A public client; its id is printed.
    let (public_id, _) = ok(&[
        "clients",
        "add",
        "desktop",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "--data-dir",
        dir,
    ]);
    let public_id = public_id.trim().to_owned();
    assert!(public_id.starts_with("mcpgate-"), "{public_id}");

    let store = Store::open(&data).await.expect("store");
    let row = store
        .find_client("nightly")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(row.kind, ClientKind::Static);
    assert_eq!(
        row.secret_digest.as_deref(),
        Some(digest_hex(&secret).as_str())
    );
    assert_eq!(
        row.metadata["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        row.metadata["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(row.metadata["scope"], "notes:read");
    let public = store
        .find_client(&public_id)
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(public.secret_digest, None);
    assert_eq!(public.metadata["token_endpoint_auth_method"], "none");
    store.close().await;
    let db = std::fs::read(data.join("mcpgate.sqlite")).expect("db");
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not stored in the clear"
    );

    // The list: a header, both clients, never the secret.
    let (list, _) = ok(&["clients", "list", "--data-dir", dir]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("CLIENT_ID")
            && lines[0].contains("KIND")
            && lines[0].contains("LAST_USED"),
        "{list}"
    );
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        list.contains("nightly job") && list.contains("pre-registered"),
        "{list}"
    );
    assert!(list.contains("http://127.0.0.1/cb,cursor://"), "{list}");
    assert!(!list.contains(&secret), "{list}");

    // Refusals, each with a reason.
    for (args, why) in [
        (
            vec!["x", "--grant-type", "client_credentials"],
            "confidential",
        ),
        (vec!["x"], "--redirect-uri"),
        (
            vec!["x", "--redirect-uri", "http://evil.example/cb"],
            "loopback",
        ),
        (vec!["x", "--redirect-uri", "javascript:alert(1)"], "scheme"),
        (
            vec![
                "x",
                "--confidential",
                "--auth-method",
                "private_key_jwt",
                "--grant-type",
                "client_credentials",
            ],
            "--jwks-file",
        ),
        (
            vec![
                "x",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--client-id",
                "https://app.example/c.json",
            ],
            "--client-id",
        ),
        (
            vec![
                "x",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--client-id",
                "nightly",
            ],
            "nightly",
        ),
    ] {
        let mut full = vec!["clients", "add"];
        full.extend(args.iter().copied());
        full.extend(["--data-dir", dir]);
        let err = fails(&full);
        assert!(err.contains(why), "{args:?}: expected {why:?} in {err}");
    }
    // A JWKS file with a private key is refused; a public one is taken.
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"secret"}]}"#,
    )
    .expect("write");
    let err = fails(&[
        "clients",
        "add",
        "k",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        d(&jwks),
        "--grant-type",
        "client_credentials",
        "--data-dir",
        dir,
    ]);
    assert!(err.contains("private key"), "{err}");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#,
    )
    .expect("write");
    ok(&[
        "clients",
        "add",
        "k",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        d(&jwks),
        "--grant-type",
        "client_credentials",
        "--client-id",
        "k",
        "--data-dir",
        dir,
    ]);

    // Remove; removing again says there is no such client.
    let (_, err) = ok(&["clients", "remove", "nightly", "--data-dir", dir]);
    assert!(err.contains("Removed client \"nightly\""), "{err}");
    let err = fails(&["clients", "remove", "nightly", "--data-dir", dir]);
    assert!(err.contains("no client \"nightly\""), "{err}");
    let (list, _) = ok(&["clients", "list", "--data-dir", dir]);
    assert!(!list.contains("nightly"), "{list}");

    // The data directory from a configuration file, as `mcpgate keys` does.
    let cfg = tmp.path().join("mcpgate.toml");
    std::fs::write(&cfg, format!("[server]\ndata_dir = {:?}\n", dir)).expect("write config");
    let (list, _) = ok(&["clients", "list", "--config", d(&cfg)]);
    assert!(list.contains(&public_id), "{list}");
    // A mistyped data directory is not created.
    let err = fails(&["clients", "list", "--data-dir", d(&tmp.path().join("nope"))]);
    assert!(err.contains("no mcpgate database"), "{err}");
}

#[tokio::test]
async fn signing_keys_without_a_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let dir = d(&data);
    Store::open(&data).await.expect("store").close().await;
    let (out, err) = ok(&["signing-keys", "list", "--data-dir", dir]);
    assert!(out.is_empty() && err.contains("no signing keys"), "{err}");
    // No master key yet: rotating refuses rather than creating a key the server could not use.
    let err = fails(&["signing-keys", "rotate", "--data-dir", dir]);
    assert!(err.contains("no master key"), "{err}");
    assert!(!data.join("master.key").exists());
    // With a master key: rotate twice, list shows one active and one retiring.
    std::fs::write(
        data.join("master.key"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .expect("write key");
    let (first, _) = ok(&[
        "signing-keys",
        "rotate",
        "--alg",
        "RS256",
        "--data-dir",
        dir,
    ]);
    let (second, err) = ok(&[
        "signing-keys",
        "rotate",
        "--overlap",
        "2h",
        "--data-dir",
        dir,
    ]);
    assert!(err.contains(first.trim()) && err.contains("RS256"), "{err}");
    let (list, _) = ok(&["signing-keys", "list", "--data-dir", dir]);
    let active = list
        .lines()
        .find(|l| l.contains(second.trim()))
        .expect("new key listed");
    assert!(
        active.contains("active") && active.contains("RS256"),
        "{list}"
    );
    let old = list
        .lines()
        .find(|l| l.contains(first.trim()))
        .expect("old key listed");
    assert!(old.contains("retiring until"), "{list}");
    let err = fails(&[
        "signing-keys",
        "rotate",
        "--overlap",
        "soon",
        "--data-dir",
        dir,
    ]);
    assert!(err.contains("expected e.g. 24h"), "{err}");
}
