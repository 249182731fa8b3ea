//! `--id-jag` and `--workload-token-*` (for `login`, `token` and `call`):
//! where the assertion of the jwt-bearer grant comes from — a file, an
//! environment variable, or a token exchange at the enterprise IdP that
//! `mcpgate_client::assertion_grant` makes.

use std::path::{Path, PathBuf};

use clap::Args;
use mcpgate_client::ClientError;
use mcpgate_client::assertion_grant::{Assertion, IdpExchange, WorkloadToken};

/// The assertion flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct AssertionArgs {
    /// Enterprise-managed authorization (MCP SEP-990): exchange the user's ID
    /// token at the enterprise IdP for an ID-JAG (RFC 8693) and redeem it at
    /// the server's authorization server (jwt-bearer grant). Needs
    /// --idp-token-endpoint, --idp-client-id, --id-token-file or
    /// --id-token-env, and --client-id.
    #[arg(long, conflicts_with_all = ["device", "manual", "workload_token_file", "workload_token_env"])]
    pub(crate) id_jag: bool,
    /// --id-jag: the enterprise IdP's token endpoint (it does the token exchange).
    #[arg(long, value_name = "URL", requires = "id_jag")]
    pub(crate) idp_token_endpoint: Option<String>,
    /// --id-jag: this client's ID at the enterprise IdP.
    #[arg(long, value_name = "ID", requires = "id_jag")]
    pub(crate) idp_client_id: Option<String>,
    /// --id-jag: its secret at the IdP (prefer the environment variable).
    #[arg(long, env = "MCPGATE_IDP_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) idp_client_secret: Option<String>,
    /// --id-jag: a file holding the user's ID token from the IdP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "id_jag",
        conflicts_with = "id_token_env"
    )]
    pub(crate) id_token_file: Option<PathBuf>,
    /// --id-jag: the environment variable holding the user's ID token.
    #[arg(long, value_name = "VAR", requires = "id_jag")]
    pub(crate) id_token_env: Option<String>,
    /// Workload identity (MCP SEP-1933): present the token in this file (a
    /// Kubernetes service-account token, a CI OIDC token) with the
    /// jwt-bearer grant; re-read whenever a new access token is needed.
    /// Needs --client-id.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["device", "manual", "workload_token_env"])]
    pub(crate) workload_token_file: Option<PathBuf>,
    /// Workload identity: the environment variable holding the workload token.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["device", "manual"])]
    pub(crate) workload_token_env: Option<String>,
}

fn read_file(path: &Path, flag: &str) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Config(format!("{flag} {}: {e}", path.display())))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(ClientError::Config(format!(
            "{flag} {}: the file is empty",
            path.display()
        )));
    }
    Ok(t.to_owned())
}

fn read_env(var: &str, flag: &str) -> Result<String, ClientError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ClientError::Config(format!(
            "{flag} {var}: the environment variable is not set or empty"
        ))),
    }
}

impl AssertionArgs {
    /// The assertion the flags ask for, if any, read now (a workload's token
    /// file may have been rotated since the last run).
    pub(crate) fn assertion(&self) -> Result<Option<Assertion>, ClientError> {
        if let Some(p) = &self.workload_token_file {
            let t = read_file(p, "--workload-token-file")?;
            return Ok(Some(Assertion::Workload(WorkloadToken(t))));
        }
        if let Some(v) = &self.workload_token_env {
            let t = read_env(v, "--workload-token-env")?;
            return Ok(Some(Assertion::Workload(WorkloadToken(t))));
        }
        if !self.id_jag {
            return Ok(None);
        }
        let missing = |flag: &str| {
            ClientError::Config(format!(
                "--id-jag needs {flag} (see `mcpgate login --help`)"
            ))
        };
        let endpoint = self
            .idp_token_endpoint
            .as_deref()
            .ok_or_else(|| missing("--idp-token-endpoint"))?;
        let token_endpoint = url::Url::parse(endpoint)
            .map_err(|e| ClientError::Config(format!("--idp-token-endpoint {endpoint:?}: {e}")))?;
        let id_token = match (&self.id_token_file, &self.id_token_env) {
            (Some(p), _) => read_file(p, "--id-token-file")?,
            (None, Some(v)) => read_env(v, "--id-token-env")?,
            (None, None) => return Err(missing("--id-token-file or --id-token-env")),
        };
        Ok(Some(Assertion::IdJag(IdpExchange {
            token_endpoint,
            client_id: self
                .idp_client_id
                .clone()
                .ok_or_else(|| missing("--idp-client-id"))?,
            client_secret: self.idp_client_secret.clone(),
            id_token,
        })))
    }
}
