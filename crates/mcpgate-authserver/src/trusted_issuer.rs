//! `[[authserver.trusted_issuer]]`: identity providers whose signed JWTs this
//! server redeems at `/token` with the JWT bearer grant (RFC 7523 §2.1):
//!
//! - `kind = "id_jag"`: an enterprise IdP's Identity Assertion JWT
//!   Authorization Grant (ID-JAG, MCP SEP-990), naming a user;
//! - `kind = "workload"`: a platform's workload token (a Kubernetes service
//!   account token, a CI OIDC token; MCP SEP-1933), naming no user: its
//!   subject is mapped to a client and scopes.
//!
//! Signatures, `iss`, `aud`, `exp`/`nbf`/`iat` and required claims are
//! checked by the guard's [`JwtVerifier`] (its JWKS cache included); what is
//! particular to each kind is checked in `token/jwt_bearer.rs`.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_guard::{Audience, Credential, JwtConfig, JwtVerifier, Verifier as _, VerifyError};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Error;

/// The `typ` header of an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant).
pub(crate) const ID_JAG_TYP: &str = "oauth-id-jag+jwt";

/// What a trusted issuer's tokens are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssuerKind {
    /// Identity Assertion JWT Authorization Grants naming a user.
    #[default]
    IdJag,
    /// Workload identity tokens, mapped to a client by their subject.
    Workload,
}

/// How an ID-JAG's user claim finds the local user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserMatch {
    /// The claim's value is the local user's name.
    #[default]
    Name,
    /// The claim's value is the local user's email.
    Email,
}

/// One `[[authserver.trusted_issuer.workload]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkloadRule {
    /// A glob (`*` any run of characters) matched against the token's `sub`,
    /// e.g. `system:serviceaccount:agents:*` or `repo:acme/tools:ref:refs/heads/main`.
    pub subject: String,
    /// The client (pre-registered with the jwt-bearer grant) the workload acts as.
    pub client: String,
    /// The scopes it may have (the most it gets; it may ask for fewer).
    pub scopes: Vec<String>,
}

/// One `[[authserver.trusted_issuer]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustedIssuerConfig {
    /// A short name for logs (`[A-Za-z0-9._-]`).
    pub name: String,
    /// `id_jag` (default) or `workload`.
    #[serde(default)]
    pub kind: IssuerKind,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// What `aud` must include; default: this authorization server's issuer.
    #[serde(default)]
    pub audience: Option<Audience>,
    /// Its JWKS URL (https, or http on loopback / with `allow_http`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A file holding its PEM public key.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// Its PEM public key, inline.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// Allow a plain-http `jwks_uri` that is not on loopback.
    #[serde(default)]
    pub allow_http: bool,
    /// Accepted signature algorithms (default ES256, RS256, EdDSA, PS256).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew tolerated, in seconds (default 60, at most 600).
    #[serde(default = "d_leeway")]
    pub leeway: u64,
    /// `id_jag`: the claim naming the user (default `sub`).
    #[serde(default)]
    pub user_claim: Option<String>,
    /// `id_jag`: whether that claim is a user `name` (default) or an `email`.
    #[serde(default)]
    pub user_match: UserMatch,
    /// `id_jag`: create a local user when none matches (else refuse).
    #[serde(default)]
    pub create_users: bool,
    /// `id_jag`: the scopes of users created so.
    #[serde(default)]
    pub user_scopes: Vec<mcpgate_types::Scope>,
    /// `id_jag`: the clients that may redeem its grants (empty: any client
    /// registered for the jwt-bearer grant).
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// `id_jag`: the scopes its grants may carry (empty: any configured scope).
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    /// `workload`: subject patterns → client and scopes (first match wins).
    #[serde(default)]
    pub workload: Vec<WorkloadRule>,
}

fn d_leeway() -> u64 {
    60
}

/// A trusted issuer, ready: its table and its verifier.
#[derive(Debug)]
pub(crate) struct Issuer {
    pub(crate) cfg: TrustedIssuerConfig,
    verifier: JwtVerifier,
    /// `workload`: one matcher per rule, in order.
    subjects: Vec<globset::GlobMatcher>,
}

impl Issuer {
    /// The first workload rule whose pattern matches `subject`.
    pub(crate) fn workload_rule(&self, subject: &str) -> Option<&WorkloadRule> {
        self.subjects
            .iter()
            .zip(&self.cfg.workload)
            .find(|(m, _)| m.is_match(subject))
            .map(|(_, r)| r)
    }

    /// The claim naming the user of an ID-JAG.
    pub(crate) fn user_claim(&self) -> &str {
        self.cfg.user_claim.as_deref().unwrap_or("sub")
    }
}

/// Every trusted issuer.
#[derive(Debug, Default)]
pub(crate) struct Trusted {
    issuers: Vec<Issuer>,
}

/// A token that passed its issuer's checks, with its claims.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub(crate) issuer: &'a Issuer,
    pub(crate) claims: Map<String, Value>,
}

/// Why an assertion is refused (`invalid_grant`; the text is the description).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Its issuer is not trusted, or it is no JWT, or a check failed.
    Invalid(String),
    /// The issuer's keys cannot be had now.
    Unavailable(String),
}

