//! Building a credential from its table: the checks that make a
//! configuration fail early with the key to change, then the [`Source`].

use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};

use http::HeaderName;

use super::config::{CredentialConfig, TokenAuthMethod};
use super::item::{Item, Source};
use super::oauth::{ClientAuth, ClientCredentials, Login, TokenExchange};
use super::secret::{SecretRef, Template};
use super::token::TokenCell;
use super::user::{UserSecret, UserSecretError, UserSecretSource, UserSources};
use crate::config::{Isolation, UpstreamConfig};

/// Where a credential goes: a header and its template (HTTP), or an environment variable (stdio).
type Delivery = (Option<(HeaderName, Template)>, Option<String>);

/// One credential table → an [`Item`], checked against its upstream's transport.
pub(super) fn item(
    up: &UpstreamConfig,
    c: &CredentialConfig,
    http: &mcpgate_fetch::Fetcher,
    sources: &UserSources,
) -> Result<Item, String> {
    let stdio = up.command.is_some();
    if stdio && c.per_user() && up.isolation == Isolation::Shared {
        return Err(format!(
            "a per-user credential cannot go to a stdio child shared by every user; set isolation = \"session\" on upstream {}",
            up.name
        ));
    }
    if stdio
        && !matches!(
            c,
            CredentialConfig::Static(_) | CredentialConfig::Bearer(_) | CredentialConfig::Vault(_)
        )
    {
        return Err(if c.renewable() {
            "this kind expires and is renewed, which a running child's environment cannot follow; it applies to url (HTTP) upstreams only".to_owned()
        } else {
            "applies to url (HTTP) upstreams only; give a stdio child its secrets with kind = \"static\" and env".to_owned()
        });
    }
    let name = up.name.clone();
    let delivery = |header: &Option<String>,
                    template: &Option<String>,
                    env: &Option<String>,
                    default_header: Option<&str>,
                    default_template: &str|
     -> Result<Delivery, String> {
        if stdio {
            if header.is_some() || template.is_some() {
                return Err(
                    "header and template apply to url (HTTP) upstreams; a stdio child gets env"
                        .into(),
                );
            }
            let var = env
                .clone()
                .ok_or("set env: the environment variable the child reads the secret from")?;
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(format!("env: {var:?} is not an environment variable name"));
            }
            Ok((None, Some(var)))
        } else {
            if env.is_some() {
                return Err(
                    "env applies to stdio (command) upstreams; an HTTP upstream gets header".into(),
                );
            }
            let h = header.as_deref().or(default_header).ok_or(
                "set header: the header the upstream reads the secret from, e.g. \"X-Api-Key\"",
            )?;
            let h = HeaderName::try_from(h)
                .map_err(|_| format!("header: {h:?} is not a valid header name"))?;
            let t = Template::parse(template.as_deref().unwrap_or(default_template))?;
            Ok((Some((h, t)), None))
        }
    };
    // Every kind but static and basic defaults to `Authorization: Bearer {secret}`.
    let bearer = |header: &Option<String>, template: &Option<String>, env: &Option<String>| {
        delivery(
            header,
            template,
            env,
            Some("authorization"),
            "Bearer {secret}",
        )
    };
    let url_ok = |u: &url::Url, key: &str| -> Result<(), String> {
        if matches!(u.scheme(), "http" | "https") {
            Ok(())
        } else {
            Err(format!(
                "{key}: scheme {:?} is not allowed: use https (or http)",
                u.scheme()
            ))
        }
    };
    let client_auth = |id: (
        &Option<String>,
        &Option<String>,
        &Option<std::path::PathBuf>,
    ),
                       secret: (
        &Option<SecretString>,
        &Option<String>,
        &Option<std::path::PathBuf>,
    ),
                       method: TokenAuthMethod|
     -> Result<Option<ClientAuth>, String> {
        let id = SecretRef::one_of("client_id", id.0.as_deref(), id.1.as_ref(), id.2.as_ref())?;
        let secret = SecretRef::one_of(
            "client_secret",
            secret.0.as_ref().map(ExposeSecret::expose_secret),
            secret.1.as_ref(),
            secret.2.as_ref(),
        )?;
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some(ClientAuth { id, secret, method })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                Err("set client_secret_env, client_secret_file or client_secret".into())
            }
            (None, Some(_)) => Err("set client_id (or client_id_env / client_id_file)".into()),
        }
    };
    // The two token-endpoint tables carry the same client keys under the same
    // names (config.rs says why they are two structs): read them one way.
    macro_rules! client_auth {
        ($t:expr) => {
            client_auth(
                (&$t.client_id, &$t.client_id_env, &$t.client_id_file),
                (
                    &$t.client_secret,
                    &$t.client_secret_env,
                    &$t.client_secret_file,
                ),
                $t.auth_method,
            )
        };
    }
    let (label, header, env, source) = match c {
        CredentialConfig::Static(f) | CredentialConfig::Bearer(f) => {
            let r = SecretRef::required(
                "value",
                f.value.as_ref().map(ExposeSecret::expose_secret),
                f.value_env.as_ref(),
                f.value_file.as_ref(),
                true,
            )?;
            let (h, e) = if matches!(c, CredentialConfig::Bearer(_)) {
                bearer(&f.header, &f.template, &f.env)?
            } else {
                delivery(&f.header, &f.template, &f.env, None, "{secret}")?
            };
            (r.label(), h, e, Source::Fixed(r))
        }
        CredentialConfig::Basic {
            username,
            username_env,
            username_file,
            password,
            password_env,
            password_file,
            header,
        } => {
            let u = SecretRef::required(
                "username",
                username.as_deref(),
                username_env.as_ref(),
                username_file.as_ref(),
                true,
            )?;
            let p = SecretRef::required(
                "password",
                password.as_ref().map(ExposeSecret::expose_secret),
                password_env.as_ref(),
                password_file.as_ref(),
                true,
            )?;
            let (h, e) = delivery(
                header,
                &None,
                &None,
                Some("authorization"),
                "Basic {secret}",
            )?;
            let label = format!("{} / {}", u.label(), p.label());
            (label, h, e, Source::Basic(u, p))
        }
        CredentialConfig::ClientCredentials(o) => {
            url_ok(&o.token_url, "token_url")?;
            let client = client_auth!(o)?
                .ok_or("set client_id and client_secret (or their _env / _file forms)")?;
            let (h, e) = bearer(&o.header, &o.template, &None)?;
            let how = ClientCredentials {
                upstream: name.clone(),
                http: http.clone(),
                token_url: o.token_url.clone(),
                client,
                scope: o.scope.clone(),
                audience: o.audience.clone(),
                resource: o.resource.clone(),
                timeout: o.timeout,
            };
            let label = format!("client credentials at {}", o.token_url);
            (
                label,
                h,
                e,
                Source::ClientCredentials(how, TokenCell::default()),
            )
        }
        CredentialConfig::Login(l) => {
            url_ok(&l.login_url, "login_url")?;
            if let Some(r) = &l.refresh_url {
                url_ok(r, "refresh_url")?;
            }
            let username = SecretRef::env_or_file("username", &l.username_env, &l.username_file)?;
            let password = SecretRef::env_or_file("password", &l.password_env, &l.password_file)?;
            for (k, v) in [
                ("username_field", &l.username_field),
                ("password_field", &l.password_field),
                ("access_token_field", &l.access_token_field),
                ("refresh_token_field", &l.refresh_token_field),
                ("expires_in_field", &l.expires_in_field),
                ("refresh_token_param", &l.refresh_token_param),
            ] {
                if v.is_empty() || v.split('.').any(str::is_empty) {
                    return Err(format!(
                        "{k}: {v:?} is not a field name (use dots for nesting, e.g. \"data.access_token\")"
                    ));
                }
            }
            let (h, e) = bearer(&l.header, &l.template, &None)?;
            let label = format!("login at {} as {}", l.login_url, username.label());
            let how = Login {
                upstream: name.clone(),
                http: http.clone(),
                login_url: l.login_url.clone(),
                username,
                password,
                format: l.format,
                username_field: l.username_field.clone(),
                password_field: l.password_field.clone(),
                access_token_field: l.access_token_field.clone(),
                refresh_token_field: l.refresh_token_field.clone(),
                expires_in_field: l.expires_in_field.clone(),
                refresh_url: l.refresh_url.clone(),
                refresh_token_param: l.refresh_token_param.clone(),
                timeout: l.timeout,
            };
            (label, h, e, Source::Login(how, TokenCell::default()))
        }
        CredentialConfig::TokenExchange(t) => {
            url_ok(&t.token_url, "token_url")?;
            let client = client_auth!(t)?;
            let (h, e) = bearer(&t.header, &t.template, &None)?;
            let how = TokenExchange {
                upstream: name.clone(),
                http: http.clone(),
                token_url: t.token_url.clone(),
                client,
                audience: t.audience.clone(),
                resource: t.resource.clone(),
                scope: t.scope.clone(),
                requested_token_type: t.requested_token_type.clone(),
                timeout: t.timeout,
            };
            let label = format!("token exchange at {}", t.token_url);
            (label, h, e, Source::TokenExchange(how, Mutex::default()))
        }
        CredentialConfig::Vault(v) => {
            if let Some(f) = &v.format {
                vault_format(f)?;
            }
            let (h, e) = bearer(&v.header, &v.template, &v.env)?;
            let label = v
                .label
                .clone()
                .unwrap_or_else(|| format!("your secret for {name}"));
            let src = sources.vault.clone().unwrap_or_else(|| {
                Arc::new(NotWired(format!(
                    "upstream {name} takes each user's secret from the vault, which needs the authorization server: enable [authserver]"
                )))
            });
            (label, h, e, Source::User(src))
        }
        CredentialConfig::Federated(f) => {
            let (h, e) = bearer(&f.header, &f.template, &None)?;
            let src = sources
                .federated
                .get(&f.provider)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(NotWired(format!(
                        "upstream {name} forwards each user's token from identity provider {:?}, which is not configured: add it as [[authserver.federation]] with [authserver] enabled",
                        f.provider
                    )))
                });
            let label = format!("your {} token", f.provider);
            (label, h, e, Source::User(src))
        }
    };
    Ok(Item {
        kind: c.kind(),
        label,
        header,
        env,
        source,
        last_error: Mutex::new(None),
        loaded: std::sync::OnceLock::new(),
    })
}

/// A vault `format` as a regular expression anchored at both ends.
pub(crate) fn vault_format(format: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{format})$"))
        .map_err(|e| format!("format: not a valid regular expression: {e}"))
}

/// A per-user source that is not wired (no authorization server, or no
/// federated provider of that name): every lookup fails saying what to enable.
#[derive(Debug)]
struct NotWired(String);

impl UserSecretSource for NotWired {
    fn secret_for<'a>(
        &'a self,
        _subject: &'a str,
        _upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, UserSecretError>> {
        Box::pin(std::future::ready(Err(UserSecretError::NotConfigured(
            self.0.clone(),
        ))))
    }
}
