use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use http::HeaderName;

use super::secret::{Secret, Template};
use super::token::{self, Issued, Renew, TokenCell};
use super::*;
use crate::identity::OnBehalfOf;

fn upstream(toml_text: &str) -> UpstreamConfig {
    toml::from_str(toml_text).expect("an upstream table")
}

#[test]
fn one_table_or_an_array_of_tables() {
    let one = upstream(
        "name = \"w\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
         [credentials]\nkind = \"bearer\"\nvalue_env = \"W_KEY\"\n",
    );
    assert_eq!(one.credentials.len(), 1);
    let many = upstream(
        "name = \"w\"\ncommand = [\"x\"]\n\
         [[credentials]]\nkind = \"static\"\nvalue_env = \"A\"\nenv = \"A\"\n\
         [[credentials]]\nkind = \"static\"\nvalue_file = \"/nonexistent\"\nenv = \"B\"\n",
    );
    assert_eq!(many.credentials.len(), 2);
    let bad = toml::from_str::<UpstreamConfig>(
        "name = \"w\"\nurl = \"http://x/\"\n[credentials]\nkind = \"bearer\"\nvalu_env = \"A\"\n",
    )
    .expect_err("an unknown key is an error");
    assert!(bad.to_string().contains("valu_env"), "{bad}");
}

#[test]
fn a_missing_environment_variable_is_named_with_what_to_do() {
    let u = upstream(
        "name = \"weather\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
         [credentials]\nkind = \"static\"\nheader = \"X-Api-Key\"\n\
         value_env = \"MCPGATE_UNIT_TEST_SURELY_UNSET_KEY\"\n",
    );
    assert!(credential_problems(&u).is_empty());
    assert_eq!(
        missing_credentials(&u),
        vec![
            "Missing credential MCPGATE_UNIT_TEST_SURELY_UNSET_KEY for upstream weather: \
             set the environment variable MCPGATE_UNIT_TEST_SURELY_UNSET_KEY"
                .to_owned()
        ]
    );
    let c = Credentials::new(&u).expect("valid");
    let report = c.report();
    assert_eq!(report[0]["status"], "missing", "{report:?}");
    assert_eq!(report[0]["header"], "x-api-key", "{report:?}");
}

#[test]
fn a_file_secret_is_read_without_its_newline_and_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, "s3cr3t-value\n").expect("write");
    let u = upstream(&format!(
        "name = \"w\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
         [credentials]\nkind = \"static\"\nheader = \"Authorization\"\ntemplate = \"Token {{secret}}\"\n\
         value_file = {:?}\n",
        path.display().to_string()
    ));
    let c = Credentials::new(&u).expect("valid");
    assert!(c.missing().is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (headers, _) = rt
        .block_on(c.headers(&OnBehalfOf::gateway()))
        .expect("headers");
    let v = headers.get("authorization").expect("the header");
    assert_eq!(v.to_str().expect("ascii"), "Token s3cr3t-value");
    assert!(v.is_sensitive());
    let debug = format!("{c:?} {:?} {u:?}", c.report());
    assert!(!debug.contains("s3cr3t"), "{debug}");
}

#[test]
fn inline_secrets_stay_out_of_debug_output() {
    let u = upstream(
        "name = \"w\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
         [credentials]\nkind = \"basic\"\nusername = \"svc\"\npassword = \"hunter2-inline\"\n",
    );
    let c = Credentials::new(&u).expect("valid");
    let text = format!("{u:?} {c:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (h, _) = rt
        .block_on(c.headers(&OnBehalfOf::gateway()))
        .expect("headers");
    let expected = base64::engine::general_purpose::STANDARD.encode("svc:hunter2-inline");
    assert_eq!(
        h.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Basic {expected}").as_str())
    );
}

#[test]
fn structural_problems_say_what_to_change() {
    let cases = [
        (
            "name = \"s\"\ncommand = [\"x\"]\nisolation = \"shared\"\n\
             [credentials]\nkind = \"token_exchange\"\ntoken_url = \"http://127.0.0.1:1/token\"\n",
            "cannot go to a stdio child shared by every user",
        ),
        (
            "name = \"s\"\ncommand = [\"x\"]\n\
             [credentials]\nkind = \"login\"\nlogin_url = \"http://127.0.0.1:1/login\"\n\
             username_env = \"U\"\npassword_env = \"P\"\n",
            "applies to url (HTTP) upstreams only",
        ),
        (
            "name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
             [credentials]\nkind = \"static\"\nvalue_env = \"A\"\n",
            "set header",
        ),
        (
            "name = \"s\"\ncommand = [\"x\"]\n\
             [credentials]\nkind = \"static\"\nvalue_env = \"A\"\n",
            "set env",
        ),
        (
            "name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
             [credentials]\nkind = \"bearer\"\nvalue_env = \"A\"\nvalue = \"b\"\n",
            "set only one of value, value_env and value_file",
        ),
        (
            "name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
             [credentials]\nkind = \"static\"\nheader = \"X-K\"\ntemplate = \"Token\"\nvalue_env = \"A\"\n",
            "must contain {secret}",
        ),
        (
            "name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
             [credentials]\nkind = \"login\"\nlogin_url = \"http://127.0.0.1:1/login\"\nusername_env = \"U\"\n",
            "set password_env or password_file",
        ),
        (
            "name = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
             [credentials]\nkind = \"client_credentials\"\ntoken_url = \"ftp://127.0.0.1/token\"\n\
             client_id = \"a\"\nclient_secret_env = \"S\"\n",
            "scheme \"ftp\" is not allowed",
        ),
    ];
    for (text, want) in cases {
        let problems = credential_problems(&upstream(text));
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{text}\nwanted {want:?} in {problems:?}"
        );
    }
}

