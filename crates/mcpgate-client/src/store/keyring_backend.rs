//! Secrets in the OS keyring (macOS Keychain, Windows Credential Manager,
//! the Secret Service on Linux). Each call runs on its own thread: some
//! backends block on their own event loop, which must not run inside tokio.

use serde::{Deserialize, Serialize};

use super::SignIn;
use crate::error::ClientError;
use crate::registration::ClientRegistration;

const SERVICE: &str = "mcpgate";

fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| s.spawn(f).join().ok())
}

/// Whether a keyring answers (reading a missing entry counts as answering).
pub(super) fn usable() -> bool {
    off_runtime(|| match keyring::Entry::new(SERVICE, "probe") {
        Ok(entry) => matches!(entry.get_password(), Ok(_) | Err(keyring::Error::NoEntry)),
        Err(_) => false,
    })
    .unwrap_or(false)
}

fn get(user: &str) -> Result<Option<String>, ClientError> {
    let user = user.to_owned();
    off_runtime(move || {
        let entry =
            keyring::Entry::new(SERVICE, &user).map_err(|e| ClientError::store("keyring", e))?;
        match entry.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(ClientError::store("reading the keyring", e)),
        }
    })
    .unwrap_or_else(|| Err(ClientError::Store("keyring thread failed".into())))
}

fn set(user: &str, value: &str) -> Result<(), ClientError> {
    let (user, value) = (user.to_owned(), value.to_owned());
    off_runtime(move || {
        keyring::Entry::new(SERVICE, &user)
            .and_then(|e| e.set_password(&value))
            .map_err(|e| ClientError::store("writing the keyring", e))
    })
    .unwrap_or_else(|| Err(ClientError::Store("keyring thread failed".into())))
}

pub(super) fn delete(user: &str) -> Result<(), ClientError> {
    let user = user.to_owned();
    off_runtime(move || {
        match keyring::Entry::new(SERVICE, &user).and_then(|e| e.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(ClientError::store("deleting from the keyring", e)),
        }
    })
    .unwrap_or_else(|| Err(ClientError::Store("keyring thread failed".into())))
}

#[derive(Serialize, Deserialize, Default)]
struct SignInSecrets {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<String>,
}

/// Moves the secrets of `record` into the keyring, leaving blanks.
pub(super) fn take_signin_secrets(key: &str, record: &mut SignIn) -> Result<(), ClientError> {
    let secrets = SignInSecrets {
        access_token: std::mem::take(&mut record.tokens.access_token),
        refresh_token: record.tokens.refresh_token.take(),
        client_secret: record.registration.client_secret.take(),
        dpop_key: record.tokens.dpop_key.take(),
    };
    // The registration record keeps its own (keyring) copy; a sign-in needs none.
    record.registration.registration_access_token = None;
    let json = serde_json::to_string(&secrets).map_err(|e| ClientError::store("encoding", e))?;
    set(key, &json)
}

pub(super) fn fill_signin(key: &str, record: &mut SignIn) -> Result<(), ClientError> {
    let Some(json) = get(key)? else {
        return Ok(());
    };
    let s: SignInSecrets = serde_json::from_str(&json).unwrap_or_default();
    record.tokens.access_token = s.access_token;
    record.tokens.refresh_token = s.refresh_token;
    record.registration.client_secret = s.client_secret;
    record.tokens.dpop_key = s.dpop_key;
    Ok(())
}

pub(super) fn take_registration_secret(
    digest: &str,
    reg: &mut ClientRegistration,
) -> Result<(), ClientError> {
    match reg.registration_access_token.take() {
        Some(token) => set(&format!("regtoken-{digest}"), &token)?,
        None => delete(&format!("regtoken-{digest}"))?,
    }
    match reg.client_secret.take() {
        Some(secret) => set(&format!("reg-{digest}"), &secret),
        None => delete(&format!("reg-{digest}")),
    }
}

pub(super) fn fill_registration(
    digest: &str,
    reg: &mut ClientRegistration,
) -> Result<(), ClientError> {
    reg.client_secret = get(&format!("reg-{digest}"))?;
    reg.registration_access_token = get(&format!("regtoken-{digest}"))?;
    Ok(())
}
