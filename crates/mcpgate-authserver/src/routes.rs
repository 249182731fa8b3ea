//! The router: machine endpoints (CORS open, no cookies) and pages (strict
//! security headers), under the issuer path.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{
    Inner, account, authorize, device, federation, introspect, metadata, pages, register, revoke,
    token, vault,
};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let r = |p: &str| inner.route(p);
    // Browser-based MCP clients call these from other origins; they carry no cookies.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static(mcpgate_dpop::HEADER),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(mcpgate_dpop::NONCE_HEADER),
        ])
        .max_age(Duration::from_secs(600));
    let mut api = Router::new()
        .route(&r("/token"), post(token::post))
        .route(&r("/register"), post(register::post))
        .route(
            &r("/register/{client_id}"),
            get(register::read)
                .put(register::update)
                .delete(register::delete),
        )
        .route(&r("/introspect"), post(introspect::post))
        .route(&r("/revoke"), post(revoke::post))
        .route(
            &r("/userinfo"),
            get(introspect::userinfo).post(introspect::userinfo),
        )
        .route(&r("/jwks.json"), get(metadata::jwks))
        .route(&r("/device_authorization"), post(device::authorization));
    for p in metadata::paths(&inner) {
        api = api.route(&p, get(metadata::get));
    }
    let api = api.layer(cors);
    let pages = Router::new()
        .route(&r("/authorize"), get(authorize::get))
        .route(&r("/consent"), post(authorize::consent))
        .route(&r("/login"), get(pages::login::get).post(pages::login::post))
        .route(&r("/logout"), post(pages::login::logout))
        .route(&r("/account"), get(account::get))
        .route(&r("/account/revoke"), post(account::revoke))
        .route(&r("/account/credentials"), post(vault::post))
        .route(&r("/federation/{name}/start"), get(federation::start))
        .route(&r("/federation/{name}/callback"), get(federation::callback))
        .route(&r("/device"), get(device::page).post(device::submit))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
    let assets = Router::new().route(
        &r("/assets/style.css"),
        get(|| async {
            (
                [
                    (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                pages::STYLE_CSS,
            )
                .into_response()
        }),
    );
    Router::new()
        .merge(api)
        .merge(pages)
        .merge(assets)
        // Outermost: an oversized body is refused before a handler reads it.
        .layer(axum::middleware::from_fn(crate::body_limit::limit_body))
        .with_state(inner)
}

#[cfg(test)]
mod tests;
