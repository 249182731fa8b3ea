use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::HeaderMap;
use http::request::Parts;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::credential::Credential;
use crate::static_tokens::{StaticTokenEntry, StaticTokens, StaticTokensConfig};
use crate::verifier::{Verified, Verifier, VerifyError};

const READER: &str = "reader-token-0123456789abcdef0123456789";
const WRITER: &str = "writer-token-0123456789abcdef0123456789";
const RESOURCE: &str = "https://mcp.example.com/public/mcp";
const ISSUER: &str = "https://idp.example.com";
const METADATA: &str = "/.well-known/oauth-protected-resource/public/mcp";
const ROOT_METADATA: &str = "/.well-known/oauth-protected-resource";

fn entry(token: &str, subject: &str, scopes: &str) -> StaticTokenEntry {
    StaticTokenEntry {
        token: Some(token.into()),
        token_env: None,
        token_file: None,
        subject: subject.to_owned(),
        scopes: crate::policy::Scopes::Text(scopes.to_owned()),
    }
}

fn chain() -> Chain {
    let cfg = StaticTokensConfig {
        tokens: vec![
            entry(READER, "alice", "notes:read"),
            entry(WRITER, "bob", "notes:read notes:write"),
        ],
        ..StaticTokensConfig::default()
    };
    let tokens = StaticTokens::with_env(&cfg, |_| None).expect("static tokens");
    Chain::new(vec![Arc::new(tokens)])
}

fn settings() -> GuardSettings {
    GuardSettings::new(RESOURCE.parse().expect("url"))
        .authorization_servers([ISSUER.parse().unwrap()])
        .default_scopes(["notes:read".to_owned()])
}

/// Answers with the caller's subject and scopes, as the guard handed them on.
async fn whoami(parts: Parts) -> String {
    match principal(&parts) {
        Some(p) => format!(
            "{} {}",
            p.subject(),
            p.scopes().iter().cloned().collect::<Vec<_>>().join(",")
        ),
        None => "nobody".to_owned(),
    }
}

fn app(settings: GuardSettings) -> Router {
    app_with(chain(), settings)
}

fn app_with(chain: Chain, settings: GuardSettings) -> Router {
    Router::new()
        .route(
            "/public/mcp",
            get(whoami).post(whoami).options(|| async { "preflight" }),
        )
        .layer(require_auth(chain, settings))
}

fn request(method: Method, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    (parts.status, parts.headers, text)
}

