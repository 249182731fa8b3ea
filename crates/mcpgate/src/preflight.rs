//! The checks `mcpgate check-config` and `mcpgate serve` share, so that a
//! configuration the check passes is one `serve` starts with, and one it
//! fails is one `serve` refuses with the same message.
//!
//! Two kinds of finding:
//! - a **refusal**: `serve` exits with it (key material that cannot be read,
//!   a credential kind whose source is switched off, a data directory that is
//!   a file…);
//! - a **readiness problem**: `serve` starts (so that the other upstreams
//!   work and the operator can look) but `/readyz` answers 503 naming it
//!   (an unset credential variable, a stdio `command` that does not exist, a
//!   data directory it cannot write to). `check-config` fails on both.

use std::path::{Path, PathBuf};

use mcpgate_gateway::{CredentialConfig, UpstreamConfig};

use crate::config::{AuthMode, Config};

/// Everything `serve` would refuse to start with, each a full sentence
/// naming the key.
pub(crate) fn refusals(c: &Config) -> Vec<String> {
    let mut out = crate::config::auth_problems(c);
    if c.upstreams.is_empty() {
        out.push("no upstream is configured: add an [[upstream]] table (see `mcpgate init`), or run `mcpgate serve --demo`".into());
    }
    if c.auth.mode == AuthMode::Disabled {
        if !c.auth.upstream_key.is_empty() {
            // Forwarding an unchecked key would make the gateway an open relay
            // for whatever the caller sends; refusing says what to change.
            out.push("auth.upstream_key: users' own upstream keys are checked and forwarded only for authenticated callers, but auth.mode = \"disabled\"; set auth.mode = \"required\" (or \"optional\"), or remove [[auth.upstream_key]]".into());
        }
    } else {
        out.extend(verifier_problems(c));
    }
    out.extend(credential_source_problems(c));
    out.extend(mcpgate_gateway::virtual_server_problems(
        &c.virtual_servers,
        &c.upstreams,
    ));
    out.extend(mcpgate_gateway::rate_limit_problems(&c.rate_limits));
    let names = c.upstreams.iter().map(|u| u.name.as_str());
    let names = names.chain(c.virtual_servers.iter().map(|v| v.name.as_str()));
    out.extend(mcpgate_gateway::rate_limit_upstream_problems(
        &c.rate_limits,
        &names.collect::<Vec<_>>(),
    ));
    if let Err(p) = c.server.internal_listen() {
        out.push(p);
    }
    if let Some(p) = data_dir_not_a_directory(&c.server.data_dir) {
        out.push(p);
    }
    if let Err(p) = crate::policy_cmd::load(c.policy.as_ref()) {
        out.extend(p);
    }
    if c.server.worker_threads == Some(0) {
        out.push("server.worker_threads = 0: connections need at least one event loop (one thread each); leave it unset for one per core".into());
    }
    out
}

/// What `/readyz` reports as not ready when `serve` runs this configuration
/// now; `check-config` fails on these too.
pub(crate) fn readiness_problems(c: &Config) -> Vec<String> {
    let mut out: Vec<String> = c
        .upstreams
        .iter()
        .flat_map(mcpgate_gateway::missing_credentials)
        .collect();
    out.extend(c.upstreams.iter().filter_map(command_problem));
    if c.server.data_dir.exists()
        && let Some(p) = data_dir_unwritable(&c.server.data_dir)
    {
        out.push(p);
    }
    out
}

/// Builds each configured verifier once, as `serve` will, for the key
/// material it reads at start (secrets from the environment, key files).
fn verifier_problems(c: &Config) -> Vec<String> {
    let a = &c.auth;
    let mut out = Vec::new();
    for j in &a.jwt {
        if let Err(e) = mcpgate_guard::JwtVerifier::new(j) {
            out.push(e.to_string());
        }
    }
    if let Some(st) = &a.static_tokens
        && let Err(e) = mcpgate_guard::StaticTokens::new(st)
    {
        out.extend(
            e.to_string()
                .lines()
                .map(|l| format!("auth.static_tokens: {l}")),
        );
    }
    for k in &a.upstream_key {
        if let Err(e) = mcpgate_guard::UpstreamKey::new(k) {
            out.push(format!("auth.upstream_key ({}): {e}", k.upstream));
        }
    }
    if let Some(i) = &a.introspection
        && let Err(e) = mcpgate_guard::Introspection::new(i)
    {
        out.push(format!("auth.introspection: {e}"));
    }
    out
}

