//! The local user an ID-JAG names: its `user_claim` as a user name or an
//! email, created at the first grant when the trusted issuer allows it.

use mcpgate_store::UserRecord;
use serde_json::{Map, Value};

use crate::Inner;
use crate::error::OAuthError;
use crate::trusted_issuer::{Issuer, UserMatch};

/// Why no user was found.
pub(super) enum NoUser {
    /// The assertion names nobody usable here (the text says why).
    Refused(String),
    /// The store failed.
    Store(OAuthError),
}

fn stored(e: impl std::error::Error + 'static) -> NoUser {
    NoUser::Store(OAuthError::store(e))
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

pub(super) async fn local_user(
    inner: &Inner,
    issuer: &Issuer,
    claims: &Map<String, Value>,
) -> Result<UserRecord, NoUser> {
    let cfg = &issuer.cfg;
    let claim = issuer.user_claim();
    let value = claims
        .get(claim)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            NoUser::Refused(format!(
                "the ID-JAG has no {claim:?} claim naming the user (user_claim of trusted issuer {})",
                cfg.name
            ))
        })?;
    let name = match cfg.user_match {
        UserMatch::Name => valid_name(value).then(|| value.to_owned()),
        UserMatch::Email => inner
            .store
            .find_user_by_email(value)
            .await
            .map_err(stored)?,
    };
    let existing = match &name {
        Some(n) => inner.store.find_user(n).await.map_err(stored)?,
        None => None,
    };
    if let Some(u) = existing {
        return Ok(u);
    }
    if !cfg.create_users {
        return Err(NoUser::Refused(format!(
            "no local user matches the ID-JAG's {claim} {value:?}; an administrator can add one (mcpgate users add) or set create_users = true on trusted issuer {}",
            cfg.name
        )));
    }
    let email = (cfg.user_match == UserMatch::Email).then_some(value);
    let base = match (cfg.user_match, name) {
        (UserMatch::Name, Some(n)) => n,
        (UserMatch::Name, None) => {
            return Err(NoUser::Refused(format!(
                "the ID-JAG's {claim} {value:?} cannot be a user name here (1 to 64 of A-Z a-z 0-9 . _ - @ +)"
            )));
        }
        (UserMatch::Email, _) => mcpgate_store::user_name_from(value),
    };
    let scopes: mcpgate_types::ScopeSet = cfg.user_scopes.iter().cloned().collect();
    // A name taken by another user gets a suffix (email matching only: a
    // name match found no user of that name).
    for candidate in mcpgate_store::user_name_candidates(&base) {
        match inner
            .store
            .create_federated_user(&candidate, email, &scopes)
            .await
        {
            Ok(()) => {
                tracing::info!(issuer = %cfg.name, user = %candidate, "created a local user at the first ID-JAG");
                return inner
                    .store
                    .find_user(&candidate)
                    .await
                    .map_err(stored)?
                    .ok_or_else(|| NoUser::Refused("the new user vanished; try again".into()));
            }
            Err(mcpgate_store::VaultError::Store(mcpgate_store::StoreError::Duplicate {
                ..
            })) if cfg.user_match == UserMatch::Email => {}
            Err(mcpgate_store::VaultError::Store(mcpgate_store::StoreError::Duplicate {
                ..
            })) => {
                // Another request created it meanwhile.
                if let Some(u) = inner.store.find_user(&candidate).await.map_err(stored)? {
                    return Ok(u);
                }
            }
            Err(e) => return Err(stored(e)),
        }
    }
    Err(NoUser::Refused(format!(
        "no user could be created for {value:?} (the names are taken); ask an administrator"
    )))
}
