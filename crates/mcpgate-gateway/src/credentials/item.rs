//! One configured credential: where its value comes from and where it is
//! delivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderName;

use super::oauth::{ClientCredentials, Login, TokenExchange};
use super::secret::{Secret, SecretRef, Template};
use super::token::TokenCell;
use super::user::UserSecretSource;

/// Why no credential could be presented; the request fails with this message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CredentialError(pub(crate) String);

/// Where one credential's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// `static`, `bearer`: one secret.
    Fixed(SecretRef),
    /// `basic`: user name and password.
    Basic(SecretRef, SecretRef),
    /// `client_credentials`.
    ClientCredentials(ClientCredentials, TokenCell),
    /// `login`.
    Login(Login, TokenCell),
    /// `token_exchange`: one token per subject.
    TokenExchange(TokenExchange, Mutex<HashMap<String, Arc<TokenCell>>>),
    /// A per-user secret from a [`UserSecretSource`] (the vault).
    User(Arc<dyn UserSecretSource>),
}

/// One configured credential and where it is delivered.
#[derive(Debug)]
pub(crate) struct Item {
    pub(super) kind: &'static str,
    pub(super) label: String,
    pub(super) header: Option<(HeaderName, Template)>,
    pub(super) env: Option<String>,
    pub(super) source: Source,
    pub(super) last_error: Mutex<Option<String>>,
    /// A fixed secret once read.
    pub(super) loaded: std::sync::OnceLock<Secret>,
}

/// The secret sent for one credential on one request, to tell a 401 about.
#[derive(Debug, Clone)]
pub(crate) struct Used(pub(super) Vec<(usize, Secret)>);

impl Item {
    pub(super) fn missing(&self, upstream: &str) -> Vec<String> {
        if self.loaded.get().is_some() {
            return Vec::new();
        }
        missing_of(&self.source, upstream)
    }
}

fn missing_of(source: &Source, upstream: &str) -> Vec<String> {
    let refs: Vec<&SecretRef> = match source {
        Source::Fixed(r) => vec![r],
        Source::Basic(u, p) => vec![u, p],
        Source::ClientCredentials(c, _) => vec![&c.client.id, &c.client.secret],
        Source::Login(l, _) => vec![&l.username, &l.password],
        Source::TokenExchange(t, _) => t.client.iter().flat_map(|c| [&c.id, &c.secret]).collect(),
        Source::User(_) => Vec::new(),
    };
    refs.into_iter()
        .filter_map(|r| r.load(upstream).err())
        .collect()
}
