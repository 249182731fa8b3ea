//! Device authorization (RFC 8628): `/device_authorization` issues a device
//! code and a user code; the user enters the code at `/device`, signs in and
//! approves; the device polls `/token` (`authorization_pending`, `slow_down`,
//! `expired_token`, `access_denied`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_store::oauth::{DeviceRow, DeviceStatus, GrantRow, digest_hex};

use crate::authorize::user_scopes;
use crate::client_auth::ClientForm;
use crate::error::{ErrorCode, OAuthError};
use crate::pages::{self, ScopeLine};
use crate::respond::{no_store, see_other};
use crate::token::issue::{FirstTokens, Grant, Issued};
use crate::{Inner, authorize, random_token, session};

/// The grant type a device polls `/token` with (RFC 8628 §3.4).
pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Letters that cannot be confused with each other or with digits (RFC 8628 §6.1).
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn user_code() -> String {
    mcpgate_store::random::string_from(ALPHABET, 8)
}

/// Upper-case, without dashes and spaces: the stored form.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn display(code: &str) -> String {
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// `POST /device_authorization`.
pub(crate) async fn authorization(
    State(inner): State<Arc<Inner>>,
    ClientForm { client, params }: ClientForm,
) -> Response {
    let result = async {
        if !client.client.allows_grant(DEVICE_GRANT) {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client is not registered for the device_code grant"));
        }
        let (resource, rs) = authorize::resource(&inner, params.get("resource")).await?;
        let scopes = authorize::requested_scopes(&inner, &client.client, params.get("scope"), rs.as_ref())?;
        let device_code = random_token();
        let ttl = inner.settings.device_code_ttl;
        let interval = inner.settings.device_poll_interval.max(1);
        // A collision of user codes is retried with another code.
        for _ in 0..5 {
            let code = user_code();
            let row = DeviceRow::new(
                digest_hex(&device_code),
                code.clone(),
                client.client.id.clone(),
                scopes.clone(),
                resource.clone(),
                SystemTime::now() + ttl,
                i64::try_from(interval).unwrap_or(5),
            );
            match inner.store.insert_device(&row).await {
                Ok(()) => {
                    let shown = display(&code);
                    return Ok(Json(serde_json::json!({
                        "device_code": device_code,
                        "user_code": shown,
                        "verification_uri": inner.url("/device"),
                        "verification_uri_complete": format!("{}?user_code={shown}", inner.url("/device")),
                        "expires_in": ttl.as_secs(),
                        "interval": interval,
                    })));
                }
                Err(mcpgate_store::StoreError::Duplicate { .. }) => continue,
                Err(e) => return Err(OAuthError::store(e)),
            }
        }
        Err(OAuthError::new(ErrorCode::ServerError, "could not allocate a user code; try again"))
    }
    .await;
    no_store(match result {
        Ok(j) => j.into_response(),
        Err(e) => e.into_response(),
    })
}

/// The `device_code` grant at `/token`.
pub(crate) async fn exchange(grant: Grant<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    let code = params.require("device_code")?;
    let digest = digest_hex(code);
    let row = inner
        .store
        .find_device(&digest)
        .await
        .map_err(OAuthError::store)?
        .ok_or_else(|| OAuthError::grant("unknown device code"))?;
    if row.client_id != client.client.id {
        return Err(OAuthError::grant(
            "the device code was issued to another client",
        ));
    }
    let now = SystemTime::now();
    if row.expires_at <= now {
        return Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device code expired; start again",
        ));
    }
    let interval = Duration::from_secs(u64::try_from(row.poll_interval).unwrap_or(5));
    let too_fast = row
        .last_poll_at
        .is_some_and(|t| now.duration_since(t).unwrap_or(Duration::ZERO) < interval);
    let next_interval = if too_fast {
        row.poll_interval + 5
    } else {
        row.poll_interval
    };
    inner
        .store
        .device_polled(&digest, now, next_interval)
        .await
        .map_err(OAuthError::store)?;
    if too_fast && row.status == DeviceStatus::Pending {
        return Err(OAuthError::new(
            ErrorCode::SlowDown,
            format!("poll at most every {next_interval} seconds"),
        ));
    }
    match row.status {
        DeviceStatus::Pending => Err(OAuthError::new(
            ErrorCode::AuthorizationPending,
            "the user has not approved yet",
        )),
        DeviceStatus::Denied => Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "the user denied access",
        )),
        DeviceStatus::Approved => {
            if !inner
                .store
                .use_device(&digest)
                .await
                .map_err(OAuthError::store)?
            {
                return Err(OAuthError::grant("the device code was used already"));
            }
            let gid = row.grant_id.clone().unwrap_or_default();
            let tokens = FirstTokens::issue(inner, &gid, client, jkt).await?;
            if let Some((_, r)) = &tokens.refresh {
                inner
                    .store
                    .insert_refresh(r)
                    .await
                    .map_err(OAuthError::store)?;
            }
            Ok(tokens.issued(None))
        }
        _ => Err(OAuthError::grant("the device code was used already")),
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct EnterCode<'a> {
    css: &'a str,
    action: &'a str,
    csrf: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_consent.html")]
