//! Token endpoints: the OAuth 2 client credentials grant, RFC 8693 token
//! exchange, and a REST API's username/password login with refresh.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::config::{BodyFormat, TokenAuthMethod};
use super::secret::{Secret, SecretRef};
use super::token::{Issued, Renew, parse_issued};
use crate::identity::OnBehalfOf;

/// Largest token answer read.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The gateway's client at a token endpoint.
#[derive(Debug, Clone)]
pub(crate) struct ClientAuth {
    pub(crate) id: SecretRef,
    pub(crate) secret: SecretRef,
    pub(crate) method: TokenAuthMethod,
}

/// A POST to a token endpoint and its JSON answer, with messages that name
/// the endpoint and the upstream but never a secret.
pub(crate) async fn post(
    http: &mcpgate_fetch::Fetcher,
    upstream: &str,
    what: &str,
    url: &url::Url,
    body: Body,
    client: Option<&ClientAuth>,
    timeout: Duration,
) -> Result<Value, String> {
    let mut form = match &body {
        Body::Form(pairs) => pairs.clone(),
        Body::Json(_) => Vec::new(),
    };
    let mut basic = None;
    if let Some(auth) = client {
        let id = auth.id.load(upstream)?;
        let secret = auth.secret.load(upstream)?;
        match auth.method {
            TokenAuthMethod::Basic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(id.expose()),
                    form_encode(secret.expose())
                );
                let mut v = http::HeaderValue::try_from(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
                .map_err(|_| format!("{what} for upstream {upstream}: the client credentials cannot go in a header"))?;
                v.set_sensitive(true);
                basic = Some(v);
            }
            TokenAuthMethod::Post => {
                form.push(("client_id".into(), id));
                form.push(("client_secret".into(), secret));
            }
        }
    }
    let mut req = match body {
        Body::Json(doc) => mcpgate_fetch::Request::post_json(url.as_str(), &doc),
        Body::Form(_) => mcpgate_fetch::Request::post_form(
            url.as_str(),
            form.iter().map(|(k, v)| (k.as_str(), v.expose())),
        ),
    }
    .accept_json()
    .timeout(timeout);
    if let Some(v) = basic {
        req = req.header(http::header::AUTHORIZATION, v);
    }
    // The token endpoint is the operator's: its status may be shown (to the
    // operator's own logs and the upstream's error), never a secret.
    let resp = http
        .send(req)
        .await
        .map_err(|e| format!("{what} for upstream {upstream} failed: {url}: {e}"))?;
    let status = resp.status;
    let bytes = resp.body;
    if !status.is_success() {
        return Err(format!(
            "{what} for upstream {upstream} failed: {url} answered HTTP {status}{}",
            error_summary(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|_| {
        format!("{what} for upstream {upstream} failed: {url} answered HTTP {status} without a JSON object")
    })
}

/// A request body: JSON, or form pairs whose values may be secrets.
pub(crate) enum Body {
    Json(Value),
    Form(Vec<(String, Secret)>),
}

/// `: invalid_client (the description)` from an OAuth error answer; nothing
/// else of the body, which might echo what was sent.
fn error_summary(body: &[u8]) -> String {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect::<String>())
    };
    match (text("error"), text("error_description")) {
        (Some(e), Some(d)) => format!(": {e} ({d})"),
        (Some(e), None) => format!(": {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

/// RFC 6749 appendix B encoding of client credentials for Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn pair(k: &str, v: &str) -> (String, Secret) {
    (k.to_owned(), Secret::new(v))
}

/// Adds the optional parameters that are set.
fn push_given<const N: usize>(
    form: &mut Vec<(String, Secret)>,
    params: [(&str, &Option<String>); N],
) {
    for (k, v) in params {
        if let Some(v) = v {
            form.push(pair(k, v));
        }
    }
}

/// `kind = "client_credentials"`.
#[derive(Debug)]
pub(crate) struct ClientCredentials {
    pub(crate) upstream: String,
    pub(crate) http: mcpgate_fetch::Fetcher,
    pub(crate) token_url: url::Url,
    pub(crate) client: ClientAuth,
    pub(crate) scope: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) timeout: Duration,
}

impl Renew for ClientCredentials {
    fn label(&self) -> (&str, &'static str) {
        (&self.upstream, "client_credentials")
    }

    async fn obtain(&self) -> Result<Issued, String> {
        let mut form = vec![pair("grant_type", "client_credentials")];
        push_given(
            &mut form,
            [
                ("scope", &self.scope),
                ("audience", &self.audience),
                ("resource", &self.resource),
            ],
        );
        let what = "the client credentials grant";
        let doc = post(
            &self.http,
            &self.upstream,
            what,
            &self.token_url,
            Body::Form(form),
            Some(&self.client),
            self.timeout,
        )
        .await?;
        tracing::info!(upstream = %self.upstream, "obtained an upstream access token (client credentials)");
        parse_issued(&doc, "access_token", None, "expires_in")
            .map_err(|e| format!("{what} for upstream {}: {e}", self.upstream))
    }
}

/// `kind = "login"`.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) upstream: String,
    pub(crate) http: mcpgate_fetch::Fetcher,
    pub(crate) login_url: url::Url,
    pub(crate) username: SecretRef,
    pub(crate) password: SecretRef,
    pub(crate) format: BodyFormat,
    pub(crate) username_field: String,
    pub(crate) password_field: String,
    pub(crate) access_token_field: String,
    pub(crate) refresh_token_field: String,
    pub(crate) expires_in_field: String,
    pub(crate) refresh_url: Option<url::Url>,
    pub(crate) refresh_token_param: String,
    pub(crate) timeout: Duration,
}

