//! What a signed token says, checked: times, audience, required claims; and
//! the [`Principal`] it describes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpgate_types::{ClientId, ScopeSet, Subject};
use serde_json::{Map, Value};

use crate::metadata::same_resource;
use crate::principal::{AuthMethod, Principal, audiences_lossy};
use crate::verifier::VerifyError;

/// The claim-reading settings of one verifier.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: u64,
    pub(crate) required: Vec<String>,
    pub(crate) scope_claim: Option<String>,
    pub(crate) subject_claim: String,
    pub(crate) client_id_claim: Option<String>,
    pub(crate) groups_claim: Option<String>,
}

fn invalid(msg: String) -> VerifyError {
    VerifyError::Invalid(msg)
}

/// A NumericDate claim (seconds since the epoch, integer or fractional).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| invalid(format!("Token claim {name} is not a number of seconds"))),
    }
}

/// `secs` since the epoch as a time (clamped to the epoch and far future).
pub(crate) fn at(secs: f64) -> SystemTime {
    let secs = secs.clamp(0.0, 253_402_300_799.0); // 9999-12-31T23:59:59Z
    UNIX_EPOCH + Duration::from_secs_f64(secs)
}

/// Checks `exp` (required), `nbf` and `iat` against `now` with the leeway.
/// Returns the expiry.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    leeway: u64,
    now: SystemTime,
) -> Result<SystemTime, VerifyError> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let leeway = leeway as f64;
    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| invalid("Token has no exp claim; tokens must expire".into()))?;
    if exp + leeway <= now_s {
        return Err(invalid(format!("Token expired at {}", rfc3339(at(exp)))));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf - leeway > now_s
    {
        return Err(invalid(format!(
            "Token not valid before {}",
            rfc3339(at(nbf))
        )));
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && iat - leeway > now_s
    {
        return Err(invalid(format!(
            "Token issued in the future ({}); check the clocks of the issuer and this server",
            rfc3339(at(iat))
        )));
    }
    Ok(at(exp))
}

/// The token's audiences (`aud` as a string or an array of strings).
pub(crate) fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Requires that the token's `aud` include one of `expected`.
pub(crate) fn check_audience(
    claims: &Map<String, Value>,
    expected: &[String],
) -> Result<(), VerifyError> {
    let got = audiences(claims);
    if got
        .iter()
        .any(|a| expected.iter().any(|e| same_resource(a, e)))
    {
        return Ok(());
    }
    let wanted = match expected {
        [one] => one.clone(),
        many => format!("any of {}", many.join(", ")),
    };
    if got.is_empty() {
        return Err(invalid(format!(
            "Token has no aud claim; it must name {wanted}"
        )));
    }
    Err(invalid(format!("Token audience does not include {wanted}")))
}

/// A claim by name, or by a dotted path into nested objects
/// (`realm_access.roles`) when no claim has the literal name.
pub(crate) fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// Strings from a space-separated string or an array of strings.
fn words(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_ascii_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ClaimRules {
    /// Checks the audience, times and required claims, and describes the caller.
    pub(crate) fn principal(
        &self,
        mut claims: Map<String, Value>,
        now: SystemTime,
    ) -> Result<(Principal, Duration), VerifyError> {
        let expires_at = check_times(&claims, self.leeway, now)?;
        check_audience(&claims, &self.audiences)?;
        for name in &self.required {
            if lookup(&claims, name).is_none_or(Value::is_null) {
                return Err(invalid(format!("Token lacks the required claim {name:?}")));
            }
        }
        let subject = text(lookup(&claims, &self.subject_claim)).ok_or_else(|| {
            invalid(format!(
                "Token has no {:?} claim naming the caller",
                self.subject_claim
            ))
        })?;
        let subject = Subject::try_from(subject).map_err(|e| {
            invalid(format!(
                "Token's {:?} claim cannot name the caller: {e}",
                self.subject_claim
            ))
        })?;
        // Not the caller's name, only forwarded: one that is not an RFC 6749
        // client id is left out rather than refusing the token.
        let client_id = match &self.client_id_claim {
            Some(c) => text(lookup(&claims, c)),
            None => text(claims.get("client_id")).or_else(|| text(claims.get("azp"))),
        }
        .and_then(|c| ClientId::try_from(c).ok());
        let scopes = match &self.scope_claim {
            Some(c) => {
                ScopeSet::from_words_lossy(words(lookup(&claims, c)).iter().map(String::as_str))
            }
            None => ScopeSet::from_words_lossy(
                words(claims.get("scope"))
                    .iter()
                    .chain(&words(claims.get("scp")))
                    .map(String::as_str),
            ),
        };
        if let Some(g) = &self.groups_claim {
            let groups: Vec<Value> = words(lookup(&claims, g))
                .into_iter()
                .map(Value::String)
                .collect();
            claims.insert("groups".to_owned(), Value::Array(groups));
        }
        let cache_for = expires_at.duration_since(now).unwrap_or_default();
        Ok((
            Principal::new(subject, AuthMethod::Jwt)
                .with_client_id(client_id)
                .with_scopes(scopes)
                .with_audience(audiences_lossy(audiences(&claims)))
                .with_expires_at(Some(expires_at))
                .with_claims(claims),
            cache_for,
        ))
    }
}

pub(crate) use crate::time::rfc3339;
