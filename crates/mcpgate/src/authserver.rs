//! Wiring `[authserver]` into `serve`: the store and master key it runs on,
//! the resources it issues tokens for, its routes on the gateway's origin, and
//! the demo's admin user (random password, printed once).

use std::path::Path;

use mcpgate_authserver::AuthServer;
use mcpgate_store::{MasterKey, Store};

use crate::config::{AuthMode, Config};

/// The demo's sign-in user.
const DEMO_ADMIN: &str = "admin";

/// Starts the authorization server when `[authserver] enabled = true` (and
/// authentication is not disabled).
pub(crate) async fn start(
    cfg: &Config,
    public_url: &url::Url,
) -> Result<Option<AuthServer>, Vec<String>> {
    if !cfg.authserver.enabled || cfg.auth.mode == AuthMode::Disabled {
        return Ok(None);
    }
    let dir = &cfg.server.data_dir;
    let store = Store::connect(&cfg.store_url())
        .await
        .map_err(|e| vec![format!("authserver: cannot open the store: {e}")])?;
    let master = MasterKey::load(dir).map_err(|e| vec![format!("authserver: master key: {e}")])?;
    let base = public_url.as_str().trim_end_matches('/');
    // Every MCP endpoint of the gateway is a resource; `/mcp` (the single-upstream alias) first.
    let mut resources = vec![format!("{base}/mcp")];
    resources.extend(
        cfg.upstreams
            .iter()
            .map(|u| format!("{base}/mcp/{}", u.name)),
    );
    resources.extend(
        cfg.virtual_servers
            .iter()
            .map(|v| format!("{base}/mcp/{}", v.name)),
    );
    let mut settings = cfg.authserver.clone();
    settings.outbound_private = cfg.server.outbound_private;
    let server = AuthServer::new(settings, public_url, resources, store, master)
        .await
        .map_err(|e| vec![format!("authserver: {e}")])?;
    Ok(Some(server))
}

/// The gateway's router with the authorization server's endpoints merged in.
pub(crate) fn merge(gateway: axum::Router, authserver: Option<&AuthServer>) -> axum::Router {
    match authserver {
        Some(a) => gateway.merge(a.router()),
        None => gateway,
    }
}

/// Creates the demo's `admin` user on first start; returns its random password then.
pub(crate) async fn ensure_demo_admin(
    url: &mcpgate_store::StoreUrl,
) -> Result<Option<String>, String> {
    let store = Store::connect(url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    if store
        .find_user(DEMO_ADMIN)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(None);
    }
    let password = crate::random::alphanumeric(20);
    let scopes = mcpgate_types::ScopeSet::from_words_lossy(["notes:read notes:write"]);
    store
        .add_user(DEMO_ADMIN, &password, &scopes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(password))
}

/// The banner lines about signing in through the authorization server.
pub(crate) fn demo_banner(a: &AuthServer, password: Option<&str>, data_dir: &Path) -> String {
    let login = match password {
        Some(p) => format!(
            "  Sign in with OAuth (any MCP client that supports it) as:\n    user {DEMO_ADMIN}, password {p}   (shown once)\n"
        ),
        None => format!(
            "  Sign in with OAuth as user {DEMO_ADMIN} (its password was printed on the first start;\n  reset it with: mcpgate users passwd {DEMO_ADMIN} --data-dir {})\n",
            crate::init::shell_word(data_dir)
        ),
    };
    format!(
        "  OAuth authorization server: {}\n{login}  Your grants: {}/account\n\n",
        a.issuer(),
        a.issuer()
    )
}
