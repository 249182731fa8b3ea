//! `mcpgate init` and the quickstart banner.

use std::path::Path;
use std::process::ExitCode;

const STARTER: &str = r#"# mcpgate configuration. Reference: docs/CONFIGURATION.md
# Every key can also be set from the environment: MCPGATE_SERVER__LISTEN=127.0.0.1:9000

[server]
# Where to listen. Keep loopback unless a reverse proxy or TLS terminator sits in front.
listen = "127.0.0.1:8080"
# The URL clients use to reach this server (default: derived from listen).
# public_url = "https://mcp.example.com"
# Where the embedded SQLite database and generated secrets live.
data_dir = "./mcpgate-data"
# Browser origins allowed besides public_url's own, e.g. the MCP Inspector:
allowed_origins = []   # ["http://localhost:6274"]
# log_format = "human"        # or "json"
# request_timeout = "60s"     # whole upstream exchange up to its answer (headers, JSON body,
#                             # first SSE event); then the longest silence between SSE events
#                             # (not while a question to the client, e.g. elicitation, waits)
# session_idle_timeout = "30m"
# max_sessions_per_subject = 32   # open sessions per signed-in caller (0 = no limit); 429 above
# max_children_per_subject = 8    # stdio children per signed-in caller and upstream (0 = no limit)
# max_body_bytes = 4194304
# shutdown_grace = "10s"      # in-flight requests get this long on SIGTERM, then "shutting down"
# header_read_timeout = "10s" # a connection must send a complete request head within this
# idle_timeout = "120s"       # connections with no request in flight close after this (SSE streams are busy)
# max_connections = 10000     # default: half the open-file limit; beyond it → 503
# May URLs you configure (JWKS, introspection, token endpoints, federation issuers,
# verify_url) be on loopback/private addresses? "allow" (default) or "deny".
# URLs that clients or documents name never may.
# outbound_private = "allow"

[auth]
# "required": every request needs a credential. "optional": anonymous callers get
# what needs no scope. "disabled": no authentication (loopback addresses only).
mode = "required"
# Verifiers, tried in this order (docs/AUTH.md has every option and provider recipes):
#   API keys:    mcpgate keys create --name alice --scopes "*"      (api_keys = true)
#   Basic users: mcpgate users add alice --password-stdin           (users = true)
# [auth.static_tokens]
# tokens_env = "MCPGATE_API_KEYS"          # a,b  or  token:subject:scope scope
# [[auth.jwt]]
# issuer = "https://your-tenant.auth0.com/"
# audience = "https://mcp.example.com/mcp"
# jwks_uri = "https://your-tenant.auth0.com/.well-known/jwks.json"

# The built-in authorization server (docs/AUTHSERVER.md); its tokens work only at the
# upstream endpoint they were issued for.
# [authserver]
# enabled = true
# Another MCP server it issues tokens for, which checks them by introspection
# (or: mcpgate resources add URI --name NAME --scopes "...").
# [[authserver.resource]]
# resource = "https://notes.example.com/mcp"
# name = "Team notes"
# scopes = ["notes:read"]
# client_id = "notes-rs"
# client_secret_env = "NOTES_RS_SECRET"

[[upstream]]
name = "everything"            # served at /mcp/everything (and /mcp while it is the only one)
command = ["npx", "-y", "@modelcontextprotocol/server-everything"]
isolation = "session"          # one child per client session; "shared" = one child for all
# required_scopes = "mcp"      # scopes needed for anything on this upstream
# tool_scopes = { "delete_*" = "admin" }   # per-tool scopes (globs); tools/list hides the rest
# audience = "https://api.example.com"     # [[auth.jwt]] tokens must name this here (default: the issuer's audience)
# env = { API_KEY = "..." }    # extra environment for the child
# cwd = "/srv/mcp"
# max_children = 100