/// Per-user credentials whose source is not running: the vault and the
/// federated tokens live in the built-in authorization server.
fn credential_source_problems(c: &Config) -> Vec<String> {
    let providers: Vec<&str> = c
        .authserver
        .federation
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut out = Vec::new();
    for u in &c.upstreams {
        for cred in &u.credentials {
            match cred {
                CredentialConfig::Vault(_) if !c.authserver.enabled => out.push(format!(
                    "upstream {}: kind = \"vault\" keeps each user's secret in the built-in authorization server, but [authserver] is not enabled; set [authserver] enabled = true",
                    u.name
                )),
                CredentialConfig::Federated(f)
                    if !c.authserver.enabled || !providers.contains(&f.provider.as_str()) =>
                {
                    out.push(format!(
                        "upstream {}: kind = \"federated\" names provider {:?}, but no [[authserver.federation]] has that name (and [authserver] must be enabled){}",
                        u.name,
                        f.provider,
                        if providers.is_empty() {
                            String::new()
                        } else {
                            format!("; configured providers: {}", providers.join(", "))
                        }
                    ))
                }
                _ => {}
            }
        }
    }
    out
}

/// A stdio upstream's program that cannot be started: not on `PATH`, or not
/// an executable file.
pub(crate) fn command_problem(u: &UpstreamConfig) -> Option<String> {
    let program = u.command.as_ref()?.first()?;
    if program.trim().is_empty() {
        return None; // config validation reports it
    }
    let path_var = u
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    match find_program(program, &path_var, u.cwd.as_deref()) {
        Some(_) => None,
        None if program.contains('/') => Some(format!(
            "upstream {}: command {program:?} does not exist or is not executable",
            u.name
        )),
        None => Some(format!(
            "upstream {}: command {program:?} is not on PATH ({path_var}); install it or give its full path",
            u.name
        )),
    }
}

/// Where `program` would be found when started with this `PATH` and working
/// directory (the lookup `execvp` does).
fn find_program(program: &str, path_var: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        let p = match cwd {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        };
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The data directory exists but is not a directory.
pub(crate) fn data_dir_not_a_directory(dir: &Path) -> Option<String> {
    let meta = std::fs::metadata(dir).ok()?;
    (!meta.is_dir()).then(|| {
        format!(
            "server.data_dir: {} is a {}, not a directory; point server.data_dir (or --data-dir) at a directory, or remove it so it is created",
            dir.display(),
            if meta.is_file() { "regular file" } else { "special file" }
        )
    })
}

/// Whether the gateway can create files in `dir` now: a real write (a probe
/// file created and removed), since permission bits say nothing about a
/// read-only mount or an immutable directory.
pub(crate) fn data_dir_unwritable(dir: &Path) -> Option<String> {
    let probe = dir.join(format!(".mcpgate-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "server.data_dir: cannot write to {} ({e}); the store, keys and sign-ins live there: make it writable by this user",
            dir.display()
        )),
    }
}

/// The `/readyz` check of a running gateway: the data directory stays
/// writable and every stdio program is still there.
#[derive(Debug)]
pub(crate) struct Readiness {
    pub(crate) data_dir: PathBuf,
    pub(crate) upstreams: Vec<UpstreamConfig>,
}

impl mcpgate_gateway::ReadinessCheck for Readiness {
    fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.upstreams.iter().filter_map(command_problem).collect();
        out.extend(data_dir_unwritable(&self.data_dir));
        out
    }
}

#[cfg(test)]
mod tests;