fn www(headers: &HeaderMap) -> &str {
    headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_request_without_credential_gets_the_sign_in_challenge() {
    let (status, headers, body) =
        send(app(settings()), request(Method::POST, "/public/mcp", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&headers),
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp\", scope=\"notes:read\""
    );
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["error"], "unauthorized");
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_principal() {
    let (status, _, body) = send(
        app(settings()),
        request(Method::POST, "/public/mcp", Some(READER)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "alice notes:read");
}

#[tokio::test]
async fn an_unknown_token_is_an_invalid_token() {
    let (status, headers, body) = send(
        app(settings()),
        request(
            Method::POST,
            "/public/mcp",
            Some("unknown-token-0123456789abcdef0123456789"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        www(&headers).starts_with("Bearer error=\"invalid_token\""),
        "{headers:?}"
    );
    assert!(www(&headers).contains("resource_metadata=\""));
    assert!(body.contains("invalid_token"));
}

#[tokio::test]
async fn a_token_in_the_query_is_refused_with_400() {
    let uri = format!("/public/mcp?access_token={READER}");
    let (status, headers, body) = send(app(settings()), request(Method::POST, &uri, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(www(&headers).starts_with("Bearer error=\"invalid_request\""));
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert!(!body.contains(READER), "the token is never echoed");
}

#[tokio::test]
async fn options_passes_without_a_credential() {
    let (status, _, body) = send(
        app(settings()),
        request(Method::OPTIONS, "/public/mcp", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "preflight");
}

#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths() {
    for path in [METADATA, ROOT_METADATA] {
        let (status, headers, body) = send(app(settings()), request(Method::GET, path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(doc["resource"], RESOURCE);
        assert_eq!(doc["authorization_servers"][0], ISSUER);
        assert_eq!(doc["scopes_supported"][0], "notes:read");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
    }
    let (status, headers, _) = send(app(settings()), request(Method::POST, METADATA, None)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn without_an_authorization_server_there_is_no_metadata() {
    let plain = GuardSettings::new(RESOURCE.parse().expect("url"));
    let (status, _, _) = send(app(plain.clone()), request(Method::GET, METADATA, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, headers, _) = send(app(plain), request(Method::POST, "/public/mcp", None)).await;
    assert_eq!(www(&headers), "Bearer realm=\"mcpgate\"");
}

#[tokio::test]
async fn a_token_without_the_required_scopes_gets_403_insufficient_scope() {
    let s = settings().required_scopes(["notes:write".to_owned()]);
    let (status, headers, _) = send(
        app(s.clone()),
        request(Method::POST, "/public/mcp", Some(READER)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        www(&headers).starts_with("Bearer error=\"insufficient_scope\", scope=\"notes:write\""),
        "{headers:?}"
    );
    let (status, _, body) = send(app(s), request(Method::POST, "/public/mcp", Some(WRITER))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "bob notes:read,notes:write");
}

#[tokio::test]
async fn anonymous_callers_pass_only_when_allowed_and_nothing_is_required() {
    let open = settings().allow_anonymous(true);
    let (status, _, body) = send(
        app(open.clone()),
        request(Method::POST, "/public/mcp", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "anonymous ");
    // A credential that is present must still be valid.
    let (status, _, _) = send(
        app(open.clone()),
        request(
            Method::POST,
            "/public/mcp",
            Some("unknown-token-0123456789abcdef0123456789"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Anonymous callers lacking a required scope are asked to sign in for it.
    let s = open.required_scopes(["notes:write".to_owned()]);
    let (status, headers, _) = send(app(s), request(Method::POST, "/public/mcp", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        www(&headers).contains("scope=\"notes:read notes:write\""),
        "{headers:?}"
    );
}

/// A verifier whose identity provider is down.
#[derive(Debug)]
struct Down;

impl Verifier for Down {
    fn name(&self) -> &str {
        "down"
    }

    fn accepts(&self, _: &Credential) -> bool {
        true
    }

    fn verify<'a>(&'a self, _: &'a Credential) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(std::future::ready(Err(VerifyError::Unavailable(
            "identity provider unreachable".into(),
        ))))
    }
}

#[tokio::test]
async fn an_unavailable_verifier_answers_503_never_allow() {
    let app = app_with(Chain::new(vec![Arc::new(Down)]), settings());
    let (status, headers, _) = send(app, request(Method::POST, "/public/mcp", Some(READER))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "5");
}

#[tokio::test]
async fn two_credentials_are_a_bad_request() {
    let mut req = request(Method::POST, "/public/mcp", Some(READER));
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_static(WRITER));
    let (status, _, _) = send(app(settings()), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Answers with the subject of the `Authenticated` proof; without the layer the
/// extractor refuses.
async fn proven(caller: Authenticated) -> String {
    caller.principal().subject().to_string()
}

#[tokio::test]
async fn the_extractor_needs_the_layer_and_a_missing_one_is_a_server_error() {
    let bare = Router::new().route("/public/mcp", get(proven));
    let (status, _, body) = send(bare, request(Method::GET, "/public/mcp", Some(READER))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("server_error"), "{body}");

    let guarded = Router::new()
        .route("/public/mcp", get(proven))
        .layer(require_auth(chain(), settings()));
    let (status, _, body) = send(guarded, request(Method::GET, "/public/mcp", Some(WRITER))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "bob"));
}

/// Two resources behind one layer: the path names the resource, and only
/// `bob` is admitted to `/b`.
#[derive(Debug)]
struct TwoResources;

impl Admission for TwoResources {
    fn challenge(&self, request: &Parts) -> Challenge {
        Challenge {
            resource_metadata: Some(format!(
                "https://h/.well-known/oauth-protected-resource{}",
                request.uri.path()
            )),
            default_scopes: Vec::new(),
            dpop: crate::DpopMode::Off,
        }
    }

    fn admit(
        &self,
        request: &mut Parts,
        principal: &Principal,
        _: Option<&Credential>,
    ) -> Result<(), AuthRejection> {
        if request.uri.path() == "/b" && principal.subject() != "bob" {
            return Err(AuthRejection::Forbidden("only bob".into()));
        }
        Ok(())
    }
}

fn two_resources(access: Access) -> Router {
    Router::new()
        .route("/a", get(proven))
        .route("/b", get(proven))
        .layer(RequireAuthLayer::with_admission(
            chain(),
            access,
            ExtractOptions::default(),
            Arc::new(TwoResources),
        ))
}

#[tokio::test]
async fn an_admission_chooses_the_challenge_and_the_rules_per_request() {
    let (status, headers, _) = send(
        two_resources(Access::Required),
        request(Method::GET, "/b", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&headers),
        "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/b\""
    );
    let (status, _, _) = send(
        two_resources(Access::Required),
        request(Method::GET, "/b", Some(READER)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send(
        two_resources(Access::Required),
        request(Method::GET, "/b", Some(WRITER)),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "bob"));
    let (status, _, body) = send(
        two_resources(Access::Optional),
        request(Method::GET, "/a", None),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
}

#[tokio::test]
async fn disabled_access_lets_everyone_through_as_the_disabled_mode_superuser() {
    let app = Router::new()
        .route(
            "/b",
            get(|caller: Authenticated| async move {
                let p = caller.principal();
                format!("{} {}", p.subject(), p.has_scope("anything"))
            }),
        )
        .layer(RequireAuthLayer::with_admission(
            chain(),
            Access::Disabled,
            ExtractOptions::default(),
            Arc::new(TwoResources),
        ));
    let (status, _, body) = send(app, request(Method::GET, "/b", None)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous true"));
}