impl Trusted {
    /// Checks each table and builds its verifier; `as_issuer` is this
    /// server's issuer (the default audience). Nothing is fetched yet.
    pub(crate) fn new(configs: &[TrustedIssuerConfig], as_issuer: &str) -> Result<Trusted, Error> {
        let mut issuers = Vec::with_capacity(configs.len());
        for c in configs {
            let fail =
                |m: String| Error::Config(format!("authserver.trusted_issuer ({}): {m}", c.name));
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return Err(Error::Config(format!(
                    "authserver.trusted_issuer: name {:?} is not allowed: use letters, digits, '-', '_' and '.'",
                    c.name
                )));
            }
            if configs
                .iter()
                .filter(|o| o.issuer == c.issuer || o.name == c.name)
                .count()
                > 1
            {
                return Err(fail(
                    "another [[authserver.trusted_issuer]] has the same name or issuer".into(),
                ));
            }
            match c.kind {
                IssuerKind::IdJag if !c.workload.is_empty() => {
                    return Err(fail(
                        "workload rules apply to kind = \"workload\" only".into(),
                    ));
                }
                IssuerKind::Workload if c.workload.is_empty() => {
                    return Err(fail("kind = \"workload\" needs at least one [[authserver.trusted_issuer.workload]] rule (subject, client, scopes)".into()));
                }
                IssuerKind::Workload
                    if c.user_claim.is_some()
                        || c.create_users
                        || !c.allowed_clients.is_empty()
                        || !c.allowed_scopes.is_empty() =>
                {
                    return Err(fail("user_claim, create_users, allowed_clients and allowed_scopes apply to kind = \"id_jag\"; a workload's client and scopes come from its workload rule".into()));
                }
                _ => {}
            }
            let mut subjects = Vec::with_capacity(c.workload.len());
            for r in &c.workload {
                if r.client.trim().is_empty() {
                    return Err(fail(format!(
                        "workload rule {:?}: client must name a client",
                        r.subject
                    )));
                }
                let g = globset::GlobBuilder::new(&r.subject)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| fail(format!("workload subject {:?}: {e}", r.subject)))?;
                subjects.push(g.compile_matcher());
            }
            let required = match c.kind {
                IssuerKind::IdJag => vec![
                    "sub".to_owned(),
                    "client_id".to_owned(),
                    "jti".to_owned(),
                    "iat".to_owned(),
                ],
                IssuerKind::Workload => vec!["sub".to_owned()],
            };
            let issuer = c.issuer.parse().map_err(|e| fail(format!("issuer: {e}")))?;
            let audience = match &c.audience {
                Some(a) => a.clone(),
                None => as_issuer
                    .parse()
                    .map_err(|e| fail(format!("audience: {e}")))?,
            };
            let jwt = JwtConfig {
                name: Some(c.name.clone()),
                jwks_uri: c.jwks_uri.clone(),
                allow_http: c.allow_http,
                public_key_file: c.public_key_file.clone(),
                public_key_pem: c.public_key_pem.clone(),
                algorithms: c.algorithms.clone(),
                leeway: c.leeway,
                required_claims: required,
                ..JwtConfig::new(issuer, audience)
            };
            // The guard's messages say `auth.jwt (name)`; say where this table is.
            let verifier = JwtVerifier::with_env(&jwt, |_| None).map_err(|e| {
                fail(
                    e.to_string()
                        .replace(&format!("auth.jwt ({}): ", c.name), ""),
                )
            })?;
            issuers.push(Issuer {
                cfg: c.clone(),
                verifier,
                subjects,
            });
        }
        Ok(Trusted { issuers })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Finds the assertion's issuer by its (unverified) `iss`, checks the
    /// `typ` its kind needs, then the signature and claims.
    pub(crate) async fn check(&self, assertion: &str) -> Result<Checked<'_>, Refusal> {
        let bad = |m: &str| Refusal::Invalid(m.to_owned());
        let mut parts = assertion.split('.');
        let (Some(head), Some(body), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "the assertion is not a signed JWT (header.payload.signature)",
            ));
        };
        let decode = |p: &str| -> Option<Map<String, Value>> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
        };
        let header = decode(head).ok_or_else(|| bad("the assertion's header is not JSON"))?;
        let claims = decode(body).ok_or_else(|| bad("the assertion's payload is not JSON"))?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the assertion has no iss claim"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.cfg.issuer == iss)
            .ok_or_else(|| {
                Refusal::Invalid(format!(
                    "the assertion's issuer {:?} is not a trusted issuer of this server ([[authserver.trusted_issuer]])",
                    iss.chars().take(200).collect::<String>()
                ))
            })?;
        if issuer.cfg.kind == IssuerKind::IdJag {
            let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
            let bare = typ
                .strip_prefix("application/")
                .or_else(|| typ.strip_prefix("APPLICATION/"))
                .unwrap_or(typ);
            if !bare.eq_ignore_ascii_case(ID_JAG_TYP) {
                return Err(Refusal::Invalid(format!(
                    "the assertion's typ header is {:?}; an ID-JAG's is {ID_JAG_TYP:?}",
                    typ.chars().take(64).collect::<String>()
                )));
            }
        }
        let verified = issuer
            .verifier
            .verify(&Credential::Bearer(assertion.to_owned()))
            .await
            .map_err(|e| match e {
                VerifyError::Unavailable(m) => Refusal::Unavailable(m),
                VerifyError::Invalid(m) => Refusal::Invalid(m),
                _ => bad("the assertion is not a JWT"),
            })?;
        Ok(Checked {
            issuer,
            claims: verified.principal().claims().clone(),
        })
    }
}

#[cfg(test)]
mod tests;
