//! The endpoints a client authenticates at refuse a request that does not,
//! before their handler runs (the `ClientForm` extractor).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpgate_store::{MasterKey, Store};
use tower::ServiceExt as _;

use crate::{AuthServer, Settings};

async fn server(dir: &std::path::Path) -> AuthServer {
    let store = Store::open(&dir.join("data")).await.unwrap();
    let master = MasterKey::from_bytes(&[7; 32], "test").unwrap();
    let public = url::Url::parse("http://127.0.0.1:8080").unwrap();
    AuthServer::new(
        Settings::default(),
        &public,
        vec!["http://127.0.0.1:8080/mcp".into()],
        store,
        master,
    )
    .await
    .unwrap()
}

async fn post(a: &AuthServer, path: &str, basic: Option<&str>, body: &str) -> (StatusCode, String) {
    let mut req =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(b) = basic {
        req = req.header(header::AUTHORIZATION, format!("Basic {b}"));
    }
    let resp = a
        .router()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn client_endpoints_refuse_a_client_that_does_not_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let a = server(dir.path()).await;
    for (path, body) in [
        ("/token", "grant_type=client_credentials"),
        ("/revoke", "token=x"),
        ("/device_authorization", "scope=mcp"),
        ("/introspect", "token=x"),
    ] {
        let (status, text) = post(&a, path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {text}");
        assert!(text.contains("invalid_client"), "{path}: {text}");
        // base64("nobody:wrong")
        let (status, text) = post(&a, path, Some("bm9ib2R5Ondyb25n"), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {text}");
        assert!(text.contains("wrong client secret"), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_refused_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let a = server(dir.path()).await;
    let (status, text) = post(&a, "/token", None, "token=a&token=b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("more than once"), "{text}");
}
