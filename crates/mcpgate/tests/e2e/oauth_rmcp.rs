//! rmcp's OAuth client (feature `auth`) against the built-in authorization
//! server: discovery from the gateway's 401 challenge, dynamic registration,
//! the authorization URL opened by a headless "browser" that fills the login
//! and consent forms over HTTP, the code exchange, and `tools/call` through
//! the gateway with rmcp's Streamable HTTP transport wrapped in `AuthClient`;
//! then a refresh once the access token expires, and a restart of the gateway
//! in the middle, with the same client and its stored credentials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::harness::client::{Client, TestClient};
use crate::harness::raw::initialize_request;
use crate::harness::{BIN, Gateway, demo_stdio_upstream, free_port};

/// A browser without JavaScript: no automatic redirects, one cookie jar.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, String) {
        let r = req
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("a page request");
        let (s, h) = (r.status(), r.headers().clone());
        for c in h.get_all(SET_COOKIE) {
            let first = c.to_str().expect("ascii").split(';').next().unwrap_or("");
            let (k, v) = first.split_once('=').expect("name=value");
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        (s, h, r.text().await.expect("body"))
    }

    /// Follows `url` like a user would: through the login page (signing in
    /// as `user`) and the consent page (allowing), until the authorization
    /// server redirects off its own origin; that redirect's URL.
    async fn authorize(&mut self, base: &str, url: &str, user: (&str, &str)) -> String {
        let mut next = url.to_owned();
        for _ in 0..6 {
            let (s, h, html) = self.send(self.http.get(&next)).await;
            if s.is_redirection() {
                let to = absolute(base, &location(&h));
                if !to.starts_with(base) {
                    return to;
                }
                next = to;
                continue;
            }
            assert_eq!(s, StatusCode::OK, "GET {next}: {html}");
            let (action, mut form) = first_form(&html);
            if html.contains("name=\"password\"") {
                form.push(("username".into(), user.0.into()));
                form.push(("password".into(), user.1.into()));
            } else {
                assert!(
                    html.contains("rmcp e2e"),
                    "the consent page names the client: {html}"
                );
                form.push(("decision".into(), "allow".into()));
            }
            let (s, h, body) = self
                .send(self.http.post(absolute(base, &action)).form(&form))
                .await;
            assert_eq!(s, StatusCode::SEE_OTHER, "POST {action}: {body}");
            let to = absolute(base, &location(&h));
            if !to.starts_with(base) {
                return to;
            }
            next = to;
        }
        panic!("no redirect to the client after six pages, starting at {url}");
    }
}

fn absolute(base: &str, url: &str) -> String {
    if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        url.to_owned()
    }
}

fn location(h: &HeaderMap) -> String {
    h.get(LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// HTML character references: the named five and numeric ones (`&#38;`, `&#x26;`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            break;
        };
        let ch = match &tail[1..end] {
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

/// The action and hidden inputs of the first `<form>` of `html`.
fn first_form(html: &str) -> (String, Vec<(String, String)>) {
    let start = html.find("<form").expect("a form");
    let end = html[start..].find("</form>").expect("</form>") + start;
    let form = &html[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = tag.find(&key)? + key.len();
        let j = tag[i..].find('"')? + i;
        Some(unescape(&tag[i..j]))
    };
    let action = attr(form, "action").expect("a form action");
    let mut fields = Vec::new();
    for tag in form.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if tag.contains("type=\"hidden\"") {
            fields.push((
                attr(tag, "name").expect("name"),
                attr(tag, "value").unwrap_or_default(),
            ));
        }
    }
    (action, fields)
}

/// `mcpgate users add NAME --password-stdin --scopes … --data-dir DATA`.
fn add_user(data: &Path, name: &str, password: &str, scopes: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(BIN)
        .args(["users", "add", name, "--password-stdin", "--scopes", scopes])
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mcpgate users add");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(password.as_bytes()).expect("password");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(notes: &Path) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n\
         [authserver]\nenabled = true\naccess_token_ttl = \"2s\"\nrefresh_grace = \"1s\"\n\n{}",
        demo_stdio_upstream(
            "demo",
            notes,
            "isolation = \"session\"\ntool_scopes = { \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }"
        )
    )
}

/// rmcp's client over `AuthClient`, initialized through the gateway.
async fn connect(mcp: &str, auth: AuthClient<reqwest::Client>) -> Client {
    let cfg = StreamableHttpClientTransportConfig::with_uri(mcp.to_owned());
    TestClient::default()
        .serve(StreamableHttpClientTransport::with_client(auth, cfg))
        .await
        .unwrap_or_else(|e| panic!("rmcp could not initialize through {mcp} with OAuth: {e}"))
}

async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
    r.structured_content
        .clone()
        .unwrap_or_else(|| panic!("{tool} has no structured content: {r:?}"))
}