impl Login {
    fn body(&self, pairs: Vec<(String, Secret)>) -> Body {
        match self.format {
            BodyFormat::Form => Body::Form(pairs),
            BodyFormat::Json => Body::Json(Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v.expose().to_owned())))
                    .collect(),
            )),
        }
    }

    fn issued(&self, doc: &Value, what: &str) -> Result<Issued, String> {
        parse_issued(
            doc,
            &self.access_token_field,
            Some(&self.refresh_token_field),
            &self.expires_in_field,
        )
        .map_err(|e| format!("{what} for upstream {}: {e}", self.upstream))
    }
}

impl Renew for Login {
    fn label(&self) -> (&str, &'static str) {
        (&self.upstream, "login")
    }

    async fn obtain(&self) -> Result<Issued, String> {
        let user = self.username.load(&self.upstream)?;
        let password = self.password.load(&self.upstream)?;
        let body = self.body(vec![
            (self.username_field.clone(), user),
            (self.password_field.clone(), password),
        ]);
        let what = "the login";
        let doc = post(
            &self.http,
            &self.upstream,
            what,
            &self.login_url,
            body,
            None,
            self.timeout,
        )
        .await?;
        tracing::info!(upstream = %self.upstream, "logged in to the upstream's API");
        self.issued(&doc, what)
    }

    async fn refresh(&self, previous: &Issued) -> Option<Result<Issued, String>> {
        let url = self.refresh_url.as_ref()?;
        let token = previous.refresh.clone()?;
        let body = self.body(vec![(self.refresh_token_param.clone(), token)]);
        let what = "the token refresh";
        let result = post(
            &self.http,
            &self.upstream,
            what,
            url,
            body,
            None,
            self.timeout,
        )
        .await
        .and_then(|doc| self.issued(&doc, what));
        if result.is_ok() {
            tracing::info!(upstream = %self.upstream, "refreshed the upstream access token");
        }
        Some(result)
    }
}

/// One RFC 8693 exchange for one caller.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    pub(crate) cfg: &'a TokenExchange,
    pub(crate) caller: &'a OnBehalfOf,
}

/// `kind = "token_exchange"`.
#[derive(Debug)]
pub(crate) struct TokenExchange {
    pub(crate) upstream: String,
    pub(crate) http: mcpgate_fetch::Fetcher,
    pub(crate) token_url: url::Url,
    pub(crate) client: Option<ClientAuth>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) requested_token_type: String,
    pub(crate) timeout: Duration,
}

/// The grant type of RFC 8693.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The type of the gateway's identity token as a subject token.
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

impl Exchange<'_> {
    fn subject_token(&self, audience: &str, upstream: &str) -> Result<Secret, String> {
        let id = self.caller.identity.as_ref().ok_or_else(|| {
            format!("the token exchange for upstream {upstream} needs a signed-in caller and the gateway's identity token (auth.identity_token)")
        })?;
        id.sign_for(audience)
            .map(Secret::new)
            .map_err(|e| e.to_string())
    }
}

impl Renew for Exchange<'_> {
    fn label(&self) -> (&str, &'static str) {
        (&self.cfg.upstream, "token_exchange")
    }

    async fn obtain(&self) -> Result<Issued, String> {
        let c = self.cfg;
        // Signed for the STS (its token URL is the audience), so the subject
        // token cannot be replayed to an upstream; fresh for every exchange.
        let subject_token = self.subject_token(c.token_url.as_str(), &c.upstream)?;
        let mut form = vec![
            pair("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token".to_owned(), subject_token),
            pair("subject_token_type", JWT_TOKEN_TYPE),
            pair("requested_token_type", &c.requested_token_type),
        ];
        push_given(
            &mut form,
            [
                ("audience", &c.audience),
                ("resource", &c.resource),
                ("scope", &c.scope),
            ],
        );
        let what = "the token exchange";
        let doc = post(
            &c.http,
            &c.upstream,
            what,
            &c.token_url,
            Body::Form(form),
            c.client.as_ref(),
            c.timeout,
        )
        .await?;
        // The exchanged token's `exp` may outlive the subject token; a refresh
        // token from the STS is not kept (each renewal exchanges a fresh identity).
        let mut issued = parse_issued(&doc, "access_token", None, "expires_in")
            .map_err(|e| format!("{what} for upstream {}: {e}", c.upstream))?;
        issued.refresh = None;
        Ok(issued)
    }
}
