//! Who may sign in (allow-lists by organization, email domain, group or glob)
//! and which local user a federated identity becomes.

use std::collections::BTreeSet;

use mcpgate_types::Subject;

use super::idp::Identity;
use super::{MapBy, ProviderConfig};
use crate::Inner;

/// `Ok` when the identity passes every configured allow-list, else the
/// message the refusal page shows.
pub(crate) fn allowed(cfg: &ProviderConfig, id: &Identity) -> Result<(), String> {
    let lower = |v: &[String]| {
        v.iter()
            .map(|s| s.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
    };
    if !cfg.allowed_orgs.is_empty() {
        let wanted = lower(&cfg.allowed_orgs);
        if !id
            .orgs
            .iter()
            .any(|o| wanted.contains(&o.to_ascii_lowercase()))
        {
            return Err(format!(
                "Your account{} is not a member of an organization allowed here ({}). Ask an administrator of one of them to invite you, or grant mcpgate access to the organization on GitHub.",
                id.login
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default(),
                cfg.allowed_orgs.join(", ")
            ));
        }
    }
    if !cfg.allowed_domains.is_empty() {
        let wanted = lower(&cfg.allowed_domains);
        let domain = id
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        if !domain.is_some_and(|d| wanted.contains(&d)) {
            return Err(format!(
                "Sign-in is limited to verified email addresses of {}.",
                cfg.allowed_domains.join(", ")
            ));
        }
    }
    if !cfg.allowed_groups.is_empty() && !id.groups.iter().any(|g| cfg.allowed_groups.contains(g)) {
        return Err("Your account is not in a group allowed to sign in here.".into());
    }
    if !cfg.allowed_users.is_empty() {
        let mut b = globset::GlobSetBuilder::new();
        for g in &cfg.allowed_users {
            if let Ok(g) = globset::GlobBuilder::new(g).case_insensitive(true).build() {
                b.add(g);
            }
        }
        let set = b
            .build()
            .map_err(|_| "The allow-list is misconfigured.".to_owned())?;
        let hit = [id.email.as_deref(), id.login.as_deref()]
            .into_iter()
            .flatten()
            .any(|v| set.is_match(v));
        if !hit {
            return Err("Your account is not on the list of users allowed to sign in here.".into());
        }
    }
    Ok(())
}

/// A local user name from what the IdP says: 1 to 64 of `A-Z a-z 0-9 . _ - @ +`.
pub(crate) fn user_name(provider: &str, id: &Identity) -> String {
    let raw = id
        .login
        .clone()
        .or_else(|| id.email.clone())
        .unwrap_or_else(|| format!("{provider}-{}", id.subject));
    let clean = mcpgate_store::user_name_from(&raw);
    if clean.is_empty() {
        format!("{provider}-user")
    } else {
        clean
    }
}

/// The local user the identity signs in as: an existing link, else (by email)
/// the user with that verified email, else a new user when allowed. Links the
/// identity for next time.
pub(crate) async fn local_user(
    inner: &Inner,
    cfg: &ProviderConfig,
    id: &Identity,
) -> Result<String, String> {
    let store = &inner.store;
    let unavailable = |e: mcpgate_store::VaultError| {
        tracing::error!("federation: {e}");
        "The account store is unavailable; try again later.".to_owned()
    };
    let linked = store
        .find_federated_identity(&cfg.name, &id.subject)
        .await
        .map_err(unavailable)?;
    let subject: String = match linked {
        Some(l) => l.subject.into(),
        None => {
            let by_email = match (cfg.map_by, &id.email) {
                (MapBy::Email, Some(e)) => {
                    store.find_user_by_email(e).await.map_err(unavailable)?
                }
                _ => None,
            };
            match by_email {
                Some(u) => u,
                None if cfg.create_users => create(inner, cfg, id).await?,
                None => {
                    return Err(match (cfg.map_by, &id.email) {
                        (MapBy::Email, Some(e)) => format!("No account here has the email {e}. Ask an administrator to create one."),
                        (MapBy::Email, None) => "Your identity provider did not share a verified email address, which this server needs to find your account.".into(),
                        (MapBy::Subject, _) => "Your account is not linked to a user here. Ask an administrator to create one.".into(),
                    });
                }
            }
        }
    };
    // Local user names (1 to 64 of `A-Z a-z 0-9 . _ - @ +`) are subjects.
    let local = Subject::try_from(subject.clone()).map_err(|e| {
        tracing::error!("federation: local user {subject:?}: {e}");
        "Your account could not be linked; ask an administrator.".to_owned()
    })?;
    store
        .link_federated_identity(
            &cfg.name,
            &id.subject,
            &local,
            id.email.as_deref(),
            id.login.as_deref(),
        )
        .await
        .map_err(unavailable)?;
    Ok(subject)
}

async fn create(inner: &Inner, cfg: &ProviderConfig, id: &Identity) -> Result<String, String> {
    let base = user_name(&cfg.name, id);
    let scopes: mcpgate_types::ScopeSet = cfg.user_scopes.iter().cloned().collect();
    for name in mcpgate_store::user_name_candidates(&base) {
        match inner
            .store
            .create_federated_user(&name, id.email.as_deref(), &scopes)
            .await
        {
            Ok(()) => {
                tracing::info!(provider = %cfg.name, user = %name, "created a local user at the first federated sign-in");
                return Ok(name);
            }
            Err(mcpgate_store::VaultError::Store(mcpgate_store::StoreError::Duplicate {
                ..
            })) => continue,
            Err(e) => {
                tracing::error!("federation: creating user {name}: {e}");
                return Err("Your account could not be created; ask an administrator.".into());
            }
        }
    }
    Err("Your account could not be created (the name is taken); ask an administrator.".into())
}
