//! Turning `[auth]` into the gateway's verifier chain: opening the store for
//! API keys and users, building each configured verifier in the configured
//! order, and loading (or creating) the key that signs identity tokens.

use std::path::Path;
use std::sync::Arc;

use mcpgate_gateway::{AccessMode, AuthSettings};
use mcpgate_guard::{
    Chain, DpopMode, DpopNonces, DpopReplay, ExtractOptions, IdentitySigner, Introspection,
    JwtVerifier, StaticTokens, UpstreamKey, Verifier,
};
use mcpgate_store::{ApiKeyVerifier, BasicVerifier, MasterKey, Store};
use mcpgate_types::{Audience, Issuer, JwtIssuer};

use crate::config::{AuthMode, Config, VerifierKind};

/// The identity-token signing key inside the data directory.
const IDENTITY_KEY_FILE: &str = "identity-key.pem";

/// Builds the gateway's authentication from the configuration; every problem is reported.
/// The built-in authorization server's verifier, when it runs, comes first.
pub(crate) async fn build(
    cfg: &Config,
    public_url: &url::Url,
    authserver: Option<&mcpgate_authserver::AuthServer>,
) -> Result<AuthSettings, Vec<String>> {
    let a = &cfg.auth;
    if a.mode == AuthMode::Disabled {
        return Ok(AuthSettings::disabled());
    }
    let mut problems = Vec::new();
    let store = if a.api_keys || a.users {
        match Store::connect(&cfg.store_url()).await {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("cannot open the store: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut verifiers: Vec<Arc<dyn Verifier>> = Vec::new();
    let mut upstream_keys = Vec::new();
    let mut issuers = Vec::new();
    for s in &a.authorization_servers {
        match s.parse::<Issuer>() {
            Ok(i) => issuers.push(i),
            Err(e) => problems.push(format!("auth.authorization_servers: {e}")),
        }
    }
    let mut audiences = mcpgate_gateway::AudienceBinding::default();
    if let Some(server) = authserver {
        verifiers.push(server.verifier());
        issuers.push(server.issuer().clone());
        audiences
            .endpoint_issuers
            .push(JwtIssuer::from(server.issuer().clone()));
    }
    // An upstream's `audience` override must get past the issuer's own check;
    // the gateway then holds each upstream to its override or the configured audience.
    let overrides: Vec<Audience> = cfg
        .upstreams
        .iter()
        .filter_map(|u| u.audience.as_ref())
        .flat_map(|a| a.values().iter().cloned())
        .collect();
    let mut seen = Vec::new();
    for kind in &a.order {
        if seen.contains(kind) {
            continue;
        }
        seen.push(*kind);
        match kind {
            VerifierKind::ApiKeys if a.api_keys => {
                if let Some(s) = &store {
                    verifiers.push(Arc::new(ApiKeyVerifier::new(s.clone())));
                }
            }
            VerifierKind::Users if a.users => {
                if let Some(s) = &store {
                    verifiers.push(Arc::new(BasicVerifier::new(s.clone())));
                }
            }
            VerifierKind::StaticTokens => {
                if let Some(st) = &a.static_tokens {
                    match StaticTokens::new(st) {
                        Ok(v) => verifiers.push(Arc::new(v)),
                        Err(e) => problems.extend(
                            e.to_string()
                                .lines()
                                .map(|l| format!("auth.static_tokens: {l}")),
                        ),
                    }
                }
            }
            VerifierKind::UpstreamKey => {
                for k in &a.upstream_key {
                    match UpstreamKey::new(k) {
                        Ok(v) => {
                            let v = Arc::new(v);
                            upstream_keys.push(v.clone());
                            verifiers.push(v);
                        }
                        Err(e) => problems.push(format!("auth.upstream_key ({}): {e}", k.upstream)),
                    }
                }
            }
            VerifierKind::Jwt => {
                for j in &a.jwt {
                    let mut j = j.clone();
                    bind_audience(&mut audiences, &j);
                    if !j.audience.values().is_empty() {
                        j.audience.extend(overrides.iter().cloned());
                    }
                    match JwtVerifier::new(&j) {
                        Ok(v) => {
                            match v.issuer().as_authorization_server() {
                                Ok(i) => issuers.push(i),
                                // Google's `accounts.google.com`: its tokens are
                                // got elsewhere, and RFC 9728 metadata names only
                                // issuers a client can find metadata for.
                                Err(e) => tracing::info!(
                                    issuer = %v.issuer(),
                                    "auth.jwt: not named in the protected-resource metadata's authorization_servers ({e})"
                                ),
                            }
                            if let Err(e) = v.warm_up().await {
                                // Not fatal: the keys are fetched again on the first token.
                                tracing::warn!(
                                    issuer = %v.issuer(),
                                    "could not fetch the issuer's keys yet: {e}"
                                );
                            }
                            verifiers.push(Arc::new(v));
                        }
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            VerifierKind::Introspection => {
                if let Some(i) = &a.introspection {
                    match Introspection::new(i) {
                        Ok(v) => verifiers.push(Arc::new(v)),
                        Err(e) => problems.push(format!("auth.introspection: {e}")),
                    }
                }
            }
            _ => {}
        }
    }
    let extract = match http::HeaderName::try_from(a.api_key_header.to_ascii_lowercase()) {
        Ok(h) => ExtractOptions { api_key_header: h },
        Err(_) => {
            problems.push(format!(
                "auth.api_key_header: {:?} is not a valid header name",
                a.api_key_header
            ));
            ExtractOptions::default()
        }
    };
    let identity_signer = if a.identity_token {
        match load_signer(
            &cfg.server.data_dir,
            public_url.as_str().trim_end_matches('/'),
        ) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    } else {
        None
    };
    let dpop_replay = match dpop_replay(cfg, store.as_ref()).await {
        Ok(r) => r,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let dpop_nonces = match dpop_nonces(cfg) {
        Ok(n) => n,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    issuers.sort();
    issuers.dedup();
    Ok(AuthSettings {
        mode: if a.mode == AuthMode::Optional {
            AccessMode::Optional
        } else {
            AccessMode::Required
        },
        chain: Chain::new(verifiers),
        extract,
        authorization_servers: issuers,
        groups_claim: a.groups_claim.clone(),
        upstream_keys,
        identity_signer,
        identity_headers: a.identity_headers,
        audiences,
        dpop_replay,
        dpop_nonces,
    })
}

/// The DPoP replay cache the replicas share: the store, when it is
/// PostgreSQL (replicas) and some upstream takes DPoP. A SQLite store is one
/// node's file, and that node's own cache already sees every proof.
async fn dpop_replay(
    cfg: &Config,
    store: Option<&Store>,
) -> Result<Option<Arc<dyn DpopReplay>>, String> {
    let url = cfg.store_url();
    let takes_dpop = cfg.upstreams.iter().any(|u| u.dpop != DpopMode::Off);
    if !url.is_postgres() || !takes_dpop {
        return Ok(None);
    }
    let store = match store {
        Some(s) => s.clone(),
        None => Store::connect(&url)
            .await
            .map_err(|e| format!("cannot open the store (the DPoP replay cache): {e}"))?,
    };
    Ok(Some(Arc::new(store)))
}

/// Records what `[[auth.jwt]]` issuer `j`'s tokens must name (an empty
/// audience is the verifier's to report).
fn bind_audience(audiences: &mut mcpgate_gateway::AudienceBinding, j: &mcpgate_guard::JwtConfig) {
    audiences
        .issuer_audiences
        .insert(j.issuer.clone(), j.audience.values().to_vec());
}

/// The nonces of upstreams with `dpop_nonce = true`: derived from the master
/// key as the authorization server's are, so every replica (and `/token`)
/// issues and accepts the same ones.
fn dpop_nonces(cfg: &Config) -> Result<Option<DpopNonces>, String> {
    if !cfg.upstreams.iter().any(|u| u.dpop_nonce) {
        return Ok(None);
    }
    let master = MasterKey::load(&cfg.server.data_dir)
        .map_err(|e| format!("master key (for upstream dpop_nonce): {e}"))?;
    Ok(Some(DpopNonces::new(
        &master.derive(mcpgate_dpop::NONCE_KEY_PURPOSE),
    )))
}

/// Loads the identity-token key, creating it (mode 0600) on first start.
fn load_signer(data_dir: &Path, issuer: &str) -> Result<IdentitySigner, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(IDENTITY_KEY_FILE);
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return IdentitySigner::from_pem(&pem, issuer)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let (signer, pem) = IdentitySigner::generate(issuer).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "created the key that signs identity tokens for upstreams");
    Ok(signer)
}

/// The demo's API key: created with the demo's scopes on first start and
/// returned then (it is shown once); `None` when one already exists.
pub(crate) async fn ensure_demo_key(
    url: &mcpgate_store::StoreUrl,
) -> Result<Option<String>, String> {
    let store = Store::connect(url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let keys = store.list_api_keys().await.map_err(|e| e.to_string())?;
    if keys.iter().any(|k| k.name == "demo") {
        return Ok(None);
    }
    let scopes = mcpgate_types::ScopeSet::from_words_lossy(["notes:read notes:write"]);
    let subject = "demo-user"
        .parse()
        .map_err(|e| format!("the demo subject: {e}"))?;
    store
        .create_api_key("demo", &subject, &scopes, None)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}