# An HTTP upstream:
# [[upstream]]
# name = "remote"
# url = "http://127.0.0.1:3001/mcp"
# transport = "streamable-http"   # or "sse"; default: detect
# headers = { "X-Api-Key" = "..." }
"#;

pub(crate) fn write(path: &Path, force: bool) -> ExitCode {
    if path.exists() && !force {
        eprintln!(
            "mcpgate: {} exists; pass --force to overwrite it",
            path.display()
        );
        return ExitCode::from(2);
    }
    match std::fs::write(path, STARTER) {
        Ok(()) => {
            println!(
                "wrote {}; check it with: mcpgate check-config --config {}",
                path.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpgate: cannot write {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

/// How the demo is protected, for the banner.
pub(crate) enum DemoAuth<'a> {
    /// `--no-auth`.
    Disabled,
    /// First start: the key was just created and is shown this once.
    NewKey(&'a str),
    /// A demo key was created on an earlier start; the data directory it is in.
    KeyExists(&'a std::path::Path),
}

/// What `serve --demo` prints: where to point a client, and how.
pub(crate) fn demo_banner(base: &str, auth: &DemoAuth<'_>) -> String {
    let (key, note) = match auth {
        DemoAuth::Disabled => (
            None,
            "Authentication is disabled (--no-auth, loopback only).".to_owned(),
        ),
        DemoAuth::NewKey(k) => (
            Some((*k).to_owned()),
            format!(
                "Your demo API key (shown once; scopes notes:read notes:write):\n    {k}\n  \
                 Send it as  Authorization: Bearer <key>  (or X-API-Key)."
            ),
        ),
        DemoAuth::KeyExists(dir) => (
            None,
            format!(
                "The demo API key was printed on the first start. Lost it? Create another:\n    \
                 mcpgate keys create --name demo2 --scopes \"notes:read notes:write\" --data-dir {}",
                shell_word(dir)
            ),
        ),
    };
    let bearer = key.as_deref().unwrap_or("<key>");
    let header_args = if matches!(auth, DemoAuth::Disabled) {
        String::new()
    } else {
        format!(", \"--header\", \"Authorization: Bearer {bearer}\"")
    };
    let headers_json = if matches!(auth, DemoAuth::Disabled) {
        String::new()
    } else {
        format!(", \"headers\": {{ \"Authorization\": \"Bearer {bearer}\" }}")
    };
    format!(
        r#"
  mcpgate demo is running: {base}/mcp

  {note}

  MCP Inspector (web UI: choose "Streamable HTTP", URL {base}/mcp; or from the terminal):
    npx @modelcontextprotocol/inspector --cli {base}/mcp --transport http --method tools/list{inspector_header}

  Claude Desktop (claude_desktop_config.json), through mcp-remote:
    {{ "mcpServers": {{ "mcpgate-demo": {{ "command": "npx", "args": ["-y", "mcp-remote", "{base}/mcp"{header_args}] }} }} }}

  Cursor (~/.cursor/mcp.json):
    {{ "mcpServers": {{ "mcpgate-demo": {{ "url": "{base}/mcp"{headers_json} }} }} }}

  VS Code (.vscode/mcp.json):
    {{ "servers": {{ "mcpgate-demo": {{ "type": "http", "url": "{base}/mcp"{headers_json} }} }} }}

  Stop with Ctrl-C.
"#,
        inspector_header = if matches!(auth, DemoAuth::Disabled) {
            String::new()
        } else {
            format!(" --header \"Authorization: Bearer {bearer}\"")
        },
    )
}

/// A path as one shell word, to paste into a command line.
pub(crate) fn shell_word(p: &std::path::Path) -> String {
    let s = p.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn starter_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mcpgate.toml");
        std::fs::write(&p, super::STARTER).unwrap();
        let c = crate::config::load(Some(&p)).unwrap();
        assert_eq!(c.upstreams.len(), 1);
        assert!(crate::config::auth_problems(&c).is_empty());
    }
}
