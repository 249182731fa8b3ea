//! `[[auth.jwt]]`: one trusted token issuer, as configured, and its checks
//! (every problem message names the key at fault).

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use mcpgate_types::JwtIssuer;
use serde::Deserialize;

use super::claims::ClaimRules;
use super::keys::{self, Key, algorithm, algorithm_name, family_name, known_names};

/// One trusted JWT issuer (one `[[auth.jwt]]` table).
///
/// Exactly one of `jwks_uri`, `public_key_file`, `public_key_pem` and
/// `hmac_secret_env` says where the verification keys come from.
// Keys written out field by field, as in `IntrospectionConfig` (why: there).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// A short name for logs (`jwt:<name>`); the issuer when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The exact `iss` of accepted tokens (byte for byte: `https://x/` and
    /// `https://x` differ). Tokens of other issuers are left to other verifiers.
    pub issuer: JwtIssuer,
    /// The audience(s) a token's `aud` must include one of: usually this
    /// server's MCP URL, or the API identifier registered at the issuer.
    /// Compared as resources: `X`, `X/` and an upper-case host are the same.
    pub audience: Audience,
    /// The issuer's JWKS URL: `https`, or `http` on loopback (or with `allow_http`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Allow a plain-http `jwks_uri` that is not on loopback (an in-cluster
    /// identity provider). Keys fetched in the clear can be forged on the way.
    #[serde(default)]
    pub allow_http: bool,
    /// A file holding the issuer's PEM public key (EC P-256, RSA or Ed25519).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// The issuer's PEM public key, inline.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// The name of the environment variable holding the shared HMAC secret
    /// (at least 32 bytes; e.g. `openssl rand -base64 48`).
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// Accepted signature algorithms. Default: `ES256`, `RS256`, `EdDSA`,
    /// `PS256` with public keys; `HS256` with an HMAC secret. `none` is never
    /// accepted, nor an HMAC algorithm with public keys (or the reverse).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (default 60, at most 600).
    #[serde(default = "default_leeway")]
    pub leeway: u64,
    /// Claims every token must carry (`exp` always must). A dotted name
    /// (`realm_access.roles`) reaches into nested objects.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// The claim holding the granted scopes (a space-separated string or an
    /// array). Default: `scope` and `scp` together.
    #[serde(default)]
    pub scope_claim: Option<String>,
    /// The claim naming the caller (default `sub`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// The claim naming the OAuth client. Default: `client_id`, else `azp`.
    #[serde(default)]
    pub client_id_claim: Option<String>,
    /// The claim holding the caller's groups or roles (string or array,
    /// dotted names allowed); copied to the principal's `groups` claim for
    /// group rules.
    #[serde(default)]
    pub groups_claim: Option<String>,
}

fn default_leeway() -> u64 {
    60
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

impl JwtConfig {
    /// A table for `issuer`'s tokens meant for `audience`, with the documented
    /// defaults and no keys yet (set one of the key sources).
    pub fn new(issuer: JwtIssuer, audience: Audience) -> Self {
        JwtConfig {
            name: None,
            issuer,
            audience,
            jwks_uri: None,
            allow_http: false,
            public_key_file: None,
            public_key_pem: None,
            hmac_secret_env: None,
            algorithms: None,
            leeway: default_leeway(),
            required_claims: Vec::new(),
            scope_claim: None,
            subject_claim: default_subject_claim(),
            client_id_claim: None,
            groups_claim: None,
        }
    }
}

/// `audience`: one string or a list of strings, each a valid `aud` value
/// (checked when the configuration is read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<mcpgate_types::Audience>);

impl Audience {
    /// The accepted audiences, in configuration order.
    pub fn values(&self) -> &[mcpgate_types::Audience] {
        &self.0
    }

    /// Accepts `more` audiences as well.
    pub fn extend(&mut self, more: impl IntoIterator<Item = mcpgate_types::Audience>) {
        self.0.extend(more);
    }
}

impl From<mcpgate_types::Audience> for Audience {
    fn from(a: mcpgate_types::Audience) -> Self {
        Audience(vec![a])
    }
}

impl From<Vec<mcpgate_types::Audience>> for Audience {
    fn from(v: Vec<mcpgate_types::Audience>) -> Self {
        Audience(v)
    }
}

impl std::str::FromStr for Audience {
    type Err = mcpgate_types::AudienceError;

    /// One audience.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Audience(vec![s.parse()?]))
    }
}