#[test]
fn dotted_paths_and_jwt_expiry() {
    let doc = serde_json::json!({ "data": { "access_token": "a", "ttl": "30" } });
    assert_eq!(
        token::at_path(&doc, "data.access_token"),
        Some(&serde_json::json!("a"))
    );
    assert_eq!(token::at_path(&doc, "data.missing"), None);
    let issued = token::parse_issued(&doc, "data.access_token", None, "data.ttl").expect("parses");
    assert_eq!(issued.lifetime, Some(Duration::from_secs(30)));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.sig",
        b64(serde_json::json!({"alg": "HS256"})),
        b64(serde_json::json!({"exp": now + 120}))
    );
    let life = token::jwt_lifetime(&jwt).expect("a JWT lifetime");
    assert!(life <= Duration::from_secs(120) && life >= Duration::from_secs(118));
    assert_eq!(token::jwt_lifetime("opaque-token"), None);
    assert_eq!(
        token::renew_margin(Duration::from_secs(2)),
        Duration::from_millis(200)
    );
    assert_eq!(
        token::renew_margin(Duration::from_secs(3600)),
        Duration::from_secs(60)
    );
}

/// Counts obtains; each takes a while so that concurrent callers overlap.
#[derive(Default)]
struct Counting {
    obtained: AtomicUsize,
    lifetime: Option<Duration>,
}

impl Renew for Counting {
    async fn obtain(&self) -> Result<Issued, String> {
        let n = self.obtained.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Issued {
            access: Secret::new(format!("token-{n}")),
            refresh: None,
            lifetime: self.lifetime,
        })
    }
}

#[tokio::test]
async fn one_renewal_for_many_concurrent_callers() {
    let how = Arc::new(Counting {
        lifetime: Some(Duration::from_millis(300)),
        ..Counting::default()
    });
    let cell = Arc::new(TokenCell::default());
    let first = futures_util::future::join_all((0..20).map(|_| {
        let (cell, how) = (cell.clone(), how.clone());
        async move { cell.current(&*how).await.expect("a token") }
    }))
    .await;
    assert!(first.iter().all(|t| t.expose() == "token-1"));
    assert_eq!(how.obtained.load(Ordering::SeqCst), 1);

    // Past its renewal point, twenty callers cause one renewal.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = futures_util::future::join_all((0..20).map(|_| {
        let (cell, how) = (cell.clone(), how.clone());
        async move { cell.current(&*how).await.expect("a token") }
    }))
    .await;
    assert!(second.iter().all(|t| t.expose() == "token-2"));
    assert_eq!(how.obtained.load(Ordering::SeqCst), 2);

    // Twenty 401s for the same token cause one renewal; a stale rejection none.
    let rejected = Secret::new("token-2");
    let retries = futures_util::future::join_all((0..20).map(|_| {
        let (cell, how, rejected) = (cell.clone(), how.clone(), rejected.clone());
        async move { cell.rejected(&*how, &rejected).await }
    }))
    .await;
    assert!(retries.iter().all(|r| *r));
    assert_eq!(how.obtained.load(Ordering::SeqCst), 3);
    assert_eq!(
        cell.current(&*how).await.expect("a token").expose(),
        "token-3"
    );
}

#[derive(Debug)]
struct PerUser;

impl UserSecretSource for PerUser {
    fn secret_for<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, super::UserSecretError>> {
        Box::pin(async move {
            Ok((subject != "nobody").then(|| UserSecret::new(format!("{subject}@{upstream}"))))
        })
    }
}

#[tokio::test]
async fn per_user_secrets_follow_the_caller() {
    let c = Credentials {
        upstream: "gh".into(),
        items: vec![Item {
            kind: "user_secret",
            label: "per-user secret".into(),
            header: Some((
                HeaderName::from_static("authorization"),
                Template::parse("Bearer {secret}").expect("template"),
            )),
            env: None,
            source: Source::User(Arc::new(PerUser)),
            last_error: Mutex::new(None),
            loaded: std::sync::OnceLock::new(),
        }],
    };
    let as_user = |s: &str| OnBehalfOf {
        subject: Some(s.to_owned()),
        identity: None,
    };
    let (alice, _) = c.headers(&as_user("alice")).await.expect("alice's");
    let (bob, _) = c.headers(&as_user("bob")).await.expect("bob's");
    assert_eq!(alice["authorization"], "Bearer alice@gh");
    assert_eq!(bob["authorization"], "Bearer bob@gh");
    let none = c.headers(&as_user("nobody")).await.expect_err("no secret");
    assert!(none.0.contains("have not stored one"), "{none}");
    let anon = c
        .headers(&OnBehalfOf::gateway())
        .await
        .expect_err("anonymous");
    assert!(anon.0.contains("signed-in caller"), "{anon}");
}