async fn access_token(auth: &AuthClient<reqwest::Client>) -> String {
    let manager = auth.auth_manager.lock().await;
    let (_, creds) = manager.get_credentials().await.expect("credentials");
    let creds = creds.expect("a stored token");
    // `OAuthTokenResponse` serializes to the RFC 6749 token response.
    serde_json::to_value(&creds).expect("token JSON")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_auth_client_discovers_registers_authorizes_calls_refreshes_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(
        &data,
        "alice",
        "rmcp horse battery",
        "notes:read notes:write",
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = config(&tmp.path().join("notes"));
    let mut gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");

    // What an MCP client sees first: 401 with the resource metadata in the challenge.
    let r = reqwest::Client::new()
        .post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_request())
        .send()
        .await
        .expect("initialize without a token");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r
        .headers()
        .get(WWW_AUTHENTICATE)
        .expect("a challenge")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    // rmcp: discovery (from the challenge), DCR, and the authorization URL.
    let mut state = OAuthState::new(&mcp, None).await.expect("OAuthState");
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    state
        .start_authorization(
            AuthorizationRequest::new(redirect.clone())
                .with_client_name("rmcp e2e")
                .with_scopes(["notes:read", "notes:write"])
                .with_challenge(challenge),
        )
        .await
        .expect("rmcp discovery, registration and authorization URL");
    let url = state
        .get_authorization_url()
        .await
        .expect("authorization URL");
    let q: BTreeMap<String, String> = url::Url::parse(&url)
        .expect("URL")
        .query_pairs()
        .into_owned()
        .collect();
    assert!(
        url.starts_with(&format!("{base}/authorize?")),
        "the URL is on our issuer: {url}"
    );
    assert_eq!(q["code_challenge_method"], "S256", "{url}");
    assert_eq!(
        q["resource"].trim_end_matches('/'),
        mcp,
        "RFC 8707 resource: {url}"
    );
    let client_id = q["client_id"].clone();
    let reg: Value = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert!(reg["registration_endpoint"].is_string(), "{reg}");

    // The user signs in and allows; the redirect goes back to rmcp.
    let mut browser = Browser::new();
    let callback = browser
        .authorize(&base, &url, ("alice", "rmcp horse battery"))
        .await;
    assert!(callback.starts_with(&redirect), "{callback}");
    let cq: BTreeMap<String, String> = url::Url::parse(&callback)
        .expect("callback URL")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(cq.get("iss").map(String::as_str), Some(base.as_str()));
    assert_eq!(cq.get("state"), q.get("state"));
    state
        .handle_callback_url(&callback)
        .await
        .expect("rmcp's code exchange (PKCE, iss check)");
    let manager = state
        .into_authorization_manager()
        .expect("an authorized manager");
    let auth = AuthClient::new(reqwest::Client::new(), manager);

    // tools/call through the gateway with rmcp's own transport.
    let client = connect(&mcp, auth.clone()).await;
    let who = call(&client, "whoami", json!({})).await;
    assert_eq!(who["subject"], "alice", "{who}");
    let created = call(
        &client,
        "create_secure_note",
        json!({ "title": "t", "content": "written with an rmcp OAuth token" }),
    )
    .await;
    assert!(created.to_string().contains("t"), "{created}");
    let first_token = access_token(&auth).await;

    // The access token lives 2 s and the gateway allows 5 s of clock skew, in whole
    // seconds (hence one more): once it has expired, rmcp refreshes (rotation) and calls on.
    tokio::time::sleep(Duration::from_millis(8500)).await;
    let r = reqwest::Client::new()
        .post(&mcp)
        .bearer_auth(&first_token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_request())
        .send()
        .await
        .expect("initialize with an expired token");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the first token expired"
    );
    let listed = call(&client, "list_secure_notes", json!({})).await;
    assert!(
        listed
            .to_string()
            .contains("written with an rmcp OAuth token"),
        "{listed}"
    );
    let second_token = access_token(&auth).await;
    assert_ne!(first_token, second_token, "rmcp refreshed");
    client.cancel().await.expect("close");

    // A restart of the gateway in the middle: same data dir, same port (issuer).
    gw.stop().await;
    let gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let client = connect(&mcp, auth.clone()).await;
    let who = call(&client, "whoami", json!({})).await;
    assert_eq!(who["subject"], "alice", "after a restart: {who}");
    assert_ne!(
        access_token(&auth).await,
        second_token,
        "refreshed after the restart"
    );
    client.cancel().await.expect("close");

    // The registration rmcp made survived too (RFC 7591 client in the store).
    let introspect_client = reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "not-a-refresh-token"),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .expect("token");
    let e: Value = introspect_client.json().await.expect("json");
    assert_eq!(
        e["error"], "invalid_grant",
        "a known client with a bad refresh token: {e}"
    );
    drop(gw);
}