/// The configuration loader names the key; the error says what is wrong.
fn one<E: serde::de::Error>(s: &str) -> Result<mcpgate_types::Audience, E> {
    s.parse().map_err(E::custom)
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Audience, E> {
                Ok(Audience(vec![one(s)?]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Audience, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(one(&s)?);
                }
                Ok(Audience(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where keys come from, once checked and loaded.
#[derive(Debug)]
pub(crate) enum Source {
    /// A PEM public key or an HMAC secret.
    Fixed(Key),
    /// A JWKS URL.
    Jwks(url::Url),
}

/// A checked configuration, keys loaded.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) label: String,
    pub(crate) issuer: JwtIssuer,
    pub(crate) source: Source,
    /// The family every key has (`None` for a JWKS: any public-key family).
    pub(crate) family: Option<AlgorithmFamily>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) rules: ClaimRules,
}

const DEFAULT_PUBLIC: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::EdDSA,
    Algorithm::PS256,
];

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn hash_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

impl JwtConfig {
    /// Checks the table and loads its keys (the PEM file, the HMAC secret
    /// through `env`). The error names the table and the key at fault.
    pub(crate) fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, String> {
        let label = self.name.clone().unwrap_or_else(|| self.issuer.to_string());
        let fail = |key: &str, problem: String| format!("auth.jwt ({label}): {key}: {problem}");
        if let Some(n) = &self.name
            && (n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(fail(
                "name",
                format!("{n:?} is not allowed: use letters, digits, '-', '_' and '.'"),
            ));
        }
        if self.audience.0.is_empty() {
            return Err(fail(
                "audience",
                "name this server's resource URL (or the API identifier tokens carry in aud)"
                    .into(),
            ));
        }
        if self.leeway > 600 {
            return Err(fail(
                "leeway",
                format!("{} seconds is too lenient; at most 600", self.leeway),
            ));
        }
        for (key, v) in [
            ("subject_claim", Some(&self.subject_claim)),
            ("scope_claim", self.scope_claim.as_ref()),
            ("client_id_claim", self.client_id_claim.as_ref()),
            ("groups_claim", self.groups_claim.as_ref()),
        ] {
            if v.is_some_and(|v| v.trim().is_empty()) {
                return Err(fail(key, "must name a claim".into()));
            }
        }
        if self.required_claims.iter().any(|c| c.trim().is_empty()) {
            return Err(fail("required_claims", "an entry is empty".into()));
        }
        let sources: Vec<&str> = [
            ("jwks_uri", self.jwks_uri.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("public_key_pem", self.public_key_pem.is_some()),
            ("hmac_secret_env", self.hmac_secret_env.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
        match sources.as_slice() {
            [_] => {}
            [] => {
                return Err(fail(
                    "jwks_uri",
                    "set one of jwks_uri, public_key_file, public_key_pem or hmac_secret_env"
                        .into(),
                ));
            }
            many => {
                return Err(fail(
                    many[1],
                    format!("set only one of {}", many.join(", ")),
                ));
            }
        }
        if self.allow_http && self.jwks_uri.is_none() {
            return Err(fail("allow_http", "applies to jwks_uri only".into()));
        }
        let hmac = self.hmac_secret_env.is_some();
        let algorithms = match &self.algorithms {
            None => None,
            Some(names) if names.is_empty() => {
                return Err(fail(
                    "algorithms",
                    "an empty list accepts no token; remove it for the default".into(),
                ));
            }
            Some(names) => {
                let mut algs = Vec::new();
                for n in names {
                    if n.eq_ignore_ascii_case("none") {
                        return Err(fail(
                            "algorithms",
                            "\"none\" (unsigned tokens) is never accepted".into(),
                        ));
                    }
                    let a = algorithm(n).ok_or_else(|| {
                        fail(
                            "algorithms",
                            format!("{n:?} is not supported; use one of {}", known_names()),
                        )
                    })?;
                    if hmac != (a.family() == AlgorithmFamily::Hmac) {
                        let why = if hmac {
                            format!(
                                "{n} is a public-key algorithm, but hmac_secret_env configures a shared secret"
                            )
                        } else {
                            format!(
                                "{n} is an HMAC algorithm and cannot be used with public keys (algorithm confusion)"
                            )
                        };
                        return Err(fail("algorithms", why));
                    }
                    algs.push(a);
                }
                Some(algs)
            }
        };
        let (source, family, algorithms) = if let Some(var) = &self.hmac_secret_env {
            let algorithms = algorithms.unwrap_or_else(|| vec![Algorithm::HS256]);
            let secret = env(var)
                .ok_or_else(|| fail("hmac_secret_env", format!("names {var}, which is not set")))?;
            let need = algorithms
                .iter()
                .copied()
                .map(hash_bytes)
                .max()
                .unwrap_or(32);
            if secret.len() < need {
                return Err(fail(
                    "hmac_secret_env",
                    format!(
                        "the secret in {var} is {} bytes; at least {need} are needed (e.g. openssl rand -base64 48)",
                        secret.len()
                    ),
                ));
            }
            let key = Key {
                kid: None,
                alg: None,
                key: DecodingKey::from_secret(secret.as_bytes()),
            };
            (Source::Fixed(key), Some(AlgorithmFamily::Hmac), algorithms)
        } else if let Some(uri) = &self.jwks_uri {
            let u = url::Url::parse(uri)
                .map_err(|e| fail("jwks_uri", format!("{uri:?} is not a URL ({e})")))?;
            match u.scheme() {
                "https" => {}
                "http" if self.allow_http || is_loopback(&u) => {}
                "http" => return Err(fail("jwks_uri", "plain http lets anyone on the path substitute the keys; use https (http is allowed on loopback, or with allow_http = true)".into())),
                other => return Err(fail("jwks_uri", format!("unsupported scheme {other:?}; use https"))),
            }
            (
                Source::Jwks(u),
                None,
                algorithms.unwrap_or_else(|| DEFAULT_PUBLIC.to_vec()),
            )
        } else {
            let (key_name, pem) = match (&self.public_key_file, &self.public_key_pem) {
                (Some(path), _) => (
                    "public_key_file",
                    std::fs::read_to_string(path).map_err(|e| {
                        fail(
                            "public_key_file",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?,
                ),
                (None, Some(pem)) => ("public_key_pem", pem.clone()),
                (None, None) => return Err(fail("public_key_pem", "missing".into())),
            };
            let key = keys::from_pem(&pem).map_err(|e| fail(key_name, e))?;
            let family = key.key.family();
            let algorithms = match algorithms {
                Some(algs) => {
                    if let Some(a) = algs.iter().find(|a| a.family() != family) {
                        return Err(fail(
                            "algorithms",
                            format!(
                                "{} cannot be used with the {} in {key_name}",
                                algorithm_name(*a),
                                family_name(family)
                            ),
                        ));
                    }
                    algs
                }
                // A P-384 point is 97 bytes: such a key signs ES384, not ES256.
                None if family == AlgorithmFamily::Ec
                    && key.key.try_get_as_bytes().is_ok_and(|b| b.len() == 97) =>
                {
                    vec![Algorithm::ES384]
                }
                None => DEFAULT_PUBLIC
                    .iter()
                    .copied()
                    .filter(|a| a.family() == family)
                    .collect(),
            };
            (Source::Fixed(key), Some(family), algorithms)
        };
        Ok(Resolved {
            label,
            issuer: self.issuer.clone(),
            source,
            family,
            algorithms,
            rules: ClaimRules {
                audiences: self.audience.0.iter().map(|a| a.to_string()).collect(),
                leeway: self.leeway,
                required: self.required_claims.clone(),
                scope_claim: self.scope_claim.clone(),
                subject_claim: self.subject_claim.clone(),
                client_id_claim: self.client_id_claim.clone(),
                groups_claim: self.groups_claim.clone(),
            },
        })
    }
}