struct Approve<'a> {
    css: &'a str,
    action: &'a str,
    csrf: &'a str,
    user: &'a str,
    user_code: &'a str,
    client_name: &'a str,
    scopes: Vec<ScopeLine>,
}

/// Query of `GET /device`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DeviceQuery {
    user_code: Option<String>,
}

fn to_login(inner: &Inner, user_code: Option<&str>) -> Response {
    let mut next = inner.route("/device");
    if let Some(c) = user_code {
        next = format!(
            "{next}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", c)
                .finish()
        );
    }
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &next)
        .finish();
    see_other(&format!("{}?{q}", inner.route("/login")))
}

/// `GET /device`: the code entry page (after signing in).
pub(crate) async fn page(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<DeviceQuery>,
    headers: HeaderMap,
) -> Response {
    match session::current(&inner, &headers).await {
        Ok(Some(s)) if s.subject.is_some() => pages::render(
            StatusCode::OK,
            &EnterCode {
                css: &inner.route("/assets/style.css"),
                action: &inner.route("/device"),
                csrf: &s.csrf,
                user_code: q.user_code.as_deref().unwrap_or_default(),
                error: None,
            },
        ),
        Ok(_) => to_login(&inner, q.user_code.as_deref()),
        Err(e) => e.into_response(),
    }
}

/// `POST /device`: a code entered (shows what it asks), or a decision.
pub(crate) async fn submit(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    // Each signed-in form handler starts so (axum's extractors, then
    // `session::user_form`); only the page for a refusal is its own.
    let (s, subject, form) = match session::user_form(&inner, &headers, &body).await {
        Ok(f) => (f.session, f.subject, f.form),
        Err(e) => {
            return e.respond(&inner, "Cannot continue", |form| {
                to_login(&inner, form.get("user_code"))
            });
        }
    };
    let css = inner.route("/assets/style.css");
    let action = inner.route("/device");
    let entered = form.get("user_code").unwrap_or_default();
    let retry = |msg: &str| {
        pages::render(
            StatusCode::BAD_REQUEST,
            &EnterCode {
                css: &css,
                action: &action,
                csrf: &s.csrf,
                user_code: entered,
                error: Some(msg),
            },
        )
    };
    let row = match inner
        .store
        .find_device_by_user_code(&normalize(entered))
        .await
    {
        Ok(Some(r)) if r.expires_at > SystemTime::now() && r.status == DeviceStatus::Pending => r,
        Ok(_) => {
            return retry("That code is unknown, expired or used. Check the code on your device.");
        }
        Err(e) => return OAuthError::store(e).into_response(),
    };
    let user = match inner.store.find_user(&subject).await {
        Ok(Some(u)) => u,
        _ => {
            return pages::error_page(
                &css,
                StatusCode::FORBIDDEN,
                "Cannot continue",
                "Your user no longer exists.",
            );
        }
    };
    let client = match crate::clients::find(&inner, &row.client_id).await {
        Ok(Some(c)) => c,
        _ => return retry("The application behind this code is no longer registered."),
    };
    let scopes = user_scopes(&user, &row.scopes);
    if form.get("confirm") != Some("yes") {
        return pages::render(
            StatusCode::OK,
            &Approve {
                css: &css,
                action: &action,
                csrf: &s.csrf,
                user: &subject,
                user_code: &display(&row.user_code),
                client_name: &client.display_name(),
                scopes: inner.scope_lines(&scopes),
            },
        );
    }
    let (status, grant_id, message) = if form.get("decision") == Some("allow") {
        let grant_subject = match crate::grant_subject(&subject) {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        let grant = GrantRow::new(
            random_token(),
            client.id.clone(),
            grant_subject,
            scopes,
            row.resource.clone(),
            SystemTime::now() + inner.settings.refresh_max_ttl,
        );
        if let Err(e) = inner.store.insert_grant(&grant).await {
            return OAuthError::store(e).into_response();
        }
        (
            DeviceStatus::Approved,
            Some(grant.id),
            "Your device is connected. You can close this window.",
        )
    } else {
        (
            DeviceStatus::Denied,
            None,
            "Access was denied. You can close this window.",
        )
    };
    match inner
        .store
        .settle_device(&row.digest, status, &subject, grant_id.as_deref())
        .await
    {
        Ok(true) => pages::render(
            StatusCode::OK,
            &pages::MessagePage {
                css: &css,
                title: "Done",
                message,
            },
        ),
        Ok(false) => retry("That code was already used."),
        Err(e) => OAuthError::store(e).into_response(),
    }
}
